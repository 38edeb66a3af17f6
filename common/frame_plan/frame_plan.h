// The frame pass's UNet batches, and the frames tasks cut from them: the contract between the
// coordinator (which plans frames tasks), the worker (which runs them) and `fairy-engine edit`.
//
// A shot's non-anchor frames are edited in groups of `batch` frames per UNet call, counted from the
// shot's first frame (the last group may be shorter). CPU results are bit-identical only for
// identical UNet batches, so every tool forms these same groups, and the coordinator cuts frames
// tasks only where a group begins, so no group is computed by two tasks. Pure functions.
#pragma once

#include <cstdint>
#include <vector>

namespace fairy::frame_plan {

// All groups of the shot [shot_first, shot_first + shot_count). `anchors` sorted. REQUIRES batch
// >= 1.
std::vector<std::vector<int64_t>> FramePassGroups(int64_t shot_first, int64_t shot_count,
                                                  const std::vector<int64_t>& anchors,
                                                  int64_t batch);

// The groups holding at least one frame of [begin, end). A frames task runs these; for a range
// from FramesTaskRanges they hold only the range's frames.
std::vector<std::vector<int64_t>> GroupsTouching(const std::vector<std::vector<int64_t>>& groups,
                                                 int64_t begin, int64_t end);

struct FrameRange {
  int64_t first = 0;
  int64_t count = 0;
  bool operator==(const FrameRange&) const = default;
};

// The frames tasks of a shot: consecutive ranges covering it exactly, each but the first beginning
// where a group begins, each holding ceil(chunk_frames / batch) groups (the last may hold fewer)
// and the anchors that fall inside it. A shot without non-anchor frames is one range.
// REQUIRES shot_count >= 1, batch >= 1, chunk_frames >= 1, `anchors` sorted.
std::vector<FrameRange> FramesTaskRanges(int64_t shot_first, int64_t shot_count,
                                         const std::vector<int64_t>& anchors, int64_t batch,
                                         int64_t chunk_frames);

}  // namespace fairy::frame_plan
