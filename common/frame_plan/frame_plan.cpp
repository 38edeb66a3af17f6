#include "common/frame_plan/frame_plan.h"

#include <algorithm>

namespace fairy::frame_plan {

std::vector<std::vector<int64_t>> FramePassGroups(int64_t shot_first, int64_t shot_count,
                                                  const std::vector<int64_t>& anchors,
                                                  int64_t batch) {
  std::vector<std::vector<int64_t>> groups;
  std::vector<int64_t> pending;
  for (int64_t i = shot_first; i < shot_first + shot_count; ++i) {
    if (std::binary_search(anchors.begin(), anchors.end(), i)) continue;
    pending.push_back(i);
    if (static_cast<int64_t>(pending.size()) == batch) {
      groups.push_back(std::move(pending));
      pending.clear();
    }
  }
  if (!pending.empty()) groups.push_back(std::move(pending));
  return groups;
}

std::vector<std::vector<int64_t>> GroupsTouching(const std::vector<std::vector<int64_t>>& groups,
                                                 int64_t begin, int64_t end) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& g : groups) {
    if (std::any_of(g.begin(), g.end(), [&](int64_t i) { return i >= begin && i < end; }))
      out.push_back(g);
  }
  return out;
}

std::vector<FrameRange> FramesTaskRanges(int64_t shot_first, int64_t shot_count,
                                         const std::vector<int64_t>& anchors, int64_t batch,
                                         int64_t chunk_frames) {
  const auto groups = FramePassGroups(shot_first, shot_count, anchors, batch);
  const size_t per_task = static_cast<size_t>(std::max<int64_t>(1, (chunk_frames + batch - 1) / batch));
  std::vector<int64_t> starts = {shot_first};
  for (size_t i = per_task; i < groups.size(); i += per_task) starts.push_back(groups[i].front());
  std::vector<FrameRange> ranges;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t end = i + 1 < starts.size() ? starts[i + 1] : shot_first + shot_count;
    ranges.push_back({starts[i], end - starts[i]});
  }
  return ranges;
}

}  // namespace fairy::frame_plan
