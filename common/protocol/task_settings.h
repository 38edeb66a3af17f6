// TaskSettings: the `settings` object of a TASK message, i.e. everything a worker needs to run one
// anchor or frames task beyond the task's identity and frame range. The coordinator builds it from
// the validated job spec and the shot plan; the worker parses it strictly (errors name the field)
// and fails the task as not retryable when it is invalid.
//
// File layout on shared storage (every node sees the same paths):
//   <work_dir>/anchor-<frame>.mkv          lossless output of one anchor frame (anchor task)
//   <work_dir>/<task_id>.mkv               lossless chunk of a frames task: ALL its frames, anchor
//                                          frames included (copied from the anchor outputs or,
//                                          with anchor_mode recompute, recomputed)
// The stitch concatenates the frames tasks' chunks in frame order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace fairy::protocol {

struct TaskSettings {
  std::string input;          // source video path
  std::string work_dir;       // folder for this job's chunks (created by the coordinator)
  std::string model;          // model folder (diffusers layout)
  std::string instruction;
  int64_t steps = 10;
  double guidance_text = 7.5;
  double guidance_image = 1.5;
  uint64_t seed = 0;
  std::string noise = "per_frame";  // "per_frame" | "shared" (engine NoiseMode); per_frame when
                                    // absent (TASKs from coordinators older than the field)
  std::string scheduler = "euler_ancestral";  // "euler_ancestral" | "euler" (engine Sampler);
                                              // euler_ancestral when absent
  int64_t long_side = 512;    // edit resolution: the longer side, multiple of 8
  std::string anchor_mode = "cache";  // "cache" | "recompute"
  int64_t batch = 4;          // frames per UNet call of the frame pass (common/frame_plan); 4
                              // when absent (TASKs from coordinators older than the field)
  int64_t shot_first = 0;     // the task's shot: frames [shot_first, shot_first + shot_count)
  int64_t shot_count = 0;
  std::vector<int64_t> anchor_frames;  // the shot's anchors (absolute, sorted, inside the shot)

  bool operator==(const TaskSettings&) const = default;
};

nlohmann::json ToJson(const TaskSettings& settings);
// Strict: missing/mistyped fields and out-of-range values fail, naming the field ("settings.steps").
Result<TaskSettings> TaskSettingsFromJson(const nlohmann::json& j);

std::string AnchorOutputPath(const std::string& work_dir, int64_t frame);
std::string ChunkPath(const std::string& work_dir, const std::string& task_id);

}  // namespace fairy::protocol
