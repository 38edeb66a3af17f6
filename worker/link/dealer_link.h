// DealerLink: the worker's end of the worker protocol, a ZeroMQ DEALER socket on its own thread.
//
// Paranoid Pirate on the worker side:
//  - connects, then sends READY (built by the ready provider at every (re)connect, so it lists the
//    tasks still running) and heartbeats every heartbeat_interval_ms from the link's own thread,
//    however busy the GPU thread is;
//  - treats the coordinator as gone after heartbeat_interval_ms x liveness without any message from
//    it, or when it receives DISCONNECT; then closes the socket, waits (exponential backoff from
//    reconnect_initial_ms to reconnect_max_ms) and reconnects with a fresh socket and READY;
//  - keeps messages sent while disconnected (up to max_queued) and delivers them after READY, so a
//    DONE reached during a coordinator restart is not lost (results are fenced by attempt anyway).
//
// The socket is created, used and closed on the link's thread only. Send() is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/protocol/protocol.h"
#include "common/status.h"

namespace fairy::link {

struct DealerOptions {
  std::string endpoint = "tcp://127.0.0.1:5555";  // the coordinator's ROUTER
  std::string worker_id;                          // routing id; stable across reconnects
  int64_t heartbeat_interval_ms = 1000;
  int64_t liveness = 3;                // coordinator silent for interval x liveness -> reconnect
  int64_t reconnect_initial_ms = 250;  // first backoff; doubles per failed attempt
  int64_t reconnect_max_ms = 8000;     // backoff ceiling
  size_t max_queued = 10000;           // messages kept while disconnected; oldest dropped beyond
  protocol::Encoding encoding = protocol::Encoding::kJson;
};

class DealerLink {
 public:
  // Called on the link's thread for TASK and CANCEL (and DISCONNECT, after the link has reacted).
  using MessageHandler = std::function<void(protocol::Message message)>;
  // Called on the link's thread before each READY.
  using ReadyProvider = std::function<protocol::Ready()>;

  static Result<std::unique_ptr<DealerLink>> Start(DealerOptions options, ReadyProvider ready,
                                                   MessageHandler on_message);
  ~DealerLink();  // Stop() without a goodbye

  DealerLink(const DealerLink&) = delete;
  DealerLink& operator=(const DealerLink&) = delete;

  // Queues a message for the coordinator. Thread-safe, never blocks on the network.
  void Send(protocol::Message message);

  // The running-task count carried by heartbeats. Thread-safe.
  void SetRunning(int64_t tasks);

  // True once the coordinator answered since the last (re)connect.
  bool connected() const { return connected_.load(); }
  // Number of reconnects (after the first connect) so far.
  int64_t reconnects() const { return reconnects_.load(); }

  // Sends `goodbye` (if given) after everything already queued, waits up to `flush_ms` for it to
  // leave, then stops the thread and closes the socket. Idempotent.
  void Stop(const protocol::Disconnect* goodbye = nullptr, int64_t flush_ms = 500);

 private:
  struct Impl;
  explicit DealerLink(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  std::atomic<bool> connected_{false};
  std::atomic<int64_t> reconnects_{0};
  std::thread thread_;
};

}  // namespace fairy::link
