// bench_media: decode + shot detection and full decode of one clip, against the ffmpeg CLI doing
// the same work in the same run. Prints median wall times and ratios (ours / ffmpeg); see
// docs/benchmarks.md for the commands and results. Not a test: nothing here passes or fails.
//
//   bench_media CLIP [--repeat N] [--ffmpeg PATH]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "common/media/shots.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(const std::function<void()>& fn) {
  auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Shell(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "command failed: %s\n", cmd.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_media CLIP [--repeat N] [--ffmpeg PATH]\n");
    return 2;
  }
  const std::string clip = argv[1];
  int repeat = 5;
  std::string ffmpeg = "ffmpeg";
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--repeat")
      repeat = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--ffmpeg")
      ffmpeg = argv[i + 1];
  }
  auto info = fairy::media::Probe(clip);
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
    return 1;
  }
  const fairy::media::ShotOptions shot_options;  // threshold 27, min 15, analysis width 256
  const std::string quoted = "'" + clip + "'";
  const std::string ff_scene = ffmpeg + " -hide_banner -nostats -loglevel error -i " + quoted +
                               " -an -vf \"scale=" + std::to_string(shot_options.analysis_width) +
                               ":-2,select='gt(scene,0.3)'\" -f null -";
  const std::string ff_decode =
      ffmpeg + " -hide_banner -nostats -loglevel error -i " + quoted + " -an -f null -";

  std::vector<double> ours_shots, ff_shots, ours_decode, ours_decode_fast, ff_decode_t,
      ff_decode_rgb, ours_probe;
  const std::string ff_rgb =
      ffmpeg + " -hide_banner -nostats -loglevel error -i " + quoted +
      " -an -sws_flags bicubic+accurate_rnd+full_chroma_int -pix_fmt rgb24 -f null -";
  auto decode_all = [&](bool quality) {
    fairy::media::DecodeOptions o;
    o.apply_sar = false;  // native size: colour conversion only
    o.apply_rotation = false;
    o.high_quality_scaling = quality;
    auto reader = fairy::media::FrameReader::Open(clip, o, &*info);
    fairy::media::RgbFrame f;
    for (;;) {
      auto got = (*reader)->Next(&f);
      if (!got.ok() || !*got) break;
    }
  };
  int64_t frames = 0;
  size_t cuts = 0;
  for (int r = 0; r < repeat; ++r) {
    ours_shots.push_back(Seconds([&] {
      auto list = fairy::media::DetectShots(clip, shot_options);
      if (!list.ok()) {
        std::fprintf(stderr, "%s\n", list.status().ToString().c_str());
        std::exit(1);
      }
      frames = list->frames;
      cuts = list->cuts.size();
    }));
    ff_shots.push_back(Seconds([&] { Shell(ff_scene); }));
    ours_decode.push_back(Seconds([&] { decode_all(true); }));
    ours_decode_fast.push_back(Seconds([&] { decode_all(false); }));
    ff_decode_rgb.push_back(Seconds([&] { Shell(ff_rgb); }));
    ff_decode_t.push_back(Seconds([&] { Shell(ff_decode); }));
    ours_probe.push_back(Seconds([&] { (void)fairy::media::Probe(clip); }));
  }
  const double s_ours = Median(ours_shots), s_ff = Median(ff_shots);
  const double d_ours = Median(ours_decode), d_ff = Median(ff_decode_t);
  std::printf("clip: %s (%lld frames, %dx%d %s), %d runs, median wall seconds\n", clip.c_str(),
              static_cast<long long>(frames), info->width, info->height, info->codec.c_str(),
              repeat);
  std::printf("decode+shots  ours %.3f s (%zu cuts)  ffmpeg scale+select %.3f s  ratio %.2f\n",
              s_ours, cuts, s_ff, s_ours / s_ff);
  std::printf("full decode   ours fast RGB %.3f s  ffmpeg -f null %.3f s  ratio %.2f\n",
              Median(ours_decode_fast), d_ff, Median(ours_decode_fast) / d_ff);
  std::printf(
      "full decode   ours quality RGB %.3f s  ffmpeg -pix_fmt rgb24 (same sws flags) %.3f s  ratio "
      "%.2f"
      "  (vs -f null: %.2f)\n",
      d_ours, Median(ff_decode_rgb), d_ours / Median(ff_decode_rgb), d_ours / d_ff);
  std::printf("probe (exact frame count by demuxing)  %.4f s\n", Median(ours_probe));
  return 0;
}
