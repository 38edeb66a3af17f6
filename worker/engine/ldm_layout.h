// The original single-file layout of Stable Diffusion 1.x checkpoints (CompVis latent-diffusion,
// the original InstructPix2Pix release, the files A1111 and ComfyUI users hold): one safetensors
// file with the UNet under "model.diffusion_model.", the VAE under "first_stage_model." and the
// CLIP text encoder under "cond_stage_model.transformer.".
//
// MapOriginalLayout gives each part's tensors under the diffusers names the engine's modules use,
// as diffusers' convert_from_ckpt.py renames them: UNet input/middle/output blocks -> down/mid/up
// blocks (resnet sub-layers renamed), VAE down/mid/up -> *_blocks (1x1-convolution attention
// weights seen as linear ones), the text encoder's prefix dropped. The bytes are not copied.
//
// InferOriginalConfigs reads the architecture off the tensor shapes, for the SD 1.x family
// (UNet in_channels 4, 8 or 9; CLIP text encoders with 64-wide heads); what cannot be seen in the
// shapes takes SD 1.x's values (8 attention heads, 32 normalisation groups, VAE scaling 0.18215),
// and each such choice is listed in the notes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/safetensors.h"
#include "common/status.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

inline constexpr char kOriginalUNetPrefix[] = "model.diffusion_model.";
inline constexpr char kOriginalVAEPrefix[] = "first_stage_model.";
inline constexpr char kOriginalTextPrefix[] = "cond_stage_model.transformer.";

// True when `file` has tensors under the original UNet prefix.
bool IsOriginalLayout(const SafetensorsFile& file);

struct OriginalLayoutOptions {
  // Use the UNet's EMA weights ("model_ema.<flattened name>") instead of the trained ones when the
  // file has them. Default: off (what diffusers' converter does by default).
  bool ema = false;
};

struct OriginalParts {
  TensorMap unet, vae, text_encoder;
  // What was left out or chosen, one line each ("ignored 686 EMA tensors (model_ema.*)").
  std::vector<std::string> notes;
};

// Maps `file`'s tensors to the three parts' diffusers names. `layers_per_block` is the UNet's
// (resnets per down block; input_blocks are numbered with it). Tensors under a part's prefix
// that no rule maps give InvalidArgument naming the file and the first of them; tensors outside
// the three prefixes (EMA copies, noise-schedule buffers) are ignored with a note. A file with an
// OpenCLIP text encoder (SD 2.x) or no UNet is Unsupported.
Result<OriginalParts> MapOriginalLayout(const std::shared_ptr<const SafetensorsFile>& file,
                                        int64_t layers_per_block,
                                        const OriginalLayoutOptions& options = {});

struct InferredConfigs {
  nlohmann::json unet, vae, text_encoder, scheduler;  // diffusers / transformers config.json
  std::vector<std::string> notes;                     // what was inferred, one line each
};

// The diffusers configs of an original-layout SD 1.x file, read off its shapes (see above), with
// the standard InstructPix2Pix scheduler (Euler ancestral, scaled-linear betas 0.00085..0.012).
// Unsupported (naming the file and the tensor) for what is not SD 1.x: linear transformer
// projections (SD 2.x), non-uniform layers per block, missing key tensors.
Result<InferredConfigs> InferOriginalConfigs(const SafetensorsFile& file);

}  // namespace fairy::engine
