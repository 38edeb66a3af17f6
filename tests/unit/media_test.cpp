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
