// CLIPTextModel (transformers 4.3x) as the engine's text encoder, the same module for inference
// and for fairy-engine train.
//
// Modules are registered under the checkpoint's names ("text_model.embeddings.token_embedding
// .weight", "text_model.encoder.layers.0.self_attn.q_proj.weight", ...), so a diffusers
// text_encoder/ folder loads by name and what training saves the engine reads back.
//
// Supported configurations: pre-LayerNorm CLIP text transformer, hidden_act quick_gelu or gelu
// (exact erf), causal mask only (no padding mask: the pipelines pass none). Anything else is
// refused by CLIPTextConfig::FromJson naming the file and the key.
//
// Thread-safety: immutable after loading; concurrent forward calls are safe.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/weights.h"

namespace fairy::engine {

namespace clip {
class EncoderLayerImpl;
}  // namespace clip

struct CLIPTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;             // required in config.json
  int64_t intermediate_size = 2048;      // required in config.json
  int64_t num_attention_heads = 8;       // required in config.json
  int64_t num_hidden_layers = 12;        // required in config.json
  int64_t max_position_embeddings = 77;  // positions; input_ids may not be longer
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // "quick_gelu" (x * sigmoid(1.702 x)) or "gelu" (erf)
  int64_t projection_dim = 512;           // unused by the text model; kept for ToJson
  int64_t bos_token_id = 49406;
  // The pooled position: the first id equal to eos_token_id; a legacy config with 2 means the
  // position of the largest id (what transformers does for such configs).
  int64_t eos_token_id = 49407;
  int64_t pad_token_id = 1;

  // `source` names the file in errors: `text_encoder/config.json: "hidden_act": ...`.
  static Result<CLIPTextConfig> FromJson(const nlohmann::json& json, const std::string& source);
  static Result<CLIPTextConfig> Load(const std::string& config_json_path);
  nlohmann::json ToJson() const;  // a transformers text_encoder/config.json
};

struct TextEncoderOutput {
  torch::Tensor last_hidden_state;           // [B, T, C] final_layer_norm(h_L)
  torch::Tensor pooler_output;               // [B, C]
  std::vector<torch::Tensor> hidden_states;  // keep_hidden_states: L+1 of [B, T, C]; 0 = embeddings
};

class CLIPTextModelImpl : public torch::nn::Module {
 public:
  // Random initialisation as transformers does for the embeddings (N(0, 0.02) tokens, N(0, 0.01)
  // positions; LibTorch's default elsewhere), drawn from torch's global generator.
  explicit CLIPTextModelImpl(const CLIPTextConfig& config);

  // input_ids [B, T] int64 (T <= max_position_embeddings) -> last_hidden_state [B, T, C].
  // Differentiable (used by training). Throws c10::Error on bad shapes.
  torch::Tensor forward(const torch::Tensor& input_ids);
  // The full output; hidden_states is filled only when `keep_hidden_states`.
  TextEncoderOutput Forward(const torch::Tensor& input_ids, bool keep_hidden_states = false);

  const CLIPTextConfig& config() const { return config_; }

 private:
  torch::Tensor Embed(const torch::Tensor& input_ids);  // [B, T] -> [B, T, C]

  CLIPTextConfig config_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  std::vector<std::shared_ptr<clip::EncoderLayerImpl>> layers_;
  torch::nn::LayerNorm final_layer_norm_{nullptr};
};
TORCH_MODULE(CLIPTextModel);

// Loads text_encoder/config.json and the weights (model.safetensors, or sharded) of a
// transformers text encoder folder onto `device` in `dtype`, eval mode. A "position_ids" buffer
// in the checkpoint (older transformers) is ignored. Errors name the folder, file, key or tensor.
Result<CLIPTextModel> LoadCLIPTextModel(const std::string& text_encoder_dir,
                                        const torch::Device& device, torch::ScalarType dtype);
// A CLIPTextModel of `config` with `tensors` loaded (LoadWeights, "position_ids" ignored; `what`
// starts its errors).
Result<CLIPTextModel> LoadCLIPTextModel(const CLIPTextConfig& config, const TensorMap& tensors,
                                        const std::string& what, const torch::Device& device,
                                        torch::ScalarType dtype, LoadWeightsOptions options = {});

}  // namespace fairy::engine
