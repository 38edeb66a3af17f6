#include "common/media/shots.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
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

namespace {

// OpenCV's INTER_RESIZE_COEF_BITS: 8-bit resize works with 11-bit fixed-point weights.
constexpr int kCoefBits = 11;
constexpr int kCoefScale = 1 << kCoefBits;

// saturate_cast<short>(float) and saturate_cast<int>(double): round half to even (the default
// floating-point rounding mode, as OpenCV's cvRound uses it), then clamp.
int16_t SaturateShort(float v) {
  const long r = std::lrint(v);
  return static_cast<int16_t>(std::clamp<long>(r, INT16_MIN, INT16_MAX));
}
int SaturateInt(double v) {
  const long long r = std::llrint(v);
  return static_cast<int>(std::clamp<long long>(r, INT32_MIN, INT32_MAX));
}

// The vertical pass of OpenCV's SIMD code (VResizeLinearVec_32s8u): rows are scaled down by 4 bits,
// multiplied keeping the high 16 bits, then rounded by 2 bits. Its scalar tail (FixedPtCast) rounds
// the exact sum by 22 bits instead; the two differ by one now and then.
uint8_t VerticalSimd(int32_t s0, int32_t s1, int16_t b0, int16_t b1) {
  const int32_t a0 = std::clamp<int32_t>(s0 >> 4, INT16_MIN, INT16_MAX);
  const int32_t a1 = std::clamp<int32_t>(s1 >> 4, INT16_MIN, INT16_MAX);
  const int32_t t = ((a0 * b0) >> 16) + ((a1 * b1) >> 16);
  return static_cast<uint8_t>(std::clamp<int32_t>((t + 2) >> 2, 0, 255));
}
uint8_t VerticalScalar(int32_t s0, int32_t s1, int16_t b0, int16_t b1) {
  const int64_t v = static_cast<int64_t>(s0) * b0 + static_cast<int64_t>(s1) * b1;
  return static_cast<uint8_t>(std::clamp<int64_t>((v + (1 << 21)) >> 22, 0, 255));
}

}  // namespace

void AnalysisSize(int width, int height, int effective_width, int* out_width, int* out_height) {
  *out_width = width;
  *out_height = height;
  const int longer = std::max(width, height);
  if (effective_width <= 0 || longer < effective_width) return;
  const double factor = static_cast<double>(longer) / static_cast<double>(effective_width);
  if (!(factor > 1.0)) return;
  // Python's round(): half to even, which std::nearbyint does in the default rounding mode.
  *out_width = std::max(1, static_cast<int>(std::nearbyint(width / factor)));
  *out_height = std::max(1, static_cast<int>(std::nearbyint(height / factor)));
}

void ResizeLinearLikeOpenCV(const uint8_t* src, int width, int height, uint8_t* dst, int out_width,
                            int out_height) {
  constexpr int cn = 3;
  if (width == out_width && height == out_height) {
    std::memcpy(dst, src, static_cast<size_t>(width) * height * cn);
    return;
  }
  const double inv_scale_x = static_cast<double>(out_width) / width;
  const double inv_scale_y = static_cast<double>(out_height) / height;
  const double scale_x = 1. / inv_scale_x, scale_y = 1. / inv_scale_y;
  const int iscale_x = SaturateInt(scale_x), iscale_y = SaturateInt(scale_y);
  const int64_t src_row = static_cast<int64_t>(width) * cn;
  if (std::abs(scale_x - iscale_x) < DBL_EPSILON && std::abs(scale_y - iscale_y) < DBL_EPSILON &&
      iscale_x == 2 && iscale_y == 2) {
    // OpenCV switches an exact 2x reduction to INTER_AREA: the rounded mean of each 2x2 block.
    for (int dy = 0; dy < out_height; ++dy) {
      const uint8_t* s0 = src + 2 * dy * src_row;
      const uint8_t* s1 = s0 + src_row;
      uint8_t* d = dst + static_cast<int64_t>(dy) * out_width * cn;
      for (int i = 0; i < out_width * cn; ++i) {
        const int j = (i / cn) * 2 * cn + i % cn;
        d[i] = static_cast<uint8_t>((s0[j] + s0[j + cn] + s1[j] + s1[j + cn] + 2) >> 2);
      }
    }
    return;
  }
  // Horizontal taps: source offset and two weights per output column. Arithmetic in the same
  // types and order as OpenCV (double position, float fraction, weights rounded half to even).
  std::vector<int> xofs(out_width);
  std::vector<int16_t> alpha(2 * static_cast<size_t>(out_width));
  int xmax = out_width;  // from here on, columns take their one (clamped) source pixel
  for (int dx = 0; dx < out_width; ++dx) {
    float fx = static_cast<float>((dx + 0.5) * scale_x - 0.5);
    int sx = static_cast<int>(std::floor(fx));
    fx -= static_cast<float>(sx);
    if (sx < 0) {
      fx = 0.f;
      sx = 0;
    }
    if (sx + 1 >= width) {
      xmax = std::min(xmax, dx);
      if (sx >= width - 1) {
        fx = 0.f;
        sx = width - 1;
      }
    }
    xofs[dx] = sx * cn;
    alpha[2 * dx] = SaturateShort((1.f - fx) * kCoefScale);
    alpha[2 * dx + 1] = SaturateShort(fx * kCoefScale);
  }
  const int row_elems = out_width * cn;
  std::vector<int32_t> rows[2] = {std::vector<int32_t>(row_elems), std::vector<int32_t>(row_elems)};
  auto horizontal = [&](int sy, std::vector<int32_t>& out) {
    const uint8_t* s = src + sy * src_row;
    for (int dx = 0; dx < out_width; ++dx) {
      const int sx = xofs[dx];
      for (int c = 0; c < cn; ++c) {
        out[dx * cn + c] = dx < xmax
                               ? s[sx + c] * alpha[2 * dx] + s[sx + c + cn] * alpha[2 * dx + 1]
                               : s[sx + c] * kCoefScale;
      }
    }
  };
  // OpenCV's SIMD loops cover whole groups of 16, then 8 elements of a row; the rest is scalar.
  const int simd_end = row_elems & ~7;
  for (int dy = 0; dy < out_height; ++dy) {
    float fy = static_cast<float>((dy + 0.5) * scale_y - 0.5);
    const int sy = static_cast<int>(std::floor(fy));
    fy -= static_cast<float>(sy);
    const int16_t b0 = SaturateShort((1.f - fy) * kCoefScale);
    const int16_t b1 = SaturateShort(fy * kCoefScale);
    horizontal(std::clamp(sy, 0, height - 1), rows[0]);
    horizontal(std::clamp(sy + 1, 0, height - 1), rows[1]);
    uint8_t* d = dst + static_cast<int64_t>(dy) * row_elems;
    for (int x = 0; x < simd_end; ++x) d[x] = VerticalSimd(rows[0][x], rows[1][x], b0, b1);
    for (int x = simd_end; x < row_elems; ++x)
      d[x] = VerticalScalar(rows[0][x], rows[1][x], b0, b1);
  }
}

ContentDetector::ContentDetector(double threshold, int min_length, Rational frame_rate)
    : threshold_(threshold),
      min_length_(min_length),
      frame_rate_(frame_rate.valid() ? frame_rate : Rational{1, 1}),
      // PySceneDetect: self._filter_length / float(frame_rate).
      min_length_s_(static_cast<double>(min_length) / frame_rate_.ToDouble()) {}

FrameScore ContentDetector::Process(int64_t index, const RgbFrame& frame) {
  const double us = static_cast<double>(index) * 1e6 * static_cast<double>(frame_rate_.den) /
                    static_cast<double>(frame_rate_.num);
  return Process(index, static_cast<int64_t>(std::llround(us)), frame);
}

FrameScore ContentDetector::Process(int64_t index, int64_t time_us, const RgbFrame& frame) {
  const int64_t n = static_cast<int64_t>(frame.width) * frame.height;
  hsv_.resize(static_cast<size_t>(3 * n));
  RgbToHsvPlanar(frame.pixels.data(), n, hsv_.data());
  FrameScore score;
  score.time_us = time_us;
  if (last_hsv_.size() == hsv_.size() && n > 0) {
    double deltas[3] = {0.0, 0.0, 0.0};
    for (int c = 0; c < 3; ++c) {
      const uint8_t* a = hsv_.data() + c * n;
      const uint8_t* b = last_hsv_.data() + c * n;
      int64_t sum = 0;
      for (int64_t i = 0; i < n; ++i)
        sum += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
      deltas[c] = static_cast<double>(sum) / static_cast<double>(n);
    }
    score.delta_hue = deltas[0];
    score.delta_sat = deltas[1];
    score.delta_lum = deltas[2];
    // PySceneDetect sums hue, sat, lum (and edges at weight 0) in this order, then divides by 3.
    score.content_val = (deltas[0] + deltas[1] + deltas[2]) / 3.0;
  }
  std::swap(last_hsv_, hsv_);
  FilterMerge(Mark{index, time_us}, score.content_val >= threshold_);
  return score;
}

bool ContentDetector::LongerThanMin(int64_t later_us, int64_t earlier_us) const {
  // PySceneDetect subtracts microsecond timecodes (clamped at 0) and compares their float seconds.
  const int64_t diff_us = std::max<int64_t>(0, later_us - earlier_us);
  return static_cast<double>(diff_us) / 1e6 >= min_length_s_;
}

void ContentDetector::FilterMerge(Mark frame, bool above) {
  if (min_length_ <= 0) {
    if (above) cuts_.push_back(frame.index);
    return;
  }
  if (last_above_.index < 0) last_above_ = frame;
  const bool min_length_met = LongerThanMin(frame.time_us, last_above_.time_us);
  if (above) last_above_ = frame;
  if (merge_triggered_) {
    if (min_length_met && !above && LongerThanMin(last_above_.time_us, merge_start_.time_us)) {
      merge_triggered_ = false;
      cuts_.push_back(last_above_.index);
    }
    return;
  }
  if (!above) return;
  if (min_length_met) {
    merge_enabled_ = true;
    cuts_.push_back(frame.index);
    return;
  }
  if (merge_enabled_) {
    merge_triggered_ = true;
    merge_start_ = frame;
  }
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
  decode.opencv_conversion = true;
  decode.apply_sar = false;
  decode.apply_rotation = true;  // PySceneDetect turns on CAP_PROP_ORIENTATION_AUTO
  FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<FrameReader> reader,
                         FrameReader::Open(path, decode, &info));
  int analysis_w = 0, analysis_h = 0;
  AnalysisSize(reader->output_width(), reader->output_height(), options.analysis_width, &analysis_w,
               &analysis_h);
  // OpenCV reports avg_frame_rate as the capture's FPS; PySceneDetect converts min_scene_len with
  // it.
  ContentDetector detector(options.threshold, options.min_length, info.frame_rate);
  // OpenCV's CAP_PROP_POS_MSEC: (pts - stream start) * time_base in ms, which PySceneDetect rounds
  // to microseconds. A frame at or before the start gets its nominal time (its position fallback).
  const int64_t start_pts = reader->stream_start_pts();
  const double time_base = info.time_base.ToDouble();
  auto time_us = [&](const RgbFrame& f) -> int64_t {
    const double ms = static_cast<double>(f.pts - start_pts) * time_base * 1000.0;
    const int64_t us = static_cast<int64_t>(std::nearbyint(ms * 1000.0));
    if (us > 0 || !info.frame_rate.valid()) return std::max<int64_t>(us, 0);
    return static_cast<int64_t>(
        std::llround(static_cast<double>(f.index) * 1e6 * static_cast<double>(info.frame_rate.den) /
                     static_cast<double>(info.frame_rate.num)));
  };
  ShotList list;
  list.fps = info.frame_rate;
  // Scoring runs on its own thread so it overlaps decoding and downscaling (the decoder's frame
  // threads keep the other cores busy); frames pass through a small bounded queue, in order.
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
      list.scores.push_back(detector.Process(f.index, time_us(f), f));
    }
  });
  Status decode_status;
  for (;;) {
    RgbFrame frame;
    Result<bool> got = reader->Next(&frame);
    if (!got.ok()) decode_status = got.status();
    if (!got.ok() || !*got) break;
    if (frame.width != analysis_w || frame.height != analysis_h) {
      RgbFrame small;
      small.width = analysis_w;
      small.height = analysis_h;
      small.index = frame.index;
      small.pts = frame.pts;
      small.pixels.resize(static_cast<size_t>(analysis_w) * analysis_h * 3);
      ResizeLinearLikeOpenCV(frame.pixels.data(), frame.width, frame.height, small.pixels.data(),
                             analysis_w, analysis_h);
      frame = std::move(small);
    }
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
