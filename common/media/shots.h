// Shot detection (PySceneDetect 0.7.1's ContentDetector with its OpenCV backend, reproduced pixel
// for pixel), long-shot splitting and anchor choice.
//
// Per frame, as PySceneDetect computes it:
//  1. Decode like OpenCV's FFmpeg capture (DecodeOptions::opencv_conversion).
//  2. Auto-downscale: factor = max(width, height) / 256 when that side is >= 256; the frame is
//     resized to (round(w / factor), round(h / factor)) (Python's round: half to even) with
//     OpenCV's cv::resize INTER_LINEAR, fixed point exactly as OpenCV's 8-bit code computes it.
//  3. OpenCV's 8-bit HSV (H 0..179, S and V 0..255); delta_hue/sat/lum = mean absolute per-pixel
//     difference to the previous frame; content_val = their mean (edges weight 0).
//  4. PySceneDetect's FlashFilter, mode MERGE: a frame with content_val >= threshold starts a shot
//     unless it comes less than min_length after the last frame above the threshold; bursts closer
//     than that are merged. PySceneDetect 0.7 measures these lengths in time: min_length frames at
//     the stream's average frame rate, against each frame's timestamp (identical to counting frames
//     for constant-rate video). The first frame is never a cut.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/media/media_types.h"
#include "common/status.h"

namespace fairy::media {

struct ShotOptions {
  double threshold = 27.0;  // ContentDetector threshold on content_val (0..255). Default 27
  // Minimum shot length in frames at the average frame rate (FlashFilter length, compared in
  // time; see the top of this file). Default 15
  int min_length = 15;
  int max_length = 0;        // shots longer than this are split evenly; 0 = never. Default 0
  int anchors_per_shot = 3;  // K anchors per shot (fewer when the shot is shorter). Default 3
  // PySceneDetect's auto-downscale target: frames whose longer side is >= this are downscaled by
  // longer side / analysis_width (never upscaled); 0 = score at the stored size. Default 256
  int analysis_width = 256;
};

// One frame's ContentDetector metrics (PySceneDetect's stats file columns), all 0 for the first.
struct FrameScore {
  double content_val = 0.0;  // (delta_hue + delta_sat + delta_lum) / 3
  double delta_hue = 0.0;    // mean |H - previous H| (H in 0..179)
  double delta_sat = 0.0;
  double delta_lum = 0.0;
  int64_t time_us = 0;  // timestamp: microseconds after the stream's first frame
};

struct Shot {
  int64_t start = 0;             // first frame (inclusive)
  int64_t end = 0;               // end (exclusive)
  std::vector<int64_t> anchors;  // sorted, inside [start, end)
  bool operator==(const Shot& other) const = default;
};

struct ShotList {
  int64_t frames = 0;              // total decoded frames
  Rational fps;                    // VideoInfo::frame_rate
  std::vector<int64_t> cuts;       // first frame of every shot but the first (before splitting)
  std::vector<Shot> shots;         // after splitting, covering [0, frames) in order
  std::vector<FrameScore> scores;  // per decoded frame, in order (scores[0] all 0)
};

// Incremental ContentDetector. Feed every frame in order (RGB24 of one fixed size, already
// downscaled). Not thread-safe.
class ContentDetector {
 public:
  // min_length frames last min_length / frame_rate seconds (frame_rate > 0; {1, 1} makes time and
  // frame numbers the same).
  ContentDetector(double threshold, int min_length, Rational frame_rate = Rational{1, 1});
  // `time_us`: the frame's timestamp in microseconds from the first frame, non-decreasing. Returns
  // the frame's metrics; appends to cuts() when a cut is emitted (the cut may be for an earlier
  // frame when merging).
  FrameScore Process(int64_t index, int64_t time_us, const RgbFrame& frame);
  // Constant rate: the timestamp is index / frame_rate.
  FrameScore Process(int64_t index, const RgbFrame& frame);
  const std::vector<int64_t>& cuts() const { return cuts_; }

 private:
  struct Mark {
    int64_t index = -1;
    int64_t time_us = 0;
  };
  void FilterMerge(Mark frame, bool above);  // FlashFilter MERGE; may push to cuts_
  bool LongerThanMin(int64_t later_us, int64_t earlier_us) const;

  double threshold_;
  int min_length_;
  Rational frame_rate_;
  double min_length_s_;            // min_length / frame_rate, as PySceneDetect computes it
  std::vector<uint8_t> last_hsv_;  // planar H, S, V of the previous frame
  std::vector<uint8_t> hsv_;
  Mark last_above_;
  bool merge_enabled_ = false;
  bool merge_triggered_ = false;
  Mark merge_start_;
  std::vector<int64_t> cuts_;
};

// Converts packed RGB24 to planar 8-bit HSV exactly like OpenCV's COLOR_RGB2HSV.
void RgbToHsvPlanar(const uint8_t* rgb, int64_t pixels, uint8_t* hsv_planar);

// PySceneDetect's auto-downscaled size for a width x height frame (see the top of this file);
// the same size when no downscale applies. effective_width <= 0: no downscale.
void AnalysisSize(int width, int height, int effective_width, int* out_width, int* out_height);

// cv::resize(src, dst, Size(out_width, out_height), 0, 0, INTER_LINEAR) on packed 8-bit 3-channel
// pixels, bit-exact with OpenCV 4.x's x86 code (its SIMD vertical pass rounds differently from its
// scalar one; both are reproduced), including its switch to INTER_AREA for an exact 2x reduction.
// REQUIRES: sizes >= 1; dst holds out_width * out_height * 3 bytes.
void ResizeLinearLikeOpenCV(const uint8_t* src, int width, int height, uint8_t* dst, int out_width,
                            int out_height);

// Shots from cuts: [0, c0), [c0, c1), ..., [cn, frames). Cuts outside (0, frames) are ignored.
std::vector<Shot> ShotsFromCuts(const std::vector<int64_t>& cuts, int64_t frames);
// Splits every shot longer than max_length into ceil(len / max_length) near-equal parts (the
// earlier parts get the extra frame). max_length <= 0: unchanged.
std::vector<Shot> SplitLongShots(const std::vector<Shot>& shots, int max_length);
// K = min(k, len) anchors at the centres of K equal slices: start + ((2j + 1) * len) / (2K).
std::vector<int64_t> ChooseAnchors(int64_t start, int64_t end, int k);

// Decodes `path` like OpenCV, downscales like PySceneDetect and runs all of the above. Pass `info`
// from an earlier Probe(count_frames = true) of the same file to skip probing it again. Errors as
// Probe()/FrameReader. Thread-safe; scores frames on one extra thread of its own.
Result<ShotList> DetectShots(const std::string& path, const ShotOptions& options = {},
                             const VideoInfo* info = nullptr);

}  // namespace fairy::media
