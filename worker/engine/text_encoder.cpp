#include "worker/engine/text_encoder.h"

#include <cmath>
#include <limits>

#include "worker/engine/model_config.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace clip {

// One pre-LayerNorm transformer layer: x += attn(ln1(x)); x += mlp(ln2(x)).
class EncoderLayerImpl : public nn::Module {
 public:
  explicit EncoderLayerImpl(const CLIPTextConfig& c)
      : heads_(c.num_attention_heads), exact_gelu_(c.hidden_act == "gelu") {
    const int64_t d = c.hidden_size;
    auto attn = register_module("self_attn", std::make_shared<nn::Module>());
    q_proj_ = attn->register_module("q_proj", nn::Linear(d, d));
    k_proj_ = attn->register_module("k_proj", nn::Linear(d, d));
    v_proj_ = attn->register_module("v_proj", nn::Linear(d, d));
    out_proj_ = attn->register_module("out_proj", nn::Linear(d, d));
    layer_norm1_ = register_module("layer_norm1",
                                   nn::LayerNorm(nn::LayerNormOptions({d}).eps(c.layer_norm_eps)));
    auto mlp = register_module("mlp", std::make_shared<nn::Module>());
    fc1_ = mlp->register_module("fc1", nn::Linear(d, c.intermediate_size));
    fc2_ = mlp->register_module("fc2", nn::Linear(c.intermediate_size, d));
    layer_norm2_ = register_module("layer_norm2",
                                   nn::LayerNorm(nn::LayerNormOptions({d}).eps(c.layer_norm_eps)));
  }

  // x [B, T, C]; causal [T, T] bool, true above the diagonal (masked), unused on LibTorch >= 2.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal) {
    const int64_t b = x.size(0), t = x.size(1), c = x.size(2), hd = c / heads_;
    auto h = layer_norm1_(x);
    // [B, T, C] -> [B, H, T, d]
    auto split = [&](const torch::Tensor& y) { return y.view({b, t, heads_, hd}).transpose(1, 2); };
    torch::Tensor o;
#if TORCH_VERSION_MAJOR >= 2
    (void)causal;
    o = at::scaled_dot_product_attention(split(q_proj_(h)), split(k_proj_(h)), split(v_proj_(h)),
                                         c10::nullopt, 0.0,
                                         /*is_causal=*/true);
#else
    // transformers scales q before q k^T; masked scores get -inf (finfo.min upstream: same
    // softmax). matmul, never baddbmm with beta = 0 (LibTorch 1.13 bug, golden/README.md).
    auto q = split(q_proj_(h) * (1.0 / std::sqrt(static_cast<double>(hd))));
    auto scores = torch::matmul(q, split(k_proj_(h)).transpose(-1, -2));  // [B, H, T, T]
    scores.masked_fill_(causal, -std::numeric_limits<double>::infinity());
    const bool upcast = scores.device().is_cpu() && (scores.scalar_type() == torch::kHalf ||
                                                     scores.scalar_type() == torch::kBFloat16);
    auto probs = upcast ? torch::softmax(scores, -1, torch::kFloat32).to(scores.scalar_type())
                        : scores.softmax(-1);
    o = torch::matmul(probs, split(v_proj_(h)));  // [B, H, T, d]
#endif
    auto r = x + out_proj_(o.transpose(1, 2).reshape({b, t, c}));  // [B, H, T, d] -> [B, T, C]
    auto m = fc1_(layer_norm2_(r));                                // [B, T, I]
    m = exact_gelu_ ? F::gelu(m) : m * torch::sigmoid(1.702 * m);
    return r + fc2_(m);
  }

 private:
  int64_t heads_;
  bool exact_gelu_;
  nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr},
      fc1_{nullptr}, fc2_{nullptr};
  nn::LayerNorm layer_norm1_{nullptr}, layer_norm2_{nullptr};
};

}  // namespace clip

// ---------------------------------------------------------------------------------------------
Result<CLIPTextConfig> CLIPTextConfig::FromJson(const nlohmann::json& json,
                                                const std::string& source) {
  if (!json.is_object()) return Status::InvalidArgument(source + ": expected a JSON object");
  ConfigReader r(json, source);
  CLIPTextConfig c;
  c.vocab_size = r.Int("vocab_size", c.vocab_size);
  c.hidden_size = r.Int("hidden_size");
  c.intermediate_size = r.Int("intermediate_size");
  c.num_attention_heads = r.Int("num_attention_heads");
  c.num_hidden_layers = r.Int("num_hidden_layers");
  c.max_position_embeddings = r.Int("max_position_embeddings", c.max_position_embeddings);
  c.layer_norm_eps = r.Float("layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = r.String("hidden_act", c.hidden_act);
  c.projection_dim = r.Int("projection_dim", c.hidden_size);
  c.bos_token_id = r.Int("bos_token_id", c.bos_token_id);
  c.eos_token_id = r.Int("eos_token_id", c.eos_token_id);
  c.pad_token_id = r.Int("pad_token_id", c.pad_token_id);
  FAIRY_RETURN_IF_ERROR(r.status());
  r.ExpectOneOf("hidden_act", c.hidden_act, {"quick_gelu", "gelu"});
  if (r.Has("model_type")) r.ExpectOneOf("model_type", r.String("model_type"), {"clip_text_model"});
  FAIRY_RETURN_IF_ERROR(r.status());
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_attention_heads",
                          "num_hidden_layers", "max_position_embeddings"}) {
    if (r.Has(key) && r.json()[key].get<int64_t>() <= 0) return r.Invalid(key, "must be positive");
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return r.Invalid("hidden_size", std::to_string(c.hidden_size) +
                                        " is not a multiple of num_attention_heads " +
                                        std::to_string(c.num_attention_heads));
  }
  if (c.layer_norm_eps <= 0) return r.Invalid("layer_norm_eps", "must be positive");
  return c;
}

Result<CLIPTextConfig> CLIPTextConfig::Load(const std::string& config_json_path) {
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(config_json_path));
  return FromJson(json, config_json_path);
}

nlohmann::json CLIPTextConfig::ToJson() const {
  return nlohmann::json{{"architectures", {"CLIPTextModel"}},
                        {"attention_dropout", 0.0},
                        {"bos_token_id", bos_token_id},
                        {"eos_token_id", eos_token_id},
                        {"hidden_act", hidden_act},
                        {"hidden_size", hidden_size},
                        {"initializer_factor", 1.0},
                        {"initializer_range", 0.02},
                        {"intermediate_size", intermediate_size},
                        {"layer_norm_eps", layer_norm_eps},
                        {"max_position_embeddings", max_position_embeddings},
                        {"model_type", "clip_text_model"},
                        {"num_attention_heads", num_attention_heads},
                        {"num_hidden_layers", num_hidden_layers},
                        {"pad_token_id", pad_token_id},
                        {"projection_dim", projection_dim},
                        {"torch_dtype", "float32"},
                        {"vocab_size", vocab_size}};
}

// ---------------------------------------------------------------------------------------------
CLIPTextModelImpl::CLIPTextModelImpl(const CLIPTextConfig& config) : config_(config) {
  auto text_model = register_module("text_model", std::make_shared<nn::Module>());
  auto embeddings = text_model->register_module("embeddings", std::make_shared<nn::Module>());
  token_embedding_ = embeddings->register_module(
      "token_embedding", nn::Embedding(config.vocab_size, config.hidden_size));
  position_embedding_ = embeddings->register_module(
      "position_embedding", nn::Embedding(config.max_position_embeddings, config.hidden_size));
  {
    torch::NoGradGuard no_grad;
    token_embedding_->weight.normal_(0, 0.02);
    position_embedding_->weight.normal_(0, 0.01);
  }
  auto encoder = text_model->register_module("encoder", std::make_shared<nn::Module>());
  auto layers = encoder->register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    auto layer = std::make_shared<clip::EncoderLayerImpl>(config);
    layers->push_back(layer);
    layers_.push_back(layer);
  }
  final_layer_norm_ = text_model->register_module(
      "final_layer_norm",
      nn::LayerNorm(nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
}

torch::Tensor CLIPTextModelImpl::Embed(const torch::Tensor& input_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "text encoder: input_ids must be [B, T], got ",
              input_ids.sizes());
  const int64_t t = input_ids.size(1);
  TORCH_CHECK(t >= 1 && t <= config_.max_position_embeddings, "text encoder: ", t,
              " tokens, the model has max_position_embeddings ", config_.max_position_embeddings);
  auto ids = input_ids.to(token_embedding_->weight.device(), torch::kInt64);
  auto positions =
      torch::arange(t, torch::TensorOptions().dtype(torch::kInt64).device(ids.device()));
  return token_embedding_(ids) + position_embedding_(positions).unsqueeze(0);  // [B, T, C]
}

torch::Tensor CLIPTextModelImpl::forward(const torch::Tensor& input_ids) {
  auto h = Embed(input_ids);
  const int64_t t = h.size(1);
  auto causal =
      torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(h.device())).triu(1);
  for (auto& layer : layers_) h = layer->forward(h, causal);
  return final_layer_norm_(h);
}

TextEncoderOutput CLIPTextModelImpl::Forward(const torch::Tensor& input_ids,
                                             bool keep_hidden_states) {
  TextEncoderOutput out;
  auto h = Embed(input_ids);
  const int64_t b = h.size(0), t = h.size(1);
  auto causal =
      torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(h.device())).triu(1);
  if (keep_hidden_states) out.hidden_states.push_back(h);
  for (auto& layer : layers_) {
    h = layer->forward(h, causal);
    if (keep_hidden_states) out.hidden_states.push_back(h);
  }
  out.last_hidden_state = final_layer_norm_(h);  // [B, T, C]
  auto ids = input_ids.to(h.device(), torch::kInt64);
  // argmax returns the first maximal index: the first EOS, or (legacy eos 2) the largest id.
  auto pooled_at = config_.eos_token_id == 2
                       ? ids.argmax(-1)
                       : (ids == config_.eos_token_id).to(torch::kInt32).argmax(-1);
  auto rows = torch::arange(b, torch::TensorOptions().dtype(torch::kInt64).device(h.device()));
  out.pooler_output = out.last_hidden_state.index({rows, pooled_at});  // [B, C]
  return out;
}

Result<CLIPTextModel> LoadCLIPTextModel(const std::string& text_encoder_dir,
                                        const torch::Device& device, torch::ScalarType dtype) {
  FAIRY_ASSIGN_OR_RETURN(CLIPTextConfig config,
                         CLIPTextConfig::Load(text_encoder_dir + "/config.json"));
  FAIRY_ASSIGN_OR_RETURN(TensorMap tensors, ReadPartFolder(text_encoder_dir));
  return LoadCLIPTextModel(config, tensors, "text_encoder (" + text_encoder_dir + ")", device, dtype);
}

Result<CLIPTextModel> LoadCLIPTextModel(const CLIPTextConfig& config, const TensorMap& tensors,
                                        const std::string& what, const torch::Device& device,
                                        torch::ScalarType dtype, LoadWeightsOptions options) {
  CLIPTextModel model(config);
  model->to(dtype);
  options.ignore_unexpected_suffixes.push_back("embeddings.position_ids");
  FAIRY_RETURN_IF_ERROR(LoadWeights(*model, tensors, what, options));
  model->to(device);
  model->eval();
  return model;
}

}  // namespace fairy::engine
