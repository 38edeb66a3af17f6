// A model as found on disk, before any module is built: each part's config and tensors (under the
// diffusers names the engine's modules use), the scheduler config and the tokenizer files.
//
// Two layouts open the same way:
// - a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/):
//   safetensors weights, sharded or not, or one variant's files ("fp16"); VAE attention under
//   the names diffusers used before 0.14 (query, key, value, proj_attn) is renamed as diffusers
//   renames it;
// - an original-layout single file (`.safetensors`, ldm_layout.h): its configs and tokenizer come
//   from a diffusers folder (`config_dir`), or the architecture is inferred from its shapes and
//   the built-in CLIP tokenizer is used; `notes` says what was inferred.
// Pickled checkpoints (.ckpt, .bin, .pt, .pth) are refused with the command that converts them.
//
// Tensors stay in the memory-mapped files; Model::Load, `fairy-engine convert` and
// `fairy-engine info` read them from here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/tokenizer.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

struct ModelSourceOptions {
  // Diffusers folders: "fp16" reads only "*.fp16.safetensors" (and "*.index.fp16.json") weights;
  // "" reads the variant-less weights, or a part's only variant. Default "".
  std::string variant;
  // Single files: take the part configs, scheduler and tokenizer from this diffusers folder
  // instead of inferring them. Default "" (inferred).
  std::string config_dir;
  // Single files: the UNet's EMA weights (model_ema.*) instead of the trained ones. Default off.
  bool ema = false;
};

struct ModelPart {
  nlohmann::json config;      // its config.json
  std::string config_source;  // names the config in errors: ".../unet/config.json"
  TensorMap tensors;          // by diffusers name
  std::string what;           // names the weights in errors: "unet (.../unet)"
};

struct ModelSource {
  enum class Layout { kDiffusers, kSingleFile };

  // Opens the diffusers folder or single file at `path`. Errors name the file, key or tensor.
  static Result<ModelSource> Open(const std::string& path, const ModelSourceOptions& options = {});

  std::string path;
  Layout layout = Layout::kDiffusers;
  ModelPart unet, vae, text_encoder;
  nlohmann::json scheduler_config;
  std::string scheduler_source;
  TokenizerFiles tokenizer;
  std::vector<std::string> notes;  // what was renamed, inferred or ignored, one line each

  // Bytes of every part's tensors (what loading reads).
  int64_t TensorBytes() const;
};

}  // namespace fairy::engine
