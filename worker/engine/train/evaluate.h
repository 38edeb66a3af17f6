// fairy-engine train eval: how well a model performs the exact edits (edit_ops.h) on real video
// frames, measured the way issue 5's quality test measures the farm: per instruction, PSNR of the
// edited frames against the exact operation applied to the source frames, and flicker (mean
// absolute difference of consecutive frames) of the output against the exact targets' own.
//
// By default frames are edited one at a time by the trainer's sampler (sampler.h: Euler ancestral,
// guidance scales 1), i.e. without Fairy's anchor attention. With `fairy` they are edited exactly
// as `fairy-engine edit` and the farm edit one shot (the engine's pipeline: K anchors chosen as the
// farm chooses them, the anchor pass, then the frame pass in batches of `batch`; guidance scales 1,
// noise from (seed, frame index)): the farm's output before its 8-bit rounding and H.264 encode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/pipeline.h"
#include "worker/engine/train/edit_ops.h"

namespace fairy::engine::train {

struct EvalOptions {
  std::string model_dir;             // REQUIRED: a model folder
  std::vector<std::string> videos;   // REQUIRED: clips (their first `frames` frames are used)
  int64_t frames = 8;                // consecutive frames per clip
  int long_side = 128;               // decode size (rounded to a multiple of 8)
  int steps = 10;                    // denoising steps
  uint64_t seed = 0;
  std::vector<EditOp> ops = AllEditOps();
  std::string device = "cpu";
  bool fairy = false;                // edit with the engine's Fairy pipeline (see above)
  int anchors = 3;                   // with `fairy`: anchor frames K
  int64_t batch = 4;                 // with `fairy`: frames per UNet call of the frame pass
  NoiseMode noise = NoiseMode::kPerFrame;  // with `fairy`: EditSettings::noise
  Sampler sampler = Sampler::kEulerAncestral;  // with `fairy`: EditSettings::sampler
};

struct EvalRow {
  std::string video;
  EditOp op = EditOp::kInvert;
  double psnr_db = 0;        // output vs exact target, all frames
  double flicker = 0;        // mean |out[i+1] - out[i]|
  double target_flicker = 0; // mean |target[i+1] - target[i]|
  double vae_psnr_db = 0;    // the VAE's reconstruction of the exact target: the ceiling
};

Result<std::vector<EvalRow>> EvaluateModel(const EvalOptions& options);

}  // namespace fairy::engine::train
