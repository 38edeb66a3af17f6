#include "worker/engine/vae.h"

#include "worker/engine/anchor_attention.h"
#include "worker/engine/model_config.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace vae {
namespace {

constexpr double kNormEps = 1e-6;  // every GroupNorm of diffusers' AutoencoderKL

nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}
nn::GroupNorm Norm(int64_t groups, int64_t channels) {
  return nn::GroupNorm(nn::GroupNormOptions(groups, channels).eps(kNormEps));
}

// ResnetBlock2D without time embedding: norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus
// the input (through a 1x1 conv_shortcut when the channel count changes).
class ResnetImpl : public nn::Module {
 public:
  ResnetImpl(int64_t in, int64_t out, int64_t groups) {
    norm1_ = register_module("norm1", Norm(groups, in));
    conv1_ = register_module("conv1", Conv(in, out, 3, 1, 1));
    norm2_ = register_module("norm2", Norm(groups, out));
    conv2_ = register_module("conv2", Conv(out, out, 3, 1, 1));
    if (in != out) conv_shortcut_ = register_module("conv_shortcut", Conv(in, out, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv1_(F::silu(norm1_(x)));
    h = conv2_(F::silu(norm2_(h)));
    return (conv_shortcut_ ? conv_shortcut_(x) : x) + h;
  }

 private:
  nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv_shortcut_{nullptr};
};
TORCH_MODULE(Resnet);

// diffusers Attention as the VAE mid block uses it: GroupNorm first, one head of head_dim =
// channels, q/k/v/out Linear with bias, softmax in float32 for half types (upcast_softmax), the
// residual added inside.
class AttentionImpl : public nn::Module {
 public:
  AttentionImpl(int64_t channels, int64_t groups) {
    group_norm_ = register_module("group_norm", Norm(groups, channels));
    to_q_ = register_module("to_q", nn::Linear(channels, channels));
    to_k_ = register_module("to_k", nn::Linear(channels, channels));
    to_v_ = register_module("to_v", nn::Linear(channels, channels));
    auto to_out = register_module("to_out", nn::ModuleList());
    out_ = nn::Linear(channels, channels);
    to_out->push_back(out_);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    auto t = group_norm_(x).view({b, c, h * w}).transpose(1, 2);  // [B, C, H, W] -> [B, N, C]
    auto o = out_(MultiHeadAttention(to_q_(t), to_k_(t), to_v_(t), 1));  // [B, N, C]
    return o.transpose(1, 2).reshape({b, c, h, w}) + x;                  // -> [B, C, H, W]
  }

 private:
  nn::GroupNorm group_norm_{nullptr};
  nn::Linear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, out_{nullptr};
};
TORCH_MODULE(Attention);

// UNetMidBlock2D: resnet -> attention -> resnet.
class MidBlockImpl : public nn::Module {
 public:
  MidBlockImpl(int64_t channels, int64_t groups) {
    auto resnets = register_module("resnets", nn::ModuleList());
    auto attentions = register_module("attentions", nn::ModuleList());
    resnet0_ = Resnet(channels, channels, groups);
    resnet1_ = Resnet(channels, channels, groups);
    attention_ = Attention(channels, groups);
    resnets->push_back(resnet0_);
    resnets->push_back(resnet1_);
    attentions->push_back(attention_);
  }
  torch::Tensor forward(const torch::Tensor& x) { return resnet1_(attention_(resnet0_(x))); }

 private:
  Resnet resnet0_{nullptr}, resnet1_{nullptr};
  Attention attention_{nullptr};
};
TORCH_MODULE(MidBlock);

// DownEncoderBlock2D (down: the resnets, then zero-pad right/bottom by 1 and a 3x3 stride-2 conv
// with padding 0 -- the VAE's asymmetric padding) or UpDecoderBlock2D (the resnets, then nearest
// x2 and a 3x3 conv).
class BlockImpl : public nn::Module {
 public:
  BlockImpl(int64_t in, int64_t out, int64_t layers, int64_t groups, bool resample, bool down)
      : down_(down) {
    auto resnets = register_module("resnets", nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      resnets_.push_back(Resnet(i == 0 ? in : out, out, groups));
      resnets->push_back(resnets_.back());
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
    for (auto& r : resnets_) x = r(x);
    if (!resample_) return x;
    if (down_)
      return resample_(
          F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));  // [B, C, H+1, W+1] -> [B, C, H/2, W/2]
    // Nearest x2 has no bfloat16 kernel in older LibTorch (diffusers upcasts the same way).
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    auto up = F::interpolate(bf16 ? x.to(torch::kFloat32) : x,
                             F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{2.0, 2.0})
                                 .mode(torch::kNearest));
    return resample_(bf16 ? up.to(torch::kBFloat16) : up);  // [B, C, 2H, 2W]
  }

 private:
  std::vector<Resnet> resnets_;
  nn::Conv2d resample_{nullptr};
  bool down_;
};
TORCH_MODULE(Block);

}  // namespace

class EncoderImpl : public nn::Module {
 public:
  explicit EncoderImpl(const VAEConfig& c) {
    const auto& ch = c.block_out_channels;
    conv_in_ = register_module("conv_in", Conv(c.in_channels, ch[0], 3, 1, 1));
    auto downs = register_module("down_blocks", nn::ModuleList());
    int64_t prev = ch[0];
    for (size_t i = 0; i < ch.size(); ++i) {
      blocks_.push_back(
          Block(prev, ch[i], c.layers_per_block, c.norm_num_groups, i + 1 < ch.size(), true));
      downs->push_back(blocks_.back());
      prev = ch[i];
    }
    mid_block_ = register_module("mid_block", MidBlock(prev, c.norm_num_groups));
    conv_norm_out_ = register_module("conv_norm_out", Norm(c.norm_num_groups, prev));
    conv_out_ = register_module("conv_out", Conv(prev, 2 * c.latent_channels, 3, 1, 1));
  }
  // [B, in, H, W] -> [B, 2L, H/f, W/f]
  torch::Tensor forward(const torch::Tensor& x, std::map<std::string, torch::Tensor>* debug) {
    auto h = conv_in_(x);
    for (auto& b : blocks_) h = b(h);
    h = mid_block_(h);
    if (debug != nullptr) (*debug)["encoder.mid_block"] = h;
    return conv_out_(F::silu(conv_norm_out_(h)));
  }

 private:
  nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<Block> blocks_;
  MidBlock mid_block_{nullptr};
  nn::GroupNorm conv_norm_out_{nullptr};
};

class DecoderImpl : public nn::Module {
 public:
  explicit DecoderImpl(const VAEConfig& c) {
    std::vector<int64_t> ch(c.block_out_channels.rbegin(), c.block_out_channels.rend());
    conv_in_ = register_module("conv_in", Conv(c.latent_channels, ch[0], 3, 1, 1));
    mid_block_ = register_module("mid_block", MidBlock(ch[0], c.norm_num_groups));
    auto ups = register_module("up_blocks", nn::ModuleList());
    int64_t prev = ch[0];
    for (size_t i = 0; i < ch.size(); ++i) {
      blocks_.push_back(
          Block(prev, ch[i], c.layers_per_block + 1, c.norm_num_groups, i + 1 < ch.size(), false));
      ups->push_back(blocks_.back());
      prev = ch[i];
    }
    conv_norm_out_ = register_module("conv_norm_out", Norm(c.norm_num_groups, prev));
    conv_out_ = register_module("conv_out", Conv(prev, c.out_channels, 3, 1, 1));
  }
  // [B, L, h, w] -> [B, out, h*f, w*f]
  torch::Tensor forward(const torch::Tensor& z, std::map<std::string, torch::Tensor>* debug) {
    auto h = mid_block_(conv_in_(z));
    if (debug != nullptr) (*debug)["decoder.mid_block"] = h;
    for (auto& b : blocks_) h = b(h);
    return conv_out_(F::silu(conv_norm_out_(h)));
  }

 private:
  nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<Block> blocks_;
  MidBlock mid_block_{nullptr};
  nn::GroupNorm conv_norm_out_{nullptr};
};

}  // namespace vae

// ---------------------------------------------------------------------------------------------
Result<VAEConfig> VAEConfig::FromJson(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) return Status::InvalidArgument(source + ": expected a JSON object");
  ConfigReader r(json, source);
  VAEConfig c;
  c.in_channels = r.Int("in_channels", c.in_channels);
  c.out_channels = r.Int("out_channels", c.out_channels);
  c.latent_channels = r.Int("latent_channels", c.latent_channels);
  c.block_out_channels = r.IntList("block_out_channels");
  c.layers_per_block = r.Int("layers_per_block", c.layers_per_block);
  c.norm_num_groups = r.Int("norm_num_groups", c.norm_num_groups);
  c.scaling_factor = r.Float("scaling_factor", c.scaling_factor);
  c.sample_size = r.Int("sample_size", c.sample_size);
  r.ExpectOneOf("act_fn", r.String("act_fn", "silu"), {"silu"});
  if (r.Has("_class_name"))
    r.ExpectOneOf("_class_name", r.String("_class_name"), {"AutoencoderKL"});
  // Features of newer diffusers versions this engine does not implement.
  r.ExpectAbsentOr("use_quant_conv", true);
  r.ExpectAbsentOr("use_post_quant_conv", true);
  r.ExpectAbsentOr("mid_block_add_attention", true);
  r.ExpectAbsentOr("latents_mean", nullptr);
  r.ExpectAbsentOr("latents_std", nullptr);
  r.ExpectAbsentOr("shift_factor", nullptr);
  FAIRY_RETURN_IF_ERROR(r.status());
  const size_t n = c.block_out_channels.size();
  if (n == 0) return r.Invalid("block_out_channels", "must not be empty");
  if (n > 8)
    return r.Invalid("block_out_channels", "has " + std::to_string(n) + " entries (at most 8)");
  const std::pair<const char*, const char*> block_types[] = {
      {"down_block_types", "DownEncoderBlock2D"}, {"up_block_types", "UpDecoderBlock2D"}};
  for (const auto& [key, supported] : block_types) {
    if (!r.Has(key)) continue;
    std::vector<std::string> types = r.StringList(key);
    FAIRY_RETURN_IF_ERROR(r.status());
    if (types.size() != n) {
      return r.Invalid(key, "has " + std::to_string(types.size()) +
                                " entries, block_out_channels has " + std::to_string(n));
    }
    for (const auto& t : types) r.ExpectOneOf(key, t, {supported});
  }
  FAIRY_RETURN_IF_ERROR(r.status());
  for (const char* key :
       {"in_channels", "out_channels", "latent_channels", "layers_per_block", "norm_num_groups"}) {
    if (r.Has(key) && r.json()[key].get<int64_t>() <= 0) return r.Invalid(key, "must be positive");
  }
  for (int64_t ch : c.block_out_channels) {
    if (ch <= 0 || ch % c.norm_num_groups != 0) {
      return r.Invalid("block_out_channels", std::to_string(ch) +
                                                 " is not a positive multiple of norm_num_groups " +
                                                 std::to_string(c.norm_num_groups));
    }
  }
  return c;
}

Result<VAEConfig> VAEConfig::Load(const std::string& config_json_path) {
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(config_json_path));
  return FromJson(json, config_json_path);
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

// ---------------------------------------------------------------------------------------------
AutoencoderKLImpl::AutoencoderKLImpl(const VAEConfig& config) : config_(config) {
  encoder_ = register_module("encoder", std::make_shared<vae::EncoderImpl>(config));
  decoder_ = register_module("decoder", std::make_shared<vae::DecoderImpl>(config));
  quant_conv_ = register_module(
      "quant_conv", vae::Conv(2 * config.latent_channels, 2 * config.latent_channels, 1));
  post_quant_conv_ = register_module("post_quant_conv",
                                     vae::Conv(config.latent_channels, config.latent_channels, 1));
}

std::pair<torch::Tensor, torch::Tensor> AutoencoderKLImpl::Encode(
    const torch::Tensor& image, std::map<std::string, torch::Tensor>* debug) {
  TORCH_CHECK(image.dim() == 4 && image.size(1) == config_.in_channels, "vae encode: expected [B, ",
              config_.in_channels, ", H, W], got ", image.sizes());
  const int64_t f = config_.ScaleFactor();
  TORCH_CHECK(image.size(2) % f == 0 && image.size(3) % f == 0, "vae encode: image ", image.size(2),
              "x", image.size(3), " is not a multiple of the scale factor ", f);
  auto moments = quant_conv_(encoder_->forward(image, debug));  // [B, 2L, h, w]
  auto halves = moments.chunk(2, 1);
  return {halves[0], halves[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::Decode(const torch::Tensor& latents,
                                        std::map<std::string, torch::Tensor>* debug) {
  TORCH_CHECK(latents.dim() == 4 && latents.size(1) == config_.latent_channels,
              "vae decode: expected [B, ", config_.latent_channels, ", h, w], got ",
              latents.sizes());
  return decoder_->forward(post_quant_conv_(latents), debug);  // [B, L, h, w] -> [B, out, h*f, w*f]
}

Result<AutoencoderKL> LoadAutoencoderKL(const std::string& vae_dir, const torch::Device& device,
                                        torch::ScalarType dtype) {
  FAIRY_ASSIGN_OR_RETURN(VAEConfig config, VAEConfig::Load(vae_dir + "/config.json"));
  FAIRY_ASSIGN_OR_RETURN(TensorMap tensors, ReadPartFolder(vae_dir));
  return LoadAutoencoderKL(config, tensors, "vae (" + vae_dir + ")", device, dtype);
}

Result<AutoencoderKL> LoadAutoencoderKL(const VAEConfig& config, const TensorMap& tensors,
                                        const std::string& what, const torch::Device& device,
                                        torch::ScalarType dtype, const LoadWeightsOptions& options) {
  AutoencoderKL vae(config);
  vae->to(dtype);
  FAIRY_RETURN_IF_ERROR(LoadWeights(*vae, tensors, what, options));
  vae->to(device);
  vae->eval();
  return vae;
}

}  // namespace fairy::engine
