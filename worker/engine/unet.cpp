#include "worker/engine/unet.h"

#include <algorithm>

#include "worker/engine/model_config.h"
#include "worker/engine/unet_blocks.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

namespace nn = torch::nn;

Status Unsupported(const std::string& source, const std::string& key, const std::string& what) {
  return Status::Unsupported(source + ": \"" + key + "\": " + what);
}

}  // namespace

Result<UNetConfig> UNetConfig::FromJson(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) return Status::InvalidArgument(source + ": expected a JSON object");
  ConfigReader r(json, source);
  UNetConfig c;
  c.in_channels = r.Int("in_channels", 4);
  c.out_channels = r.Int("out_channels", 4);
  c.block_out_channels = r.IntList("block_out_channels");
  c.down_block_types = r.StringList("down_block_types");
  c.up_block_types = r.StringList("up_block_types");
  FAIRY_RETURN_IF_ERROR(r.status());
  const size_t n = c.block_out_channels.size();
  if (n == 0) return r.Invalid("block_out_channels", "must not be empty");
  if (c.down_block_types.size() != n) {
    return r.Invalid("down_block_types", "has " + std::to_string(c.down_block_types.size()) +
                                             " entries, block_out_channels has " + std::to_string(n));
  }
  if (c.up_block_types.size() != n) {
    return r.Invalid("up_block_types", "has " + std::to_string(c.up_block_types.size()) +
                                           " entries, block_out_channels has " + std::to_string(n));
  }
  for (const auto& t : c.down_block_types) r.ExpectOneOf("down_block_types", t, {"CrossAttnDownBlock2D", "DownBlock2D"});
  for (const auto& t : c.up_block_types) r.ExpectOneOf("up_block_types", t, {"CrossAttnUpBlock2D", "UpBlock2D"});
  c.mid_block_type = r.String("mid_block_type", "UNetMidBlock2DCrossAttn");
  r.ExpectOneOf("mid_block_type", c.mid_block_type, {"UNetMidBlock2DCrossAttn"});
  c.layers_per_block = r.IntOrIntList("layers_per_block", n, 2);
  c.transformer_layers_per_block = r.IntOrIntList("transformer_layers_per_block", n, 1);
  c.num_heads = r.Has("num_attention_heads") ? r.IntOrIntList("num_attention_heads", n, 8)
                                             : r.IntOrIntList("attention_head_dim", n, 8);
  const std::vector<int64_t> cross = r.IntOrIntList("cross_attention_dim", n, 1280);
  c.cross_attention_dim = cross.empty() ? 1280 : cross[0];
  if (std::any_of(cross.begin(), cross.end(), [&](int64_t v) { return v != c.cross_attention_dim; })) {
    r.Fail(Unsupported(source, "cross_attention_dim", "per-block values that differ are not supported"));
  }
  c.norm_num_groups = r.Int("norm_num_groups", 32);
  c.norm_eps = r.Float("norm_eps", 1e-5);
  c.flip_sin_to_cos = r.Bool("flip_sin_to_cos", true);
  c.freq_shift = r.Float("freq_shift", 0);
  c.use_linear_projection = r.Bool("use_linear_projection", false);
  c.downsample_padding = r.Int("downsample_padding", 1);
  c.mid_block_scale_factor = r.Float("mid_block_scale_factor", 1);
  c.sample_size = r.Int("sample_size", 64);
  r.ExpectOneOf("act_fn", r.String("act_fn", "silu"), {"silu"});
  r.ExpectOneOf("time_embedding_type", r.String("time_embedding_type", "positional"), {"positional"});
  r.ExpectOneOf("resnet_time_scale_shift", r.String("resnet_time_scale_shift", "default"), {"default"});
  r.ExpectOneOf("attention_type", r.String("attention_type", "default"), {"default"});
  for (const char* key : {"class_embed_type", "addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type",
                          "time_cond_proj_dim", "time_embedding_dim", "timestep_post_act", "time_embedding_act_fn",
                          "num_class_embeds", "projection_class_embeddings_input_dim", "cross_attention_norm",
                          "addition_time_embed_dim", "reverse_transformer_layers_per_block",
                          "mid_block_only_cross_attention"}) {
    r.ExpectAbsentOr(key, nullptr);
  }
  for (const char* key : {"center_input_sample", "dual_cross_attention", "only_cross_attention",
                          "resnet_skip_time_act", "class_embeddings_concat"}) {
    r.ExpectAbsentOr(key, false);
  }
  r.ExpectAbsentOr("resnet_out_scale_factor", 1.0);
  r.ExpectAbsentOr("conv_in_kernel", 3);
  r.ExpectAbsentOr("conv_out_kernel", 3);
  FAIRY_RETURN_IF_ERROR(r.status());

  for (size_t i = 0; i < n; ++i) {
    const int64_t ch = c.block_out_channels[i];
    if (ch <= 0) return r.Invalid("block_out_channels", "entry " + std::to_string(i) + " is not positive");
    if (c.num_heads[i] <= 0 || ch % c.num_heads[i] != 0) {
      return r.Invalid(r.Has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim",
                       "block " + std::to_string(i) + ": " + std::to_string(ch) + " channels do not split into " +
                           std::to_string(c.num_heads[i]) + " heads");
    }
    if (c.norm_num_groups <= 0 || ch % c.norm_num_groups != 0) {
      return r.Invalid("norm_num_groups", std::to_string(ch) + " channels of block " + std::to_string(i) +
                                              " are not divisible by " + std::to_string(c.norm_num_groups));
    }
    if (c.layers_per_block[i] < 1) return r.Invalid("layers_per_block", "must be at least 1");
    if (c.transformer_layers_per_block[i] < 1) return r.Invalid("transformer_layers_per_block", "must be at least 1");
  }
  if (c.in_channels <= 0 || c.out_channels <= 0) return r.Invalid("in_channels", "channel counts must be positive");
  if (c.downsample_padding != 0 && c.downsample_padding != 1) {
    return Unsupported(source, "downsample_padding", "only 0 and 1 are supported");
  }
  return c;
}

Result<UNetConfig> UNetConfig::Load(const std::string& config_json_path) {
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(config_json_path));
  return FromJson(json, config_json_path);
}

// ---------------------------------------------------------------------------------------------
UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  const auto& boc = config.block_out_channels;
  const int64_t n = static_cast<int64_t>(boc.size());
  const int64_t temb = boc[0] * 4;
  conv_in_ = register_module("conv_in", nn::Conv2d(nn::Conv2dOptions(config.in_channels, boc[0], 3).padding(1)));
  auto time_embedding = std::make_shared<nn::Module>();
  time_linear_1_ = time_embedding->register_module("linear_1", nn::Linear(boc[0], temb));
  time_linear_2_ = time_embedding->register_module("linear_2", nn::Linear(temb, temb));
  register_module("time_embedding", time_embedding);

  unet::BlockSpec base;
  base.temb_channels = temb;
  base.cross_dim = config.cross_attention_dim;
  base.groups = config.norm_num_groups;
  base.eps = config.norm_eps;
  base.downsample_padding = config.downsample_padding;
  base.linear_projection = config.use_linear_projection;

  nn::ModuleList down_list;
  int64_t out_ch = boc[0];
  for (int64_t i = 0; i < n; ++i) {
    unet::BlockSpec s = base;
    s.in_channels = out_ch;
    out_ch = boc[i];
    s.out_channels = out_ch;
    s.num_layers = config.layers_per_block[i];
    s.transformer_layers = config.transformer_layers_per_block[i];
    s.heads = config.num_heads[i];
    s.cross_attention = config.down_block_types[i] == "CrossAttnDownBlock2D";
    s.resample = i != n - 1;
    down_blocks_.push_back(std::make_shared<unet::DownBlockImpl>(s));
    down_list->push_back(down_blocks_.back());
  }
  register_module("down_blocks", down_list);

  unet::BlockSpec mid = base;
  mid.in_channels = boc[n - 1];
  mid.num_layers = 1;
  mid.transformer_layers = config.transformer_layers_per_block[n - 1];
  mid.heads = config.num_heads[n - 1];
  mid_block_ = register_module("mid_block", std::make_shared<unet::MidBlockImpl>(mid, config.mid_block_scale_factor));

  nn::ModuleList up_list;
  out_ch = boc[n - 1];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = n - 1 - i;  // reversed index into the per-down-block lists
    unet::BlockSpec s = base;
    s.prev_out_channels = out_ch;
    out_ch = boc[r];
    s.out_channels = out_ch;
    s.in_channels = boc[std::max<int64_t>(r - 1, 0)];
    s.num_layers = config.layers_per_block[r] + 1;
    s.transformer_layers = config.transformer_layers_per_block[r];
    s.heads = config.num_heads[r];
    s.cross_attention = config.up_block_types[i] == "CrossAttnUpBlock2D";
    s.resample = i != n - 1;
    up_blocks_.push_back(std::make_shared<unet::UpBlockImpl>(s));
    up_list->push_back(up_blocks_.back());
  }
  register_module("up_blocks", up_list);

  conv_norm_out_ = register_module(
      "conv_norm_out", nn::GroupNorm(nn::GroupNormOptions(config.norm_num_groups, boc[0]).eps(config.norm_eps)));
  conv_out_ = register_module("conv_out", nn::Conv2d(nn::Conv2dOptions(boc[0], config.out_channels, 3).padding(1)));

  // Number the self-attention layers in forward order; the anchor cache is keyed by these indices.
  std::vector<std::pair<std::string, std::shared_ptr<unet::AttentionImpl>>> layers;
  auto add = [&](const std::string& prefix, auto list) {
    for (auto& [path, attn] : list) layers.emplace_back(prefix + path, attn);
  };
  for (int64_t i = 0; i < n; ++i) add("down_blocks." + std::to_string(i) + ".", down_blocks_[i]->SelfAttentionLayers());
  add("mid_block.", mid_block_->SelfAttentionLayers());
  for (int64_t i = 0; i < n; ++i) add("up_blocks." + std::to_string(i) + ".", up_blocks_[i]->SelfAttentionLayers());
  for (size_t i = 0; i < layers.size(); ++i) {
    layers[i].second->set_layer_index(static_cast<int>(i));
    self_attention_layers_.push_back(layers[i].first);
  }
}

int64_t UNetImpl::DownsampleFactor() const {
  return int64_t{1} << (config_.block_out_channels.size() - 1);
}

torch::Tensor UNetImpl::forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                                const torch::Tensor& encoder_hidden_states, const SelfAttentionContext* ctx,
                                std::map<std::string, torch::Tensor>* debug) {
  const int64_t b = sample.size(0);
  auto record = [&](const std::string& name, const torch::Tensor& t) {
    if (debug != nullptr) (*debug)[name] = t;
  };
  // Timestep embedding: [B] -> [B, C0] (float32) -> [B, 4*C0] in the model's dtype.
  auto t = timesteps.reshape({-1}).to(sample.device());
  if (t.size(0) == 1 && b != 1) t = t.expand({b});
  auto t_proj = unet::TimestepProjection(t, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                         config_.freq_shift)
                    .to(sample.scalar_type());
  record("time_proj", t_proj);
  auto temb = time_linear_2_(torch::silu(time_linear_1_(t_proj)));
  record("time_embedding", temb);

  auto x = conv_in_(sample);  // [B, in, h, w] -> [B, C0, h, w]
  record("conv_in", x);
  std::vector<torch::Tensor> skips{x};
  for (size_t i = 0; i < down_blocks_.size(); ++i) {
    x = down_blocks_[i]->forward(x, temb, encoder_hidden_states, ctx, &skips);
    record("down_blocks." + std::to_string(i), x);
  }
  x = mid_block_->forward(x, temb, encoder_hidden_states, ctx);
  record("mid_block", x);
  for (size_t i = 0; i < up_blocks_.size(); ++i) {
    // The upsampler restores the spatial size of the skip the next block consumes first, so odd
    // latent sizes come back exactly.
    const size_t remaining = skips.size() - static_cast<size_t>(up_blocks_[i]->num_resnets());
    std::vector<int64_t> size;
    if (i + 1 < up_blocks_.size() && remaining > 0) {
      size = {skips[remaining - 1].size(2), skips[remaining - 1].size(3)};
    }
    x = up_blocks_[i]->forward(x, temb, encoder_hidden_states, ctx, &skips, size);
    record("up_blocks." + std::to_string(i), x);
  }
  x = conv_norm_out_(x);
  record("conv_norm_out", x);
  return conv_out_(torch::silu(x));  // [B, C0, h, w] -> [B, out, h, w]
}

Result<torch::Tensor> UNetImpl::Forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                                        const torch::Tensor& encoder_hidden_states, const SelfAttentionContext* ctx,
                                        std::map<std::string, torch::Tensor>* debug) {
  if (!sample.defined() || sample.dim() != 4 || sample.size(1) != config_.in_channels) {
    return Status::InvalidArgument("unet: sample must be [B, " + std::to_string(config_.in_channels) +
                                   ", h, w], got " + (sample.defined() ? ShapeString(sample.sizes()) : "none"));
  }
  const int64_t b = sample.size(0);
  if (b == 0 || sample.size(2) == 0 || sample.size(3) == 0) {
    return Status::InvalidArgument("unet: empty sample " + ShapeString(sample.sizes()));
  }
  if (!timesteps.defined() || timesteps.numel() == 0 || timesteps.dim() > 1 ||
      (timesteps.numel() != 1 && timesteps.numel() != b)) {
    return Status::InvalidArgument("unet: timesteps must be [1] or [" + std::to_string(b) + "], got " +
                                   (timesteps.defined() ? ShapeString(timesteps.sizes()) : "none"));
  }
  if (!encoder_hidden_states.defined() || encoder_hidden_states.dim() != 3 || encoder_hidden_states.size(0) != b ||
      encoder_hidden_states.size(2) != config_.cross_attention_dim) {
    return Status::InvalidArgument(
        "unet: encoder_hidden_states must be [" + std::to_string(b) + ", M, " +
        std::to_string(config_.cross_attention_dim) + "], got " +
        (encoder_hidden_states.defined() ? ShapeString(encoder_hidden_states.sizes()) : "none"));
  }
  if (ctx != nullptr && ctx->mode != SelfAttentionMode::kPlain) {
    if (ctx->cache == nullptr) return Status::InvalidArgument("unet: anchor/frame mode without an anchor cache");
    if (ctx->branches < 1 || b % ctx->branches != 0) {
      return Status::InvalidArgument("unet: batch " + std::to_string(b) + " is not a multiple of the " +
                                     std::to_string(ctx->branches) + " guidance branches");
    }
    if (ctx->cache->layer_names() != self_attention_layers_) {
      return Status::InvalidArgument("unet: the anchor cache was made for another UNet (" +
                                     std::to_string(ctx->cache->layer_names().size()) + " layers, this one has " +
                                     std::to_string(self_attention_layers_.size()) + ")");
    }
    if (ctx->step < 0 || ctx->step >= ctx->cache->num_steps()) {
      return Status::InvalidArgument("unet: step " + std::to_string(ctx->step) + " is outside the anchor cache's " +
                                     std::to_string(ctx->cache->num_steps()) + " steps");
    }
  }
  try {
    return forward(sample, timesteps, encoder_hidden_states, ctx, debug);
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(std::string("unet forward failed: ") + e.what_without_backtrace());
  }
}

double UNetImpl::ForwardFlops(int64_t h, int64_t w, int64_t text_tokens, double kv_factor) const {
  const auto& c = config_;
  const auto& boc = c.block_out_channels;
  const size_t n = boc.size();
  double flops = 0;
  auto conv = [&](double cin, double cout, double k, double hw) { flops += 2 * cin * cout * k * k * hw; };
  auto lin = [&](double in, double out, double tokens) { flops += 2 * in * out * tokens; };
  auto resnet = [&](double cin, double cout, double hw) {
    conv(cin, cout, 3, hw);
    conv(cout, cout, 3, hw);
    if (cin != cout) conv(cin, cout, 1, hw);
  };
  auto transformer = [&](double ch, int64_t layers, double hw) {
    lin(ch, ch, hw * 2);  // proj_in, proj_out
    for (int64_t l = 0; l < layers; ++l) {
      lin(ch, ch, hw * 4);                                   // attn1 q, k, v, out
      flops += 2 * 2 * hw * (hw * kv_factor) * ch;           // attn1 scores and weighted sum
      lin(ch, ch, hw * 2);                                   // attn2 q, out
      lin(static_cast<double>(c.cross_attention_dim), ch, 2.0 * text_tokens);  // attn2 k, v
      flops += 2 * 2 * hw * text_tokens * ch;
      lin(ch, 8 * ch, hw);                                   // GEGLU proj
      lin(4 * ch, ch, hw);                                   // ff out
    }
  };
  double hw = static_cast<double>(h * w);
  conv(static_cast<double>(c.in_channels), boc[0], 3, hw);
  std::vector<double> skip_ch{static_cast<double>(boc[0])};
  std::vector<double> skip_hw{hw};
  double ch = boc[0];
  for (size_t i = 0; i < n; ++i) {
    for (int64_t l = 0; l < c.layers_per_block[i]; ++l) {
      resnet(ch, boc[i], hw);
      ch = boc[i];
      if (c.down_block_types[i] == "CrossAttnDownBlock2D") transformer(ch, c.transformer_layers_per_block[i], hw);
      skip_ch.push_back(ch);
      skip_hw.push_back(hw);
    }
    if (i + 1 < n) {
      hw /= 4;
      conv(ch, ch, 3, hw);
      skip_ch.push_back(ch);
      skip_hw.push_back(hw);
    }
  }
  resnet(ch, ch, hw);
  transformer(ch, c.transformer_layers_per_block[n - 1], hw);
  resnet(ch, ch, hw);
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;
    for (int64_t l = 0; l < c.layers_per_block[r] + 1; ++l) {
      const double skip = skip_ch.back();
      skip_ch.pop_back();
      skip_hw.pop_back();
      resnet(ch + skip, boc[r], hw);
      ch = boc[r];
      if (c.up_block_types[i] == "CrossAttnUpBlock2D") transformer(ch, c.transformer_layers_per_block[r], hw);
    }
    if (i + 1 < n) {
      hw *= 4;
      conv(ch, ch, 3, hw);
    }
  }
  conv(ch, static_cast<double>(c.out_channels), 3, hw);
  return flops;
}

// ---------------------------------------------------------------------------------------------
Result<UNet> LoadUNet(const std::string& unet_dir, const torch::Device& device, torch::ScalarType dtype) {
  FAIRY_ASSIGN_OR_RETURN(UNetConfig config, UNetConfig::Load(unet_dir + "/config.json"));
  FAIRY_ASSIGN_OR_RETURN(TensorMap tensors, ReadPartFolder(unet_dir));
  return LoadUNet(config, tensors, "unet (" + unet_dir + ")", device, dtype);
}

Result<UNet> LoadUNet(const UNetConfig& config, const TensorMap& tensors, const std::string& what,
                      const torch::Device& device, torch::ScalarType dtype,
                      const LoadWeightsOptions& options) {
  UNet unet(config);
  unet->to(dtype);
  FAIRY_RETURN_IF_ERROR(LoadWeights(*unet, tensors, what, options));
  unet->to(device);
  unet->eval();
  return unet;
}

UNet RandomUNet(const UNetConfig& config, uint64_t seed, const torch::Device& device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  UNet unet(config);
  // LibTorch's default initialisation (uniform, bound 1/sqrt(fan_in)) draws from the global
  // generator; redraw from our own so the weights depend only on `seed`.
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : unet->named_parameters()) {
    auto& t = p.value();
    if (t.dim() <= 1) {
      const bool is_norm_weight = p.key().find("norm") != std::string::npos && p.key().ends_with(".weight");
      if (is_norm_weight) {
        t.fill_(1.0);
      } else {
        t.normal_(0.0, 0.02, gen);
      }
    } else {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      t.normal_(0.0, 1.0 / std::sqrt(fan_in), gen);
    }
  }
  unet->to(device, dtype);
  unet->eval();
  return unet;
}

}  // namespace fairy::engine
