#include "worker/engine/train/vae_model.h"

#include <cmath>

namespace fairy::engine::train {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;
constexpr double kEps = 1e-6;

nn::Conv2d Conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}
nn::GroupNorm Norm(int64_t groups, int64_t channels) {
  return nn::GroupNorm(nn::GroupNormOptions(groups, channels).eps(kEps));
}

class ResnetImpl : public nn::Module {
 public:
  ResnetImpl(int64_t in, int64_t out, int64_t groups) {
    norm1_ = register_module("norm1", Norm(groups, in));
    conv1_ = register_module("conv1", Conv(in, out, 3, 1, 1));
    norm2_ = register_module("norm2", Norm(groups, out));
    conv2_ = register_module("conv2", Conv(out, out, 3, 1, 1));
    if (in != out) shortcut_ = register_module("conv_shortcut", Conv(in, out, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv1_(F::silu(norm1_(x)));
    h = conv2_(F::silu(norm2_(h)));
    return (shortcut_ ? shortcut_(x) : x) + h;
  }

 private:
  nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(Resnet);

// Single-head spatial self-attention with the residual inside (diffusers Attention, VAE flavour).
class AttentionImpl : public nn::Module {
 public:
  AttentionImpl(int64_t channels, int64_t groups) {
    norm_ = register_module("group_norm", Norm(groups, channels));
    q_ = register_module("to_q", nn::Linear(channels, channels));
    k_ = register_module("to_k", nn::Linear(channels, channels));
    v_ = register_module("to_v", nn::Linear(channels, channels));
    auto to_out = register_module("to_out", nn::ModuleList());
    out_ = nn::Linear(channels, channels);
    to_out->push_back(out_);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    auto t = norm_(x).view({b, c, h * w}).transpose(1, 2);  // [B, C, H, W] -> [B, N, C]
    auto q = q_(t), k = k_(t), v = v_(t);
    auto scores = torch::matmul(q, k.transpose(1, 2)) * (1.0 / std::sqrt(static_cast<double>(c)));
    auto o = out_(torch::matmul(scores.softmax(-1), v));          // [B, N, C]
    return o.transpose(1, 2).reshape({b, c, h, w}) + x;
  }

 private:
  nn::GroupNorm norm_{nullptr};
  nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr};
};
TORCH_MODULE(Attention);

class MidBlockImpl : public nn::Module {
 public:
  MidBlockImpl(int64_t c, int64_t groups) {
    auto resnets = register_module("resnets", nn::ModuleList());
    auto attentions = register_module("attentions", nn::ModuleList());
    r0_ = Resnet(c, c, groups);
    r1_ = Resnet(c, c, groups);
    attn_ = Attention(c, groups);
    resnets->push_back(r0_);
    resnets->push_back(r1_);
    attentions->push_back(attn_);
  }
  torch::Tensor forward(const torch::Tensor& x) { return r1_(attn_(r0_(x))); }

 private:
  Resnet r0_{nullptr}, r1_{nullptr};
  Attention attn_{nullptr};
};
TORCH_MODULE(MidBlock);

// DownEncoderBlock2D (down = true: asymmetric zero pad then stride-2 conv) or UpDecoderBlock2D.
class BlockImpl : public nn::Module {
 public:
  BlockImpl(int64_t in, int64_t out, int64_t layers, int64_t groups, bool resample, bool down) : down_(down) {
    auto resnets = register_module("resnets", nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      resnet_list_.push_back(Resnet(i == 0 ? in : out, out, groups));
      resnets->push_back(resnet_list_.back());
    }
    if (resample) {
      auto samplers = register_module(down ? "downsamplers" : "upsamplers", nn::ModuleList());
      auto holder = std::make_shared<nn::Module>();
      resample_ = down ? Conv(out, out, 3, 2, 0) : Conv(out, out, 3, 1, 1);
      holder->register_module("conv", resample_);
      samplers->push_back(holder);
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& r : resnet_list_) x = r(x);
    if (!resample_) return x;
    if (down_) return resample_(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
    auto up = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
    return resample_(up);
  }

 private:
  std::vector<Resnet> resnet_list_;
  nn::Conv2d resample_{nullptr};
  bool down_;
};
TORCH_MODULE(Block);

class EncoderImpl : public nn::Module {
 public:
  explicit EncoderImpl(const VAEConfig& c) {
    const auto& ch = c.block_out_channels;
    conv_in_ = register_module("conv_in", Conv(c.in_channels, ch[0], 3, 1, 1));
    auto downs = register_module("down_blocks", nn::ModuleList());
    int64_t prev = ch[0];
    for (size_t i = 0; i < ch.size(); ++i) {
      blocks_.push_back(Block(prev, ch[i], c.layers_per_block, c.norm_num_groups, i + 1 < ch.size(), true));
      downs->push_back(blocks_.back());
      prev = ch[i];
    }
    mid_ = register_module("mid_block", MidBlock(prev, c.norm_num_groups));
    norm_out_ = register_module("conv_norm_out", Norm(c.norm_num_groups, prev));
    conv_out_ = register_module("conv_out", Conv(prev, 2 * c.latent_channels, 3, 1, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv_in_(x);
    for (auto& b : blocks_) h = b(h);
    return conv_out_(F::silu(norm_out_(mid_(h))));
  }

 private:
  nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<Block> blocks_;
  MidBlock mid_{nullptr};
  nn::GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(Encoder);

class DecoderImpl : public nn::Module {
 public:
  explicit DecoderImpl(const VAEConfig& c) {
    std::vector<int64_t> ch(c.block_out_channels.rbegin(), c.block_out_channels.rend());
    conv_in_ = register_module("conv_in", Conv(c.latent_channels, ch[0], 3, 1, 1));
    mid_ = register_module("mid_block", MidBlock(ch[0], c.norm_num_groups));
    auto ups = register_module("up_blocks", nn::ModuleList());
    int64_t prev = ch[0];
    for (size_t i = 0; i < ch.size(); ++i) {
      blocks_.push_back(Block(prev, ch[i], c.layers_per_block + 1, c.norm_num_groups, i + 1 < ch.size(), false));
      ups->push_back(blocks_.back());
      prev = ch[i];
    }
    norm_out_ = register_module("conv_norm_out", Norm(c.norm_num_groups, prev));
    conv_out_ = register_module("conv_out", Conv(prev, c.out_channels, 3, 1, 1));
  }
  torch::Tensor forward(const torch::Tensor& z) {
    auto h = mid_(conv_in_(z));
    for (auto& b : blocks_) h = b(h);
    return conv_out_(F::silu(norm_out_(h)));
  }

 private:
  nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<Block> blocks_;
  MidBlock mid_{nullptr};
  nn::GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace

Result<VAEConfig> VAEConfig::FromJson(const nlohmann::json& j, const std::string& source) {
  VAEConfig c;
  try {
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.value("out_channels", c.out_channels);
    c.latent_channels = j.value("latent_channels", c.latent_channels);
    c.block_out_channels = j.at("block_out_channels").get<std::vector<int64_t>>();
    c.layers_per_block = j.value("layers_per_block", c.layers_per_block);
    c.norm_num_groups = j.value("norm_num_groups", c.norm_num_groups);
    c.scaling_factor = j.value("scaling_factor", c.scaling_factor);
    c.sample_size = j.value("sample_size", c.sample_size);
    if (j.value("act_fn", std::string("silu")) != "silu") {
      return Status::Unsupported(source + ": \"act_fn\": only \"silu\" is supported");
    }
    for (const char* key : {"down_block_types", "up_block_types"}) {
      if (!j.contains(key)) continue;
      auto types = j[key].get<std::vector<std::string>>();
      std::string want = std::string(key) == "down_block_types" ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
      if (types.size() != c.block_out_channels.size()) {
        return Status::InvalidArgument(source + ": \"" + key + "\" must have one entry per block_out_channels");
      }
      for (const auto& t : types) {
        if (t != want) return Status::Unsupported(source + ": \"" + key + "\": \"" + t + "\" (supported: " + want + ")");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(source + ": " + e.what());
  }
  if (c.block_out_channels.empty()) return Status::InvalidArgument(source + ": \"block_out_channels\" is empty");
  for (int64_t ch : c.block_out_channels) {
    if (ch <= 0 || ch % c.norm_num_groups != 0) {
      return Status::InvalidArgument(source + ": \"block_out_channels\": " + std::to_string(ch) +
                                     " is not a positive multiple of norm_num_groups " + std::to_string(c.norm_num_groups));
    }
  }
  return c;
}

nlohmann::json VAEConfig::ToJson() const {
  std::vector<std::string> downs(block_out_channels.size(), "DownEncoderBlock2D");
  std::vector<std::string> ups(block_out_channels.size(), "UpDecoderBlock2D");
  return nlohmann::json{{"_class_name", "AutoencoderKL"},
                        {"_diffusers_version", "0.25.1"},
                        {"act_fn", "silu"},
                        {"block_out_channels", block_out_channels},
                        {"down_block_types", downs},
                        {"force_upcast", true},
                        {"in_channels", in_channels},
                        {"latent_channels", latent_channels},
                        {"layers_per_block", layers_per_block},
                        {"norm_num_groups", norm_num_groups},
                        {"out_channels", out_channels},
                        {"sample_size", sample_size},
                        {"scaling_factor", scaling_factor},
                        {"up_block_types", ups}};
}

TrainVAEImpl::TrainVAEImpl(const VAEConfig& config) : config_(config) {
  encoder_ = nn::AnyModule(register_module("encoder", Encoder(config)));
  decoder_ = nn::AnyModule(register_module("decoder", Decoder(config)));
  quant_conv_ = register_module("quant_conv", Conv(2 * config.latent_channels, 2 * config.latent_channels, 1));
  post_quant_conv_ = register_module("post_quant_conv", Conv(config.latent_channels, config.latent_channels, 1));
}

std::pair<torch::Tensor, torch::Tensor> TrainVAEImpl::Encode(const torch::Tensor& image) {
  auto moments = quant_conv_(encoder_.forward(image));  // [B, 2L, h, w]
  auto halves = moments.chunk(2, 1);
  return {halves[0], halves[1].clamp(-30.0, 20.0)};
}

torch::Tensor TrainVAEImpl::Decode(const torch::Tensor& latents) {
  return decoder_.forward(post_quant_conv_(latents));
}

}  // namespace fairy::engine::train
