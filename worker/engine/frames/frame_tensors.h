// Video frames (common/media's RGB24) <-> the engine's image tensors, shared by `fairy-engine edit`
// and the worker's executor so both turn pixels into numbers the same way (a farm edit is
// bit-identical to the single-process one). Not in FAIRY_ENGINE_ONLY builds (needs the media
// layer).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "common/media/frame_reader.h"
#include "common/status.h"

namespace fairy::engine {

// RGB24 -> [1, 3, H, W] float32 in [-1, 1] (x / 255 * 2 - 1).
torch::Tensor FrameToTensor(const media::RgbFrame& frame);
// [H, W, 3] in [0, 1] -> RGB24, x * 255 rounded (as diffusers' numpy_to_pil).
media::RgbFrame TensorToFrame(const torch::Tensor& image, int64_t index);
// Decodes frames `indices` (ascending is cheapest: the reader seeks only on a jump) into one
// [N, 3, H, W] tensor. Corruption naming the file and frame when one cannot be decoded.
Result<torch::Tensor> DecodeFrames(media::FrameReader& reader, const std::vector<int64_t>& indices);

}  // namespace fairy::engine
