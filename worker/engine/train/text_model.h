// CLIPTextModel (transformers) as a trainable module, and a CLIP BPE tokenizer for plain ASCII
// instructions, for fairy-engine train. Same architecture and state_dict names as the engine's
// text encoder ("text_model.embeddings.token_embedding.weight", ...), so what it saves the engine
// loads. Checked against ../shared/fixtures/pix2pix-tiny/golden (tests/unit/train_models_test).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace fairy::engine::train {

struct CLIPTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 32;
  int64_t intermediate_size = 37;
  int64_t num_attention_heads = 4;
  int64_t num_hidden_layers = 2;
  int64_t max_position_embeddings = 77;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // or "gelu"
  int64_t projection_dim = 32;

  static Result<CLIPTextConfig> FromJson(const nlohmann::json& json, const std::string& source);
  nlohmann::json ToJson() const;  // a transformers text_encoder/config.json
};

class TrainCLIPTextImpl : public torch::nn::Module {
 public:
  explicit TrainCLIPTextImpl(const CLIPTextConfig& config);
  // input_ids [B, 77] int64 -> last_hidden_state [B, 77, hidden] (causal mask, no padding mask).
  torch::Tensor forward(const torch::Tensor& input_ids);
  const CLIPTextConfig& config() const { return config_; }

 private:
  CLIPTextConfig config_;
  std::shared_ptr<torch::nn::Module> text_model_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  std::vector<std::shared_ptr<torch::nn::Module>> layers_;
  torch::nn::LayerNorm final_norm_{nullptr};
};
TORCH_MODULE(TrainCLIPText);

// CLIP's byte-level BPE over tokenizer/vocab.json + merges.txt, restricted to printable ASCII text
// (what the training instructions are): lower-cased, whitespace collapsed, the CLIP pre-tokenisation
// pattern, BOS + ids + EOS, truncated and padded with EOS (49407) to 77. Non-ASCII text is refused.
class InstructionTokenizer {
 public:
  static Result<InstructionTokenizer> Load(const std::string& tokenizer_dir);
  Result<std::vector<int64_t>> Encode(const std::string& text, int64_t max_length = 77) const;
  // [B, 77] int64 for a batch.
  Result<torch::Tensor> EncodeBatch(const std::vector<std::string>& texts) const;

 private:
  std::vector<std::string> Bpe(const std::string& word) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::map<std::pair<std::string, std::string>, int64_t> ranks_;
  int64_t bos_ = 49406, eos_ = 49407;
};

}  // namespace fairy::engine::train
