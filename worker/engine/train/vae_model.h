// AutoencoderKL (diffusers 0.25) as a trainable module for fairy-engine train: the same
// architecture and state_dict names as the engine's VAE, so what it saves the engine loads.
// Checked against ../shared/fixtures/pix2pix-tiny/golden/vae.safetensors (tests/unit/train_models_test).
//
// Supported config: DownEncoderBlock2D / UpDecoderBlock2D blocks, SiLU, a mid block with one
// attention (single head), GroupNorm eps 1e-6 everywhere.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::engine::train {

struct VAEConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels = {32, 64};
  int64_t layers_per_block = 1;
  int64_t norm_num_groups = 8;
  double scaling_factor = 0.18215;
  int64_t sample_size = 64;

  static Result<VAEConfig> FromJson(const nlohmann::json& json, const std::string& source);
  nlohmann::json ToJson() const;  // a diffusers vae/config.json
  int64_t ScaleFactor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};

class TrainVAEImpl : public torch::nn::Module {
 public:
  explicit TrainVAEImpl(const VAEConfig& config);
  // image [B, 3, H, W] in [-1, 1] -> {mean, logvar (clamped to [-30, 20])}, each [B, L, H/f, W/f].
  std::pair<torch::Tensor, torch::Tensor> Encode(const torch::Tensor& image);
  // latents [B, L, h, w] (unscaled) -> image [B, 3, h*f, w*f], not clamped.
  torch::Tensor Decode(const torch::Tensor& latents);
  const VAEConfig& config() const { return config_; }

 private:
  VAEConfig config_;
  torch::nn::AnyModule encoder_, decoder_;
  torch::nn::Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(TrainVAE);

}  // namespace fairy::engine::train
