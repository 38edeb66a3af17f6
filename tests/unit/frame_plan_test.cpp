#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "common/frame_plan/frame_plan.h"

namespace fairy::frame_plan {
namespace {

using Groups = std::vector<std::vector<int64_t>>;

TEST(FramePlanTest, SkipsAnchorsAndCountsFromTheShotStart) {
  // Shot [10, 22) with anchors 11, 16, 20: non-anchors 10 12 13 14 15 17 18 19 21.
  Groups g = FramePassGroups(10, 12, {11, 16, 20}, 4);
  EXPECT_EQ(g, (Groups{{10, 12, 13, 14}, {15, 17, 18, 19}, {21}}));
  EXPECT_EQ(FramePassGroups(0, 3, {0, 1, 2}, 4), Groups{});
  EXPECT_EQ(FramePassGroups(5, 3, {6}, 1), (Groups{{5}, {7}}));
}

TEST(FramePlanTest, TasksOfAnyPartitionComputeTheEngineBatchesAndCoverEveryFrameOnce) {
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

TEST(FramePlanTest, TaskRangesStartWhereABatchStarts) {
  // Shot [10, 22), anchors 11 16 20, batch 4: groups {10 12 13 14} {15 17 18 19} {21}.
  EXPECT_EQ(FramesTaskRanges(10, 12, {11, 16, 20}, 4, 4),
            (std::vector<FrameRange>{{10, 5}, {15, 6}, {21, 1}}));
  // chunk 5 rounds up to two batches.
  EXPECT_EQ(FramesTaskRanges(10, 12, {11, 16, 20}, 4, 5), (std::vector<FrameRange>{{10, 11}, {21, 1}}));
  EXPECT_EQ(FramesTaskRanges(10, 12, {11, 16, 20}, 4, 100), (std::vector<FrameRange>{{10, 12}}));
  // Only anchors: one range over the shot.
  EXPECT_EQ(FramesTaskRanges(0, 3, {0, 1, 2}, 4, 16), (std::vector<FrameRange>{{0, 3}}));
  // Trailing anchors stay with the last range; leading ones with the first.
  EXPECT_EQ(FramesTaskRanges(0, 6, {0, 4, 5}, 1, 1), (std::vector<FrameRange>{{0, 2}, {2, 1}, {3, 3}}));
}

TEST(FramePlanTest, EveryBatchIsComputedByExactlyOneTaskAndEveryFrameCoveredOnce) {
  for (int64_t batch : {1, 3, 4, 8}) {
    for (int64_t chunk : {1, 5, 16, 24, 100}) {
      const std::vector<int64_t> anchors = {3, 21, 39};
      const int64_t first = 100, count = 43;
      std::vector<int64_t> abs_anchors;
      for (int64_t a : anchors) abs_anchors.push_back(first + a);
      const auto ranges = FramesTaskRanges(first, count, abs_anchors, batch, chunk);
      const auto all = FramePassGroups(first, count, abs_anchors, batch);
      std::map<std::vector<int64_t>, int> computed;
      int64_t next = first;
      for (const FrameRange& r : ranges) {
        EXPECT_EQ(r.first, next) << "batch " << batch << " chunk " << chunk;
        EXPECT_GE(r.count, 1);
        next = r.first + r.count;
        const auto groups = GroupsTouching(all, r.first, r.first + r.count);
        int64_t frames = 0;
        for (const auto& g : groups) {
          computed[g]++;
          for (int64_t f : g) EXPECT_TRUE(f >= r.first && f < r.first + r.count) << "group outside its task";
          frames += static_cast<int64_t>(g.size());
        }
        EXPECT_LE(frames, ((chunk + batch - 1) / batch) * batch);
      }
      EXPECT_EQ(next, first + count);
      EXPECT_EQ(computed.size(), all.size());
      for (const auto& [g, n] : computed) EXPECT_EQ(n, 1);
    }
  }
}

}  // namespace
}  // namespace fairy::frame_plan

