// A diffusers model folder as fairy-engine train holds it: the trainable UNet, VAE and text
// encoder (the engine's own modules), the CLIP tokenizer and the noise schedule, plus the configs
// to write back. Internal to the trainer and its tests.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/tokenizer.h"
#include "worker/engine/train/train_utils.h"
#include "worker/engine/unet.h"
#include "worker/engine/vae.h"

namespace fairy::engine::train {

struct ModelParts {
  std::string source_dir;     // the folder it was loaded from
  std::string tokenizer_dir;  // where tokenizer files come from (default source_dir/tokenizer)
  nlohmann::json unet_config, vae_config, text_config, scheduler_config;
  UNet unet{nullptr};
  AutoencoderKL vae{nullptr};
  CLIPTextModel text_encoder{nullptr};
  std::shared_ptr<const CLIPTokenizer> tokenizer;  // the engine's tokenizer (any Unicode text)
  NoiseSchedule schedule;
  // Which parts had weights on disk (false: randomly initialised from config.json).
  bool unet_loaded = false, vae_loaded = false, text_loaded = false;

  // Loads `dir` onto `device` (float32, train mode). Random init uses `seed`. `tokenizer_dir`
  // (vocab.json, merges.txt, ...) defaults to dir/tokenizer.
  static Result<ModelParts> Load(const std::string& dir, const torch::Device& device, uint64_t seed,
                                 const std::string& tokenizer_dir = "");
  // Writes a complete model folder to `dir` (created): model_index.json, the configs (the VAE's
  // with the current scaling factor), weights as float32 safetensors, tokenizer files copied from
  // tokenizer_dir, the scheduler config.
  Status Save(const std::string& dir);
  // [B, 77] int64 token ids of `texts` (truncated and padded as the pipeline does).
  Result<torch::Tensor> TokenIds(const std::vector<std::string>& texts) const;
  double scaling_factor() const { return vae->config().scaling_factor; }
  void set_scaling_factor(double s);
};

// Parses a JSON file; errors name the file.
Result<nlohmann::json> ReadJson(const std::string& path);

}  // namespace fairy::engine::train
