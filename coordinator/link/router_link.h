// RouterLink: the coordinator's end of the worker protocol, a ZeroMQ ROUTER socket on its own thread.
//
// The ROUTER socket is created, used and closed by the link's thread only (a ZeroMQ socket belongs
// to exactly one thread). Other threads hand it outgoing messages through Send(), which queues them
// and wakes the thread through an eventfd polled next to the socket.
//
// Incoming messages are decoded strictly (common/protocol); a valid one is passed to the message
// handler, a malformed one is logged, counted, reported to the reject handler and dropped. A peer
// that speaks another protocol version gets a DISCONNECT naming the version this build speaks.
//
// Heartbeats: the link sends HEARTBEAT to every peer it heard from within the last
// heartbeat_interval_ms x liveness, whenever it sent that peer nothing for heartbeat_interval_ms.
// Deciding that a worker is dead is not the link's business (the scheduler does it from the
// timestamps of what the handler delivered).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/protocol/protocol.h"
#include "common/status.h"

namespace fairy::link {

struct RouterOptions {
  // Where to bind, e.g. "tcp://0.0.0.0:5555" or "tcp://127.0.0.1:*" (a free port; see endpoint()).
  std::string bind_endpoint = "tcp://127.0.0.1:5555";
  int64_t heartbeat_interval_ms = 1000;  // HEARTBEAT period towards quiet peers
  int64_t liveness = 3;                  // peers silent for interval x liveness get no heartbeats
  protocol::Encoding encoding = protocol::Encoding::kJson;  // body encoding of what we send
};

class RouterLink {
 public:
  // Called on the link's thread, in arrival order. `peer` is the sender's routing id.
  using MessageHandler = std::function<void(const std::string& peer, protocol::Message message)>;
  // Called on the link's thread for every dropped malformed message (may be empty).
  using RejectHandler = std::function<void(const std::string& peer, const Status& why)>;

  // Binds and starts the thread. Fails (Unavailable) when the endpoint cannot be bound.
  static Result<std::unique_ptr<RouterLink>> Start(RouterOptions options, MessageHandler on_message,
                                                   RejectHandler on_reject = nullptr);
  ~RouterLink();  // Stop()

  RouterLink(const RouterLink&) = delete;
  RouterLink& operator=(const RouterLink&) = delete;

  // Queues `message` for `peer`. Thread-safe, never blocks on the network. A message for a peer
  // that is not connected is dropped (and logged) by the link's thread.
  void Send(const std::string& peer, protocol::Message message);

  // The bound endpoint with its real port ("tcp://127.0.0.1:40123").
  const std::string& endpoint() const { return endpoint_; }
  // Messages dropped as malformed since Start().
  int64_t rejected() const { return rejected_.load(); }
  // Stops the thread and closes the socket (linger 0: unsent messages are discarded). Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit RouterLink(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
  std::atomic<int64_t> rejected_{0};
  std::thread thread_;
};

}  // namespace fairy::link
