// DetectShots against PySceneDetect 0.7.1 itself: its stats files (ContentDetector, threshold 27,
// min_scene_len 15, auto-downscale, OpenCV backend) for every shared clip, in
// ../shared/media/scenedetect/NAME.content.csv, and the cuts it found there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/media/shots.h"
#include "tests/integration/media_test_util.h"

namespace fairy::media {
namespace {

using fairy::testing::MediaPath;
using testing::Quote;

constexpr double kTolerance = 0.1;  // per frame, on content_val and each delta

// One row of a PySceneDetect stats file.
struct StatsRow {
  int frame_number = 0;  // PySceneDetect's (nominal, 1-based)
  double time_ms = 0.0;
  double content_val = 0.0, delta_hue = 0.0, delta_sat = 0.0, delta_lum = 0.0;
};

// Reads the columns it needs by name. Failures name the file.
std::vector<StatsRow> ReadStats(const std::string& path) {
  std::vector<StatsRow> rows;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path << ": cannot open";
  std::string line;
  if (!std::getline(in, line)) {
    ADD_FAILURE() << path << ": empty";
    return rows;
  }
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string f; std::getline(ss, f, ',');) out.push_back(f);
    return out;
  };
  std::map<std::string, size_t> col;
  const std::vector<std::string> header = split(line);
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  for (const char* name :
       {"Frame Number", "Timecode", "content_val", "delta_hue", "delta_sat", "delta_lum"}) {
    if (!col.count(name)) {
      ADD_FAILURE() << path << ": no column " << name;
      return rows;
    }
  }
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> f = split(line);
    if (f.size() != header.size()) {
      ADD_FAILURE() << path << ": bad row '" << line << "'";
      continue;
    }
    StatsRow r;
    r.frame_number = std::stoi(f[col["Frame Number"]]);
    int h = 0, m = 0;
    double s = 0;
    if (std::sscanf(f[col["Timecode"]].c_str(), "%d:%d:%lf", &h, &m, &s) != 3)
      ADD_FAILURE() << path << ": bad timecode '" << f[col["Timecode"]] << "'";
    r.time_ms = (h * 3600.0 + m * 60.0 + s) * 1000.0;
    r.content_val = std::stod(f[col["content_val"]]);
    r.delta_hue = std::stod(f[col["delta_hue"]]);
    r.delta_sat = std::stod(f[col["delta_sat"]]);
    r.delta_lum = std::stod(f[col["delta_lum"]]);
    rows.push_back(r);
  }
  return rows;
}

// What PySceneDetect found on each clip, and where its OpenCV decode differs from ours.
struct Reference {
  const char* clip;
  // Its cuts as 0-based decoded-frame indices (the first frame of each new shot).
  std::vector<int64_t> cuts;
  // The last `merged_rows` frames but the final one have no row: OpenCV gave them the same
  // timestamp as a later frame and the stats file keeps one row per timestamp (the later frame's).
  int merged_rows = 0;
  // The last `retimed_rows` rows carry a timestamp other than the frame's own.
  int retimed_rows = 0;
};

// The pixels OpenCV decodes are the same as ours on every clip (all deltas agree exactly); the only
// differences are OpenCV's timestamps for the frames it drains from the decoder at the end of the
// stream. goldeneye's README cut list says [60, 141]: 141 is PySceneDetect's nominal frame number
// at the average rate (8.759 s x 16.05 fps); the frame at 8.759 s is decoded frame 140.
const std::vector<Reference>& References() {
  static const std::vector<Reference> refs = {
      {"Big_Buck_Bunny_180_10s.webm", {}},
      {"bigbuckbunny.mp4", {}},
      {"bikes.mp4", {30, 76, 137, 187, 242}},
      {"carphone_pristine.mp4", {}},
      {"counter.mp4", {}},
      {"delayed_start.mp4", {}},
      {"fades.mp4", {}},
      {"ffv1_0.mov", {}},
      {"fire2.mp4", {}},
      // OpenCV stamps the last frame (drained at end of stream) with the previous frame's time,
      // 10.600 s: the row for 10.600 s holds the last frame's values; frame 264 has no row.
      {"freeMXF-mxf1.mxf", {}, /*merged_rows=*/1},
      // OpenCV times the last 2 frames (drained at end of stream) 9.844 s and 9.906 s; their
      // presentation timestamps are 9.885 s and 9.927 s. Values identical.
      {"goldeneye-vfr-drop3.mp4", {60, 140}, 0, /*retimed_rows=*/2},
      {"issue-195-aspect-ratio.mp4", {70, 170, 301, 421, 484}},
      {"no_duration.webm", {}},
      {"sony_good_quality.dv", {}},
  };
  return refs;
}

// Relative to the shared folder, and absolute.
std::string StatsFile(const std::string& clip) {
  return "media/scenedetect/" + clip + ".content.csv";
}
std::string StatsPath(const std::string& clip) {
  return fairy::testing::SharedDir() + "/" + StatsFile(clip);
}

TEST(MediaSceneDetect, EveryStatsFileHasAReference) {
  FAIRY_REQUIRE_SHARED("media/scenedetect");
  const std::string dir = fairy::testing::SharedDir() + "/media/scenedetect";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".content.csv";
    if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix)
      continue;
    ++files;
    const std::string clip = name.substr(0, name.size() - suffix.size());
    EXPECT_TRUE(std::any_of(References().begin(), References().end(),
                            [&](const Reference& r) { return r.clip == clip; }))
        << name << " has no entry in References()";
  }
  EXPECT_EQ(files, static_cast<int>(References().size()));
}

class MediaSceneDetectClip : public ::testing::TestWithParam<Reference> {};

TEST_P(MediaSceneDetectClip, ScoresAndCutsMatchPySceneDetect) {
  const Reference& ref = GetParam();
  FAIRY_REQUIRE_SHARED(StatsFile(ref.clip), std::string("media/") + ref.clip);
  const std::string csv = StatsPath(ref.clip);
  const std::vector<StatsRow> rows = ReadStats(csv);
  Result<ShotList> list = DetectShots(MediaPath(ref.clip));
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(static_cast<int64_t>(list->scores.size()), list->frames);
  // PySceneDetect writes no row for the first frame.
  ASSERT_EQ(static_cast<int64_t>(rows.size()), list->frames - 1 - ref.merged_rows) << csv;

  double max_diff = 0.0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const StatsRow& r = rows[i];
    const bool last = i + 1 == rows.size();
    const size_t frame = last && ref.merged_rows > 0 ? list->scores.size() - 1 : i + 1;
    const FrameScore& s = list->scores[frame];
    SCOPED_TRACE(csv + " row " + std::to_string(i + 2) + " (PySceneDetect frame " +
                 std::to_string(r.frame_number) + ", our frame " + std::to_string(frame) + ")");
    EXPECT_NEAR(s.content_val, r.content_val, kTolerance);
    EXPECT_NEAR(s.delta_hue, r.delta_hue, kTolerance);
    EXPECT_NEAR(s.delta_sat, r.delta_sat, kTolerance);
    EXPECT_NEAR(s.delta_lum, r.delta_lum, kTolerance);
    max_diff = std::max(max_diff, std::abs(s.content_val - r.content_val));
    if (i + ref.retimed_rows < rows.size() && !(last && ref.merged_rows > 0)) {
      EXPECT_NEAR(static_cast<double>(s.time_us) / 1000.0, r.time_ms, 1.0);
    }
  }
  std::printf("%s: %zu rows, max |content_val diff| %.3g, cuts %zu\n", ref.clip, rows.size(),
              max_diff, list->cuts.size());

  EXPECT_EQ(list->cuts, ref.cuts);
  // The reference cuts are where PySceneDetect's own scores cross the threshold.
  for (int64_t cut : ref.cuts) {
    ASSERT_GE(cut, 1);
    ASSERT_LE(static_cast<size_t>(cut), rows.size());
    EXPECT_GE(rows[static_cast<size_t>(cut) - 1].content_val, 27.0) << "cut " << cut;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedClips, MediaSceneDetectClip, ::testing::ValuesIn(References()),
                         [](const ::testing::TestParamInfo<Reference>& info) {
                           std::string name = info.param.clip;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// `fairy shots --stats` writes the same numbers in PySceneDetect's layout.
TEST(MediaSceneDetect, CliStatsFileMatchesPySceneDetect) {
  const std::string clip = "bikes.mp4";
  FAIRY_REQUIRE_SHARED(StatsFile(clip), "media/" + clip);
  const std::string out = fairy::testing::MakeTempDir("shots-stats") + "/stats.csv";
  int rc = -1;
  const std::string printed =
      testing::Run(Quote(fairy::testing::BinDir() + "/fairy") + " shots " + Quote(MediaPath(clip)) +
                       " --stats " + Quote(out) + " --json",
                   &rc);
  ASSERT_EQ(rc, 0) << printed;
  const std::vector<StatsRow> ours = ReadStats(out);
  const std::vector<StatsRow> theirs = ReadStats(StatsPath(clip));
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE("row " + std::to_string(i + 2));
    EXPECT_EQ(ours[i].frame_number, theirs[i].frame_number);  // constant rate: the same numbers
    EXPECT_NEAR(ours[i].time_ms, theirs[i].time_ms, 0.5);
    EXPECT_NEAR(ours[i].content_val, theirs[i].content_val, kTolerance);
  }
  nlohmann::json j = nlohmann::json::parse(printed);
  std::vector<int64_t> starts;
  for (const auto& s : j["shots"]) starts.push_back(s["start"]);
  EXPECT_EQ(starts, (std::vector<int64_t>{0, 30, 76, 137, 187, 242}));

  // A stats file that cannot be written fails the command and names the file.
  const std::string failed =
      testing::Run(Quote(fairy::testing::BinDir() + "/fairy") + " shots " + Quote(MediaPath(clip)) +
                       " --stats /nonexistent-dir/x.csv 2>&1",
                   &rc);
  EXPECT_EQ(rc, 1) << failed;
  EXPECT_NE(failed.find("/nonexistent-dir/x.csv"), std::string::npos) << failed;
}

}  // namespace
}  // namespace fairy::media
