// `fairy shots VIDEO [--threshold T] [--min-length N] [--max-length N] [--anchors K] [--json]`:
// detects the shots of a video like the coordinator's analysis does and prints them.
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
};

int RunShots(const ShotsArgs& args) {
  Result<media::ShotList> list = media::DetectShots(args.video, args.options);
  if (!list.ok()) {
    std::cerr << "fairy shots: " << list.status().ToString() << "\n";
    return list.status().code() == Status::Code::kNotFound ? kExitUnavailable : kExitFailure;
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
      "Detect the shots of a video (PySceneDetect ContentDetector semantics) and their anchors");
  cmd->add_option("video", args->video, "Video file")->required();
  cmd->add_option("--threshold", args->options.threshold, "Content threshold (HSV delta, 0-255)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 255.0));
  cmd->add_option("--min-length", args->options.min_length, "Minimum shot length in frames")
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
  cmd->callback([args, exit_code] { *exit_code = RunShots(*args); });
}

}  // namespace fairy::cli
