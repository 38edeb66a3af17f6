// `fairy shots VIDEO [--threshold T] [--min-length N] [--max-length N] [--anchors K] [--json]
// [--stats CSV]`: detects the shots of a video like the coordinator's analysis does and prints
// them; --stats also writes the per-frame metrics like PySceneDetect's stats file.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/media/shots.h"
#include "coordinator/cli/commands.h"

namespace fairy::cli {

namespace {

struct ShotsArgs {
  std::string video;
  media::ShotOptions options;
  bool json = false;
  std::string stats;  // CSV path; empty = none
};

// A double the way Python's str() writes it (shortest round trip; "0.0", not "0").
std::string PyFloat(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// HH:MM:SS.mmm as PySceneDetect writes it: the seconds rounded to 3 decimals from their double.
std::string Timecode(int64_t time_us) {
  double secs = static_cast<double>(time_us) / 1e6;
  const int64_t hrs = static_cast<int64_t>(secs / 3600.0);
  secs -= static_cast<double>(hrs) * 3600.0;
  int64_t mins = static_cast<int64_t>(secs / 60.0);
  secs = std::max(0.0, secs - static_cast<double>(mins) * 60.0);
  char sec_text[16];
  std::snprintf(sec_text, sizeof(sec_text), "%06.3f", secs);
  std::string s = sec_text;
  if (s.rfind("60.", 0) == 0) {  // rounded up to a whole minute
    s = "00.000";
    ++mins;
  }
  char tc[48];
  std::snprintf(tc, sizeof(tc), "%02lld:%02lld:%s", static_cast<long long>(hrs + mins / 60),
                static_cast<long long>(mins % 60), s.c_str());
  return tc;
}

// PySceneDetect's stats file layout: one row per frame but the first, columns in its (sorted)
// order; delta_edges is not computed (its weight is 0 by default). Frame Number is the 1-based
// decoded frame (PySceneDetect writes a nominal number from the timestamp, which differs on
// variable-rate video); Timecode is the frame's time after the first frame, to the millisecond.
Status WriteStats(const std::string& path, const media::ShotList& list) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return Status::IOError(path + ": cannot write the stats file");
    out << "Frame Number,Timecode,content_val,delta_hue,delta_lum,delta_sat\n";
    for (size_t i = 1; i < list.scores.size(); ++i) {
      const media::FrameScore& s = list.scores[i];
      out << i + 1 << ',' << Timecode(s.time_us) << ',' << PyFloat(s.content_val) << ','
          << PyFloat(s.delta_hue) << ',' << PyFloat(s.delta_lum) << ',' << PyFloat(s.delta_sat)
          << '\n';
    }
    out.flush();
    if (!out) return Status::IOError(path + ": writing the stats file failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IOError(path + ": cannot rename the stats file into place");
  }
  return Status::OK();
}

int RunShots(const ShotsArgs& args) {
  Result<media::ShotList> list = media::DetectShots(args.video, args.options);
  if (!list.ok()) {
    std::cerr << "fairy shots: " << list.status().ToString() << "\n";
    return list.status().code() == Status::Code::kNotFound ? kExitUnavailable : kExitFailure;
  }
  if (!args.stats.empty()) {
    Status written = WriteStats(args.stats, *list);
    if (!written.ok()) {
      std::cerr << "fairy shots: " << written.ToString() << "\n";
      return kExitFailure;
    }
  }
  if (args.json) {
    nlohmann::json shots = nlohmann::json::array();
    for (const media::Shot& s : list->shots) {
      shots.push_back({{"start", s.start}, {"end", s.end}, {"anchors", s.anchors}});
    }
    nlohmann::json out = {
        {"frames", list->frames}, {"fps", list->fps.ToString()}, {"shots", shots}};
    std::cout << out.dump() << "\n";
    return kExitOk;
  }
  std::cout << args.video << ": " << list->frames << " frames at " << list->fps.ToString()
            << " fps, " << list->shots.size() << " shot(s) (threshold " << args.options.threshold
            << ", min length " << args.options.min_length << ")\n";
  std::cout << "shot  start    end  frames  anchors\n";
  int n = 0;
  for (const media::Shot& s : list->shots) {
    char line[64];
    std::snprintf(line, sizeof(line), "%4d %6lld %6lld %7lld  ", ++n,
                  static_cast<long long>(s.start), static_cast<long long>(s.end),
                  static_cast<long long>(s.end - s.start));
    std::cout << line;
    for (size_t i = 0; i < s.anchors.size(); ++i) std::cout << (i ? " " : "") << s.anchors[i];
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddShotsCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ShotsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "shots",
      "Detect the shots of a video and their anchors: PySceneDetect 0.7.1's ContentDetector "
      "(OpenCV backend, auto-downscale to width 256), reproduced frame for frame");
  cmd->add_option("video", args->video, "Video file")->required();
  cmd->add_option("--threshold", args->options.threshold,
                  "Cut where content_val (mean HSV delta, 0-255) >= this")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 255.0));
  cmd->add_option("--min-length", args->options.min_length,
                  "Minimum shot length in frames (measured in time at the average frame rate, "
                  "like PySceneDetect 0.7)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--max-length", args->options.max_length,
                  "Split shots longer than this (0 = never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--anchors", args->options.anchors_per_shot, "Anchor frames per shot")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  cmd->add_flag("--json", args->json,
                "Print {\"frames\": N, \"fps\": \"30000/1001\", \"shots\": [{\"start\", \"end\", "
                "\"anchors\"}]}");
  cmd->add_option("--stats", args->stats,
                  "Also write per-frame metrics to this CSV like PySceneDetect's stats file: "
                  "Frame Number (1-based), Timecode, content_val, delta_hue, delta_lum, delta_sat "
                  "(no delta_edges; no row for the first frame)");
  cmd->callback([args, exit_code] { *exit_code = RunShots(*args); });
}

}  // namespace fairy::cli
