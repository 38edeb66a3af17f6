#include <gtest/gtest.h>

#include <map>
#include <set>

#include "worker/engine/frames/frame_groups.h"

namespace fairy::engine {
namespace {

using Groups = std::vector<std::vector<int64_t>>;

TEST(FrameGroupsTest, SkipsAnchorsAndCountsFromTheShotStart) {
  // Shot [10, 22) with anchors 11, 16, 20: non-anchors 10 12 13 14 15 17 18 19 21.
  Groups g = FramePassGroups(10, 12, {11, 16, 20}, 4);
  EXPECT_EQ(g, (Groups{{10, 12, 13, 14}, {15, 17, 18, 19}, {21}}));
  EXPECT_EQ(FramePassGroups(0, 3, {0, 1, 2}, 4), Groups{});
  EXPECT_EQ(FramePassGroups(5, 3, {6}, 1), (Groups{{5}, {7}}));
}

TEST(FrameGroupsTest, TasksOfAnyPartitionComputeTheEngineBatchesAndCoverEveryFrameOnce) {
  const std::vector<int64_t> anchors = {7, 22, 36};
  const Groups all = FramePassGroups(0, 44, anchors, 4);
  for (int64_t chunk : {1, 3, 5, 16, 44}) {
    std::map<int64_t, int> kept;  // frame -> how many tasks keep it
    for (int64_t begin = 0; begin < 44; begin += chunk) {
      int64_t end = std::min<int64_t>(44, begin + chunk);
      for (const auto& g : GroupsTouching(all, begin, end)) {
        // Every computed batch is one of the engine's batches, unchanged.
        EXPECT_NE(std::find(all.begin(), all.end(), g), all.end());
        for (int64_t f : g) {
          if (f >= begin && f < end) kept[f]++;
        }
      }
    }
    for (int64_t f = 0; f < 44; ++f) {
      bool anchor = std::binary_search(anchors.begin(), anchors.end(), f);
      EXPECT_EQ(kept.count(f) ? kept[f] : 0, anchor ? 0 : 1) << "frame " << f << " chunk " << chunk;
    }
  }
}

}  // namespace
}  // namespace fairy::engine
