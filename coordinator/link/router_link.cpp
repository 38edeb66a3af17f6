#include "coordinator/link/router_link.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <unordered_map>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/log.h"

namespace fairy::link {
namespace {

using Clock = std::chrono::steady_clock;

struct Peer {
  Clock::time_point last_heard;
  Clock::time_point last_sent;
};

std::string Printable(const std::string& id) {
  std::string out;
  for (unsigned char c : id) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

struct RouterLink::Impl {
  RouterOptions options;
  MessageHandler on_message;
  RejectHandler on_reject;
  zmq::context_t context{1};
  zmq::socket_t socket;
  int wake_fd = -1;
  std::atomic<bool> stop{false};

  std::mutex mutex;
  std::deque<std::pair<std::string, protocol::Message>> outbox;  // GUARDED_BY(mutex)

  // Owned by the link thread.
  std::unordered_map<std::string, Peer> peers;

  ~Impl() {
    if (wake_fd >= 0) close(wake_fd);
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_fd, &one, sizeof(one));
    (void)n;
  }

  bool SendFrames(const std::string& peer, const std::vector<std::string>& frames) {
    try {
      socket.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      for (size_t i = 0; i < frames.size(); ++i) {
        auto flags = zmq::send_flags::dontwait;
        if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
        socket.send(zmq::buffer(frames[i]), flags);
      }
      return true;
    } catch (const zmq::error_t& e) {
      FAIRY_LOG(kWarn, "link") << "dropping message for worker '" << Printable(peer)
                               << "': " << e.what();
      return false;
    }
  }

  void SendMessage(const std::string& peer, const protocol::Message& message) {
    if (SendFrames(peer, protocol::Encode(message, options.encoding))) {
      auto it = peers.find(peer);
      if (it != peers.end()) it->second.last_sent = Clock::now();
    }
  }

  void Receive() {
    std::vector<zmq::message_t> parts;
    try {
      auto got = zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait);
      if (!got) return;
    } catch (const zmq::error_t& e) {
      FAIRY_LOG(kWarn, "link") << "receive failed: " << e.what();
      return;
    }
    if (parts.empty()) return;
    std::string peer = parts[0].to_string();
    std::vector<std::string> frames;
    frames.reserve(parts.size() - 1);
    for (size_t i = 1; i < parts.size(); ++i) frames.push_back(parts[i].to_string());
    auto now = Clock::now();
    auto decoded = protocol::Decode(frames);
    if (!decoded.ok()) {
      FAIRY_LOG(kWarn, "link") << "dropped a malformed message from '" << Printable(peer)
                               << "': " << decoded.status().ToString();
      if (decoded.status().code() == Status::Code::kUnsupported) {
        SendMessage(peer, protocol::Disconnect{decoded.status().message(), {}});
      }
      if (on_reject) on_reject(peer, decoded.status());
      return;
    }
    Peer& p = peers[peer];
    p.last_heard = now;
    if (std::holds_alternative<protocol::Disconnect>(*decoded)) peers.erase(peer);
    on_message(peer, std::move(decoded).value());
  }

  void Heartbeat() {
    auto now = Clock::now();
    auto interval = std::chrono::milliseconds(options.heartbeat_interval_ms);
    for (auto it = peers.begin(); it != peers.end();) {
      if (now - it->second.last_heard > interval * options.liveness) {
        it = peers.erase(it);
        continue;
      }
      if (now - it->second.last_sent >= interval) {
        std::string peer = it->first;
        ++it;
        SendMessage(peer, protocol::Heartbeat{});
        continue;
      }
      ++it;
    }
  }

  void Run(std::atomic<int64_t>* rejected) {
    auto user_reject = on_reject;
    on_reject = [rejected, user_reject](const std::string& peer, const Status& why) {
      rejected->fetch_add(1);
      if (user_reject) user_reject(peer, why);
    };
    zmq::pollitem_t items[2] = {{socket.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd, ZMQ_POLLIN, 0}};
    auto tick = std::chrono::milliseconds(std::max<int64_t>(1, options.heartbeat_interval_ms / 4));
    auto next_heartbeat = Clock::now() + tick;
    while (!stop.load()) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_heartbeat - Clock::now());
      try {
        zmq::poll(items, 2, std::max(wait, std::chrono::milliseconds(0)));
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) break;
        if (e.num() != EINTR) {
          FAIRY_LOG(kWarn, "link") << "poll failed: " << e.what();
        }
        continue;
      }
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t count;
        ssize_t n = read(wake_fd, &count, sizeof(count));
        (void)n;
      }
      std::deque<std::pair<std::string, protocol::Message>> pending;
      {
        std::lock_guard<std::mutex> lock(mutex);
        pending.swap(outbox);
      }
      for (auto& [peer, message] : pending) SendMessage(peer, message);
      // Drain everything that is queued, so a burst is not served one poll at a time.
      while (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) Receive();
      if (Clock::now() >= next_heartbeat) {
        Heartbeat();
        next_heartbeat = Clock::now() + tick;
      }
    }
    socket.close();
  }
};

Result<std::unique_ptr<RouterLink>> RouterLink::Start(RouterOptions options, MessageHandler on_message,
                                                      RejectHandler on_reject) {
  if (!on_message) return Status::InvalidArgument("RouterLink: a message handler is required");
  if (options.heartbeat_interval_ms <= 0 || options.liveness <= 0) {
    return Status::InvalidArgument("RouterLink: heartbeat_interval_ms and liveness must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->on_message = std::move(on_message);
  impl->on_reject = std::move(on_reject);
  impl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status::IOError("RouterLink: eventfd failed");
  std::string endpoint;
  try {
    impl->socket = zmq::socket_t(impl->context, zmq::socket_type::router);
    impl->socket.set(zmq::sockopt::linger, 0);
    impl->socket.set(zmq::sockopt::router_mandatory, 1);
    // A worker that reconnects under the same id takes its id over from the stale connection.
    impl->socket.set(zmq::sockopt::router_handover, 1);
    impl->socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxBodyBytes + 4096));
    impl->socket.bind(options.bind_endpoint);
    endpoint = impl->socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind the worker endpoint '" + options.bind_endpoint +
                               "': " + e.what());
  }
  std::unique_ptr<RouterLink> link(new RouterLink(std::move(impl)));
  link->endpoint_ = endpoint;
  link->thread_ = std::thread([raw = link.get()] { raw->impl_->Run(&raw->rejected_); });
  FAIRY_LOG(kInfo, "link") << "listening for workers on " << endpoint;
  return link;
}

RouterLink::RouterLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RouterLink::~RouterLink() { Stop(); }

void RouterLink::Send(const std::string& peer, protocol::Message message) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->outbox.emplace_back(peer, std::move(message));
  }
  impl_->Wake();
}

void RouterLink::Stop() {
  if (!thread_.joinable()) return;
  impl_->stop.store(true);
  impl_->Wake();
  thread_.join();
}

}  // namespace fairy::link
