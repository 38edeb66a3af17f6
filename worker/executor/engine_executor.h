// EngineExecutor: runs anchor and frames tasks with the LibTorch engine (worker/engine), the media
// layer (decode, lossless chunks) and the anchor cache in Redis (common/anchor_store).
//
// It reproduces `fairy-engine edit` exactly (same decode size, anchor pass, frame-pass grouping and
// 8-bit rounding), so a farm edit is bit-identical to a single-process one on the same device:
//   - anchor task: decodes the shot's K anchors, runs the anchor pass, writes each anchor's output
//     as a one-frame lossless chunk (protocol::AnchorOutputPath) and, with anchor_mode cache,
//     publishes the serialized AnchorCache to Redis (fenced by the attempt; if Redis cannot take
//     it, the task still ends and says so in its log: the cache only saves work);
//   - frames task: gets the shot's cache (kept in memory from the previous task of the same shot,
//     else fetched from Redis and verified, else (absent, unreadable or corrupt), or with
//     anchor_mode recompute, recomputed: bit-identical either way), edits
//     its range and writes one lossless chunk (protocol::ChunkPath) atomically. The engine edits a
//     shot's non-anchor frames in groups of the job's `batch` counted from the shot's start
//     (common/frame_plan); a task runs exactly the groups that touch its range, because CPU
//     results are only bit-identical for identical UNet batches. The coordinator cuts ranges
//     where groups begin, so no group is computed twice.
//
// Models stay loaded between tasks (one per folder). Thread-safe: Run may be called from several
// task threads (each call has its own state; the models are shared read-only).
//
// This folder includes LibTorch headers (through worker/engine/pipeline.h): it is the worker's
// bridge to the engine and is linked only into fairy-worker, never into the coordinator.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "worker/runner/task_executor.h"

namespace fairy::worker {

struct EngineExecutorOptions {
  std::string device = "cpu";      // cpu, cuda, cuda:N
  std::string dtype = "float32";   // float32, float16, bfloat16 (CUDA)
  bool fp16_cache = false;         // anchor cache stored as float16
  std::string redis_url;           // anchor cache; "" = no Redis (anchor_mode cache falls back to recompute)
  std::string redis_password;      // AUTH password ("" = none or in the URL)
  std::string key_prefix = "fairy:";
  std::string models_dir;          // where a model named by id (not a path) lives: <models_dir>/<id>
  std::string model_variant;       // diffusers weights variant to read ("fp16"); "" = default files
  std::vector<std::string> storage_roots;  // tasks may read/write only under these (empty = anywhere)
  uint64_t max_part_bytes = 64ull << 20;  // anchor cache part size in Redis
  // Fault injection for tests (fairy-worker's hidden --fault-hang-at-step): the Nth denoising
  // step this executor runs (counted over all tasks) never returns and ignores cancels, as a hung
  // GPU kernel would, while the worker's link goes on heartbeating. 0 = off.
  int64_t fault_hang_at_step = 0;
};

class EngineExecutor final : public TaskExecutor {
 public:
  // Validates the device/dtype; loads nothing yet.
  static Result<std::unique_ptr<EngineExecutor>> Create(EngineExecutorOptions options);
  ~EngineExecutor() override;

  std::vector<std::string> LoadedModels() const override;
  Result<TaskOutcome> Run(const TaskContext& context) override;

  struct State;  // opaque (LibTorch types)

 private:
  explicit EngineExecutor(EngineExecutorOptions options);
  EngineExecutorOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace fairy::worker
