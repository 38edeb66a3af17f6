// RouterLink <-> DealerLink over real ZeroMQ sockets on loopback.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "coordinator/link/router_link.h"
#include "worker/link/dealer_link.h"

namespace fairy::link {
namespace {

using namespace std::chrono_literals;

// Collects messages delivered on a link thread; the test thread waits on them.
template <typename T>
class Inbox {
 public:
  void Push(T v) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_back(std::move(v));
    cv_.notify_all();
  }
  // Waits for the first item matching pred (removing it); nullopt after the timeout.
  template <typename Pred>
  std::optional<T> WaitFor(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::optional<T> out;
    cv_.wait_for(lock, timeout, [&] {
      for (auto it = items_.begin(); it != items_.end(); ++it) {
        if (pred(*it)) {
          out = std::move(*it);
          items_.erase(it);
          return true;
        }
      }
      return false;
    });
    return out;
  }
  size_t Count(const std::function<bool(const T&)>& pred) {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::count_if(items_.begin(), items_.end(), pred);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<T> items_;
};

using Received = std::pair<std::string, protocol::Message>;

template <typename M>
bool Is(const Received& r) {
  return std::holds_alternative<M>(r.second);
}

RouterOptions FastRouter(const std::string& endpoint = "tcp://127.0.0.1:*") {
  RouterOptions o;
  o.bind_endpoint = endpoint;
  o.heartbeat_interval_ms = 50;
  o.liveness = 3;
  return o;
}

DealerOptions FastDealer(const std::string& endpoint, const std::string& id) {
  DealerOptions o;
  o.endpoint = endpoint;
  o.worker_id = id;
  o.heartbeat_interval_ms = 50;
  o.liveness = 3;
  o.reconnect_initial_ms = 20;
  o.reconnect_max_ms = 200;
  return o;
}

protocol::Ready MakeReady(const std::string& id, std::vector<protocol::TaskRef> running = {}) {
  protocol::Ready r;
  r.worker_id = id;
  r.device = "cpu";
  r.running = std::move(running);
  return r;
}

TEST(FarmLinkTest, ReadyTaskDoneRoundTrip) {
  Inbox<Received> router_in;
  auto router = RouterLink::Start(FastRouter(), [&](const std::string& peer, protocol::Message m) {
    router_in.Push({peer, std::move(m)});
  });
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  Inbox<protocol::Message> worker_in;
  auto dealer = DealerLink::Start(
      FastDealer((*router)->endpoint(), "w1"), [] { return MakeReady("w1"); },
      [&](protocol::Message m) { worker_in.Push(std::move(m)); });
  ASSERT_TRUE(dealer.ok());

  auto ready = router_in.WaitFor(Is<protocol::Ready>);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->first, "w1");
  EXPECT_EQ(std::get<protocol::Ready>(ready->second).worker_id, "w1");

  protocol::Task task{{"j1", "s0-f0", 1}, protocol::TaskKind::kFrames, 0, 0, 24, {{"x", 1}}};
  (*router)->Send("w1", task);
  auto got = worker_in.WaitFor([](const protocol::Message& m) { return std::holds_alternative<protocol::Task>(m); });
  ASSERT_TRUE(got);
  EXPECT_EQ(std::get<protocol::Task>(*got), task);

  (*dealer)->Send(protocol::Done{task.ref, "/tmp/c.mkv", 24, 10, 0});
  auto done = router_in.WaitFor(Is<protocol::Done>);
  ASSERT_TRUE(done);
  EXPECT_EQ(std::get<protocol::Done>(done->second).frames, 24);
  EXPECT_TRUE((*dealer)->connected());
}

TEST(FarmLinkTest, HeartbeatsKeepAnIdleWorkerConnected) {
  Inbox<Received> router_in;
  auto router = RouterLink::Start(FastRouter(), [&](const std::string& p, protocol::Message m) {
    router_in.Push({p, std::move(m)});
  });
  ASSERT_TRUE(router.ok());
  auto dealer = DealerLink::Start(
      FastDealer((*router)->endpoint(), "idle"), [] { return MakeReady("idle"); }, [](protocol::Message) {});
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(router_in.WaitFor(Is<protocol::Ready>));
  std::this_thread::sleep_for(600ms);  // 12 intervals, 4 expiries
  EXPECT_TRUE((*dealer)->connected());
  EXPECT_EQ((*dealer)->reconnects(), 0);
  EXPECT_GE(router_in.Count(Is<protocol::Heartbeat>), 5u);
}

TEST(FarmLinkTest, WorkerReconnectsAfterCoordinatorRestartAndReportsRunningTasks) {
  Inbox<Received> first_in;
  auto router = RouterLink::Start(FastRouter(), [&](const std::string& p, protocol::Message m) {
    first_in.Push({p, std::move(m)});
  });
  ASSERT_TRUE(router.ok());
  std::string endpoint = (*router)->endpoint();
  protocol::TaskRef running{"j1", "s0-f1", 2};
  auto dealer = DealerLink::Start(
      FastDealer(endpoint, "w2"), [&] { return MakeReady("w2", {running}); }, [](protocol::Message) {});
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(first_in.WaitFor(Is<protocol::Ready>));
  for (int i = 0; i < 200 && !(*dealer)->connected(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE((*dealer)->connected());
  (*router)->Stop();
  router->reset();
  for (int i = 0; i < 100 && (*dealer)->connected(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE((*dealer)->connected());

  // Like the coordinator: a peer that talks before saying READY (its TCP connection came back
  // before it noticed the restart) is told to send READY.
  Inbox<Received> second_in;
  std::atomic<RouterLink*> second{nullptr};
  std::set<std::string> known;  // link thread only
  auto router2 = RouterLink::Start(FastRouter(endpoint), [&](const std::string& p, protocol::Message m) {
    if (std::holds_alternative<protocol::Ready>(m)) {
      known.insert(p);
    } else if (!known.count(p) && second.load() != nullptr) {
      second.load()->Send(p, protocol::Disconnect{"unknown worker: send READY", {}});
    }
    second_in.Push({p, std::move(m)});
  });
  if (router2.ok()) second.store(router2->get());
  ASSERT_TRUE(router2.ok()) << router2.status().ToString();
  auto ready = second_in.WaitFor(Is<protocol::Ready>);
  ASSERT_TRUE(ready);
  ASSERT_EQ(std::get<protocol::Ready>(ready->second).running.size(), 1u);
  EXPECT_EQ(std::get<protocol::Ready>(ready->second).running[0], running);
  EXPECT_GE((*dealer)->reconnects(), 1);
}

TEST(FarmLinkTest, DisconnectMakesTheWorkerSendReadyAgain) {
  Inbox<Received> in;
  auto router = RouterLink::Start(FastRouter(), [&](const std::string& p, protocol::Message m) {
    in.Push({p, std::move(m)});
  });
  ASSERT_TRUE(router.ok());
  auto dealer = DealerLink::Start(
      FastDealer((*router)->endpoint(), "w3"), [] { return MakeReady("w3"); }, [](protocol::Message) {});
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(in.WaitFor(Is<protocol::Ready>));
  (*router)->Send("w3", protocol::Disconnect{"unknown worker; send READY", {}});
  EXPECT_TRUE(in.WaitFor(Is<protocol::Ready>));
}

// A raw DEALER, to send what a well-behaved link never would.
class RawPeer {
 public:
  explicit RawPeer(const std::string& endpoint) : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::routing_id, "raw");
    socket_.set(zmq::sockopt::rcvtimeo, 3000);
    socket_.connect(endpoint);
  }
  void Send(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  std::optional<std::vector<std::string>> Receive() {
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(socket_, std::back_inserter(parts))) return std::nullopt;
    std::vector<std::string> out;
    for (auto& p : parts) out.push_back(p.to_string());
    return out;
  }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
};

TEST(FarmLinkTest, OtherProtocolVersionGetsDisconnectAndTheLinkKeepsServing) {
  Inbox<Received> in;
  Inbox<Status> rejects;
  auto router = RouterLink::Start(
      FastRouter(), [&](const std::string& p, protocol::Message m) { in.Push({p, std::move(m)}); },
      [&](const std::string&, const Status& s) { rejects.Push(s); });
  ASSERT_TRUE(router.ok());
  RawPeer raw((*router)->endpoint());
  auto frames = protocol::Encode(MakeReady("raw"));
  frames[1] = "7";
  raw.Send(frames);
  // Skip heartbeats (none expected: the peer was never accepted) until the DISCONNECT.
  auto reply = raw.Receive();
  ASSERT_TRUE(reply);
  auto decoded = protocol::Decode(*reply);
  ASSERT_TRUE(decoded.ok());
  auto* d = std::get_if<protocol::Disconnect>(&*decoded);
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->reason.find("version 7"), std::string::npos) << d->reason;
  auto why = rejects.WaitFor([](const Status& s) { return s.code() == Status::Code::kUnsupported; });
  ASSERT_TRUE(why);

  // Malformed: garbage frames, a truncated message, a bad body.
  raw.Send({"\xff\x00garbage"});
  raw.Send({"FAIRY", "1", "DONE"});
  raw.Send({"FAIRY", "1", "DONE", "json", "{\"job\":1}"});
  for (int i = 0; i < 200 && (*router)->rejected() < 4; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ((*router)->rejected(), 4);
  EXPECT_EQ(in.Count([](const Received&) { return true; }), 0u);

  // Still serving a well-behaved worker.
  auto dealer = DealerLink::Start(
      FastDealer((*router)->endpoint(), "good"), [] { return MakeReady("good"); }, [](protocol::Message) {});
  ASSERT_TRUE(dealer.ok());
  EXPECT_TRUE(in.WaitFor(Is<protocol::Ready>));
}

TEST(FarmLinkTest, StopSendsGoodbyeAfterQueuedMessages) {
  Inbox<Received> in;
  auto router = RouterLink::Start(FastRouter(), [&](const std::string& p, protocol::Message m) {
    in.Push({p, std::move(m)});
  });
  ASSERT_TRUE(router.ok());
  auto dealer = DealerLink::Start(
      FastDealer((*router)->endpoint(), "bye"), [] { return MakeReady("bye"); }, [](protocol::Message) {});
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(in.WaitFor(Is<protocol::Ready>));
  protocol::TaskRef ref{"j", "t", 1};
  (*dealer)->Send(protocol::Failed{ref, "stopping", true});
  protocol::Disconnect bye{"SIGTERM", {ref}};
  (*dealer)->Stop(&bye, 2000);
  EXPECT_TRUE(in.WaitFor(Is<protocol::Failed>));
  auto got = in.WaitFor(Is<protocol::Disconnect>);
  ASSERT_TRUE(got);
  EXPECT_EQ(std::get<protocol::Disconnect>(got->second), bye);
}

TEST(FarmLinkTest, BindFailureIsAStatus) {
  auto bad = RouterLink::Start(FastRouter("tcp://256.1.1.1:1"), [](const std::string&, protocol::Message) {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tcp://256.1.1.1:1"), std::string::npos);
}

}  // namespace
}  // namespace fairy::link
