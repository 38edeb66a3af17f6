// TaskExecutor: runs one task attempt to completion on the calling thread (the worker's GPU
// thread). The Worker owns the protocol; an executor only computes and writes outputs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/protocol/protocol.h"
#include "common/protocol/task_settings.h"
#include "common/status.h"

namespace fairy::worker {

struct TaskOutcome {
  std::string output;       // frames: chunk path; anchor: anchor cache key
  int64_t frames = 0;       // frames written
  int64_t cache_bytes = 0;  // anchor: bytes published
};

struct TaskContext {
  const protocol::Task* task = nullptr;
  const protocol::TaskSettings* settings = nullptr;
  // Reports progress (frames done of the task's total) and an optional log line. Thread-safe.
  std::function<void(int64_t frames_done, int64_t frames_total, const std::string& line)> progress;
  // Counts one finished denoising step (sent with the next progress() call). The coordinator
  // learns the worker's time per step from these and declares an attempt that stops stepping
  // stalled, so an executor calls it (then progress()) after every step. Thread-safe.
  std::function<void()> step;
  // A model is being loaded: weight bytes read so far and in all (a report at most once per
  // heartbeat interval). A slow load that keeps reading is not a stall. Thread-safe.
  std::function<void(int64_t bytes_read, int64_t bytes_total)> loading;
  // Becomes true when the attempt should stop (CANCEL, or SIGTERM past its grace period). The
  // executor checks it between denoising steps and returns Status::Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  // Models this executor holds loaded (reported in READY).
  virtual std::vector<std::string> LoadedModels() const = 0;
  // Runs the attempt. Failed Status: the attempt failed (Cancelled when told to stop);
  // InvalidArgument/NotFound are reported as not retryable.
  virtual Result<TaskOutcome> Run(const TaskContext& context) = 0;
};

}  // namespace fairy::worker
