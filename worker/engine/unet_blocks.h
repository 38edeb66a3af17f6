// The building blocks of UNet2DConditionModel (diffusers 0.25, Stable Diffusion 1.x/2.x family).
// Internal to unet.cpp and its tests: every module registers its children under the diffusers
// state_dict names, so weights load by name lookup.
//
// Shapes: B batch, C channels, H x W spatial size, N = H*W tokens (row-major), T temb channels.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "worker/engine/anchor_attention.h"

namespace fairy::engine::unet {

// ResnetBlock2D: norm1 -> SiLU -> conv1 -> + time_emb_proj(SiLU(temb)) -> norm2 -> SiLU -> conv2,
// plus the input (through the 1x1 conv_shortcut when the channel count changes), / output_scale.
class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t temb_channels, int64_t groups,
                  double eps, double output_scale);
  // x [B, Cin, H, W], temb [B, T] -> [B, Cout, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);

 private:
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv_shortcut_{nullptr};
  torch::nn::Linear time_emb_proj_{nullptr};
  double output_scale_;
};

// diffusers Attention with the default processor. attn1 (self) may run in Fairy's anchor/frame modes.
class AttentionImpl : public torch::nn::Module {
 public:
  // context_dim = 0 for self-attention.
  AttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim);
  // x [B, N, C]; context [B, M, Cctx] (undefined for self-attention) -> [B, N, C].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context,
                        const SelfAttentionContext* ctx);
  void set_layer_index(int index) { layer_index_ = index; }

 private:
  torch::nn::Linear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, out_{nullptr};
  int64_t heads_;
  int layer_index_ = -1;  // index among the UNet's self-attention layers (attn1 only)
};

// FeedForward with GEGLU: net.0.proj -> value * gelu(gate) (first half value, second half gate,
// exact erf GELU) -> net.2.
class FeedForwardImpl : public torch::nn::Module {
 public:
  explicit FeedForwardImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear proj_{nullptr}, out_{nullptr};
};

// BasicTransformerBlock: x += attn1(norm1 x); x += attn2(norm2 x, text); x += ff(norm3 x).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim, int64_t cross_dim);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& text, const SelfAttentionContext* ctx);
  std::shared_ptr<AttentionImpl> attn1() { return attn1_; }

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
  std::shared_ptr<AttentionImpl> attn1_, attn2_;
  std::shared_ptr<FeedForwardImpl> ff_;
};

// Transformer2DModel (continuous input): GroupNorm(eps 1e-6) -> proj_in (1x1 conv or Linear) ->
// tokens -> blocks -> proj_out -> + input.
class Transformer2DImpl : public torch::nn::Module {
 public:
  Transformer2DImpl(int64_t channels, int64_t heads, int64_t layers, int64_t cross_dim, int64_t groups,
                    bool linear_projection);
  // x [B, C, H, W], text [B, M, Ctext] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& text, const SelfAttentionContext* ctx);
  // (module path suffix, attn1) of every block, in forward order.
  std::vector<std::pair<std::string, std::shared_ptr<AttentionImpl>>> SelfAttentionLayers();

 private:
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d proj_in_conv_{nullptr}, proj_out_conv_{nullptr};
  torch::nn::Linear proj_in_linear_{nullptr}, proj_out_linear_{nullptr};
  std::vector<std::shared_ptr<TransformerBlockImpl>> blocks_;
  bool linear_projection_;
};

struct BlockSpec {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t prev_out_channels = 0;  // up blocks: the channels coming from the block below
  int64_t temb_channels = 0;
  int64_t num_layers = 1;          // resnets (up blocks: layers_per_block + 1)
  int64_t transformer_layers = 1;  // per attention
  int64_t heads = 8;
  int64_t cross_dim = 768;
  int64_t groups = 32;
  double eps = 1e-5;
  bool cross_attention = true;
  bool resample = true;            // downsampler / upsampler present
  int64_t downsample_padding = 1;
  bool linear_projection = false;
};

// CrossAttnDownBlock2D (cross_attention) or DownBlock2D. Appends every resnet/attention output and
// the downsampler output to `skips`.
class DownBlockImpl : public torch::nn::Module {
 public:
  explicit DownBlockImpl(const BlockSpec& spec);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& text,
                        const SelfAttentionContext* ctx, std::vector<torch::Tensor>* skips);
  std::vector<std::pair<std::string, std::shared_ptr<AttentionImpl>>> SelfAttentionLayers();

 private:
  std::vector<std::shared_ptr<ResnetBlockImpl>> resnets_;
  std::vector<std::shared_ptr<Transformer2DImpl>> attentions_;
  torch::nn::Conv2d down_{nullptr};
  int64_t padding_;
};

// CrossAttnUpBlock2D or UpBlock2D. Each resnet pops the last skip and concatenates it after x.
// The upsampler (nearest to `upsample_size`, then 3x3 conv) runs when present.
class UpBlockImpl : public torch::nn::Module {
 public:
  explicit UpBlockImpl(const BlockSpec& spec);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& text,
                        const SelfAttentionContext* ctx, std::vector<torch::Tensor>* skips,
                        c10::IntArrayRef upsample_size);
  int64_t num_resnets() const { return static_cast<int64_t>(resnets_.size()); }
  std::vector<std::pair<std::string, std::shared_ptr<AttentionImpl>>> SelfAttentionLayers();

 private:
  std::vector<std::shared_ptr<ResnetBlockImpl>> resnets_;
  std::vector<std::shared_ptr<Transformer2DImpl>> attentions_;
  torch::nn::Conv2d up_{nullptr};
};

// UNetMidBlock2DCrossAttn: resnet, then (attention, resnet) per layer.
class MidBlockImpl : public torch::nn::Module {
 public:
  MidBlockImpl(const BlockSpec& spec, double output_scale);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& text,
                        const SelfAttentionContext* ctx);
  std::vector<std::pair<std::string, std::shared_ptr<AttentionImpl>>> SelfAttentionLayers();

 private:
  std::vector<std::shared_ptr<ResnetBlockImpl>> resnets_;
  std::vector<std::shared_ptr<Transformer2DImpl>> attentions_;
};

// Sinusoidal timestep embedding (diffusers Timesteps): t [B] float -> [B, dim], cos first when
// flip_sin_to_cos. Computed in float32.
torch::Tensor TimestepProjection(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                                 double downscale_freq_shift);

}  // namespace fairy::engine::unet
