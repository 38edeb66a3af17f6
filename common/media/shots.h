// Shot detection (PySceneDetect ContentDetector semantics), long-shot splitting and anchor choice.
//
// ContentDetector: each frame, downscaled (width ~256), is converted to HSV (OpenCV 8-bit scale:
// H 0..179, S and V 0..255); its score is the mean of the mean absolute per-pixel differences of
// H, S and V against the previous frame. A frame with score >= threshold starts a new shot unless
// it is within min_length frames of the previous frame above the threshold; bursts closer than
// min_length are merged (PySceneDetect's FlashFilter, mode MERGE). The first frame can never be a
// cut, nor any frame before index min_length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/media/media_types.h"
#include "common/status.h"

namespace fairy::media {

struct ShotOptions {
  double threshold = 27.0;   // ContentDetector threshold on the 0..255 HSV delta. Default 27
  int min_length = 15;       // minimum shot length in frames (FlashFilter length). Default 15
  int max_length = 0;        // shots longer than this are split evenly; 0 = never. Default 0
  int anchors_per_shot = 3;  // K anchors per shot (fewer when the shot is shorter). Default 3
  int analysis_width = 256;  // decode width for scoring (never upscaled). Default 256
};

struct Shot {
  int64_t start = 0;             // first frame (inclusive)
  int64_t end = 0;               // end (exclusive)
  std::vector<int64_t> anchors;  // sorted, inside [start, end)
  bool operator==(const Shot& other) const = default;
};

struct ShotList {
  int64_t frames = 0;          // total decoded frames
  Rational fps;                // VideoInfo::frame_rate
  std::vector<int64_t> cuts;   // first frame of every shot but the first (before splitting)
  std::vector<Shot> shots;     // after splitting, covering [0, frames) in order
  std::vector<double> scores;  // per-frame content score (scores[0] = 0)
};

// Incremental ContentDetector. Feed every frame in order (RGB24 of one fixed size). Not
// thread-safe.
class ContentDetector {
 public:
  ContentDetector(double threshold, int min_length);
  // Returns the frame's score; appends to cuts() when a cut is emitted (the cut may be for an
  // earlier frame when merging).
  double Process(int64_t index, const RgbFrame& frame);
  const std::vector<int64_t>& cuts() const { return cuts_; }

 private:
  bool FilterMerge(int64_t index, bool above);  // FlashFilter MERGE; may push to cuts_

  double threshold_;
  int min_length_;
  std::vector<uint8_t> last_hsv_;  // planar H, S, V of the previous frame
  std::vector<uint8_t> hsv_;
  int64_t last_above_ = -1;
  bool merge_enabled_ = false;
  bool merge_triggered_ = false;
  int64_t merge_start_ = 0;
  std::vector<int64_t> cuts_;
};

// Converts packed RGB24 to planar 8-bit HSV exactly like OpenCV's COLOR_RGB2HSV.
void RgbToHsvPlanar(const uint8_t* rgb, int64_t pixels, uint8_t* hsv_planar);

// Shots from cuts: [0, c0), [c0, c1), ..., [cn, frames). Cuts outside (0, frames) are ignored.
std::vector<Shot> ShotsFromCuts(const std::vector<int64_t>& cuts, int64_t frames);
// Splits every shot longer than max_length into ceil(len / max_length) near-equal parts (the
// earlier parts get the extra frame). max_length <= 0: unchanged.
std::vector<Shot> SplitLongShots(const std::vector<Shot>& shots, int max_length);
// K = min(k, len) anchors at the centres of K equal slices: start + ((2j + 1) * len) / (2K).
std::vector<int64_t> ChooseAnchors(int64_t start, int64_t end, int k);

// Decodes `path` at analysis size and runs all of the above. Pass `info` from an earlier
// Probe(count_frames = true) of the same file to skip probing it again. Errors as
// Probe()/FrameReader. Thread-safe; scores frames on one extra thread of its own.
Result<ShotList> DetectShots(const std::string& path, const ShotOptions& options = {},
                             const VideoInfo* info = nullptr);

}  // namespace fairy::media
