// Probe and full decode of every clip in ../shared/media/manifest.json against ffprobe's facts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "tests/integration/media_test_util.h"

namespace fairy::media {
namespace {

using fairy::testing::MediaPath;
using testing::Manifest;

std::string SarString(const Rational& r) {
  return r.valid() ? std::to_string(r.num) + ":" + std::to_string(r.den) : "null";
}

TEST(MediaProbe, EveryClipMatchesTheManifest) {
  FAIRY_REQUIRE_SHARED("media/manifest.json");
  ASSERT_GE(Manifest()["files"].size(), 14u);
  size_t checked = 0;
  for (const auto& clip : Manifest()["files"]) {
    ++checked;
    const std::string name = clip["name"];
    SCOPED_TRACE(name);
    const auto& p = clip["ffprobe"];
    const auto& v = p["video"][0];
    Result<VideoInfo> info = Probe(MediaPath(name));
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->container, p["container"].get<std::string>());
    EXPECT_EQ(info->codec, v["codec"].get<std::string>());
    EXPECT_EQ(info->stream_index, v["index"].get<int>());
    EXPECT_EQ(info->width, v["width"].get<int>());
    EXPECT_EQ(info->height, v["height"].get<int>());
    EXPECT_EQ(SarString(info->sar), v["sar"].is_null() ? "null" : v["sar"].get<std::string>());
    EXPECT_EQ(info->rotation_deg, v["rotation_deg"].get<int>());
    EXPECT_EQ(info->r_frame_rate.ToString(), v["r_frame_rate"].get<std::string>());
    EXPECT_EQ(info->avg_frame_rate.ToString(), v["avg_frame_rate"].get<std::string>());
    EXPECT_TRUE(info->frame_count_exact);
    EXPECT_EQ(info->frame_count, v["decoded_frames"].get<int64_t>());
    EXPECT_EQ(info->time_base.ToString(), v["time_base"].get<std::string>());
    EXPECT_EQ(info->vfr(), !v["cfr"].get<bool>());
    EXPECT_NEAR(info->start_time_s, v["first_frame_pts_s"].get<double>(), 1e-3);
    if (!v["last_frame_pts_s"].is_null()) {
      const double expected = v["last_frame_pts_s"].get<double>() -
                              v["first_frame_pts_s"].get<double>() +
                              v["last_frame_duration_s"].get<double>();
      EXPECT_NEAR(info->duration_s, expected, 2e-3);
    }
    if (p["container_duration_s"].is_null()) {
      EXPECT_EQ(info->container_duration_s, 0.0);
    } else {
      EXPECT_NEAR(info->container_duration_s, p["container_duration_s"].get<double>(), 1e-3);
    }
    if (v.contains("frame_pts_s")) {
      const auto& pts = v["frame_pts_s"];
      ASSERT_EQ(info->frame_pts.size(), pts.size());
      for (size_t i = 0; i < pts.size(); ++i) {
        if (pts[i].is_null()) continue;  // ffprobe shows no timestamp; we extrapolate one
        EXPECT_NEAR(info->frame_pts[i] * info->time_base.ToDouble(), pts[i].get<double>(), 1e-3)
            << "frame " << i;
      }
    }
    const auto& audio = p["audio"];
    ASSERT_EQ(info->audio.size(), audio.size());
    for (size_t i = 0; i < audio.size(); ++i) {
      EXPECT_EQ(info->audio[i].stream_index, audio[i]["index"].get<int>());
      EXPECT_EQ(info->audio[i].codec, audio[i]["codec"].get<std::string>());
      EXPECT_EQ(info->audio[i].sample_rate, audio[i]["sample_rate"].get<int>());
      EXPECT_EQ(info->audio[i].channels, audio[i]["channels"].get<int>());
    }
  }
  EXPECT_EQ(checked, Manifest()["files"].size());
}

TEST(MediaProbe, DisplaySizeAppliesSarAndRotation) {
  FAIRY_REQUIRE_SHARED("media/issue-195-aspect-ratio.mp4", "media/sony_good_quality.dv",
                       "media/fire2.mp4");
  Result<VideoInfo> aspect = Probe(MediaPath("issue-195-aspect-ratio.mp4"));
  ASSERT_TRUE(aspect.ok()) << aspect.status().ToString();
  EXPECT_EQ(aspect->display_width, 1024);  // 704 * 16/11
  EXPECT_EQ(aspect->display_height, 576);
  Result<VideoInfo> dv = Probe(MediaPath("sony_good_quality.dv"));
  ASSERT_TRUE(dv.ok());
  EXPECT_EQ(dv->display_width, 640);  // 720 * 8/9
  Result<VideoInfo> fire = Probe(MediaPath("fire2.mp4"));
  ASSERT_TRUE(fire.ok());
  EXPECT_EQ(fire->display_width, 1280);  // upside down: no swap
  EXPECT_EQ(fire->display_height, 720);
}

// A stream-copied trim (`ffmpeg -ss 1.3 -c copy`) keeps the packets before the cut and an edit
// list that discards them: they are in the header's count but are not frames.
TEST(MediaProbe, EditListTrimmedFramesAreNotCounted) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-trim");
  const std::string path = dir + "/trim.mp4";
  int rc = 0;
  testing::Run("ffmpeg -v error -y -ss 1.3 -i " + testing::Quote(MediaPath("bikes.mp4")) +
                   " -c copy " + testing::Quote(path),
               &rc);
  ASSERT_EQ(rc, 0);
  nlohmann::json probe = testing::FFprobe(path);
  ASSERT_FALSE(probe.is_discarded());
  const int64_t ffprobe_frames =
      std::stoll(probe["streams"][0]["nb_read_frames"].get<std::string>());
  ASSERT_LT(ffprobe_frames, std::stoll(probe["streams"][0]["nb_frames"].get<std::string>()));
  Result<VideoInfo> info = Probe(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, ffprobe_frames);
  DecodeOptions small;
  small.long_side = 64;
  auto frames = testing::DecodeAll(path, small, 0, info->frame_count);
  EXPECT_EQ(static_cast<int64_t>(frames.size()), ffprobe_frames);
  auto tail = testing::DecodeAll(path, small, info->frame_count - 40, info->frame_count);
  ASSERT_EQ(tail.size(), 40u);
  EXPECT_TRUE(tail[0].pixels == frames[frames.size() - 40].pixels);
}

TEST(MediaProbe, HeaderOnlyProbeSkipsCounting) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4");
  ProbeOptions o;
  o.count_frames = false;
  Result<VideoInfo> info = Probe(MediaPath("bikes.mp4"), o);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->frame_count_exact);
  EXPECT_EQ(info->frame_count, 250);  // from the MP4 header
  EXPECT_TRUE(info->frame_pts.empty());
}

// Every clip decodes to exactly its measured frame count, in display orientation.
TEST(MediaDecode, EveryClipDecodesToItsFrameCountInDisplayOrientation) {
  FAIRY_REQUIRE_SHARED("media/manifest.json");
  for (const auto& clip : Manifest()["files"]) {
    const std::string name = clip["name"];
    SCOPED_TRACE(name);
    const auto& v = clip["ffprobe"]["video"][0];
    const int rot = v["rotation_deg"].get<int>();
    const bool swap = std::abs(rot) == 90 || std::abs(rot) == 270;
    int ew = v["decoded_size"][0].get<int>(), eh = v["decoded_size"][1].get<int>();
    if (swap) std::swap(ew, eh);
    // Native size (no SAR): the first frame has the decoded size, turned for display.
    DecodeOptions native;
    native.apply_sar = false;
    auto reader = FrameReader::Open(MediaPath(name), native);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    EXPECT_EQ((*reader)->output_width(), ew);
    EXPECT_EQ((*reader)->output_height(), eh);
    RgbFrame first;
    auto got = (*reader)->Next(&first);
    ASSERT_TRUE(got.ok() && *got) << got.status().ToString();
    EXPECT_EQ(first.width, ew);
    EXPECT_EQ(first.height, eh);
    EXPECT_EQ(first.pixels.size(), static_cast<size_t>(ew) * eh * 3);
    EXPECT_EQ(first.index, 0);
    // Count at a small size (the decode is the same; the conversion is cheaper).
    DecodeOptions small;
    small.long_side = 96;
    auto counter = FrameReader::Open(MediaPath(name), small);
    ASSERT_TRUE(counter.ok()) << counter.status().ToString();
    RgbFrame f;
    int64_t n = 0;
    for (;;) {
      auto next = (*counter)->Next(&f);
      ASSERT_TRUE(next.ok()) << next.status().ToString();
      if (!*next) break;
      ASSERT_EQ(f.index, n);
      ++n;
    }
    EXPECT_EQ(n, v["decoded_frames"].get<int64_t>());
  }
}

// The upside-down phone clip is turned like ffmpeg's autorotate: our frame is close to ffmpeg's
// rotated output and far from the stored orientation.
TEST(MediaDecode, RotationMatchesFFmpegAutorotate) {
  FAIRY_REQUIRE_SHARED("media/fire2.mp4");
  const std::string path = MediaPath("fire2.mp4");
  DecodeOptions o;
  o.width = 64;
  o.height = 36;
  auto rotated = testing::DecodeAll(path, o, 0, 1);
  o.apply_rotation = false;
  auto stored = testing::DecodeAll(path, o, 0, 1);
  ASSERT_EQ(rotated.size(), 1u);
  ASSERT_EQ(stored.size(), 1u);
  int rc = 0;
  std::string raw = testing::Run("ffmpeg -v error -i " + testing::Quote(path) +
                                     " -frames:v 1 -vf scale=64:36 -f rawvideo -pix_fmt rgb24 -",
                                 &rc);
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(raw.size(), rotated[0].pixels.size());
  auto mad = [&](const std::vector<uint8_t>& a) {
    double sum = 0;
    for (size_t i = 0; i < a.size(); ++i)
      sum += std::abs(int(a[i]) - int(static_cast<uint8_t>(raw[i])));
    return sum / a.size();
  };
  const double to_rotated = mad(rotated[0].pixels), to_stored = mad(stored[0].pixels);
  EXPECT_LT(to_rotated, 6.0);
  EXPECT_GT(to_stored, 2 * to_rotated);
}

// Quarter turns (no shared clip has one): a stream-copied test pattern with the legacy rotate tag,
// which FFmpeg's MP4 muxer turns into a display matrix. Ours must match ffmpeg's autorotate.
TEST(MediaDecode, QuarterTurnsMatchFFmpegAutorotate) {
  const std::string dir = fairy::testing::MakeTempDir("media-rotate");
  int rc = 0;
  testing::Run(
      "ffmpeg -v error -y -f lavfi -i testsrc=d=0.3:s=160x90:r=10 -c:v libx264 " + dir + "/r0.mp4",
      &rc);
  ASSERT_EQ(rc, 0);
  for (const char* tag : {"90", "270"}) {
    SCOPED_TRACE(tag);
    const std::string path = dir + "/r" + tag + ".mp4";
    testing::Run("ffmpeg -v error -y -i " + dir + "/r0.mp4 -c copy -metadata:s:v:0 rotate=" + tag +
                     " " + path,
                 &rc);
    ASSERT_EQ(rc, 0);
    Result<VideoInfo> info = Probe(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(std::abs(info->rotation_deg), 90);
    EXPECT_EQ(info->display_width, 90);
    EXPECT_EQ(info->display_height, 160);
    auto ours = testing::DecodeAll(path, {}, 0, 1);
    ASSERT_EQ(ours.size(), 1u);
    ASSERT_EQ(ours[0].width, 90);
    ASSERT_EQ(ours[0].height, 160);
    std::string raw =
        testing::Run("ffmpeg -v error -i " + path +
                         " -frames:v 1 -sws_flags bicubic+accurate_rnd+full_chroma_int -f rawvideo "
                         "-pix_fmt rgb24 -",
                     &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(raw.size(), ours[0].pixels.size());
    double sum = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
      sum += std::abs(int(ours[0].pixels[i]) - int(static_cast<uint8_t>(raw[i])));
    }
    EXPECT_LT(sum / raw.size(), 2.0) << "not turned like ffmpeg turns it";
  }
}

// Colour: a full decode of the FFV1 RGB clip is lossless end to end (no YUV matrix involved), and
// a YUV clip matches ffmpeg's own RGB conversion closely.
TEST(MediaDecode, ColourMatchesFFmpeg) {
  FAIRY_REQUIRE_SHARED("media/ffv1_0.mov", "media/carphone_pristine.mp4");
  // Plus generated full-range (MJPEG yuvj422p), 10-bit and BT.709-tagged HD sources.
  const std::string dir = fairy::testing::MakeTempDir("media-colour");
  int made = 0;
  testing::Run(
      "ffmpeg -v error -y -f lavfi -i testsrc2=d=0.2:s=320x240:r=10 -c:v mjpeg "
      "-pix_fmt yuvj422p " +
          dir +
          "/full.avi && "
          "ffmpeg -v error -y -f lavfi -i testsrc2=d=0.2:s=320x240:r=10 -c:v libx264 "
          "-pix_fmt yuv420p10le " +
          dir +
          "/ten.mp4 && "
          "ffmpeg -v error -y -f lavfi -i testsrc2=d=0.2:s=1280x720:r=10 -c:v libx264 "
          "-colorspace bt709 -color_primaries bt709 -color_trc bt709 " +
          dir + "/hd.mp4",
      &made);
  ASSERT_EQ(made, 0);
  for (const std::string& path :
       std::vector<std::string>{MediaPath("ffv1_0.mov"), MediaPath("carphone_pristine.mp4"),
                                dir + "/full.avi", dir + "/ten.mp4", dir + "/hd.mp4"}) {
    SCOPED_TRACE(path);
    const std::string name = path.substr(path.rfind('/') + 1);
    DecodeOptions o;
    o.apply_sar = false;
    auto ours = testing::DecodeAll(path, o, 0, 1);
    ASSERT_EQ(ours.size(), 1u);
    int rc = 0;
    std::string raw =
        testing::Run("ffmpeg -v error -i " + testing::Quote(path) +
                         " -frames:v 1 -sws_flags bicubic+accurate_rnd+full_chroma_int"
                         " -f rawvideo -pix_fmt rgb24 -",
                     &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(raw.size(), ours[0].pixels.size());
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
      int d = std::abs(int(ours[0].pixels[i]) - int(static_cast<uint8_t>(raw[i])));
      sum += d;
      worst = std::max(worst, d);
    }
    EXPECT_LT(sum / raw.size(), 1.0);
    if (std::string(name) == "ffv1_0.mov") {
      EXPECT_EQ(worst, 0);
    }
  }
}

}  // namespace
}  // namespace fairy::media
