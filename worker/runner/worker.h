// Worker: the worker process as a component (fairy-worker's main is a thin wrapper).
//
// Threads: the DealerLink's thread (protocol, heartbeats, reconnects) and `slots` task threads that
// run the executor (the GPU work). TASK messages are queued; a free task thread takes the next one,
// reports PROGRESS (frames done at once; steps run and model bytes read, without other news, at
// most once per heartbeat interval), then DONE or FAILED. CANCEL stops a queued or running attempt.
// Heartbeats never wait for the GPU: they come from the link's thread. With a models_dir, a
// models thread lists it every models_scan_interval_ms and sends the new list of model ids in a
// HEARTBEAT when it changed (a studio copies a model in while the worker runs).
//
// Shutdown (SIGTERM -> Drain()): takes no new tasks, lets the running ones finish for up to
// drain_grace_ms, cancels what is still running after that, hands queued and cancelled attempts
// back in the DISCONNECT (the coordinator requeues them without counting a failure) and stops.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "worker/link/dealer_link.h"
#include "worker/runner/task_executor.h"

namespace fairy::worker {

struct WorkerOptions {
  link::DealerOptions link;          // endpoint, worker_id, heartbeat and reconnect timings
  std::string hostname;
  std::string device = "cpu";
  int64_t memory_bytes = 0;
  std::vector<std::string> tags;
  int slots = 1;                     // tasks run at once
  // Folder of models named by id: its diffusers folders and .safetensors files are reported to the
  // coordinator (READY; a HEARTBEAT when they change). "" = none reported (the coordinator then
  // does not check models against this worker).
  std::string models_dir;
  int64_t models_scan_interval_ms = 5000;  // how often models_dir is listed again
  int64_t drain_grace_ms = 30000;    // SIGTERM: how long running tasks may finish
};

class Worker {
 public:
  // REQUIRES: executor outlives the worker and is safe to call from `slots` threads at once.
  static Result<std::unique_ptr<Worker>> Start(WorkerOptions options, TaskExecutor* executor);
  ~Worker();  // Drain(0) if still running

  // Finishes or hands back the work as described above, says goodbye, stops. Idempotent.
  void Drain(int64_t grace_ms);
  // Blocks until Drain() completed.
  void Wait();

  bool connected() const { return link_ && link_->connected(); }
  int64_t tasks_done() const { return tasks_done_.load(); }

 private:
  struct ProgressSent {  // an attempt's last PROGRESS sent (executors may report from any thread)
    std::mutex mutex;
    bool never = true;
    int64_t done = 0;
    int64_t total = 0;
    int64_t steps = 0;  // denoising steps counted so far (TaskContext::step)
    int64_t load_read = 0;
    int64_t load_total = 0;  // 0: no model being loaded
    std::chrono::steady_clock::time_point at;
  };
  struct Attempt {
    protocol::Task task;
    std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  };

  explicit Worker(WorkerOptions options, TaskExecutor* executor);
  void OnMessage(protocol::Message message);  // link thread
  protocol::Ready MakeReady();                // link thread
  void TaskLoop();                            // task threads
  void RunAttempt(const Attempt& attempt);
  void ScanLoop();                            // models thread: lists models_dir every interval
  // Lists models_dir; true when the list differs from the last one (then stored).
  bool RescanModels();

  WorkerOptions options_;
  TaskExecutor* executor_;
  std::unique_ptr<link::DealerLink> link_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> tasks_done_{0};

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Attempt> queue_;                 // GUARDED_BY(mutex_)
  std::map<std::string, Attempt> running_;    // GUARDED_BY(mutex_) key job/task
  bool draining_ = false;                     // GUARDED_BY(mutex_)
  bool stopped_ = false;                      // GUARDED_BY(mutex_)
  std::vector<protocol::TaskRef> handed_back_;  // GUARDED_BY(mutex_)

  std::mutex models_mutex_;
  std::vector<std::string> installed_models_;  // GUARDED_BY(models_mutex_)
  std::string models_error_;                   // GUARDED_BY(models_mutex_) last listing error
};

}  // namespace fairy::worker
