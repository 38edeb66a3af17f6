#include "worker/engine/frames/frame_groups.h"

#include <algorithm>

namespace fairy::engine {

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

}  // namespace fairy::engine
