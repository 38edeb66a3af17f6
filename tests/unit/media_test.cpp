// Pure parts of the media layer: output sizes, HSV conversion, the ContentDetector's flash filter,
// shots from cuts, splitting and anchors. No files, no FFmpeg calls.
#include <gtest/gtest.h>

#include <vector>

#include "common/media/frame_reader.h"
#include "common/media/shots.h"

namespace fairy::media {
namespace {

TEST(MediaSize, DisplaySizeByDefault) {
  int w = 0, h = 0;
  ComputeOutputSize(1024, 576, {}, &w, &h);
  EXPECT_EQ(w, 1024);
  EXPECT_EQ(h, 576);
}

TEST(MediaSize, LongSideKeepsAspectAndRoundsToMultiples) {
  DecodeOptions o;
  o.long_side = 512;
  o.multiple_of = 8;
  int w = 0, h = 0;
  ComputeOutputSize(1920, 1080, o, &w, &h);
  EXPECT_EQ(w, 512);
  EXPECT_EQ(h, 288);
  ComputeOutputSize(720, 1280, o, &w, &h);  // portrait
  EXPECT_EQ(w, 288);
  EXPECT_EQ(h, 512);
  ComputeOutputSize(640, 480, o, &w, &h);  // the paper's 4:3 case
  EXPECT_EQ(w, 512);
  EXPECT_EQ(h, 384);
  ComputeOutputSize(4000, 10, o, &w, &h);  // never below one multiple
  EXPECT_EQ(h, 8);
}

TEST(MediaSize, OneSideGivenOrBoth) {
  DecodeOptions o;
  o.width = 256;
  int w = 0, h = 0;
  ComputeOutputSize(1280, 544, o, &w, &h);
  EXPECT_EQ(w, 256);
  EXPECT_EQ(h, 109);  // 256 * 544 / 1280 = 108.8
  o.height = 100;
  ComputeOutputSize(1280, 544, o, &w, &h);
  EXPECT_EQ(w, 256);
  EXPECT_EQ(h, 100);
}

TEST(MediaHsv, MatchesOpenCvOnKnownColours) {
  // Expected values from cv2.cvtColor(..., COLOR_RGB2HSV) (8-bit: H 0..179).
  const std::vector<std::vector<uint8_t>> rgb = {{255, 0, 0},   {0, 255, 0}, {0, 0, 255},
                                                 {10, 20, 30},  {0, 0, 0},   {255, 255, 255},
                                                 {200, 100, 50}};
  const std::vector<std::vector<uint8_t>> hsv = {{0, 255, 255},  {60, 255, 255}, {120, 255, 255},
                                                 {105, 170, 30}, {0, 0, 0},      {0, 0, 255},
                                                 {10, 191, 200}};
  for (size_t i = 0; i < rgb.size(); ++i) {
    uint8_t out[3];
    RgbToHsvPlanar(rgb[i].data(), 1, out);
    EXPECT_EQ(out[0], hsv[i][0]) << "H of colour " << i;
    EXPECT_EQ(out[1], hsv[i][1]) << "S of colour " << i;
    EXPECT_EQ(out[2], hsv[i][2]) << "V of colour " << i;
  }
}

RgbFrame Solid(uint8_t r, uint8_t g, uint8_t b) {
  RgbFrame f;
  f.width = 4;
  f.height = 4;
  for (int i = 0; i < 16; ++i) f.pixels.insert(f.pixels.end(), {r, g, b});
  return f;
}

std::vector<int64_t> Feed(ContentDetector& d, const std::vector<RgbFrame>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) d.Process(static_cast<int64_t>(i), frames[i]);
  return d.cuts();
}

// counter.mp4's pattern: colour changes at 10 and 20, 30 frames.
std::vector<RgbFrame> Counter() {
  std::vector<RgbFrame> frames;
  for (int i = 0; i < 30; ++i)
    frames.push_back(i < 10 ? Solid(128, 128, 128) : i < 20 ? Solid(200, 0, 0) : Solid(0, 0, 200));
  return frames;
}

TEST(MediaContentDetector, MinLengthSuppressesEarlyCutsLikePySceneDetect) {
  ContentDetector d(27.0, 15);
  EXPECT_EQ(Feed(d, Counter()), std::vector<int64_t>{});  // PySceneDetect's golden for counter.mp4
  ContentDetector shorter(27.0, 5);
  EXPECT_EQ(Feed(shorter, Counter()), (std::vector<int64_t>{10, 20}));
  ContentDetector high(255.0, 5);
  EXPECT_EQ(Feed(high, Counter()), std::vector<int64_t>{});
}

TEST(MediaContentDetector, FlashesAfterTheFirstCutAreMergedAway) {
  // Cut at 20, then a 3-frame white flash at 25..27: FlashFilter MERGE swallows the short burst.
  std::vector<RgbFrame> frames;
  for (int i = 0; i < 60; ++i) {
    if (i < 20)
      frames.push_back(Solid(0, 0, 0));
    else if (i >= 25 && i < 28)
      frames.push_back(Solid(255, 255, 255));
    else
      frames.push_back(Solid(200, 0, 0));
  }
  ContentDetector d(27.0, 15);
  EXPECT_EQ(Feed(d, frames), (std::vector<int64_t>{20}));
}

TEST(MediaContentDetector, LongBurstsEmitTheirLastCutOnceSettled) {
  // Cut at 20; frames 25..44 alternate colours (each above the threshold); steady from 45. The
  // burst lasts >= min_length, so its last frame above the threshold (45) becomes a cut once 15
  // calm frames have passed.
  std::vector<RgbFrame> frames;
  for (int i = 0; i < 70; ++i) {
    if (i < 20)
      frames.push_back(Solid(0, 0, 0));
    else if (i < 25)
      frames.push_back(Solid(200, 0, 0));
    else if (i < 45)
      frames.push_back(i % 2 ? Solid(255, 255, 255) : Solid(0, 0, 200));
    else
      frames.push_back(Solid(0, 0, 0));
  }
  ContentDetector d(27.0, 15);
  EXPECT_EQ(Feed(d, frames), (std::vector<int64_t>{20, 45}));
}

// PySceneDetect 0.7 measures min_scene_len in time (frames at the average rate), not in frames.
TEST(MediaContentDetector, MinLengthIsMeasuredInTimeAtTheAverageRate) {
  auto run = [](int64_t step_us) {
    ContentDetector d(27.0, 15, Rational{10, 1});  // 15 frames at 10 fps: 1.5 s
    for (int i = 0; i < 40; ++i)
      d.Process(i, i * step_us, i < 16 ? Solid(0, 0, 0) : Solid(200, 0, 0));
    return d.cuts();
  };
  EXPECT_EQ(run(100000), std::vector<int64_t>{16});  // frame 16 at 1.6 s
  EXPECT_EQ(run(50000), std::vector<int64_t>{});     // frame 16 at 0.8 s: too soon
}

TEST(MediaContentDetector, ReportsEachComponent) {
  ContentDetector d(27.0, 15);
  const FrameScore first = d.Process(0, Solid(0, 0, 0));
  EXPECT_EQ(first.content_val, 0.0);
  const FrameScore s = d.Process(1, Solid(255, 0, 0));  // HSV (0, 255, 255) after (0, 0, 0)
  EXPECT_EQ(s.delta_hue, 0.0);
  EXPECT_EQ(s.delta_sat, 255.0);
  EXPECT_EQ(s.delta_lum, 255.0);
  EXPECT_DOUBLE_EQ(s.content_val, 170.0);
  EXPECT_EQ(s.time_us, 1000000);  // frame 1 at the default 1 fps
}

TEST(MediaShots, AnalysisSizeIsPySceneDetectsAutoDownscale) {
  auto size = [](int w, int h, int effective = 256) {
    int ow = 0, oh = 0;
    AnalysisSize(w, h, effective, &ow, &oh);
    return std::vector<int>{ow, oh};
  };
  EXPECT_EQ(size(1280, 720), (std::vector<int>{256, 144}));
  EXPECT_EQ(size(320, 180), (std::vector<int>{256, 144}));
  EXPECT_EQ(size(720, 576), (std::vector<int>{256, 205}));   // 204.8
  EXPECT_EQ(size(720, 1280), (std::vector<int>{144, 256}));  // the longer side counts
  EXPECT_EQ(size(512, 277), (std::vector<int>{256, 138}));   // 138.5: half to even
  EXPECT_EQ(size(512, 279), (std::vector<int>{256, 140}));   // 139.5
  EXPECT_EQ(size(256, 100), (std::vector<int>{256, 100}));   // factor 1: not resized
  EXPECT_EQ(size(176, 144), (std::vector<int>{176, 144}));   // never upscaled
  EXPECT_EQ(size(1280, 720, 0), (std::vector<int>{1280, 720}));
}

TEST(MediaShots, ResizeLinearLikeOpenCV) {
  // A flat picture stays flat (OpenCV's fixed point never drifts).
  for (uint8_t v : {0, 1, 128, 254, 255}) {
    std::vector<uint8_t> src(37 * 23 * 3, v), dst(16 * 9 * 3, 7);
    ResizeLinearLikeOpenCV(src.data(), 37, 23, dst.data(), 16, 9);
    EXPECT_EQ(dst, std::vector<uint8_t>(dst.size(), v)) << int(v);
  }
  // Exactly 2x: OpenCV's INTER_AREA path, the rounded mean of each 2x2 block.
  const std::vector<uint8_t> quad = {
      10, 0, 255, 20, 1, 255, 99, 3, 0, 7, 7, 7,  // row 0: 4 pixels
      30, 0, 255, 41, 1, 254, 1,  2, 0, 9, 9, 9,  // row 1
  };
  std::vector<uint8_t> half(2 * 1 * 3);
  ResizeLinearLikeOpenCV(quad.data(), 4, 2, half.data(), 2, 1);
  EXPECT_EQ(half, (std::vector<uint8_t>{(10 + 20 + 30 + 41 + 2) >> 2, (0 + 1 + 0 + 1 + 2) >> 2,
                                        (255 + 255 + 255 + 254 + 2) >> 2, (99 + 7 + 1 + 9 + 2) >> 2,
                                        (3 + 7 + 2 + 9 + 2) >> 2, (0 + 7 + 0 + 9 + 2) >> 2}));
  // 5x1 -> 2x1: columns sample 0.75 and 3.25 (weights 1/4, 3/4 and 3/4, 1/4).
  const std::vector<uint8_t> row = {0, 0, 0, 100, 100, 100, 200, 200, 200, 40, 40, 40, 80, 80, 80};
  std::vector<uint8_t> two(2 * 3);
  ResizeLinearLikeOpenCV(row.data(), 5, 1, two.data(), 2, 1);
  EXPECT_EQ(two, (std::vector<uint8_t>{75, 75, 75, 50, 50, 50}));
}

TEST(MediaShots, FromCutsSplitAndAnchors) {
  std::vector<Shot> shots = ShotsFromCuts({30, 0, 250, 76}, 100);
  ASSERT_EQ(shots.size(), 3u);
  EXPECT_EQ(shots[0].start, 0);
  EXPECT_EQ(shots[0].end, 30);
  EXPECT_EQ(shots[1].end, 76);
  EXPECT_EQ(shots[2].end, 100);
  std::vector<Shot> split = SplitLongShots({Shot{0, 25, {}}, Shot{25, 26, {}}}, 10);
  ASSERT_EQ(split.size(), 4u);  // 25 -> 9 + 8 + 8, then the 1-frame shot
  EXPECT_EQ(split[0].end - split[0].start, 9);
  EXPECT_EQ(split[1].end - split[1].start, 8);
  EXPECT_EQ(split[2].end, 25);
  EXPECT_EQ(split[3].start, 25);
  EXPECT_EQ(SplitLongShots(split, 0), split);
  EXPECT_EQ(ChooseAnchors(0, 30, 3), (std::vector<int64_t>{5, 15, 25}));
  EXPECT_EQ(ChooseAnchors(100, 102, 3), (std::vector<int64_t>{100, 101}));
  EXPECT_EQ(ChooseAnchors(7, 8, 3), (std::vector<int64_t>{7}));
  EXPECT_TRUE(ChooseAnchors(5, 5, 3).empty());
  EXPECT_TRUE(ShotsFromCuts({}, 0).empty());
}

}  // namespace
}  // namespace fairy::media
