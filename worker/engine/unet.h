// UNet2DConditionModel of the Stable Diffusion 1.x/2.x family (diffusers 0.25), with Fairy's
// anchor-based cross-frame attention in every self-attention layer (see anchor_attention.h).
//
// Supported configurations: down blocks CrossAttnDownBlock2D / DownBlock2D, up blocks
// CrossAttnUpBlock2D / UpBlock2D, mid block UNetMidBlock2DCrossAttn, positional timestep embedding,
// conv or linear projections, GEGLU feed-forward. Anything else in config.json (class or addition
// embeddings, other block types, dual cross-attention, ...) is refused by UNetConfig::FromJson with
// the field's name.
//
// Thread-safety: a UNet is immutable after loading; concurrent forward calls are safe as long as
// each passes its own SelfAttentionContext (and AnchorCache when filling one).
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/anchor_attention.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

namespace unet {
class DownBlockImpl;
class UpBlockImpl;
class MidBlockImpl;
class AttentionImpl;
}  // namespace unet

struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  std::vector<int64_t> block_out_channels = {320, 640, 1280, 1280};
  std::vector<std::string> down_block_types;
  std::vector<std::string> up_block_types;
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  // Per down block (up blocks use them reversed).
  std::vector<int64_t> layers_per_block;
  std::vector<int64_t> transformer_layers_per_block;
  // Attention heads per down block: num_attention_heads, or (diffusers' legacy meaning) the
  // config's attention_head_dim when num_attention_heads is null. Head dim = channels / heads.
  std::vector<int64_t> num_heads;
  int64_t cross_attention_dim = 768;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  bool use_linear_projection = false;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;
  int64_t sample_size = 64;  // latent size the model was trained at (informative)

  // `source` names the file in error messages ("unet/config.json: field 'x': ...").
  static Result<UNetConfig> FromJson(const nlohmann::json& json, const std::string& source);
  static Result<UNetConfig> Load(const std::string& config_json_path);
};

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);

  // The raw forward (throws c10::Error on bad shapes). sample [B, in_channels, h, w]; timesteps
  // float [B] or [1]; encoder_hidden_states [B, M, cross_attention_dim] -> [B, out_channels, h, w].
  // `debug` (optional) receives the outputs of time_proj, time_embedding, conv_in, down_blocks.i,
  // mid_block, up_blocks.i, conv_norm_out under those names.
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                        const torch::Tensor& encoder_hidden_states, const SelfAttentionContext* ctx = nullptr,
                        std::map<std::string, torch::Tensor>* debug = nullptr);

  // forward() with its inputs validated first (ranks, channels, batch agreement, the batch a
  // multiple of ctx->branches) and LibTorch errors turned into a Status.
  Result<torch::Tensor> Forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                                const torch::Tensor& encoder_hidden_states,
                                const SelfAttentionContext* ctx = nullptr,
                                std::map<std::string, torch::Tensor>* debug = nullptr);

  // Module paths of every attn1, in forward order (down blocks, mid block, up blocks):
  // "down_blocks.0.attentions.0.transformer_blocks.0.attn1", ...
  const std::vector<std::string>& SelfAttentionLayers() const { return self_attention_layers_; }
  const UNetConfig& config() const { return config_; }
  // 2^(number of downsamplers): h and w should be multiples of it.
  int64_t DownsampleFactor() const;
  // Multiply-accumulate count x2 of one forward for one sample at latent h x w, with `kv_factor`
  // times the own tokens as keys in self-attention (1 plain, K+1 frame pass). For GFLOP/s figures.
  double ForwardFlops(int64_t h, int64_t w, int64_t text_tokens, double kv_factor) const;

 private:
  UNetConfig config_;
  torch::nn::Linear time_linear_1_{nullptr}, time_linear_2_{nullptr};
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::GroupNorm conv_norm_out_{nullptr};
  std::vector<std::shared_ptr<unet::DownBlockImpl>> down_blocks_;
  std::vector<std::shared_ptr<unet::UpBlockImpl>> up_blocks_;
  std::shared_ptr<unet::MidBlockImpl> mid_block_;
  std::vector<std::string> self_attention_layers_;
};
TORCH_MODULE(UNet);

// Loads unet/config.json and the weights of a diffusers UNet folder (diffusion_pytorch_model
// .safetensors), onto `device` in `dtype`, in eval mode. Errors name the folder and tensors.
Result<UNet> LoadUNet(const std::string& unet_dir, const torch::Device& device, torch::ScalarType dtype);
// A UNet of `config` with `tensors` loaded (LoadWeights; `what` starts its errors).
Result<UNet> LoadUNet(const UNetConfig& config, const TensorMap& tensors, const std::string& what,
                      const torch::Device& device, torch::ScalarType dtype,
                      const LoadWeightsOptions& options = {});

// A UNet of `config` with deterministic random weights (seeded; scaled like a trained model's, so
// activations stay finite in half precision), for benchmarks. On `device` in `dtype`, eval mode.
UNet RandomUNet(const UNetConfig& config, uint64_t seed, const torch::Device& device, torch::ScalarType dtype);

}  // namespace fairy::engine
