// The frame pass's UNet batches, as `fairy-engine edit` forms them: the shot's non-anchor frames in
// order, `batch` per call, counted from the shot's first frame (the last call may be shorter).
// CPU results are bit-identical only for identical batches, so a frames task computes exactly the
// groups that touch its range (and discards the frames outside it). Pure functions.
#pragma once

#include <cstdint>
#include <vector>

namespace fairy::engine {

// All groups of the shot [shot_first, shot_first + shot_count). `anchors` sorted. REQUIRES batch
// >= 1.
std::vector<std::vector<int64_t>> FramePassGroups(int64_t shot_first, int64_t shot_count,
                                                  const std::vector<int64_t>& anchors,
                                                  int64_t batch);
// The groups holding at least one frame of [begin, end).
std::vector<std::vector<int64_t>> GroupsTouching(const std::vector<std::vector<int64_t>>& groups,
                                                 int64_t begin, int64_t end);

}  // namespace fairy::engine
