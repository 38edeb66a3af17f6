// Final encode checked with ffprobe, shot detection vs the manifest's goldens, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/media/chunk.h"
#include "common/media/encoder.h"
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "common/media/shots.h"
#include "tests/integration/media_test_util.h"

namespace fairy::media {
namespace {

using fairy::testing::MediaPath;
using testing::Quote;

double ParseRate(const std::string& r) {
  auto slash = r.find('/');
  double den = std::stod(r.substr(slash + 1));
  return den == 0 ? 0 : std::stod(r.substr(0, slash)) / den;
}

// Decodes a clip at a small size into `parts` chunks in `dir`; returns their paths.
std::vector<std::string> MakeChunks(const std::string& clip, const std::string& dir, int parts) {
  DecodeOptions o;
  o.long_side = 160;
  o.multiple_of = 8;
  Result<VideoInfo> info = Probe(MediaPath(clip));
  EXPECT_TRUE(info.ok());
  const int64_t n = info->frame_count;
  std::vector<RgbFrame> frames = testing::DecodeAll(MediaPath(clip), o, 0, n);
  std::vector<std::string> paths;
  for (int p = 0; p < parts; ++p) {
    const size_t b = static_cast<size_t>(n * p / parts),
                 e = static_cast<size_t>(n * (p + 1) / parts);
    paths.push_back(dir + "/" + clip + "." + std::to_string(p) + ".mkv");
    EXPECT_TRUE(testing::WriteChunk(paths.back(), frames, b, e).ok());
  }
  return paths;
}

TEST(MediaEncode, OutputMatchesTheSourceUnderFFprobe) {
  FAIRY_REQUIRE_SHARED("media/manifest.json");
  const std::string dir = fairy::testing::MakeTempDir("media-encode");
  // No audio + B-frames; VFR; rotation + VFR + mono AAC; Opus; interlaced DV with 2x PCM
  // (re-encoded); delayed start; MXF with a missing last timestamp.
  for (const char* clip : {"bikes.mp4", "goldeneye-vfr-drop3.mp4", "fire2.mp4", "no_duration.webm",
                           "sony_good_quality.dv", "delayed_start.mp4", "freeMXF-mxf1.mxf"}) {
    SCOPED_TRACE(clip);
    FAIRY_REQUIRE_SHARED(std::string("media/") + clip);
    const auto& v = testing::Clip(clip)["ffprobe"]["video"][0];
    const auto& audio = testing::Clip(clip)["ffprobe"]["audio"];
    std::vector<std::string> chunks = MakeChunks(clip, dir, 3);
    EncodeOptions eo;
    eo.preset = "ultrafast";
    eo.scale_to_source = false;
    const std::string out = dir + "/" + clip + ".out.mp4";
    Result<EncodeReport> report = EncodeFinal(MediaPath(clip), chunks, out, eo);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->frames, v["decoded_frames"].get<int64_t>());
    EXPECT_EQ(report->audio_streams_copied + report->audio_streams_reencoded,
              static_cast<int>(audio.size()));
    nlohmann::json probe = testing::FFprobe(out);
    ASSERT_FALSE(probe.is_discarded());
    int video = 0, audio_out = 0;
    for (const auto& st : probe["streams"]) {
      if (st["codec_type"] == "audio") ++audio_out;
      if (st["codec_type"] != "video") continue;
      ++video;
      EXPECT_EQ(st["codec_name"], "h264");
      EXPECT_EQ(st["pix_fmt"], "yuv420p");
      EXPECT_EQ(std::stoll(st["nb_read_frames"].get<std::string>()),
                v["decoded_frames"].get<int64_t>());
      EXPECT_EQ(st["width"].get<int>() % 2, 0);
      const double src_rate = ParseRate(v["avg_frame_rate"].get<std::string>());
      EXPECT_NEAR(ParseRate(st["avg_frame_rate"].get<std::string>()), src_rate, 0.02 * src_rate);
      if (v["cfr"].get<bool>()) {
        EXPECT_EQ(st["r_frame_rate"], v["r_frame_rate"]);
      }
      const double frame_s = 1.0 / src_rate;
      double src_dur = v["duration_s"].is_null() ? 0 : v["duration_s"].get<double>();
      if (!v["last_frame_pts_s"].is_null()) {
        src_dur = v["last_frame_pts_s"].get<double>() - v["first_frame_pts_s"].get<double>() +
                  v["last_frame_duration_s"].get<double>();
      }
      EXPECT_NEAR(std::stod(st["duration"].get<std::string>()), src_dur, frame_s + 1e-3);
    }
    EXPECT_EQ(video, 1);
    EXPECT_EQ(audio_out, static_cast<int>(audio.size()))
        << "audio present exactly when the source had it";
    if (v.contains("frame_pts_s") && !v["cfr"].get<bool>()) {
      // VFR: every output frame keeps its source timestamp (shifted to start at 0).
      std::string pts = testing::Run(
          "ffprobe -v error -select_streams v:0 -show_entries frame=pts_time -of csv=p=0 " +
          Quote(out));
      std::vector<double> got;
      for (size_t at = 0; at < pts.size();) {
        size_t nl = pts.find('\n', at);
        if (nl == std::string::npos) nl = pts.size();
        if (nl > at) got.push_back(std::stod(pts.substr(at, nl - at)));
        at = nl + 1;
      }
      const auto& src_pts = v["frame_pts_s"];
      ASSERT_EQ(got.size(), src_pts.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], src_pts[i].get<double>() - src_pts[0].get<double>(), 1e-3)
            << "frame " << i;
      }
    }
  }
}

TEST(MediaEncode, ScalesToTheSourceDisplaySizeAndStitchingIsExact) {
  FAIRY_REQUIRE_SHARED("media/carphone_pristine.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-encode-scale");
  std::vector<std::string> three = MakeChunks("carphone_pristine.mp4", dir, 3);
  ASSERT_TRUE(ConcatChunks(three, dir + "/one.mkv").ok());
  EncodeOptions eo;
  eo.preset = "ultrafast";
  Result<EncodeReport> a =
      EncodeFinal(MediaPath("carphone_pristine.mp4"), three, dir + "/a.mp4", eo);
  Result<EncodeReport> b =
      EncodeFinal(MediaPath("carphone_pristine.mp4"), {dir + "/one.mkv"}, dir + "/b.mp4", eo);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->width, 192);  // display 193x144 (SAR 128:117), rounded down to even
  EXPECT_EQ(a->height, 144);
  auto fa = testing::DecodeAll(dir + "/a.mp4", {}, 0, 120);
  auto fb = testing::DecodeAll(dir + "/b.mp4", {}, 0, 120);
  ASSERT_EQ(fa.size(), 120u);
  ASSERT_EQ(fb.size(), 120u);
  for (size_t i = 0; i < fa.size(); ++i) ASSERT_TRUE(fa[i].pixels == fb[i].pixels) << "frame " << i;
}

TEST(MediaEncode, WritesMatroskaAndQuickTimeToo) {
  FAIRY_REQUIRE_SHARED("media/bigbuckbunny.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-encode-containers");
  std::vector<std::string> chunks = MakeChunks("bigbuckbunny.mp4", dir, 2);  // 5.1 AAC
  EncodeOptions eo;
  eo.preset = "ultrafast";
  eo.scale_to_source = false;
  for (const char* ext : {".mkv", ".mov"}) {
    SCOPED_TRACE(ext);
    const std::string out = dir + "/out" + ext;
    Result<EncodeReport> r = EncodeFinal(MediaPath("bigbuckbunny.mp4"), chunks, out, eo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->frames, 132);
    EXPECT_EQ(r->audio_streams_copied, 1);
    nlohmann::json probe = testing::FFprobe(out);
    ASSERT_FALSE(probe.is_discarded());
    ASSERT_EQ(probe["streams"].size(), 2u);
    EXPECT_EQ(probe["streams"][0]["nb_read_frames"], "132");
    EXPECT_EQ(probe["streams"][1]["channels"], 6);
  }
  EXPECT_EQ(EncodeFinal(MediaPath("bigbuckbunny.mp4"), chunks, dir + "/out.unknownext", eo)
                .status()
                .code(),
            Status::Code::kInvalidArgument);
}

TEST(MediaEncode, RejectsChunksThatDoNotCoverTheSource) {
  FAIRY_REQUIRE_SHARED("media/counter.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-encode-bad");
  std::vector<std::string> chunks = MakeChunks("counter.mp4", dir, 3);
  EncodeOptions eo;
  eo.preset = "ultrafast";
  Result<EncodeReport> missing =
      EncodeFinal(MediaPath("counter.mp4"), {chunks[0], chunks[2]}, dir + "/x.mp4", eo);
  EXPECT_EQ(missing.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find(chunks[2]), std::string::npos)
      << missing.status().message();
  Result<EncodeReport> short_list =
      EncodeFinal(MediaPath("counter.mp4"), {chunks[0]}, dir + "/x.mp4", eo);
  EXPECT_EQ(short_list.status().code(), Status::Code::kFailedPrecondition);
  eo.crf = 99;
  EXPECT_EQ(EncodeFinal(MediaPath("counter.mp4"), chunks, dir + "/x.mp4", eo).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.mp4"));
}

// ContentDetector (threshold 27, min 15) against the manifest's PySceneDetect goldens (+-1 frame).
TEST(MediaShots, ReproducesContentDetectorGoldens) {
  FAIRY_REQUIRE_SHARED("media/manifest.json");
  int checked = 0;
  for (const auto& clip : testing::Manifest()["files"]) {
    const auto& ec = clip["expected_cuts"];
    if (ec.is_null() || !ec.contains("results")) continue;
    for (const auto& r : ec["results"]) {
      const auto& st = r["settings"];
      if (st["detector"] != "ContentDetector" || st["threshold"].get<double>() != 27.0) continue;
      const std::string name = clip["name"];
      SCOPED_TRACE(name);
      std::vector<int64_t> expected = ec.contains("cuts_as_decoded_index")
                                          ? ec["cuts_as_decoded_index"].get<std::vector<int64_t>>()
                                          : r["cuts"].get<std::vector<int64_t>>();
      Result<ShotList> shots = DetectShots(MediaPath(name));
      ASSERT_TRUE(shots.ok()) << shots.status().ToString();
      ASSERT_EQ(shots->cuts.size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(shots->cuts[i], expected[i], 1);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3);  // counter [], fades [], goldeneye-vfr-drop3 [60, 140]
}

// Where the manifest has no PySceneDetect golden but ffmpeg's scene cuts are unambiguous (scores
// 0.31..0.77, next highest 0.04), ContentDetector finds the same shots.
TEST(MediaShots, AgreesWithFFmpegSceneCutsOnTheAspectRatioClip) {
  FAIRY_REQUIRE_SHARED("media/manifest.json", "media/issue-195-aspect-ratio.mp4");
  const auto& clip = testing::Clip("issue-195-aspect-ratio.mp4");
  Result<ShotList> shots = DetectShots(MediaPath("issue-195-aspect-ratio.mp4"));
  ASSERT_TRUE(shots.ok()) << shots.status().ToString();
  EXPECT_EQ(shots->frames, 628);
  EXPECT_EQ(shots->cuts, clip["ffmpeg_scene_cuts"]["frames"].get<std::vector<int64_t>>());
  ASSERT_EQ(shots->shots.size(), 6u);
  EXPECT_EQ(shots->shots[1].anchors, (std::vector<int64_t>{86, 120, 153}));
}

TEST(MediaShots, CliPrintsTheIssueJson) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4");
  int rc = -1;
  std::string out = testing::Run(Quote(fairy::testing::BinDir() + "/fairy") + " shots " +
                                     Quote(MediaPath("bikes.mp4")) + " --json --max-length 100",
                                 &rc);
  ASSERT_EQ(rc, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["frames"], 250);
  EXPECT_EQ(j["fps"], "25/1");
  std::vector<int64_t> starts;
  for (const auto& s : j["shots"]) {
    starts.push_back(s["start"]);
    EXPECT_EQ(s["anchors"].size(), 3u);
  }
  EXPECT_EQ(starts,
            (std::vector<int64_t>{0, 30, 76, 137, 187, 242}));  // same as scikit-video's golden
  testing::Run(Quote(fairy::testing::BinDir() + "/fairy") + " shots /nonexistent.mp4 2>/dev/null",
               &rc);
  EXPECT_EQ(rc, 3);
}

// Bad input: a clear Status naming the file, never a crash, from every entry point.
TEST(MediaErrors, BadFilesGiveClearErrors) {
  FAIRY_REQUIRE_SHARED("media/bikes.mp4", "media/counter.mp4");
  const std::string dir = fairy::testing::MakeTempDir("media-bad");
  const std::string text = dir + "/notes.mp4";
  std::ofstream(text) << "this is not a video\n";
  // A faststart MP4 (index first) cut in half, and one cut before its index.
  const std::string fast = dir + "/fast.mp4";
  int rc = 0;
  testing::Run("ffmpeg -v error -y -i " + Quote(MediaPath("bikes.mp4")) +
                   " -c copy -movflags +faststart " + Quote(fast),
               &rc);
  ASSERT_EQ(rc, 0);
  const std::string cut_fast = dir + "/cut_fast.mp4", cut_plain = dir + "/cut_plain.mp4";
  std::filesystem::copy_file(fast, cut_fast);
  std::filesystem::resize_file(cut_fast, std::filesystem::file_size(fast) / 2);
  std::filesystem::copy_file(MediaPath("bikes.mp4"), cut_plain);
  std::filesystem::resize_file(cut_plain, std::filesystem::file_size(cut_plain) / 2);
  const std::string audio_only = dir + "/tone.m4a";
  testing::Run(
      "ffmpeg -v error -y -f lavfi -i sine=frequency=440:duration=1 -c:a aac " + Quote(audio_only),
      &rc);
  ASSERT_EQ(rc, 0);
  // A video stream with zero frames (AVI keeps the stream header), and an empty chunk.
  const std::string empty = dir + "/empty.avi";
  testing::Run(
      "ffmpeg -v error -y -f lavfi -i testsrc=d=1:s=64x64 -frames:v 0 -c:v ffv1 " + Quote(empty),
      &rc);
  ASSERT_EQ(rc, 0);
  {
    ChunkWriterOptions o;
    o.width = o.height = 16;
    auto w = ChunkWriter::Create(dir + "/empty.mkv", o);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ((*w)->Finish().code(), Status::Code::kFailedPrecondition);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/empty.mkv"));
  struct Case {
    std::string path;
    Status::Code code;
  };
  const std::vector<Case> cases = {{dir + "/missing.mp4", Status::Code::kNotFound},
                                   {text, Status::Code::kInvalidArgument},
                                   {cut_fast, Status::Code::kCorruption},
                                   {cut_plain, Status::Code::kInvalidArgument},
                                   {audio_only, Status::Code::kInvalidArgument},
                                   {empty, Status::Code::kCorruption},
                                   {dir, Status::Code::kInvalidArgument}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    Result<VideoInfo> info = Probe(c.path);
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.status().code(), c.code) << info.status().ToString();
    EXPECT_EQ(info.status().message().rfind(c.path, 0), 0u) << "message must start with the path";
    EXPECT_FALSE(FrameReader::Open(c.path).ok());
    EXPECT_FALSE(DetectShots(c.path).ok());
    EXPECT_FALSE(ChunkReader::Open(c.path).ok());
  }
  // Bad ranges and options.
  EXPECT_EQ(DecodeRange(MediaPath("counter.mp4"), {}, 25, 31,
                        [](const RgbFrame&) { return Status::OK(); })
                .code(),
            Status::Code::kInvalidArgument);
  DecodeOptions bad;
  bad.multiple_of = 0;
  EXPECT_EQ(FrameReader::Open(MediaPath("counter.mp4"), bad).status().code(),
            Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace fairy::media
