// bench_media: decode + shot detection and full decode of one clip, against the ffmpeg CLI doing
// the same work in the same run. Prints median wall times and ratios (ours / ffmpeg); see
// docs/benchmarks.md for the commands and results. Not a test: nothing here passes or fails.
//
//   bench_media CLIP [--repeat N] [--ffmpeg PATH]
#include <sys/resource.h>

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

double CpuSeconds() {
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    getrusage(who, &u);
    total +=
        u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
  }
  return total;
}

// CPU seconds (this process and its children) of the last Seconds() call: less sensitive than
// wall time to other users of a shared machine.
double g_last_cpu = 0;

double Seconds(const std::function<void()>& fn) {
  const double c0 = CpuSeconds();
  auto t0 = Clock::now();
  fn();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  g_last_cpu = CpuSeconds() - c0;
  return wall;
}

struct Samples {
  std::vector<double> wall, cpu;
  void Add(double w) {
    wall.push_back(w);
    cpu.push_back(g_last_cpu);
  }
};

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

  const std::string ff_rgb =
      ffmpeg + " -hide_banner -nostats -loglevel error -i " + quoted +
      " -an -sws_flags bicubic+accurate_rnd+full_chroma_int -pix_fmt rgb24 -f null -";
  auto decode_all = [&](bool quality, bool ahead = true) {
    fairy::media::DecodeOptions o;
    o.decode_ahead = ahead;
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
  Samples ours_shots, ff_shots, ours_quality, ours_quality_serial, ours_fast, ff_null, ff_rgb24,
      ours_probe;
  int64_t frames = 0;
  size_t cuts = 0;
  for (int r = 0; r < repeat; ++r) {  // interleaved, so load changes hit both sides alike
    ours_shots.Add(Seconds([&] {
      auto list = fairy::media::DetectShots(clip, shot_options);
      if (!list.ok()) {
        std::fprintf(stderr, "%s\n", list.status().ToString().c_str());
        std::exit(1);
      }
      frames = list->frames;
      cuts = list->cuts.size();
    }));
    ff_shots.Add(Seconds([&] { Shell(ff_scene); }));
    ours_fast.Add(Seconds([&] { decode_all(false); }));
    ff_null.Add(Seconds([&] { Shell(ff_decode); }));
    ours_quality.Add(Seconds([&] { decode_all(true); }));
    ours_quality_serial.Add(Seconds([&] { decode_all(true, false); }));
    ff_rgb24.Add(Seconds([&] { Shell(ff_rgb); }));
    ours_probe.Add(Seconds([&] { (void)fairy::media::Probe(clip); }));
  }
  std::printf("clip: %s (%lld frames, %dx%d %s, %zu cuts), %d runs, medians\n", clip.c_str(),
              static_cast<long long>(frames), info->width, info->height, info->codec.c_str(), cuts,
              repeat);
  auto report = [](const char* what, const Samples& ours, const char* ref, const Samples& theirs) {
    const double w = Median(ours.wall), rw = Median(theirs.wall);
    const double c = Median(ours.cpu), rc = Median(theirs.cpu);
    std::printf("%-34s wall %.3f s vs %.3f s (%s): ratio %.2f | cpu %.3f s vs %.3f s: ratio %.2f\n",
                what, w, rw, ref, w / rw, c, rc, c / rc);
  };
  report("decode + shots (ContentDetector)", ours_shots, "ffmpeg scale=256:-2,select scene",
         ff_shots);
  report("full decode, RGB24 fast", ours_fast, "ffmpeg -f null", ff_null);
  report("full decode, RGB24 quality", ours_quality, "ffmpeg -pix_fmt rgb24 same flags", ff_rgb24);
  report("  same, decode_ahead off", ours_quality_serial, "ffmpeg -pix_fmt rgb24 same flags",
         ff_rgb24);
  std::printf("probe (exact count by demuxing): %.4f s\n", Median(ours_probe.wall));
  return 0;
}
