#include "worker/engine/ldm_layout.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <set>

namespace fairy::engine {
namespace {

bool StartsWith(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

// "12" -> 12; anything else -> nullopt.
std::optional<int64_t> ParseIndex(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Splits "a.b.c" at the first `n` dots: {"a", "b", "c.d"} for n = 2 on "a.b.c.d".
std::vector<std::string> SplitFirst(const std::string& s, int n) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (int i = 0; i < n; ++i) {
    const size_t dot = s.find('.', pos);
    if (dot == std::string::npos) break;
    out.push_back(s.substr(pos, dot - pos));
    pos = dot + 1;
  }
  out.push_back(s.substr(pos));
  return out;
}

// A UNet resnet's sub-layers: in_layers.0 -> norm1, in_layers.2 -> conv1, out_layers.0 -> norm2,
// out_layers.3 -> conv2, emb_layers.1 -> time_emb_proj, skip_connection -> conv_shortcut.
std::optional<std::string> UNetResnetName(const std::string& rest) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"in_layers.0.", "norm1."},          {"in_layers.2.", "conv1."},
      {"out_layers.0.", "norm2."},         {"out_layers.3.", "conv2."},
      {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."}};
  for (const auto& [from, to] : kNames) {
    if (StartsWith(rest, from)) return to + rest.substr(std::strlen(from));
  }
  return std::nullopt;
}

// The diffusers name of a UNet key (prefix removed); nullopt when no rule maps it.
std::optional<std::string> UNetName(const std::string& key, int64_t layers_per_block) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"time_embed.0.", "time_embedding.linear_1."},
      {"time_embed.2.", "time_embedding.linear_2."},
      {"input_blocks.0.0.", "conv_in."},
      {"out.0.", "conv_norm_out."},
      {"out.2.", "conv_out."}};
  for (const auto& [from, to] : kTop) {
    if (StartsWith(key, from)) return to + key.substr(std::strlen(from));
  }
  const int64_t per = layers_per_block + 1;  // input/output blocks per resolution level
  const std::vector<std::string> p = SplitFirst(key, 3);  // group, i, j, rest
  if (p.size() != 4) return std::nullopt;
  const auto i = ParseIndex(p[1]);
  const auto j = ParseIndex(p[2]);
  if (!i || !j) return std::nullopt;
  const std::string& rest = p[3];
  const auto resnet = [&](const std::string& prefix) -> std::optional<std::string> {
    auto r = UNetResnetName(rest);
    return r ? std::optional(prefix + *r) : std::nullopt;
  };
  if (p[0] == "input_blocks" && *i >= 1) {
    const int64_t block = (*i - 1) / per, layer = (*i - 1) % per;
    const std::string b = "down_blocks." + std::to_string(block);
    if (layer == layers_per_block) {  // the level's downsampler
      if (*j == 0 && StartsWith(rest, "op.")) return b + ".downsamplers.0.conv." + rest.substr(3);
      return std::nullopt;
    }
    if (*j == 0) return resnet(b + ".resnets." + std::to_string(layer) + ".");
    if (*j == 1) return b + ".attentions." + std::to_string(layer) + "." + rest;
    return std::nullopt;
  }
  if (p[0] == "output_blocks") {
    const int64_t block = *i / per, layer = *i % per;
    const std::string b = "up_blocks." + std::to_string(block);
    if (*j == 0) return resnet(b + ".resnets." + std::to_string(layer) + ".");
    // The upsampler follows the resnet (j = 1) or the resnet and attention (j = 2).
    if (StartsWith(rest, "conv.") && layer == layers_per_block && (*j == 1 || *j == 2)) {
      return b + ".upsamplers.0.conv." + rest.substr(5);
    }
    if (*j == 1) return b + ".attentions." + std::to_string(layer) + "." + rest;
    return std::nullopt;
  }
  return std::nullopt;
}

// middle_block.{0,1,2}.rest -> mid_block.resnets.0 / attentions.0 / resnets.1.
std::optional<std::string> UNetMidName(const std::string& key) {
  const std::vector<std::string> p = SplitFirst(key, 2);  // middle_block, n, rest
  if (p.size() != 3 || p[0] != "middle_block") return std::nullopt;
  const auto n = ParseIndex(p[1]);
  if (!n) return std::nullopt;
  if (*n == 1) return "mid_block.attentions.0." + p[2];
  if (*n != 0 && *n != 2) return std::nullopt;
  auto r = UNetResnetName(p[2]);
  return r ? std::optional("mid_block.resnets." + std::to_string(*n / 2) + "." + *r) : std::nullopt;
}

// The diffusers name of a VAE key (prefix removed), with `up_levels` decoder levels (the
// original numbers them from the lowest resolution, diffusers from the highest).
std::optional<std::string> VAEName(const std::string& key, int64_t up_levels) {
  const std::vector<std::string> side = SplitFirst(key, 1);  // encoder|decoder, rest
  if (side.size() != 2) return std::nullopt;
  if (side[0] == "quant_conv" || side[0] == "post_quant_conv") return key;
  if (side[0] != "encoder" && side[0] != "decoder") return std::nullopt;
  const std::string& s = side[0];
  const std::string& rest = side[1];
  const auto resnet = [](const std::string& r) {
    return StartsWith(r, "nin_shortcut.") ? "conv_shortcut." + r.substr(13) : r;
  };
  for (const char* same : {"conv_in.", "conv_out."}) {
    if (StartsWith(rest, same)) return key;
  }
  if (StartsWith(rest, "norm_out.")) return s + ".conv_norm_out." + rest.substr(9);
  if (StartsWith(rest, "mid.block_1."))
    return s + ".mid_block.resnets.0." + resnet(rest.substr(12));
  if (StartsWith(rest, "mid.block_2."))
    return s + ".mid_block.resnets.1." + resnet(rest.substr(12));
  if (StartsWith(rest, "mid.attn_1.")) {
    static const std::pair<const char*, const char*> kAttn[] = {{"norm.", "group_norm."},
                                                                {"q.", "to_q."},
                                                                {"k.", "to_k."},
                                                                {"v.", "to_v."},
                                                                {"proj_out.", "to_out.0."}};
    const std::string leaf = rest.substr(11);
    for (const auto& [from, to] : kAttn) {
      if (StartsWith(leaf, from))
        return s + ".mid_block.attentions.0." + to + leaf.substr(std::strlen(from));
    }
    return std::nullopt;
  }
  const std::vector<std::string> p = SplitFirst(rest, 2);  // down|up, level, rest
  if (p.size() != 3) return std::nullopt;
  const auto level = ParseIndex(p[1]);
  if (!level) return std::nullopt;
  std::string blocks;
  int64_t index = *level;
  if (s == "encoder" && p[0] == "down") {
    blocks = "encoder.down_blocks.";
  } else if (s == "decoder" && p[0] == "up" && *level < up_levels) {
    blocks = "decoder.up_blocks.";
    index = up_levels - 1 - *level;
  } else {
    return std::nullopt;
  }
  const std::string b = blocks + std::to_string(index);
  const std::string& leaf = p[2];
  if (StartsWith(leaf, "downsample.conv.") || StartsWith(leaf, "upsample.conv.")) {
    const std::string kind =
        StartsWith(leaf, "down") ? ".downsamplers.0.conv." : ".upsamplers.0.conv.";
    return b + kind + leaf.substr(leaf.find("conv.") + 5);
  }
  const std::vector<std::string> r = SplitFirst(leaf, 2);  // block, n, rest
  if (r.size() != 3 || r[0] != "block" || !ParseIndex(r[1])) return std::nullopt;
  return b + ".resnets." + r[1] + "." + resnet(r[2]);
}

// "model.diffusion_model.input_blocks.1.0.in_layers.0.weight" ->
// "model_ema.diffusion_modelinput_blocks10in_layers0weight" (how the original trainer names
// its EMA copy: the dots after "model." removed).
std::string EmaName(const std::string& unet_key) {
  std::string flat = unet_key.substr(std::strlen("model."));
  flat.erase(std::remove(flat.begin(), flat.end(), '.'), flat.end());
  return "model_ema." + flat;
}

// A 1x1 convolution weight [O, I, 1, 1] (or [O, I, 1]) seen as the linear weight [O, I] that the
// diffusers module holds; other shapes unchanged.
std::vector<int64_t> LinearShape(const std::string& name, std::vector<int64_t> shape) {
  const bool attention_weight = name.find("attentions.") != std::string::npos &&
                                name.find(".to_") != std::string::npos && name.ends_with(".weight");
  if (attention_weight && shape.size() > 2 &&
      std::all_of(shape.begin() + 2, shape.end(), [](int64_t d) { return d == 1; })) {
    shape.resize(2);
  }
  return shape;
}

std::string JoinFirst(const std::vector<std::string>& items, size_t limit = 5) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += " (and " + std::to_string(items.size() - limit) + " more)";
  return out;
}

}  // namespace

bool IsOriginalLayout(const SafetensorsFile& file) {
  return std::any_of(file.tensors().begin(), file.tensors().end(),
                     [](const TensorInfo& t) { return StartsWith(t.name, kOriginalUNetPrefix); });
}

Result<OriginalParts> MapOriginalLayout(const std::shared_ptr<const SafetensorsFile>& file,
                                        int64_t layers_per_block,
                                        const OriginalLayoutOptions& options) {
  const std::string& path = file->path();
  if (!IsOriginalLayout(*file)) {
    return Status::Unsupported(path + ": no tensors under \"" + std::string(kOriginalUNetPrefix) +
                               "\": not an original-layout Stable Diffusion checkpoint");
  }
  if (file->Find("cond_stage_model.model.token_embedding.weight") != nullptr) {
    return Status::Unsupported(path +
                               ": an OpenCLIP text encoder (cond_stage_model.model.*, "
                               "Stable Diffusion 2.x): only SD 1.x checkpoints are supported");
  }
  int64_t up_levels = 0;
  for (const TensorInfo& t : file->tensors()) {
    const std::string prefix = std::string(kOriginalVAEPrefix) + "decoder.up.";
    if (!StartsWith(t.name, prefix)) continue;
    if (auto level = ParseIndex(SplitFirst(t.name.substr(prefix.size()), 1)[0])) {
      up_levels = std::max(up_levels, *level + 1);
    }
  }
  const bool has_ema = std::any_of(
      file->tensors().begin(), file->tensors().end(),
      [](const TensorInfo& t) { return StartsWith(t.name, "model_ema.diffusion_model"); });
  if (options.ema && !has_ema) {
    return Status::InvalidArgument(path +
                                   ": EMA weights asked for, and the file has none (model_ema.*)");
  }

  OriginalParts parts;
  std::vector<std::string> unknown;
  int64_t ignored = 0, ema_tensors = 0;
  const auto add = [&](TensorMap& part, const std::string& name, const TensorInfo& info) {
    part.emplace(name, CheckpointTensor{file, &info, LinearShape(name, info.shape), info.name});
  };
  for (const TensorInfo& t : file->tensors()) {
    if (StartsWith(t.name, kOriginalUNetPrefix)) {
      const std::string key = t.name.substr(std::strlen(kOriginalUNetPrefix));
      std::optional<std::string> name =
          StartsWith(key, "middle_block.") ? UNetMidName(key) : UNetName(key, layers_per_block);
      if (!name) {
        unknown.push_back(t.name);
        continue;
      }
      const TensorInfo* source = &t;
      if (options.ema) {
        source = file->Find(EmaName(t.name));
        if (source == nullptr) {
          return Status::InvalidArgument(path + ": EMA weights asked for, and " + EmaName(t.name) +
                                         " (the EMA copy of " + t.name + ") is missing");
        }
      }
      add(parts.unet, *name, *source);
    } else if (StartsWith(t.name, kOriginalVAEPrefix)) {
      std::optional<std::string> name =
          VAEName(t.name.substr(std::strlen(kOriginalVAEPrefix)), up_levels);
      if (!name) {
        unknown.push_back(t.name);
        continue;
      }
      add(parts.vae, *name, t);
    } else if (StartsWith(t.name, kOriginalTextPrefix)) {
      std::string key = t.name.substr(std::strlen(kOriginalTextPrefix));
      // transformers before 4.x had no "text_model." level.
      if (!StartsWith(key, "text_model.")) key = "text_model." + key;
      add(parts.text_encoder, key, t);
    } else if (StartsWith(t.name, "model_ema.")) {
      ++ema_tensors;
    } else {
      ++ignored;
    }
  }
  if (!unknown.empty()) {
    return Status::InvalidArgument(path + ": " + std::to_string(unknown.size()) +
                                   " tensors of no known original-layout block (layers_per_block " +
                                   std::to_string(layers_per_block) + "): " + JoinFirst(unknown));
  }
  for (auto [part, what] :
       {std::pair{&parts.vae, "VAE (first_stage_model.*)"},
        std::pair{&parts.text_encoder, "text encoder (cond_stage_model.transformer.*)"}}) {
    if (part->empty())
      return Status::InvalidArgument(path + ": no " + std::string(what) + " tensors");
  }
  if (ema_tensors > 0) {
    parts.notes.push_back(options.ema
                              ? "UNet: the EMA weights (model_ema.*) are used"
                              : "ignored " + std::to_string(ema_tensors) +
                                    " EMA tensors (model_ema.*); the trained weights are used");
  }
  if (ignored > 0) {
    parts.notes.push_back(
        "ignored " + std::to_string(ignored) +
        " tensors outside the UNet, VAE and text encoder (noise-schedule buffers)");
  }
  return parts;
}

Result<InferredConfigs> InferOriginalConfigs(const SafetensorsFile& file) {
  const std::string& path = file.path();
  const auto shape_of = [&](const std::string& name) -> Result<std::vector<int64_t>> {
    const TensorInfo* t = file.Find(name);
    if (t == nullptr) {
      return Status::Unsupported(
          path + ": no tensor " + name +
          ": cannot infer the architecture (pass --config with a diffusers folder's configs)");
    }
    return t->shape;
  };
  const std::string u = kOriginalUNetPrefix;
  InferredConfigs out;

  // UNet: levels and layers from the block numbering, channels from the resnets.
  std::set<int64_t> input_blocks, output_blocks, downsamplers;
  bool linear_projection = false;
  for (const TensorInfo& t : file.tensors()) {
    if (!StartsWith(t.name, u)) continue;
    const std::vector<std::string> p = SplitFirst(t.name.substr(u.size()), 3);
    if (p.size() < 3) continue;
    const auto i = ParseIndex(p[1]);
    if (!i) continue;
    if (p[0] == "input_blocks") input_blocks.insert(*i);
    if (p[0] == "output_blocks") output_blocks.insert(*i);
    if (p[0] == "input_blocks" && p.size() == 4 && p[2] == "0" && StartsWith(p[3], "op."))
      downsamplers.insert(*i);
    if (t.name.ends_with(".proj_in.weight") && t.shape.size() == 2) linear_projection = true;
  }
  if (input_blocks.empty() || output_blocks.empty()) {
    return Status::Unsupported(path + ": no UNet input_blocks/output_blocks: not an SD 1.x UNet");
  }
  if (linear_projection) {
    return Status::Unsupported(path +
                               ": the UNet's transformers use linear projections (Stable Diffusion "
                               "2.x): only SD 1.x architectures are inferred; pass --config");
  }
  const int64_t per =
      downsamplers.empty() ? static_cast<int64_t>(input_blocks.size()) : *downsamplers.begin();
  const int64_t layers = per - 1;
  const int64_t levels = static_cast<int64_t>(downsamplers.size()) + 1;
  if (layers < 1 || static_cast<int64_t>(output_blocks.size()) != levels * per ||
      static_cast<int64_t>(input_blocks.size()) != levels * per) {
    return Status::Unsupported(path + ": the UNet's block numbering (" +
                               std::to_string(input_blocks.size()) + " input blocks, " +
                               std::to_string(output_blocks.size()) +
                               " output blocks) is not SD 1.x's (the same layers in every level)");
  }
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> conv_in, shape_of(u + "input_blocks.0.0.weight"));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> conv_out, shape_of(u + "out.2.weight"));
  std::vector<int64_t> channels;
  std::vector<std::string> down_types, up_types;
  int64_t cross_dim = 0;
  for (int64_t level = 0; level < levels; ++level) {
    const std::string block = u + "input_blocks." + std::to_string(1 + level * per);
    FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> conv2, shape_of(block + ".0.out_layers.3.weight"));
    channels.push_back(conv2[0]);
    const TensorInfo* k = file.Find(block + ".1.transformer_blocks.0.attn2.to_k.weight");
    down_types.push_back(k ? "CrossAttnDownBlock2D" : "DownBlock2D");
    if (k) cross_dim = k->shape.size() == 2 ? k->shape[1] : 0;
  }
  for (int64_t level = 0; level < levels; ++level) {
    const std::string block = u + "output_blocks." + std::to_string(level * per) + ".1.";
    up_types.push_back(file.Find(block + "transformer_blocks.0.attn2.to_k.weight")
                           ? "CrossAttnUpBlock2D"
                           : "UpBlock2D");
  }
  if (cross_dim == 0) {
    return Status::Unsupported(
        path + ": the UNet has no cross-attention (attn2.to_k): not an SD 1.x UNet");
  }
  out.unet = {{"_class_name", "UNet2DConditionModel"},
              {"act_fn", "silu"},
              {"attention_head_dim", 8},
              {"block_out_channels", channels},
              {"center_input_sample", false},
              {"cross_attention_dim", cross_dim},
              {"down_block_types", down_types},
              {"downsample_padding", 1},
              {"flip_sin_to_cos", true},
              {"freq_shift", 0},
              {"in_channels", conv_in[1]},
              {"layers_per_block", layers},
              {"mid_block_scale_factor", 1},
              {"mid_block_type", "UNetMidBlock2DCrossAttn"},
              {"norm_eps", 1e-5},
              {"norm_num_groups", 32},
              {"out_channels", conv_out[0]},
              {"sample_size", 64},
              {"up_block_types", up_types},
              {"use_linear_projection", false}};
  std::string channel_list;
  for (int64_t c : channels) channel_list += (channel_list.empty() ? "" : ",") + std::to_string(c);
  out.notes.push_back("unet: in_channels " + std::to_string(conv_in[1]) +
                      (conv_in[1] == 8   ? " (InstructPix2Pix)"
                       : conv_in[1] == 9 ? " (inpainting)"
                                         : "") +
                      ", block_out_channels " + channel_list + ", layers_per_block " +
                      std::to_string(layers) + ", cross_attention_dim " +
                      std::to_string(cross_dim) +
                      "; SD 1.x's 8 attention heads and 32 norm groups assumed");

  // VAE.
  const std::string v = kOriginalVAEPrefix;
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> vae_in, shape_of(v + "encoder.conv_in.weight"));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> vae_out, shape_of(v + "decoder.conv_out.weight"));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> post_quant, shape_of(v + "post_quant_conv.weight"));
  std::vector<int64_t> vae_channels;
  int64_t vae_layers = 0;
  for (int64_t level = 0;; ++level) {
    const std::string block = v + "encoder.down." + std::to_string(level) + ".block.";
    const TensorInfo* conv2 = file.Find(block + "0.conv2.weight");
    if (conv2 == nullptr) break;
    vae_channels.push_back(conv2->shape[0]);
    int64_t n = 0;
    while (file.Find(block + std::to_string(n) + ".conv2.weight") != nullptr) ++n;
    if (level == 0) vae_layers = n;
  }
  if (vae_channels.empty()) {
    return Status::Unsupported(path + ": no " + v +
                               "encoder.down.0.block.0.conv2.weight: cannot infer the VAE");
  }
  out.vae = {
      {"_class_name", "AutoencoderKL"},
      {"act_fn", "silu"},
      {"block_out_channels", vae_channels},
      {"down_block_types", std::vector<std::string>(vae_channels.size(), "DownEncoderBlock2D")},
      {"in_channels", vae_in[1]},
      {"latent_channels", post_quant[1]},
      {"layers_per_block", vae_layers},
      {"norm_num_groups", 32},
      {"out_channels", vae_out[0]},
      {"sample_size", 512},
      {"scaling_factor", 0.18215},
      {"up_block_types", std::vector<std::string>(vae_channels.size(), "UpDecoderBlock2D")}};
  out.notes.push_back("vae: " + std::to_string(vae_channels.size()) + " levels, latent_channels " +
                      std::to_string(post_quant[1]) +
                      "; SD 1.x's scaling_factor 0.18215 and 32 norm groups assumed");

  // CLIP text encoder (64-wide heads, as CLIP ViT-L/14's 12 x 64).
  std::string t = kOriginalTextPrefix;
  if (file.Find(t + "text_model.embeddings.token_embedding.weight") != nullptr) t += "text_model.";
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> tokens,
                         shape_of(t + "embeddings.token_embedding.weight"));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> positions,
                         shape_of(t + "embeddings.position_embedding.weight"));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> fc1, shape_of(t + "encoder.layers.0.mlp.fc1.weight"));
  int64_t text_layers = 0;
  while (file.Find(t + "encoder.layers." + std::to_string(text_layers) + ".mlp.fc1.weight") !=
         nullptr) {
    ++text_layers;
  }
  const int64_t hidden = tokens[1];
  if (hidden % 64 != 0) {
    return Status::Unsupported(path + ": text encoder width " + std::to_string(hidden) +
                               " is not a multiple of CLIP's 64-wide heads; pass --config");
  }
  out.text_encoder = {{"architectures", {"CLIPTextModel"}},
                      {"attention_dropout", 0.0},
                      {"bos_token_id", 0},  // as openai/clip-vit-large-patch14's config (legacy ids:
                      {"eos_token_id", 2},  // the pooled output, which InstructPix2Pix does not use)
                      {"hidden_act", "quick_gelu"},
                      {"hidden_size", hidden},
                      {"intermediate_size", fc1[0]},
                      {"layer_norm_eps", 1e-5},
                      {"max_position_embeddings", positions[0]},
                      {"model_type", "clip_text_model"},
                      {"num_attention_heads", hidden / 64},
                      {"num_hidden_layers", text_layers},
                      {"pad_token_id", 1},
                      {"projection_dim", hidden},
                      {"vocab_size", tokens[0]}};
  out.notes.push_back("text_encoder: CLIP, " + std::to_string(text_layers) + " layers of width " +
                      std::to_string(hidden) + ", " + std::to_string(hidden / 64) +
                      " heads, quick_gelu");

  out.scheduler = {{"_class_name", "EulerAncestralDiscreteScheduler"},
                   {"beta_end", 0.012},
                   {"beta_schedule", "scaled_linear"},
                   {"beta_start", 0.00085},
                   {"num_train_timesteps", 1000},
                   {"prediction_type", "epsilon"},
                   {"steps_offset", 1},
                   {"timestep_spacing", "linspace"},
                   {"trained_betas", nullptr}};
  out.notes.push_back(
      "scheduler: InstructPix2Pix's (Euler ancestral, scaled_linear betas 0.00085..0.012)");
  return out;
}

}  // namespace fairy::engine
