// AutoencoderKL (diffusers 0.25) as the engine's VAE, the same module for inference and for
// fairy-engine train.
//
// Modules are registered under the checkpoint's names ("encoder.down_blocks.0.resnets.0.conv1
// .weight", "decoder.mid_block.attentions.0.to_q.weight", "quant_conv.weight", ...), so a
// diffusers vae/ folder loads by name and what training saves the engine reads back.
//
// Supported configurations: DownEncoderBlock2D / UpDecoderBlock2D blocks, act_fn silu, a mid
// block with one single-head attention, GroupNorm eps 1e-6 everywhere, quant_conv and
// post_quant_conv present. Anything else is refused by VAEConfig::FromJson naming the file and
// the key. Neither Encode nor Decode applies scaling_factor: callers do.
//
// Thread-safety: immutable after loading; concurrent calls are safe.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

namespace vae {
class EncoderImpl;
class DecoderImpl;
}  // namespace vae

struct VAEConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels = {32, 64};  // required in config.json
  int64_t layers_per_block = 1;  // resnets per encoder block; decoder blocks have one more
  int64_t norm_num_groups = 32;
  double scaling_factor =
      0.18215;               // latents = scaling_factor * posterior (the pipeline's business)
  int64_t sample_size = 64;  // image size the model was trained at (informative)

  // `source` names the file in errors: `vae/config.json: "act_fn": ...`.
  static Result<VAEConfig> FromJson(const nlohmann::json& json, const std::string& source);
  static Result<VAEConfig> Load(const std::string& config_json_path);
  nlohmann::json ToJson() const;  // a diffusers vae/config.json
  // Image size / latent size: 2^(number of blocks - 1).
  int64_t ScaleFactor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VAEConfig& config);

  // image [B, in_channels, H, W] in [-1, 1] (H, W multiples of ScaleFactor()) ->
  // {mean, logvar clamped to [-30, 20]}, each [B, latent_channels, H/f, W/f]. `debug` (optional)
  // receives "encoder.mid_block". Differentiable. Throws c10::Error on bad shapes.
  std::pair<torch::Tensor, torch::Tensor> Encode(
      const torch::Tensor& image, std::map<std::string, torch::Tensor>* debug = nullptr);
  // latents [B, latent_channels, h, w], used as given (no scaling factor) ->
  // decoder(post_quant_conv(latents)) [B, out_channels, h*f, w*f], raw (not clamped). `debug`
  // (optional) receives "decoder.mid_block".
  torch::Tensor Decode(const torch::Tensor& latents,
                       std::map<std::string, torch::Tensor>* debug = nullptr);

  const VAEConfig& config() const { return config_; }
  // Only the config's bookkeeping (the module never applies it); training recalibrates it.
  void set_scaling_factor(double s) { config_.scaling_factor = s; }

 private:
  VAEConfig config_;
  std::shared_ptr<vae::EncoderImpl> encoder_;
  std::shared_ptr<vae::DecoderImpl> decoder_;
  torch::nn::Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// Loads vae/config.json and the weights (diffusion_pytorch_model.safetensors, or sharded) of a
// diffusers VAE folder onto `device` in `dtype`, eval mode. Errors name the folder, file, key or
// tensor.
Result<AutoencoderKL> LoadAutoencoderKL(const std::string& vae_dir, const torch::Device& device,
                                        torch::ScalarType dtype);
// An AutoencoderKL of `config` with `tensors` loaded (LoadWeights; `what` starts its errors).
Result<AutoencoderKL> LoadAutoencoderKL(const VAEConfig& config, const TensorMap& tensors,
                                        const std::string& what, const torch::Device& device,
                                        torch::ScalarType dtype, const LoadWeightsOptions& options = {});

}  // namespace fairy::engine
