// A minimal InstructPix2Pix sampler for the trainer's own evaluation (Euler ancestral, linspace
// timesteps, guidance off: the conditional branch only, i.e. text and image scales of 1). The
// engine's pipeline (worker/engine/pipeline.h) is what jobs use; this one lets a training run
// report PSNR without loading a Model.
#pragma once

#include <torch/torch.h>

#include "common/status.h"
#include "worker/engine/train/train_utils.h"
#include "worker/engine/unet.h"

namespace fairy::engine::train {

struct SamplerSettings {
  int steps = 10;
};

// cond [B, L, h, w] (VAE mean, unscaled), emb [B, 77, C] -> latents [B, L, h, w] (scaled space:
// divide by scaling_factor before decoding). Noise from `gen` (CPU), moved to cond's device.
Result<torch::Tensor> SampleEulerAncestral(UNetImpl& unet, const NoiseSchedule& schedule, const torch::Tensor& cond,
                                           const torch::Tensor& emb, const SamplerSettings& settings, at::Generator& gen);

}  // namespace fairy::engine::train
