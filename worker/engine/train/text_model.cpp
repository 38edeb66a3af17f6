#include "worker/engine/train/text_model.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace fairy::engine::train {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

class EncoderLayerImpl : public nn::Module {
 public:
  explicit EncoderLayerImpl(const CLIPTextConfig& c) : heads_(c.num_attention_heads), gelu_(c.hidden_act == "gelu") {
    int64_t d = c.hidden_size;
    auto attn = register_module("self_attn", std::make_shared<nn::Module>());
    q_ = attn->register_module("q_proj", nn::Linear(d, d));
    k_ = attn->register_module("k_proj", nn::Linear(d, d));
    v_ = attn->register_module("v_proj", nn::Linear(d, d));
    o_ = attn->register_module("out_proj", nn::Linear(d, d));
    ln1_ = register_module("layer_norm1", nn::LayerNorm(nn::LayerNormOptions({d}).eps(c.layer_norm_eps)));
    auto mlp = register_module("mlp", std::make_shared<nn::Module>());
    fc1_ = mlp->register_module("fc1", nn::Linear(d, c.intermediate_size));
    fc2_ = mlp->register_module("fc2", nn::Linear(c.intermediate_size, d));
    ln2_ = register_module("layer_norm2", nn::LayerNorm(nn::LayerNormOptions({d}).eps(c.layer_norm_eps)));
  }
  // x [B, T, C], mask [T, T] additive
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    int64_t b = x.size(0), t = x.size(1), c = x.size(2), hd = c / heads_;
    auto h = ln1_(x);
    auto split = [&](const torch::Tensor& y) { return y.view({b, t, heads_, hd}).transpose(1, 2); };  // [B, H, T, d]
    auto q = split(q_(h) * (1.0 / std::sqrt(static_cast<double>(hd))));
    auto k = split(k_(h)), v = split(v_(h));
    auto attn = (torch::matmul(q, k.transpose(-1, -2)) + mask).softmax(-1);
    auto o = torch::matmul(attn, v).transpose(1, 2).reshape({b, t, c});
    auto r = x + o_(o);
    auto m = fc1_(ln2_(r));
    m = gelu_ ? F::gelu(m) : m * torch::sigmoid(1.702 * m);
    return r + fc2_(m);
  }

 private:
  int64_t heads_;
  bool gelu_;
  nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, o_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
  nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
};
TORCH_MODULE(EncoderLayer);

}  // namespace

Result<CLIPTextConfig> CLIPTextConfig::FromJson(const nlohmann::json& j, const std::string& source) {
  CLIPTextConfig c;
  try {
    c.vocab_size = j.value("vocab_size", c.vocab_size);
    c.hidden_size = j.at("hidden_size").get<int64_t>();
    c.intermediate_size = j.at("intermediate_size").get<int64_t>();
    c.num_attention_heads = j.at("num_attention_heads").get<int64_t>();
    c.num_hidden_layers = j.at("num_hidden_layers").get<int64_t>();
    c.max_position_embeddings = j.value("max_position_embeddings", c.max_position_embeddings);
    c.layer_norm_eps = j.value("layer_norm_eps", c.layer_norm_eps);
    c.hidden_act = j.value("hidden_act", c.hidden_act);
    c.projection_dim = j.value("projection_dim", c.hidden_size);
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(source + ": " + e.what());
  }
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu") {
    return Status::Unsupported(source + ": \"hidden_act\": \"" + c.hidden_act + "\" (supported: quick_gelu, gelu)");
  }
  if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0) {
    return Status::InvalidArgument(source + ": \"hidden_size\" must be a multiple of \"num_attention_heads\"");
  }
  return c;
}

nlohmann::json CLIPTextConfig::ToJson() const {
  return nlohmann::json{{"architectures", {"CLIPTextModel"}},
                        {"attention_dropout", 0.0},
                        {"bos_token_id", 49406},
                        {"eos_token_id", 49407},
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
                        {"pad_token_id", 1},
                        {"projection_dim", projection_dim},
                        {"torch_dtype", "float32"},
                        {"vocab_size", vocab_size}};
}

TrainCLIPTextImpl::TrainCLIPTextImpl(const CLIPTextConfig& config) : config_(config) {
  text_model_ = register_module("text_model", std::make_shared<nn::Module>());
  auto embeddings = text_model_->register_module("embeddings", std::make_shared<nn::Module>());
  token_embedding_ = embeddings->register_module("token_embedding", nn::Embedding(config.vocab_size, config.hidden_size));
  position_embedding_ =
      embeddings->register_module("position_embedding", nn::Embedding(config.max_position_embeddings, config.hidden_size));
  {
    torch::NoGradGuard no_grad;  // transformers' init: N(0, 0.02) token, N(0, 0.01) position embeddings
    token_embedding_->weight.normal_(0, 0.02);
    position_embedding_->weight.normal_(0, 0.01);
  }
  auto encoder = text_model_->register_module("encoder", std::make_shared<nn::Module>());
  auto layers = encoder->register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    auto layer = EncoderLayer(config);
    layers->push_back(layer);
    layers_.push_back(layer.ptr());
  }
  final_norm_ = text_model_->register_module(
      "final_layer_norm", nn::LayerNorm(nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
}

torch::Tensor TrainCLIPTextImpl::forward(const torch::Tensor& input_ids) {
  int64_t t = input_ids.size(1);
  auto positions = torch::arange(t, torch::TensorOptions().dtype(torch::kInt64).device(input_ids.device()));
  auto h = token_embedding_(input_ids) + position_embedding_(positions).unsqueeze(0);  // [B, T, C]
  auto mask = torch::full({t, t}, std::numeric_limits<float>::lowest(), h.options()).triu(1);
  for (auto& layer : layers_) h = std::static_pointer_cast<EncoderLayerImpl>(layer)->forward(h, mask);
  return final_norm_(h);
}

Result<InstructionTokenizer> InstructionTokenizer::Load(const std::string& dir) {
  InstructionTokenizer tok;
  std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
  std::ifstream vf(vocab_path);
  if (!vf) return Status::NotFound("tokenizer: cannot open " + vocab_path);
  try {
    auto vocab = nlohmann::json::parse(vf);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) tok.vocab_[it.key()] = it.value().get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("tokenizer: " + vocab_path + ": " + e.what());
  }
  std::ifstream mf(merges_path);
  if (!mf) return Status::NotFound("tokenizer: cannot open " + merges_path);
  std::string line;
  int64_t rank = 0, line_no = 0;
  while (std::getline(mf, line)) {
    ++line_no;
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    auto space = line.find(' ');
    if (space == std::string::npos) {
      return Status::InvalidArgument("tokenizer: " + merges_path + ":" + std::to_string(line_no) + ": expected two symbols");
    }
    tok.ranks_[{line.substr(0, space), line.substr(space + 1)}] = rank++;
  }
  auto bos = tok.vocab_.find("<|startoftext|>"), eos = tok.vocab_.find("<|endoftext|>");
  if (bos == tok.vocab_.end() || eos == tok.vocab_.end()) {
    return Status::InvalidArgument("tokenizer: " + vocab_path + " lacks <|startoftext|> or <|endoftext|>");
  }
  tok.bos_ = bos->second;
  tok.eos_ = eos->second;
  return tok;
}

std::vector<std::string> InstructionTokenizer::Bpe(const std::string& word) const {
  std::vector<std::string> symbols;
  for (char c : word) symbols.emplace_back(1, c);
  symbols.back() += "</w>";
  while (symbols.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks_.find({symbols[i], symbols[i + 1]});
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    std::string first = symbols[at], second = symbols[at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        merged.push_back(first + second);
        ++i;
      } else {
        merged.push_back(symbols[i]);
      }
    }
    symbols = std::move(merged);
  }
  return symbols;
}

Result<std::vector<int64_t>> InstructionTokenizer::Encode(const std::string& text, int64_t max_length) const {
  std::vector<std::string> words;
  std::string cur;
  enum Kind { kNone, kLetter, kOther } kind = kNone;
  auto flush = [&] {
    if (!cur.empty()) words.push_back(cur);
    cur.clear();
    kind = kNone;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) return Status::Unsupported("tokenizer: the training tokenizer handles ASCII text only: \"" + text + "\"");
    if (std::isspace(c) || std::iscntrl(c)) {
      flush();
    } else if (std::isalpha(c)) {
      if (kind != kLetter) flush();
      kind = kLetter;
      cur += static_cast<char>(std::tolower(c));
    } else if (std::isdigit(c)) {
      flush();
      words.emplace_back(1, static_cast<char>(c));
    } else if (c == '\'' && kind != kOther) {
      // CLIP's contractions: 's 't 're 've 'm 'll 'd split off as their own pieces.
      static const char* kContractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
      bool matched = false;
      for (const char* s : kContractions) {
        size_t n = std::char_traits<char>::length(s);
        if (text.compare(i + 1, n, s) == 0) {
          flush();
          words.push_back("'" + std::string(s));
          i += n;
          matched = true;
          break;
        }
      }
      if (!matched) {
        flush();
        kind = kOther;
        cur += static_cast<char>(c);
      }
    } else {
      if (kind != kOther) flush();
      kind = kOther;
      cur += static_cast<char>(c);
    }
  }
  flush();
  std::vector<int64_t> ids = {bos_};
  for (const std::string& w : words) {
    for (const std::string& piece : Bpe(w)) {
      auto it = vocab_.find(piece);
      if (it == vocab_.end()) return Status::InvalidArgument("tokenizer: no vocabulary entry for \"" + piece + "\"");
      ids.push_back(it->second);
    }
  }
  if (static_cast<int64_t>(ids.size()) > max_length - 1) ids.resize(static_cast<size_t>(max_length - 1));
  ids.push_back(eos_);
  ids.resize(static_cast<size_t>(max_length), eos_);
  return ids;
}

Result<torch::Tensor> InstructionTokenizer::EncodeBatch(const std::vector<std::string>& texts) const {
  std::vector<torch::Tensor> rows;
  for (const auto& t : texts) {
    FAIRY_ASSIGN_OR_RETURN(auto ids, Encode(t));
    rows.push_back(torch::tensor(ids, torch::kInt64));
  }
  return torch::stack(rows);
}

}  // namespace fairy::engine::train
