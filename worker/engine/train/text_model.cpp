#include "worker/engine/train/text_model.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace fairy::engine::train {

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
