// The coordinator's media work, run on its background pool (never on the event loop):
//   Analyze: probe the input, detect shots (split long ones), choose anchors -> shot plans.
//   Stitch: encode the frames tasks' lossless chunks, in frame order, into the job's output with
//           the source's timing and audio, and verify the frame count.
// Both are pure functions of their arguments and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/daemon/job_plan.h"
#include "coordinator/scheduler/records.h"

namespace fairy::coordinator {

// Workers size frames to multiples of their model's VAE factor: 8 for every model they load.
inline constexpr int kFrameMultiple = 8;

struct AnalyzeResult {
  std::vector<scheduler::ShotPlan> shots;
  int64_t frames = 0;
  double fps = 0;
  // The size frames are edited at: the display size scaled so its longer side is the job's
  // resolution, each side rounded to a multiple of kFrameMultiple (aspect kept).
  int working_width = 0, working_height = 0;
};

// Errors name the input path: NotFound (missing video), InvalidArgument/Corruption (unreadable or
// corrupt video), NotFound (model folder without model_index.json).
Result<AnalyzeResult> Analyze(const JobPlan& plan);

struct StitchResult {
  int64_t frames = 0;
  int audio_streams = 0;
};

// `chunks`: the frames tasks' chunk paths in frame order. Leaves the chunks in place (the caller
// removes the work folder once the job's DONE is persisted, so a restart can stitch again).
Result<StitchResult> Stitch(const JobPlan& plan, const std::vector<std::string>& chunks);

}  // namespace fairy::coordinator
