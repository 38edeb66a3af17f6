// A CLIP BPE tokenizer for plain ASCII instructions, for fairy-engine train (the text encoder
// itself is the engine's CLIPTextModel, worker/engine/text_encoder.h). Checked against
// ../shared/fixtures/pix2pix-tiny/golden (tests/unit/train_models_test).
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
