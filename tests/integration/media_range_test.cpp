// Frame-accurate ranges and lossless chunks: ranges concatenated == one full decode, bit for bit;
// chunk round trip bit exact; N chunks stitched == one chunk.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/media/chunk.h"
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "tests/integration/media_test_util.h"

namespace fairy::media {
namespace {

using fairy::testing::MediaPath;
using testing::DecodeAll;

void ExpectSameFrames(const std::vector<RgbFrame>& a, const std::vector<RgbFrame>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].index, b[i].index) << "position " << i;
    ASSERT_EQ(a[i].width, b[i].width);
    ASSERT_EQ(a[i].height, b[i].height);
    ASSERT_TRUE(a[i].pixels == b[i].pixels) << "frame " << a[i].index << " differs";
  }
}

struct RangeCase {
  const char* clip;
  std::vector<int64_t> bounds;  // range boundaries inside (0, frames)
};

// B-frames + sparse keyframes (issue-195: keyframes 0, 70, 170, 301, 421, 484), MXF open GOP,
// VFR, WebM without duration, interlaced DV, VP9.
TEST(MediaRange, RangesConcatenateToTheFullDecodeBitForBit) {
  const std::vector<RangeCase> cases = {
      {"issue-195-aspect-ratio.mp4", {69, 70, 71, 300, 302, 500}},
      {"freeMXF-mxf1.mxf", {1, 13, 100, 250, 265}},
      {"goldeneye-vfr-drop3.mp4", {59, 60, 61, 139, 140}},
      {"no_duration.webm", {10, 40, 73}},
      {"sony_good_quality.dv", {1, 3}},
      {"Big_Buck_Bunny_180_10s.webm", {127, 128, 129, 200, 257}},
      {"bikes.mp4", {17, 30, 31, 200}},
  };
  for (const RangeCase& c : cases) {
    SCOPED_TRACE(c.clip);
    FAIRY_REQUIRE_SHARED(std::string("media/") + c.clip);
    const std::string path = MediaPath(c.clip);
    Result<VideoInfo> info = Probe(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    DecodeOptions o;
    o.long_side = 128;
    o.multiple_of = 8;
    const std::vector<RgbFrame> full = DecodeAll(path, o, 0, info->frame_count);
    ASSERT_EQ(static_cast<int64_t>(full.size()), info->frame_count);
    std::vector<RgbFrame> joined;
    int64_t start = 0;
    std::vector<int64_t> bounds = c.bounds;
    bounds.push_back(info->frame_count);
    for (int64_t b : bounds) {
      std::vector<RgbFrame> part = DecodeAll(path, o, start, b);
      ASSERT_EQ(static_cast<int64_t>(part.size()), b - start)
          << "range [" << start << ", " << b << ")";
      joined.insert(joined.end(), part.begin(), part.end());
      start = b;
    }
    ExpectSameFrames(full, joined);
    // One reader seeking backwards and forwards gives the same frames too.
    auto reader = FrameReader::Open(path, o, &*info);
    ASSERT_TRUE(reader.ok());
    for (auto it = c.bounds.rbegin(); it != c.bounds.rend(); ++it) {
      ASSERT_TRUE((*reader)->Seek(*it).ok());
      RgbFrame f;
      auto got = (*reader)->Next(&f);
      ASSERT_TRUE(got.ok() && *got) << got.status().ToString();
      EXPECT_EQ(f.index, *it);
      EXPECT_TRUE(f.pixels == full[*it].pixels) << "seek to " << *it;
    }
  }
}

// Decode-ahead on or off, and every way Seek meets a frame decoded ahead (the next one, the one
// after it, further on, backwards), give the same frames.
TEST(MediaRange, DecodeAheadAndSeeksAroundItGiveTheSameFrames) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4");
  const std::string path = MediaPath("bikes.mp4");
  DecodeOptions o;
  o.long_side = 96;
  o.decode_ahead = false;
  const std::vector<RgbFrame> plain = DecodeAll(path, o, 0, 250);
  ASSERT_EQ(plain.size(), 250u);
  o.decode_ahead = true;
  auto reader = FrameReader::Open(path, o);
  ASSERT_TRUE(reader.ok());
  RgbFrame f;
  auto next_is = [&](int64_t want) {
    auto got = (*reader)->Next(&f);
    ASSERT_TRUE(got.ok() && *got) << got.status().ToString();
    ASSERT_EQ(f.index, want);
    EXPECT_TRUE(f.pixels == plain[want].pixels) << "frame " << want;
  };
  for (int64_t i = 0; i < 10; ++i) next_is(i);
  for (int64_t target : {10, 12, 13, 40, 5, 6, 249}) {
    ASSERT_TRUE((*reader)->Seek(target).ok()) << target;
    next_is(target);
  }
  auto end = (*reader)->Next(&f);
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(*end);
}

TEST(MediaRange, OutputSizeIsAMultipleOfEightWithAspectKept) {
  FAIRY_REQUIRE_SHARED("media/issue-195-aspect-ratio.mp4", "media/sony_good_quality.dv");
  DecodeOptions o;
  o.long_side = 512;
  o.multiple_of = 8;
  auto reader = FrameReader::Open(MediaPath("issue-195-aspect-ratio.mp4"), o);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->output_width(), 512);  // display 1024x576 (SAR 16:11)
  EXPECT_EQ((*reader)->output_height(), 288);
  auto dv = FrameReader::Open(MediaPath("sony_good_quality.dv"), o);
  ASSERT_TRUE(dv.ok());
  EXPECT_EQ((*dv)->output_width(), 512);  // display 640x480
  EXPECT_EQ((*dv)->output_height(), 384);
}

// Interlaced DV: with deinterlacing the frame has far less line-to-line combing than the woven
// fields, and it is the same size.
TEST(MediaRange, InterlacedDvIsDeinterlaced) {
  FAIRY_REQUIRE_SHARED("media/sony_good_quality.dv");
  const std::string path = MediaPath("sony_good_quality.dv");
  DecodeOptions o;
  o.apply_sar = false;
  auto on = DecodeAll(path, o, 0, 5);
  o.deinterlace = false;
  auto off = DecodeAll(path, o, 0, 5);
  ASSERT_EQ(on.size(), 5u);
  ASSERT_EQ(off.size(), 5u);
  auto comb = [](const RgbFrame& f) {
    // Mean |2 * row(y) - row(y - 1) - row(y + 1)|: large where odd and even lines disagree.
    double sum = 0;
    const int stride = f.width * 3;
    for (int y = 1; y + 1 < f.height; ++y) {
      for (int x = 0; x < stride; ++x) {
        sum += std::abs(2 * f.pixels[y * stride + x] - f.pixels[(y - 1) * stride + x] -
                        f.pixels[(y + 1) * stride + x]);
      }
    }
    return sum / (static_cast<double>(stride) * (f.height - 2));
  };
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(on[i].width, 720);
    EXPECT_EQ(on[i].height, 480);
    EXPECT_LT(comb(on[i]), 0.7 * comb(off[i])) << "frame " << i;
  }
}

TEST(MediaChunk, RoundTripIsBitExactAndAtomic) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-chunk");
  DecodeOptions o;
  o.width = 160;
  o.height = 68;
  const std::vector<RgbFrame> frames = DecodeAll(MediaPath("bikes.mp4"), o, 20, 60);
  ASSERT_EQ(frames.size(), 40u);
  const std::string path = dir + "/chunk-20.mkv";
  {
    ChunkWriterOptions co;
    co.width = 160;
    co.height = 68;
    co.first_index = 20;
    auto writer = ChunkWriter::Create(path, co);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    for (const RgbFrame& f : frames) ASSERT_TRUE((*writer)->Append(f).ok());
    EXPECT_FALSE(std::filesystem::exists(path)) << "visible before Finish";
    ASSERT_TRUE((*writer)->Finish().ok());
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1) << "temporary file left behind";
  auto reader = ChunkReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->first_index(), 20);
  EXPECT_EQ((*reader)->frame_count(), 40);
  ExpectSameFrames(frames, testing::ReadChunk(path));
}

TEST(MediaChunk, DamagedChunkIsAnErrorNotWrongPixels) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-chunk-damaged");
  DecodeOptions o;
  o.width = 160;
  o.height = 68;
  const std::vector<RgbFrame> frames = DecodeAll(MediaPath("bikes.mp4"), o, 0, 10);
  const std::string path = dir + "/c.mkv";
  ASSERT_TRUE(testing::WriteChunk(path, frames, 0, frames.size()).ok());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(std::filesystem::file_size(path));
    for (std::streamoff at = size / 2; at < size / 2 + 64; ++at) {
      f.seekp(at);
      f.put(static_cast<char>(0x5a));
    }
  }
  auto reader = ChunkReader::Open(path);
  if (!reader.ok()) {  // damage in the container itself: refused at open, also correct
    EXPECT_NE(reader.status().message().find(path), std::string::npos);
    return;
  }
  RgbFrame frame;
  Status failure;
  for (int i = 0; i < 20; ++i) {
    auto got = (*reader)->Next(&frame);
    if (!got.ok()) {
      failure = got.status();
      break;
    }
    if (!*got) break;
  }
  EXPECT_EQ(failure.code(), Status::Code::kCorruption) << failure.ToString();
  EXPECT_NE(failure.message().find(path), std::string::npos);
}

TEST(MediaChunk, UnwritableFolderIsAnIOErrorAndLeavesNothing) {
  const std::string dir = fairy::testing::MakeTempDir("media-chunk-nofolder");
  ChunkWriterOptions co;
  co.width = co.height = 16;
  auto writer = ChunkWriter::Create(dir + "/missing/sub/c.mkv", co);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), Status::Code::kIOError);
  EXPECT_NE(writer.status().message().find(dir + "/missing/sub/c.mkv"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  co.width = 0;
  EXPECT_EQ(ChunkWriter::Create(dir + "/c.mkv", co).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(MediaChunk, AbandonedWriterLeavesNothing) {
  const std::string dir = fairy::testing::MakeTempDir("media-chunk-abandon");
  {
    ChunkWriterOptions co;
    co.width = 16;
    co.height = 16;
    auto writer = ChunkWriter::Create(dir + "/c.mkv", co);
    ASSERT_TRUE(writer.ok());
    RgbFrame f;
    f.width = f.height = 16;
    f.pixels.assign(16 * 16 * 3, 7);
    ASSERT_TRUE((*writer)->Append(f).ok());
    RgbFrame wrong = f;
    wrong.width = 8;
    EXPECT_EQ((*writer)->Append(wrong).code(), Status::Code::kInvalidArgument);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(MediaChunk, StitchingNChunksEqualsOneChunk) {
  FAIRY_REQUIRE_SHARED("media/goldeneye-vfr-drop3.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-stitch");
  DecodeOptions o;
  o.long_side = 128;
  const std::vector<RgbFrame> frames = DecodeAll(MediaPath("goldeneye-vfr-drop3.mp4"), o, 0, 160);
  ASSERT_EQ(frames.size(), 160u);
  ASSERT_TRUE(testing::WriteChunk(dir + "/one.mkv", frames, 0, 160).ok());
  std::vector<std::string> parts = {dir + "/a.mkv", dir + "/b.mkv", dir + "/c.mkv"};
  ASSERT_TRUE(testing::WriteChunk(parts[0], frames, 0, 61).ok());
  ASSERT_TRUE(testing::WriteChunk(parts[1], frames, 61, 62).ok());
  ASSERT_TRUE(testing::WriteChunk(parts[2], frames, 62, 160).ok());
  ASSERT_TRUE(ConcatChunks(parts, dir + "/stitched.mkv").ok());
  ExpectSameFrames(testing::ReadChunk(dir + "/one.mkv"), testing::ReadChunk(dir + "/stitched.mkv"));
  ExpectSameFrames(frames, testing::ReadChunk(dir + "/stitched.mkv"));
}

}  // namespace
}  // namespace fairy::media
