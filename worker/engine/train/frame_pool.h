// Real frames for the training-pair generator: decoded from any videos FFmpeg reads (common/media),
// downscaled, kept in memory as uint8 [3, H, W] tensors.
//
// Only in full builds (FAIRY_ENGINE_ONLY leaves common/media out; there LoadFramePool returns
// Unsupported and training uses procedural images or a triples folder).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::engine::train {

struct FramePoolOptions {
  int long_side = 192;             // decoded size: the longer side in pixels, aspect kept
  int64_t frames_per_video = 48;   // evenly spaced over the first max_decode_frames frames
  int64_t max_decode_frames = 600; // decode at most this many frames of each video
};

// Decodes every video in `paths` (files; a folder means every file in it, sorted) and returns the
// sampled frames. Files FFmpeg cannot open are reported with their path and error.
Result<std::vector<torch::Tensor>> LoadFramePool(const std::vector<std::string>& paths,
                                                 const FramePoolOptions& options = {});

// One still image (anything FFmpeg decodes: PNG, JPEG, TIFF, EXR, ...; PNG only in engine-only
// builds) as uint8 [3, H, W]; with long_side > 0 scaled so its longer side is long_side.
Result<torch::Tensor> LoadStillImage(const std::string& path, int long_side = 0);

}  // namespace fairy::engine::train
