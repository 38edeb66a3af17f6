#include "worker/engine/anchor_attention.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

constexpr char kFormat[] = "fairy-anchor-cache";
constexpr char kVersion[] = "1";
// Upper bound of one attention score block (bytes) on the matmul path; larger problems are split
// along the queries (the split depends only on the shapes, so results stay deterministic).
constexpr int64_t kMaxScoreBytes = int64_t{32} << 20;

std::string EntryName(const std::string& layer, int step) { return "step" + std::to_string(step) + "/" + layer; }

#if TORCH_VERSION_MAJOR < 2
// softmax(q k^T * scale) v on [B, H, Nq, d] x [B, H, Nk, d].
torch::Tensor AttentionCore(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  auto scores = torch::matmul(q, k.transpose(-1, -2));  // [B, H, Nq, Nk]
  scores.mul_(scale);
  torch::Tensor probs;
  if (scores.scalar_type() == torch::kHalf || scores.scalar_type() == torch::kBFloat16) {
    probs = torch::softmax(scores, -1, torch::kFloat32).to(v.scalar_type());
  } else {
    probs = torch::softmax(scores, -1);
  }
  scores = torch::Tensor();
  return torch::matmul(probs, v);  // [B, H, Nq, d]
}
#endif

}  // namespace

torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 int64_t heads) {
  const int64_t b = q.size(0), nq = q.size(1), c = q.size(2), nk = k.size(1);
  const int64_t d = c / heads;
  TORCH_CHECK(d * heads == c, "attention: ", c, " channels do not split into ", heads, " heads");
  // [B, N, H*d] -> [B, H, N, d]
  auto split = [&](const torch::Tensor& t, int64_t n) { return t.reshape({b, n, heads, d}).transpose(1, 2); };
  auto qh = split(q, nq), kh = split(k, nk), vh = split(v, nk);
  torch::Tensor out;
#if TORCH_VERSION_MAJOR >= 2
  out = at::scaled_dot_product_attention(qh, kh, vh);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int64_t row_bytes = b * heads * nk * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::max<int64_t>(1, kMaxScoreBytes / std::max<int64_t>(row_bytes, 1));
  if (chunk >= nq) {
    out = AttentionCore(qh, kh, vh, scale);
  } else {
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < nq; start += chunk) {
      parts.push_back(AttentionCore(qh.narrow(2, start, std::min(chunk, nq - start)), kh, vh, scale));
    }
    out = torch::cat(parts, 2);
  }
#endif
  return out.transpose(1, 2).reshape({b, nq, c});  // [B, H, Nq, d] -> [B, Nq, H*d]
}

torch::Tensor FairySelfAttention(const torch::Tensor& x, const SelfAttentionContext& ctx, int layer,
                                 SelfAttentionProjections proj) {
  TORCH_CHECK(ctx.cache != nullptr, "anchor attention: no anchor cache");
  TORCH_CHECK(layer >= 0, "anchor attention: layer index not assigned");
  const int64_t b = x.size(0), n = x.size(1), c = x.size(2), g = ctx.branches;
  TORCH_CHECK(g >= 1 && b % g == 0, "anchor attention: batch ", b, " is not a multiple of ", g, " branches");
  const int64_t per_branch = b / g;
  if (ctx.mode == SelfAttentionMode::kAnchor) {
    Status stored = ctx.cache->Put(layer, ctx.step, x.reshape({g, per_branch, n, c}));
    TORCH_CHECK(stored.ok(), stored.ToString());
    // Each branch's K anchors form one sequence of K*N tokens: every anchor attends to all of them.
    auto a = x.reshape({g, per_branch * n, c});  // [B, N, C] -> [G, K*N, C]
    auto out = MultiHeadAttention(proj.to_q(a), proj.to_k(a), proj.to_v(a), proj.heads);
    return out.reshape({b, n, c});
  }
  TORCH_CHECK(ctx.mode == SelfAttentionMode::kFrame, "anchor attention: plain mode reached the Fairy path");
  Result<torch::Tensor> cached = ctx.cache->Get(layer, ctx.step);
  TORCH_CHECK(cached.ok(), cached.status().ToString());
  const torch::Tensor& anchors = cached.value();  // [G, K, Na, C]
  TORCH_CHECK(anchors.size(0) == g && anchors.size(3) == c, "anchor attention: layer ",
              ctx.cache->layer_names()[layer], " step ", ctx.step, ": cached anchors ", ShapeString(anchors.sizes()),
              " do not fit ", g, " branches of ", c, " channels");
  const int64_t kn = anchors.size(1) * anchors.size(2);
  auto a = anchors.to(x.device(), x.scalar_type()).reshape({g, kn, c});
  // The anchors' keys and values once per branch, shared by every frame of the branch.
  auto expand = [&](const torch::Tensor& t) {  // [G, KN, C] -> [B, KN, C]
    return t.unsqueeze(1).expand({g, per_branch, kn, c}).reshape({b, kn, c});
  };
  auto k = torch::cat({proj.to_k(x), expand(proj.to_k(a))}, 1);  // [B, N + KN, C]
  auto v = torch::cat({proj.to_v(x), expand(proj.to_v(a))}, 1);
  return MultiHeadAttention(proj.to_q(x), k, v, proj.heads);
}

// ---------------------------------------------------------------------------------------------
AnchorCache::AnchorCache(std::vector<std::string> layer_names, int num_steps, bool fp16_storage)
    : layer_names_(std::move(layer_names)),
      num_steps_(num_steps),
      fp16_storage_(fp16_storage),
      entries_(layer_names_.size() * static_cast<size_t>(std::max(num_steps, 0))) {}

Status AnchorCache::Put(int layer, int step, const torch::Tensor& tokens) {
  if (layer < 0 || static_cast<size_t>(layer) >= layer_names_.size() || step < 0 || step >= num_steps_) {
    return Status::InvalidArgument("anchor cache: (layer " + std::to_string(layer) + ", step " +
                                   std::to_string(step) + ") is outside " + std::to_string(layer_names_.size()) +
                                   " layers x " + std::to_string(num_steps_) + " steps");
  }
  if (tokens.dim() != 4) {
    return Status::InvalidArgument("anchor cache: tokens must be [G, K, N, C], got " + ShapeString(tokens.sizes()));
  }
  if (branches_ != 0 && (tokens.size(0) != branches_ || tokens.size(1) != anchors_)) {
    return Status::InvalidArgument("anchor cache: layer " + layer_names_[layer] + " step " + std::to_string(step) +
                                   ": " + ShapeString(tokens.sizes()) + " disagrees with " +
                                   std::to_string(branches_) + " branches x " + std::to_string(anchors_) +
                                   " anchors of earlier entries");
  }
  branches_ = tokens.size(0);
  anchors_ = tokens.size(1);
  auto stored = tokens.detach().to(fp16_storage_ ? torch::kHalf : torch::kFloat32).contiguous();
  if (stored.data_ptr() == tokens.data_ptr()) stored = stored.clone();
  entries_[Index(layer, step)] = std::move(stored);
  return Status::OK();
}

Result<torch::Tensor> AnchorCache::Get(int layer, int step) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layer_names_.size() || step < 0 || step >= num_steps_ ||
      !entries_[Index(layer, step)].defined()) {
    std::string name = layer >= 0 && static_cast<size_t>(layer) < layer_names_.size() ? layer_names_[layer]
                                                                                      : std::to_string(layer);
    return Status::FailedPrecondition("anchor cache has no tokens for layer " + name + " step " +
                                      std::to_string(step) + " (was the anchor pass run for every step?)");
  }
  return entries_[Index(layer, step)];
}

bool AnchorCache::Complete() const {
  if (entries_.empty()) return false;
  for (const auto& e : entries_) {
    if (!e.defined()) return false;
  }
  return true;
}

Status AnchorCache::CheckUsableFor(const std::vector<std::string>& layer_names, int num_steps) const {
  if (layer_names != layer_names_) {
    return Status::InvalidArgument("anchor cache: made for a UNet with " + std::to_string(layer_names_.size()) +
                                   " self-attention layers that differ from this one's " +
                                   std::to_string(layer_names.size()));
  }
  if (num_steps_ < num_steps) {
    return Status::InvalidArgument("anchor cache: holds " + std::to_string(num_steps_) + " steps, " +
                                   std::to_string(num_steps) + " needed");
  }
  if (!Complete()) return Status::FailedPrecondition("anchor cache: incomplete (the anchor pass did not finish)");
  return Status::OK();
}

int64_t AnchorCache::ByteSize() const {
  int64_t total = 0;
  for (const auto& e : entries_) {
    if (e.defined()) total += e.numel() * static_cast<int64_t>(e.element_size());
  }
  return total;
}

std::vector<uint8_t> AnchorCache::Serialize() const {
  nlohmann::json header = nlohmann::json::object();
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : metadata_) meta[k] = v;
  meta["format"] = kFormat;
  meta["version"] = kVersion;
  meta["steps"] = std::to_string(num_steps_);
  meta["layers"] = nlohmann::json(layer_names_).dump();
  header["__metadata__"] = meta;
  std::vector<torch::Tensor> cpu;
  uint64_t offset = 0;
  for (int s = 0; s < num_steps_; ++s) {
    for (size_t l = 0; l < layer_names_.size(); ++l) {
      const auto& e = entries_[Index(static_cast<int>(l), s)];
      if (!e.defined()) continue;
      cpu.push_back(e.to(torch::kCPU).contiguous());
      const uint64_t bytes = static_cast<uint64_t>(e.numel()) * e.element_size();
      header[EntryName(layer_names_[l], s)] = {{"dtype", fp16_storage_ ? "F16" : "F32"},
                                                {"shape", e.sizes().vec()},
                                                {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
    }
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* data = out.data() + 8 + text.size();
  for (const auto& t : cpu) {
    const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    std::memcpy(data, t.data_ptr(), bytes);
    data += bytes;
  }
  return out;
}

Result<AnchorCache> AnchorCache::Deserialize(std::span<const uint8_t> bytes, const torch::Device& device) {
  auto corrupt = [](const std::string& what) { return Status::Corruption("anchor cache bytes: " + what); };
  if (bytes.size() < 8) return corrupt("shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (n > bytes.size() - 8) {
    return corrupt("header length " + std::to_string(n) + " exceeds the " + std::to_string(bytes.size()) + " bytes");
  }
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return corrupt("header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const uint8_t* data = bytes.data() + 8 + n;
  std::vector<std::string> layers;
  int steps = 0;
  try {
    const auto& meta = header.at("__metadata__");
    if (meta.at("format").get<std::string>() != kFormat) return corrupt("format is not " + std::string(kFormat));
    if (meta.at("version").get<std::string>() != kVersion) {
      return Status::Unsupported("anchor cache bytes: version " + meta.at("version").get<std::string>() +
                                 " (this engine reads " + kVersion + ")");
    }
    steps = std::stoi(meta.at("steps").get<std::string>());
    layers = nlohmann::json::parse(meta.at("layers").get<std::string>()).get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    return corrupt(std::string("bad __metadata__: ") + e.what());
  }
  if (steps <= 0 || steps > 100000 || layers.empty()) return corrupt("no steps or no layers");
  bool fp16 = false;
  bool first = true;
  AnchorCache cache;
  for (int s = 0; s < steps; ++s) {
    for (size_t l = 0; l < layers.size(); ++l) {
      const std::string name = EntryName(layers[l], s);
      if (!header.contains(name)) return corrupt("tensor " + name + " is missing");
      const auto& entry = header[name];
      std::string dtype;
      std::vector<int64_t> shape;
      uint64_t begin = 0, end = 0;
      try {
        dtype = entry.at("dtype").get<std::string>();
        shape = entry.at("shape").get<std::vector<int64_t>>();
        begin = entry.at("data_offsets").at(0).get<uint64_t>();
        end = entry.at("data_offsets").at(1).get<uint64_t>();
      } catch (const std::exception& e) {
        return corrupt("tensor " + name + ": " + e.what());
      }
      if (dtype != "F32" && dtype != "F16") return corrupt("tensor " + name + ": dtype " + dtype);
      if (first) {
        fp16 = dtype == "F16";
        cache = AnchorCache(layers, steps, fp16);
        first = false;
      } else if ((dtype == "F16") != fp16) {
        return corrupt("tensor " + name + ": mixed dtypes");
      }
      if (shape.size() != 4) return corrupt("tensor " + name + ": shape must have 4 dims");
      uint64_t numel = 1;
      for (int64_t d : shape) {
        // Bounded by the data size at every factor, so the product cannot overflow.
        if (d <= 0 || static_cast<uint64_t>(d) > data_size) return corrupt("tensor " + name + ": bad shape");
        numel *= static_cast<uint64_t>(d);
        if (numel > data_size) return corrupt("tensor " + name + ": shape larger than the data");
      }
      const uint64_t elem = fp16 ? 2 : 4;
      if (begin > end || end > data_size || end - begin != numel * elem) {
        return corrupt("tensor " + name + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       ") do not fit its shape or the " + std::to_string(data_size) + " data bytes");
      }
      auto t = torch::empty(shape, torch::dtype(fp16 ? torch::kHalf : torch::kFloat32));
      std::memcpy(t.data_ptr(), data + begin, end - begin);
      Status put = cache.Put(static_cast<int>(l), s, device.is_cpu() ? t : t.to(device));
      if (!put.ok()) return corrupt(put.message());
    }
  }
  for (auto& [k, v] : header["__metadata__"].items()) {
    if (k != "format" && k != "version" && k != "steps" && k != "layers" && v.is_string()) {
      cache.metadata_[k] = v.get<std::string>();
    }
  }
  return cache;
}

}  // namespace fairy::engine
