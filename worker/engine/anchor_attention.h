// Fairy's anchor-based cross-frame attention (DESIGN.md section 1, golden/README.md "Fairy
// anchor-based cross-frame attention") and the AnchorCache that carries a shot's anchor tokens from
// the anchor pass to every frame pass.
//
// In every UNet self-attention layer (attn1) the mode of the current forward call decides what the
// queries attend to:
//   kPlain   each sample attends to its own tokens (the unmodified UNet);
//   kAnchor  the batch holds the K anchors of each guidance branch; every anchor's queries attend to
//            the concatenation of all K anchors' tokens of the same branch (anchor order), and those
//            tokens (the norm1 output that reaches attn1) are stored in the cache under
//            (layer, step);
//   kFrame   each frame's queries attend to [its own tokens ; the cached anchor tokens of its branch,
//            same layer and step].
// Given the cache, every frame is independent of every other frame.
//
// Batch layout (kAnchor and kFrame): branch-major. With G guidance branches and a batch of B rows,
// rows [g*B/G, (g+1)*B/G) belong to branch g (the pipeline's [text+image, image, uncond] order).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::engine {

enum class SelfAttentionMode { kPlain, kAnchor, kFrame };

// The anchor tokens of one shot: for every (self-attention layer, denoising step) one tensor
// [G, K, N, C] (G guidance branches, K anchors in anchor order, N tokens row-major over the layer's
// h x w, C channels). Holds its tensors on the device they were produced on (or the one given to
// Deserialize). Not thread-safe; one cache serves one task at a time, read-only during frame passes.
class AnchorCache {
 public:
  AnchorCache() = default;
  // `layer_names`: the UNet's self-attention layers in its forward order (UNet::SelfAttentionLayers).
  // fp16_storage: keep the tokens as float16 (half the bytes; frames see them rounded to fp16).
  AnchorCache(std::vector<std::string> layer_names, int num_steps, bool fp16_storage);

  const std::vector<std::string>& layer_names() const { return layer_names_; }
  int num_steps() const { return num_steps_; }
  bool fp16_storage() const { return fp16_storage_; }
  int64_t num_branches() const { return branches_; }  // 0 until the first Put
  int64_t num_anchors() const { return anchors_; }    // 0 until the first Put
  // Free-form descriptive entries (model id, resolution, ...), serialised with the tensors.
  std::map<std::string, std::string>& metadata() { return metadata_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Stores `tokens` [G, K, N, C] for (layer, step) (detached, converted to the storage dtype).
  // Fails on an out-of-range layer/step, or a G or K that differs from earlier entries.
  Status Put(int layer, int step, const torch::Tensor& tokens);
  // The tensor of (layer, step); FailedPrecondition naming the layer and step when absent.
  Result<torch::Tensor> Get(int layer, int step) const;
  // True when every (layer, step) is present.
  bool Complete() const;
  // Fails unless this cache was made for exactly these layers and at least `num_steps` steps, and
  // is complete: a frame pass checks this before its first step.
  Status CheckUsableFor(const std::vector<std::string>& layer_names, int num_steps) const;

  // Bytes of tensor data held (what Serialize adds beyond its small header).
  int64_t ByteSize() const;

  // The cache as a safetensors-format byte string: tensors named "step<s>/<layer name>", metadata
  // {"format": "fairy-anchor-cache", "version": "1", "steps", "layers" (JSON list), ...}.
  std::vector<uint8_t> Serialize() const;
  // Parses and validates bytes from Serialize (header against size, every tensor present and
  // consistently shaped); the tensors are copied onto `device`.
  static Result<AnchorCache> Deserialize(std::span<const uint8_t> bytes,
                                         const torch::Device& device = torch::kCPU);

 private:
  size_t Index(int layer, int step) const { return static_cast<size_t>(step) * layer_names_.size() + layer; }

  std::vector<std::string> layer_names_;
  int num_steps_ = 0;
  bool fp16_storage_ = false;
  int64_t branches_ = 0;
  int64_t anchors_ = 0;
  std::vector<torch::Tensor> entries_;  // [step][layer], undefined until Put
  std::map<std::string, std::string> metadata_;
};

// What the self-attention layers do during one UNet forward call. A null context means kPlain.
struct SelfAttentionContext {
  SelfAttentionMode mode = SelfAttentionMode::kPlain;
  AnchorCache* cache = nullptr;  // kAnchor: filled; kFrame: read. REQUIRES non-null in those modes
  int step = 0;                  // denoising step index, the cache key
  int64_t branches = 1;          // G; the batch must be a multiple of it
};

// softmax(q k^T / sqrt(d)) v per head. q [B, Nq, H*d], k and v [B, Nk, H*d] -> [B, Nq, H*d].
// Uses scaled_dot_product_attention on LibTorch >= 2, otherwise matmul then scale (never baddbmm
// with beta = 0, see golden/README.md), softmax in float32 for half types, chunked over queries
// so the score matrix stays bounded. Deterministic for equal shapes.
torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 int64_t heads);

// The q/k/v projections of one self-attention layer.
struct SelfAttentionProjections {
  torch::nn::Linear to_q;
  torch::nn::Linear to_k;
  torch::nn::Linear to_v;
  int64_t heads;
};

// attn1 in kAnchor or kFrame mode for layer `layer` (index into the cache's layer list), before
// to_out: x [B, N, C] (norm1 output) -> [B, N, C]. Throws c10::Error on a shape that does not fit
// the context (batch not a multiple of G, cache of another geometry); the UNet reports it.
torch::Tensor FairySelfAttention(const torch::Tensor& x, const SelfAttentionContext& ctx, int layer,
                                 SelfAttentionProjections proj);

}  // namespace fairy::engine
