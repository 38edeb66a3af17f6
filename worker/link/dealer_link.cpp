#include "worker/link/dealer_link.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/log.h"

namespace fairy::link {
namespace {
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
}  // namespace

struct DealerLink::Impl {
  DealerOptions options;
  ReadyProvider ready;
  MessageHandler on_message;
  std::atomic<bool>* connected = nullptr;
  std::atomic<int64_t>* reconnects = nullptr;
  zmq::context_t context{1};
  int wake_fd = -1;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> running{0};

  std::mutex mutex;
  std::deque<protocol::Message> outbox;              // GUARDED_BY(mutex)
  std::optional<protocol::Disconnect> goodbye;       // GUARDED_BY(mutex)
  Clock::time_point stop_deadline;                   // GUARDED_BY(mutex)
  bool stopping = false;                             // GUARDED_BY(mutex)

  ~Impl() {
    if (wake_fd >= 0) close(wake_fd);
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_fd, &one, sizeof(one));
    (void)n;
  }

  zmq::socket_t Open() {
    zmq::socket_t s(context, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::routing_id, options.worker_id);
    s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxBodyBytes + 4096));
    s.connect(options.endpoint);
    return s;
  }

  bool SendOn(zmq::socket_t& s, const protocol::Message& m) {
    auto frames = protocol::Encode(m, options.encoding);
    try {
      for (size_t i = 0; i < frames.size(); ++i) {
        auto flags = zmq::send_flags::dontwait;
        if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
        if (!s.send(zmq::buffer(frames[i]), flags)) return false;  // EAGAIN: not connected yet
      }
      return true;
    } catch (const zmq::error_t& e) {
      FAIRY_LOG(kWarn, "link") << "send failed: " << e.what();
      return false;
    }
  }

  void Run() {
    int64_t backoff_ms = options.reconnect_initial_ms;
    bool first = true;
    while (!stop.load()) {
      zmq::socket_t socket = Open();
      if (!first) reconnects->fetch_add(1);
      first = false;
      bool ready_sent = false;
      auto last_heard = Clock::now();
      auto last_sent = Clock::now() - Ms(options.heartbeat_interval_ms);
      bool lost = false;
      zmq::pollitem_t items[2] = {{socket.handle(), 0, ZMQ_POLLIN, 0},
                                  {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      while (!stop.load() && !lost) {
        // READY first (until it leaves: DEALER refuses to queue before the TCP connect completes).
        if (!ready_sent) {
          ready_sent = SendOn(socket, ready());
          if (ready_sent) last_sent = Clock::now();
        }
        if (ready_sent) {
          std::unique_lock<std::mutex> lock(mutex);
          while (!outbox.empty()) {
            protocol::Message m = outbox.front();
            lock.unlock();
            bool ok = SendOn(socket, m);
            lock.lock();
            if (!ok) break;
            outbox.pop_front();
            last_sent = Clock::now();
          }
          if (stopping && outbox.empty()) {
            if (goodbye) SendOn(socket, *goodbye);
            stop.store(true);
            break;
          }
        }
        {
          std::lock_guard<std::mutex> lock(mutex);
          if (stopping && Clock::now() >= stop_deadline) {
            stop.store(true);
            break;
          }
        }
        auto now = Clock::now();
        if (ready_sent && now - last_sent >= Ms(options.heartbeat_interval_ms)) {
          if (SendOn(socket, protocol::Heartbeat{running.load(), std::nullopt})) last_sent = now;
        }
        auto timeout = Ms(options.heartbeat_interval_ms) - std::chrono::duration_cast<Ms>(now - last_sent);
        if (!ready_sent) timeout = Ms(20);
        timeout = std::clamp(timeout, Ms(1), Ms(options.heartbeat_interval_ms));
        try {
          zmq::poll(items, 2, timeout);
        } catch (const zmq::error_t& e) {
          if (e.num() == ETERM) return;
          continue;
        }
        if (items[1].revents & ZMQ_POLLIN) {
          uint64_t count;
          ssize_t n = read(wake_fd, &count, sizeof(count));
          (void)n;
        }
        while (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) {
          std::vector<zmq::message_t> parts;
          try {
            if (!zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait)) break;
          } catch (const zmq::error_t& e) {
            FAIRY_LOG(kWarn, "link") << "receive failed: " << e.what();
            break;
          }
          std::vector<std::string> frames;
          for (auto& p : parts) frames.push_back(p.to_string());
          auto decoded = protocol::Decode(frames);
          if (!decoded.ok()) {
            FAIRY_LOG(kWarn, "link") << "dropped a malformed message from the coordinator: "
                                     << decoded.status().ToString();
            continue;
          }
          last_heard = Clock::now();
          if (!connected->exchange(true)) {
            FAIRY_LOG(kInfo, "link") << "connected to the coordinator at " << options.endpoint;
          }
          backoff_ms = options.reconnect_initial_ms;
          if (auto* d = std::get_if<protocol::Disconnect>(&*decoded)) {
            FAIRY_LOG(kWarn, "link") << "coordinator sent DISCONNECT: " << d->reason;
            lost = true;
            on_message(std::move(decoded).value());
            break;
          }
          if (std::holds_alternative<protocol::Heartbeat>(*decoded)) continue;
          on_message(std::move(decoded).value());
        }
        if (Clock::now() - last_heard > Ms(options.heartbeat_interval_ms * options.liveness)) {
          FAIRY_LOG(kWarn, "link") << "no word from the coordinator at " << options.endpoint << " for "
                                   << options.heartbeat_interval_ms * options.liveness
                                   << " ms; reconnecting in " << backoff_ms << " ms";
          lost = true;
        }
      }
      connected->store(false);
      socket.close();
      if (stop.load()) break;
      // Backoff, interruptible by Stop().
      auto until = Clock::now() + Ms(backoff_ms);
      while (!stop.load() && Clock::now() < until) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          if (stopping) {
            stop.store(true);  // nobody to say goodbye to
            break;
          }
        }
        std::this_thread::sleep_for(Ms(10));
      }
      backoff_ms = std::min(backoff_ms * 2, options.reconnect_max_ms);
    }
  }
};

Result<std::unique_ptr<DealerLink>> DealerLink::Start(DealerOptions options, ReadyProvider ready,
                                                      MessageHandler on_message) {
  if (options.worker_id.empty()) return Status::InvalidArgument("DealerLink: worker_id is empty");
  if (!ready || !on_message) return Status::InvalidArgument("DealerLink: handlers are required");
  if (options.heartbeat_interval_ms <= 0 || options.liveness <= 0 ||
      options.reconnect_initial_ms <= 0 || options.reconnect_max_ms < options.reconnect_initial_ms) {
    return Status::InvalidArgument("DealerLink: heartbeat and reconnect timings must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->ready = std::move(ready);
  impl->on_message = std::move(on_message);
  impl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status::IOError("DealerLink: eventfd failed");
  try {
    // Validate the endpoint now so a typo fails at startup, not silently in the thread.
    zmq::socket_t probe(impl->context, zmq::socket_type::dealer);
    probe.set(zmq::sockopt::linger, 0);
    probe.connect(impl->options.endpoint);
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("bad coordinator endpoint '" + impl->options.endpoint +
                                   "': " + e.what());
  }
  std::unique_ptr<DealerLink> link(new DealerLink(std::move(impl)));
  link->impl_->connected = &link->connected_;
  link->impl_->reconnects = &link->reconnects_;
  link->thread_ = std::thread([raw = link->impl_.get()] { raw->Run(); });
  return link;
}

DealerLink::DealerLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DealerLink::~DealerLink() { Stop(nullptr, 0); }

void DealerLink::Send(protocol::Message message) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->outbox.push_back(std::move(message));
    while (impl_->outbox.size() > impl_->options.max_queued) impl_->outbox.pop_front();
  }
  impl_->Wake();
}

void DealerLink::SetRunning(int64_t tasks) { impl_->running.store(tasks); }

void DealerLink::Stop(const protocol::Disconnect* goodbye, int64_t flush_ms) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
    if (goodbye) impl_->goodbye = *goodbye;
    impl_->stop_deadline = Clock::now() + Ms(flush_ms);
  }
  if (flush_ms <= 0) impl_->stop.store(true);
  impl_->Wake();
  thread_.join();
}

}  // namespace fairy::link
