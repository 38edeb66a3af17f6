#include "worker/engine/unet_blocks.h"

#include <cmath>
#include <string>

namespace fairy::engine::unet {
namespace {

namespace nn = torch::nn;

nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}

nn::GroupNorm GroupNorm(int64_t groups, int64_t channels, double eps) {
  return nn::GroupNorm(nn::GroupNormOptions(groups, channels).eps(eps));
}

nn::Linear Linear(int64_t in, int64_t out, bool bias = true) {
  return nn::Linear(nn::LinearOptions(in, out).bias(bias));
}

// Registers `modules` as a ModuleList named `name` whose entry i is modules[i].
template <typename T>
void RegisterList(nn::Module& parent, const std::string& name, const std::vector<std::shared_ptr<T>>& modules) {
  nn::ModuleList list;
  for (const auto& m : modules) list->push_back(m);
  parent.register_module(name, list);
}

using LayerList = std::vector<std::pair<std::string, std::shared_ptr<AttentionImpl>>>;

LayerList PrefixLayers(const std::string& prefix, const std::vector<std::shared_ptr<Transformer2DImpl>>& attns) {
  LayerList out;
  for (size_t i = 0; i < attns.size(); ++i) {
    for (auto& [path, attn] : attns[i]->SelfAttentionLayers()) {
      out.emplace_back(prefix + std::to_string(i) + "." + path, attn);
    }
  }
  return out;
}

// Nearest-neighbour x2 (or to `size`). Upsampling in bfloat16 is not supported by every LibTorch
// build, so it runs in float32 there, as diffusers does.
torch::Tensor UpsampleNearest(const torch::Tensor& x, c10::IntArrayRef size) {
  auto opts = torch::nn::functional::InterpolateFuncOptions().mode(torch::kNearest);
  if (size.size() == 2) {
    opts.size(std::vector<int64_t>(size.begin(), size.end()));
  } else {
    opts.scale_factor(std::vector<double>{2.0, 2.0});
  }
  if (x.scalar_type() == torch::kBFloat16) {
    return torch::nn::functional::interpolate(x.to(torch::kFloat32), opts).to(torch::kBFloat16);
  }
  return torch::nn::functional::interpolate(x, opts);
}

}  // namespace

torch::Tensor TimestepProjection(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                                 double downscale_freq_shift) {
  const int64_t half = dim / 2;
  auto exponent = torch::arange(0, half, torch::dtype(torch::kFloat32).device(timesteps.device()));
  exponent = exponent * static_cast<float>(-std::log(10000.0));
  exponent = exponent / static_cast<float>(half - downscale_freq_shift);
  // [B, 1] * [1, half] -> [B, half]
  auto emb = timesteps.to(torch::kFloat32).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);
  emb = flip_sin_to_cos ? torch::cat({torch::cos(emb), torch::sin(emb)}, 1)
                        : torch::cat({torch::sin(emb), torch::cos(emb)}, 1);
  if (dim % 2 == 1) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

// ---------------------------------------------------------------------------------------------
ResnetBlockImpl::ResnetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t temb_channels,
                                 int64_t groups, double eps, double output_scale)
    : output_scale_(output_scale) {
  norm1_ = register_module("norm1", GroupNorm(groups, in_channels, eps));
  conv1_ = register_module("conv1", Conv(in_channels, out_channels, 3, 1, 1));
  time_emb_proj_ = register_module("time_emb_proj", Linear(temb_channels, out_channels));
  norm2_ = register_module("norm2", GroupNorm(groups, out_channels, eps));
  conv2_ = register_module("conv2", Conv(out_channels, out_channels, 3, 1, 1));
  if (in_channels != out_channels) {
    conv_shortcut_ = register_module("conv_shortcut", Conv(in_channels, out_channels, 1));
  }
}

torch::Tensor ResnetBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  auto h = conv1_(torch::silu(norm1_(x)));                           // [B, Cout, H, W]
  h = h + time_emb_proj_(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);  // + [B, Cout, 1, 1]
  h = conv2_(torch::silu(norm2_(h)));
  auto shortcut = conv_shortcut_ ? conv_shortcut_(x) : x;
  auto out = shortcut + h;
  return output_scale_ == 1.0 ? out : out / output_scale_;
}

// ---------------------------------------------------------------------------------------------
AttentionImpl::AttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim)
    : heads_(heads) {
  const int64_t inner = heads * head_dim;
  const int64_t kv_dim = context_dim > 0 ? context_dim : query_dim;
  to_q_ = register_module("to_q", Linear(query_dim, inner, false));
  to_k_ = register_module("to_k", Linear(kv_dim, inner, false));
  to_v_ = register_module("to_v", Linear(kv_dim, inner, false));
  nn::ModuleList to_out;
  out_ = Linear(inner, query_dim);
  to_out->push_back(out_);
  to_out->push_back(nn::Dropout(0.0));  // to_out.1: dropout, no parameters
  register_module("to_out", to_out);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                     const SelfAttentionContext* ctx) {
  if (!context.defined() && ctx != nullptr && ctx->mode != SelfAttentionMode::kPlain) {
    return out_(FairySelfAttention(x, *ctx, layer_index_, {to_q_, to_k_, to_v_, heads_}));
  }
  const auto& src = context.defined() ? context : x;
  return out_(MultiHeadAttention(to_q_(x), to_k_(src), to_v_(src), heads_));  // [B, N, C]
}

// ---------------------------------------------------------------------------------------------
FeedForwardImpl::FeedForwardImpl(int64_t dim) {
  const int64_t inner = 4 * dim;
  auto geglu = std::make_shared<nn::Module>();
  proj_ = geglu->register_module("proj", Linear(dim, 2 * inner));
  out_ = Linear(inner, dim);
  nn::ModuleList net;
  net->push_back(geglu);                // net.0: GEGLU (its Linear is net.0.proj)
  net->push_back(nn::Dropout(0.0));     // net.1
  net->push_back(out_);                 // net.2
  register_module("net", net);
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto h = proj_(x);                    // [B, N, 2*inner]
  auto halves = h.chunk(2, -1);         // value, gate
  return out_(halves[0] * torch::gelu(halves[1]));
}

// ---------------------------------------------------------------------------------------------
TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim, int64_t cross_dim) {
  auto ln = [&] { return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5)); };
  norm1_ = register_module("norm1", ln());
  attn1_ = register_module("attn1", std::make_shared<AttentionImpl>(dim, 0, heads, head_dim));
  norm2_ = register_module("norm2", ln());
  attn2_ = register_module("attn2", std::make_shared<AttentionImpl>(dim, cross_dim, heads, head_dim));
  norm3_ = register_module("norm3", ln());
  ff_ = register_module("ff", std::make_shared<FeedForwardImpl>(dim));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& text,
                                            const SelfAttentionContext* ctx) {
  auto x = x_in + attn1_->forward(norm1_(x_in), torch::Tensor(), ctx);
  x = x + attn2_->forward(norm2_(x), text, nullptr);
  return x + ff_->forward(norm3_(x));
}

// ---------------------------------------------------------------------------------------------
Transformer2DImpl::Transformer2DImpl(int64_t channels, int64_t heads, int64_t layers, int64_t cross_dim,
                                     int64_t groups, bool linear_projection)
    : linear_projection_(linear_projection) {
  norm_ = register_module("norm", GroupNorm(groups, channels, 1e-6));
  if (linear_projection) {
    proj_in_linear_ = register_module("proj_in", Linear(channels, channels));
  } else {
    proj_in_conv_ = register_module("proj_in", Conv(channels, channels, 1));
  }
  for (int64_t i = 0; i < layers; ++i) {
    blocks_.push_back(std::make_shared<TransformerBlockImpl>(channels, heads, channels / heads, cross_dim));
  }
  RegisterList(*this, "transformer_blocks", blocks_);
  if (linear_projection) {
    proj_out_linear_ = register_module("proj_out", Linear(channels, channels));
  } else {
    proj_out_conv_ = register_module("proj_out", Conv(channels, channels, 1));
  }
}

torch::Tensor Transformer2DImpl::forward(const torch::Tensor& x, const torch::Tensor& text,
                                         const SelfAttentionContext* ctx) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto t = norm_(x);
  // [B, C, H, W] -> [B, H*W, C]
  if (linear_projection_) {
    t = proj_in_linear_(t.permute({0, 2, 3, 1}).reshape({b, h * w, c}));
  } else {
    t = proj_in_conv_(t).permute({0, 2, 3, 1}).reshape({b, h * w, c});
  }
  for (auto& block : blocks_) t = block->forward(t, text, ctx);
  // [B, H*W, C] -> [B, C, H, W]
  if (linear_projection_) {
    t = proj_out_linear_(t).reshape({b, h, w, c}).permute({0, 3, 1, 2}).contiguous();
  } else {
    t = proj_out_conv_(t.reshape({b, h, w, c}).permute({0, 3, 1, 2}).contiguous());
  }
  return t + x;
}

LayerList Transformer2DImpl::SelfAttentionLayers() {
  LayerList out;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    out.emplace_back("transformer_blocks." + std::to_string(i) + ".attn1", blocks_[i]->attn1());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
DownBlockImpl::DownBlockImpl(const BlockSpec& s) : padding_(s.downsample_padding) {
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const int64_t in = i == 0 ? s.in_channels : s.out_channels;
    resnets_.push_back(std::make_shared<ResnetBlockImpl>(in, s.out_channels, s.temb_channels, s.groups, s.eps, 1.0));
    if (s.cross_attention) {
      attentions_.push_back(std::make_shared<Transformer2DImpl>(s.out_channels, s.heads, s.transformer_layers,
                                                                s.cross_dim, s.groups, s.linear_projection));
    }
  }
  RegisterList(*this, "resnets", resnets_);
  if (!attentions_.empty()) RegisterList(*this, "attentions", attentions_);
  if (s.resample) {
    auto holder = std::make_shared<nn::Module>();  // downsamplers.0 (Downsample2D) holds `conv`
    down_ = holder->register_module("conv", Conv(s.out_channels, s.out_channels, 3, 2, s.downsample_padding));
    nn::ModuleList list;
    list->push_back(holder);
    register_module("downsamplers", list);
  }
}

torch::Tensor DownBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& text,
                                     const SelfAttentionContext* ctx, std::vector<torch::Tensor>* skips) {
  for (size_t i = 0; i < resnets_.size(); ++i) {
    x = resnets_[i]->forward(x, temb);
    if (!attentions_.empty()) x = attentions_[i]->forward(x, text, ctx);
    skips->push_back(x);
  }
  if (down_) {
    if (padding_ == 0) {  // diffusers pads (left 0, right 1, top 0, bottom 1) when padding is 0
      x = torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({0, 1, 0, 1}));
    }
    x = down_(x);  // [B, C, H, W] -> [B, C, H/2, W/2]
    skips->push_back(x);
  }
  return x;
}

LayerList DownBlockImpl::SelfAttentionLayers() { return PrefixLayers("attentions.", attentions_); }

// ---------------------------------------------------------------------------------------------
UpBlockImpl::UpBlockImpl(const BlockSpec& s) {
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const int64_t skip = i == s.num_layers - 1 ? s.in_channels : s.out_channels;
    const int64_t in = i == 0 ? s.prev_out_channels : s.out_channels;
    resnets_.push_back(
        std::make_shared<ResnetBlockImpl>(in + skip, s.out_channels, s.temb_channels, s.groups, s.eps, 1.0));
    if (s.cross_attention) {
      attentions_.push_back(std::make_shared<Transformer2DImpl>(s.out_channels, s.heads, s.transformer_layers,
                                                                s.cross_dim, s.groups, s.linear_projection));
    }
  }
  RegisterList(*this, "resnets", resnets_);
  if (!attentions_.empty()) RegisterList(*this, "attentions", attentions_);
  if (s.resample) {
    auto holder = std::make_shared<nn::Module>();  // upsamplers.0 (Upsample2D) holds `conv`
    up_ = holder->register_module("conv", Conv(s.out_channels, s.out_channels, 3, 1, 1));
    nn::ModuleList list;
    list->push_back(holder);
    register_module("upsamplers", list);
  }
}

torch::Tensor UpBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& text,
                                   const SelfAttentionContext* ctx, std::vector<torch::Tensor>* skips,
                                   c10::IntArrayRef upsample_size) {
  for (size_t i = 0; i < resnets_.size(); ++i) {
    auto skip = std::move(skips->back());
    skips->pop_back();
    x = resnets_[i]->forward(torch::cat({x, skip}, 1), temb);  // [B, C + Cskip, H, W] -> [B, C, H, W]
    if (!attentions_.empty()) x = attentions_[i]->forward(x, text, ctx);
  }
  if (up_) x = up_(UpsampleNearest(x, upsample_size));  // -> [B, C, 2H, 2W]
  return x;
}

LayerList UpBlockImpl::SelfAttentionLayers() { return PrefixLayers("attentions.", attentions_); }

// ---------------------------------------------------------------------------------------------
MidBlockImpl::MidBlockImpl(const BlockSpec& s, double output_scale) {
  const int64_t c = s.in_channels;
  resnets_.push_back(std::make_shared<ResnetBlockImpl>(c, c, s.temb_channels, s.groups, s.eps, output_scale));
  for (int64_t i = 0; i < s.num_layers; ++i) {
    attentions_.push_back(
        std::make_shared<Transformer2DImpl>(c, s.heads, s.transformer_layers, s.cross_dim, s.groups, s.linear_projection));
    resnets_.push_back(std::make_shared<ResnetBlockImpl>(c, c, s.temb_channels, s.groups, s.eps, output_scale));
  }
  RegisterList(*this, "attentions", attentions_);
  RegisterList(*this, "resnets", resnets_);
}

torch::Tensor MidBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& text,
                                    const SelfAttentionContext* ctx) {
  x = resnets_[0]->forward(x, temb);
  for (size_t i = 0; i < attentions_.size(); ++i) {
    x = attentions_[i]->forward(x, text, ctx);
    x = resnets_[i + 1]->forward(x, temb);
  }
  return x;
}

LayerList MidBlockImpl::SelfAttentionLayers() { return PrefixLayers("attentions.", attentions_); }

}  // namespace fairy::engine::unet
