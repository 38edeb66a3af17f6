#include "common/media/shots.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "common/media/frame_reader.h"
#include "common/media/probe.h"

namespace fairy::media {

namespace {

constexpr int kHsvShift = 12;

struct HsvTables {
  int sdiv[256];
  int hdiv[256];
  HsvTables() {
    sdiv[0] = hdiv[0] = 0;
    for (int i = 1; i < 256; ++i) {
      // OpenCV rounds these with saturate_cast (round half to even is irrelevant: no exact halves).
      sdiv[i] = static_cast<int>(std::lround((255 << kHsvShift) / (1.0 * i)));
      hdiv[i] = static_cast<int>(std::lround((180 << kHsvShift) / (6.0 * i)));
    }
  }
};

const HsvTables& Tables() {
  static const HsvTables tables;
  return tables;
}

}  // namespace

void RgbToHsvPlanar(const uint8_t* rgb, int64_t pixels, uint8_t* hsv_planar) {
  const HsvTables& t = Tables();
  uint8_t* hp = hsv_planar;
  uint8_t* sp = hsv_planar + pixels;
  uint8_t* vp = hsv_planar + 2 * pixels;
  for (int64_t i = 0; i < pixels; ++i) {
    const int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
    const int v = std::max({r, g, b});
    const int vmin = std::min({r, g, b});
    const int diff = v - vmin;
    const int s = (diff * t.sdiv[v] + (1 << (kHsvShift - 1))) >> kHsvShift;
    int h;
    if (v == r)
      h = g - b;
    else if (v == g)
      h = b - r + 2 * diff;
    else
      h = r - g + 4 * diff;
    h = (h * t.hdiv[diff] + (1 << (kHsvShift - 1))) >> kHsvShift;
    if (h < 0) h += 180;
    hp[i] = static_cast<uint8_t>(h);
    sp[i] = static_cast<uint8_t>(s);
    vp[i] = static_cast<uint8_t>(v);
  }
}

ContentDetector::ContentDetector(double threshold, int min_length)
    : threshold_(threshold), min_length_(min_length) {}

double ContentDetector::Process(int64_t index, const RgbFrame& frame) {
  const int64_t n = static_cast<int64_t>(frame.width) * frame.height;
  hsv_.resize(static_cast<size_t>(3 * n));
  RgbToHsvPlanar(frame.pixels.data(), n, hsv_.data());
  double score = 0.0;
  if (last_hsv_.size() == hsv_.size() && n > 0) {
    int64_t sums[3] = {0, 0, 0};
    for (int c = 0; c < 3; ++c) {
      const uint8_t* a = hsv_.data() + c * n;
      const uint8_t* b = last_hsv_.data() + c * n;
      int64_t sum = 0;
      for (int64_t i = 0; i < n; ++i)
        sum += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
      sums[c] = sum;
    }
    score = (static_cast<double>(sums[0]) / n + static_cast<double>(sums[1]) / n +
             static_cast<double>(sums[2]) / n) /
            3.0;
  }
  std::swap(last_hsv_, hsv_);
  FilterMerge(index, score >= threshold_);
  return score;
}

bool ContentDetector::FilterMerge(int64_t index, bool above) {
  if (min_length_ <= 0) {
    if (above) cuts_.push_back(index);
    return above;
  }
  if (last_above_ < 0) last_above_ = index;
  const bool min_length_met = index - last_above_ >= min_length_;
  if (above) last_above_ = index;
  if (merge_triggered_) {
    const int64_t merged = last_above_ - merge_start_;
    if (min_length_met && !above && merged >= min_length_) {
      merge_triggered_ = false;
      cuts_.push_back(last_above_);
      return true;
    }
    return false;
  }
  if (!above) return false;
  if (min_length_met) {
    merge_enabled_ = true;
    cuts_.push_back(index);
    return true;
  }
  if (merge_enabled_) {
    merge_triggered_ = true;
    merge_start_ = index;
  }
  return false;
}

std::vector<Shot> ShotsFromCuts(const std::vector<int64_t>& cuts, int64_t frames) {
  std::vector<int64_t> sorted(cuts);
  std::sort(sorted.begin(), sorted.end());
  std::vector<Shot> shots;
  int64_t start = 0;
  for (int64_t c : sorted) {
    if (c <= start || c >= frames) continue;
    shots.push_back(Shot{start, c, {}});
    start = c;
  }
  if (frames > start) shots.push_back(Shot{start, frames, {}});
  return shots;
}

std::vector<Shot> SplitLongShots(const std::vector<Shot>& shots, int max_length) {
  if (max_length <= 0) return shots;
  std::vector<Shot> out;
  for (const Shot& s : shots) {
    const int64_t len = s.end - s.start;
    if (len <= max_length) {
      out.push_back(s);
      continue;
    }
    const int64_t parts = (len + max_length - 1) / max_length;
    const int64_t base = len / parts, extra = len % parts;
    int64_t start = s.start;
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t size = base + (p < extra ? 1 : 0);
      out.push_back(Shot{start, start + size, {}});
      start += size;
    }
  }
  return out;
}

std::vector<int64_t> ChooseAnchors(int64_t start, int64_t end, int k) {
  std::vector<int64_t> anchors;
  const int64_t len = end - start;
  if (len <= 0 || k <= 0) return anchors;
  const int64_t count = std::min<int64_t>(k, len);
  for (int64_t j = 0; j < count; ++j) anchors.push_back(start + ((2 * j + 1) * len) / (2 * count));
  return anchors;
}

Result<ShotList> DetectShots(const std::string& path, const ShotOptions& options,
                             const VideoInfo* known) {
  if (options.threshold < 0 || options.min_length < 0 || options.max_length < 0 ||
      options.anchors_per_shot < 0 || options.analysis_width < 0) {
    return Status::InvalidArgument(path + ": shot options must not be negative");
  }
  VideoInfo info;
  if (known != nullptr) {
    info = *known;
  } else {
    FAIRY_ASSIGN_OR_RETURN(info, Probe(path));
  }
  DecodeOptions decode;
  decode.apply_sar = false;
  decode.apply_rotation = false;
  decode.high_quality_scaling = false;
  if (options.analysis_width > 0 && info.width > options.analysis_width)
    decode.width = options.analysis_width;
  FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<FrameReader> reader,
                         FrameReader::Open(path, decode, &info));
  ContentDetector detector(options.threshold, options.min_length);
  ShotList list;
  list.fps = info.frame_rate;
  // Scoring runs on its own thread so it overlaps decoding (the decoder's frame threads keep the
  // other cores busy); frames pass through a small bounded queue, in order.
  constexpr size_t kQueueFrames = 8;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<RgbFrame> queue;  // GUARDED_BY(mutex)
  bool done = false;           // GUARDED_BY(mutex): no more frames will come
  std::thread scorer([&] {
    for (;;) {
      RgbFrame f;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return !queue.empty() || done; });
        if (queue.empty()) return;
        f = std::move(queue.front());
        queue.pop_front();
      }
      changed.notify_all();
      list.scores.push_back(detector.Process(f.index, f));
    }
  });
  Status decode_status;
  for (;;) {
    RgbFrame frame;
    Result<bool> got = reader->Next(&frame);
    if (!got.ok()) decode_status = got.status();
    if (!got.ok() || !*got) break;
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return queue.size() < kQueueFrames; });
    queue.push_back(std::move(frame));
    lock.unlock();
    changed.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
  }
  changed.notify_all();
  scorer.join();
  FAIRY_RETURN_IF_ERROR(decode_status);
  list.frames = static_cast<int64_t>(list.scores.size());
  list.cuts = detector.cuts();
  list.shots = SplitLongShots(ShotsFromCuts(list.cuts, list.frames), options.max_length);
  for (Shot& s : list.shots) s.anchors = ChooseAnchors(s.start, s.end, options.anchors_per_shot);
  return list;
}

}  // namespace fairy::media
