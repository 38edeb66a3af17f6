#include "worker/engine/tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/uniset.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

namespace fairy::engine {
namespace {

// transformers reads merges.txt as read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]: the first
// line is dropped unconditionally and at most this many merges are used.
constexpr size_t kMaxMerges = 49152 - 256 - 2;
// The word cache is cleared when it reaches this many entries (long-running workers).
constexpr size_t kMaxCacheEntries = 1 << 16;

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string Utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(c, &out);
  return out;
}

// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). On error returns
// false and sets *bad_offset to the byte offset of the first invalid sequence.
bool DecodeUtf8(const std::string& in, std::u32string* out, size_t* bad_offset) {
  out->clear();
  out->reserve(in.size());
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(in[i]);
    if (b0 < 0x80) {
      out->push_back(b0);
      ++i;
      continue;
    }
    int len;
    char32_t c, min;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, c = b0 & 0x07, min = 0x10000;
    } else {
      *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      *bad_offset = i;
      return false;
    }
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(in[i + k]);
      if ((b & 0xC0) != 0x80) {
        *bad_offset = i;
        return false;
      }
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      *bad_offset = i;
      return false;
    }
    out->push_back(c);
    i += len;
  }
  return true;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100.., each
// as a UTF-8 string.
const std::array<std::string, 256>& ByteEncoder() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      AppendUtf8(c, &t[static_cast<size_t>(b)]);
    }
    return t;
  }();
  return table;
}

int8_t Category(char32_t c) { return u_charType(static_cast<UChar32>(c)); }

bool IsLetter(char32_t c) {  // \p{L}
  switch (Category(c)) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return true;
    default:
      return false;
  }
}

bool IsNumber(char32_t c) {  // \p{N}
  const int8_t cat = Category(c);
  return cat == U_DECIMAL_DIGIT_NUMBER || cat == U_LETTER_NUMBER || cat == U_OTHER_NUMBER;
}

// Python's str.isspace (also what `regex`'s \s matches on the text that reaches the pattern):
// bidirectional class WS, B or S, or category Zs.
bool IsPySpace(char32_t c) {
  if (Category(c) == U_SPACE_SEPARATOR) return true;
  const UCharDirection d = u_charDirection(static_cast<UChar32>(c));
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

// BasicTokenizer._is_whitespace / _is_control.
bool IsBasicWhitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || Category(c) == U_SPACE_SEPARATOR;
}
bool IsBasicControl(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (Category(c)) {
    case U_UNASSIGNED:  // Cn
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

// BasicTokenizer._is_chinese_char.
bool IsCJK(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Whether `c` matches [^\s\p{L}\p{N}] under `regex`'s IGNORECASE: a set matches when any case
// variant of the character is in it, so a non-letter whose case variants include a letter
// (U+0345 COMBINING GREEK YPOGEGRAMMENI ~ iota) matches neither this set nor [\p{L}].
bool IsOtherSymbol(char32_t c) {
  if (IsPySpace(c) || IsLetter(c) || IsNumber(c)) return false;
  const auto uc = static_cast<UChar32>(c);
  if (!u_hasBinaryProperty(uc, UCHAR_CASE_SENSITIVE)) return true;
  icu::UnicodeSet variants(uc, uc);
  variants.closeOver(USET_CASE_INSENSITIVE);
  for (int32_t r = 0; r < variants.getRangeCount(); ++r) {
    for (UChar32 v = variants.getRangeStart(r); v <= variants.getRangeEnd(r); ++v) {
      const auto cv = static_cast<char32_t>(v);
      if (IsPySpace(cv) || IsLetter(cv) || IsNumber(cv)) return false;
    }
  }
  return true;
}

// Case-insensitive (simple case folding) match of the ASCII literal `lit` at text[pos].
bool MatchesIgnoreCase(const std::u32string& text, size_t pos, std::string_view lit) {
  if (pos + lit.size() > text.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    const char32_t c = text[pos + k];
    if (c == static_cast<unsigned char>(lit[k])) continue;
    if (u_foldCase(static_cast<UChar32>(c), U_FOLD_CASE_DEFAULT) !=
        u_foldCase(static_cast<unsigned char>(lit[k]), U_FOLD_CASE_DEFAULT)) {
      return false;
    }
  }
  return true;
}

// The CLIP pre-tokenisation pattern over one lower-cased word (no whitespace inside; matches
// never span the spaces BasicTokenizer joins words with, so per-word scanning is the same).
std::vector<std::u32string> SplitWord(const std::u32string& w) {
  static constexpr std::string_view kSpecial[] = {"<|startoftext|>", "<|endoftext|>"};
  static constexpr std::string_view kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < w.size()) {
    size_t len = 0;
    for (std::string_view lit : kSpecial) {
      if (MatchesIgnoreCase(w, i, lit)) {
        len = lit.size();
        break;
      }
    }
    if (len == 0 && w[i] == '\'') {
      for (std::string_view lit : kContractions) {
        if (MatchesIgnoreCase(w, i, lit)) {
          len = lit.size();
          break;
        }
      }
    }
    if (len == 0) {
      if (IsLetter(w[i])) {
        while (i + len < w.size() && IsLetter(w[i + len])) ++len;
      } else if (IsNumber(w[i])) {
        len = 1;
      } else if (IsOtherSymbol(w[i])) {
        while (i + len < w.size() && IsOtherSymbol(w[i + len])) ++len;
      }
    }
    if (len == 0) {  // matches no alternative: re.findall skips it
      ++i;
      continue;
    }
    out.push_back(w.substr(i, len));
    i += len;
  }
  return out;
}

icu::UnicodeString ToIcu(const std::u32string& s) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(s.data()),
                                       static_cast<int32_t>(s.size()));
}

std::u32string FromIcu(const icu::UnicodeString& s) {
  UErrorCode status = U_ZERO_ERROR;
  std::u32string out(static_cast<size_t>(s.countChar32()), U'\0');
  s.toUTF32(reinterpret_cast<UChar32*>(out.data()), static_cast<int32_t>(out.size()), status);
  return out;
}

Result<nlohmann::json> ParseJson(const std::string& text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("tokenizer: " + path + ": " + e.what());
  }
}

// A special token entry of tokenizer_config.json / special_tokens_map.json: "content" or
// {"content": "..."}. Empty when absent or of another type.
std::string TokenContent(const nlohmann::json& root, const char* key) {
  if (!root.contains(key)) return "";
  const nlohmann::json& v = root[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

}  // namespace

Result<TokenizerFiles> TokenizerFiles::Read(const std::string& dir) {
  TokenizerFiles files;
  files.dir = dir;
  const auto read = [&](const char* name, bool required, std::string* out) -> Status {
    const std::string path = dir + "/" + name;
    std::ifstream in(path, std::ios::binary);
    if (!in) return required ? Status::NotFound("tokenizer: cannot open " + path) : Status::OK();
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) return Status::IOError("tokenizer: " + path + ": read error");
    *out = buffer.str();
    return Status::OK();
  };
  FAIRY_RETURN_IF_ERROR(read("vocab.json", true, &files.vocab_json));
  FAIRY_RETURN_IF_ERROR(read("merges.txt", true, &files.merges_txt));
  FAIRY_RETURN_IF_ERROR(read("tokenizer_config.json", false, &files.tokenizer_config_json));
  FAIRY_RETURN_IF_ERROR(read("special_tokens_map.json", false, &files.special_tokens_map_json));
  return files;
}

Result<std::unique_ptr<CLIPTokenizer>> CLIPTokenizer::Load(const std::string& dir) {
  FAIRY_ASSIGN_OR_RETURN(TokenizerFiles files, TokenizerFiles::Read(dir));
  return FromFiles(files);
}

Result<std::unique_ptr<CLIPTokenizer>> CLIPTokenizer::FromFiles(const TokenizerFiles& files) {
  std::unique_ptr<CLIPTokenizer> tok(new CLIPTokenizer());
  const std::string& dir = files.dir;
  const std::string vocab_path = dir + "/vocab.json";
  const std::string merges_path = dir + "/merges.txt";
  const std::string config_path = dir + "/tokenizer_config.json";
  const std::string map_path = dir + "/special_tokens_map.json";

  FAIRY_ASSIGN_OR_RETURN(nlohmann::json vocab, ParseJson(files.vocab_json, vocab_path));
  if (!vocab.is_object() || vocab.empty()) {
    return Status::InvalidArgument("tokenizer: " + vocab_path + ": expected an object token -> id");
  }
  tok->vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return Status::InvalidArgument("tokenizer: " + vocab_path + ": the id of \"" + it.key() +
                                     "\" is not an integer");
    }
    tok->vocab_[it.key()] = it.value().get<int64_t>();
  }

  const std::string& merges = files.merges_txt;
  // Python's str.strip() of the whole file, then split("\n").
  const auto is_ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  size_t begin = 0, end = merges.size();
  while (begin < end && is_ws(merges[begin])) ++begin;
  while (end > begin && is_ws(merges[end - 1])) --end;
  tok->merge_ranks_.reserve(kMaxMerges + 1);
  size_t line_no = 0, rank = 0;
  for (size_t pos = begin; pos < end && rank < kMaxMerges;) {
    size_t nl = merges.find('\n', pos);
    if (nl == std::string::npos || nl > end) nl = end;
    std::string_view line(merges.data() + pos, nl - pos);
    pos = nl + 1;
    if (++line_no == 1) continue;  // "#version: 0.2"
    std::istringstream fields{std::string(line)};
    std::string first, second, extra;
    fields >> first >> second >> extra;
    const size_t this_rank = rank++;
    if (first.empty()) continue;  // a blank line takes a rank but matches nothing, as upstream
    if (second.empty() || !extra.empty()) {
      return Status::InvalidArgument("tokenizer: " + merges_path + ":" + std::to_string(line_no) +
                                     ": expected two symbols");
    }
    tok->merge_ranks_[first + " " + second] = static_cast<int32_t>(this_rank);  // last one wins
  }

  // Special tokens: tokenizer_config.json, then special_tokens_map.json over it (as
  // from_pretrained does).
  tok->bos_token_ = "<|startoftext|>";
  tok->eos_token_ = "<|endoftext|>";
  tok->pad_token_ = "<|endoftext|>";
  std::string unk_token = "<|endoftext|>";
  for (const auto& [path, text] : {std::pair{config_path, &files.tokenizer_config_json},
                                   std::pair{map_path, &files.special_tokens_map_json}}) {
    if (text->empty()) continue;
    FAIRY_ASSIGN_OR_RETURN(nlohmann::json cfg, ParseJson(*text, path));
    if (!cfg.is_object())
      return Status::InvalidArgument("tokenizer: " + path + ": expected an object");
    for (auto [key, field] :
         {std::pair{"bos_token", &tok->bos_token_}, std::pair{"eos_token", &tok->eos_token_},
          std::pair{"pad_token", &tok->pad_token_}, std::pair{"unk_token", &unk_token}}) {
      if (std::string v = TokenContent(cfg, key); !v.empty()) *field = v;
    }
    if (path == config_path) {
      if (cfg.contains("model_max_length") && cfg["model_max_length"].is_number()) {
        const double m = cfg["model_max_length"].get<double>();
        if (m < 2) {
          return Status::InvalidArgument("tokenizer: " + path +
                                         ": \"model_max_length\" must be >= 2");
        }
        tok->model_max_length_ =
            m >= 9.2e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(m);
      }
      if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
        for (auto it = cfg["added_tokens_decoder"].begin(); it != cfg["added_tokens_decoder"].end();
             ++it) {
          std::string content = TokenContent(it.value(), "content");
          int64_t id = 0;
          try {
            id = std::stoll(it.key());
          } catch (const std::exception&) {
            return Status::InvalidArgument("tokenizer: " + path + ": added_tokens_decoder key \"" +
                                           it.key() + "\" is not an id");
          }
          if (content.empty()) continue;
          tok->vocab_.emplace(content, id);
          tok->special_tokens_.push_back(content);
        }
      }
    }
  }
  for (const std::string* t : {&tok->bos_token_, &tok->eos_token_, &tok->pad_token_, &unk_token}) {
    tok->special_tokens_.push_back(*t);
  }
  std::sort(tok->special_tokens_.begin(), tok->special_tokens_.end());
  tok->special_tokens_.erase(std::unique(tok->special_tokens_.begin(), tok->special_tokens_.end()),
                             tok->special_tokens_.end());
  auto id_of = [&](const std::string& token, int64_t* id) -> Status {
    auto it = tok->vocab_.find(token);
    if (it == tok->vocab_.end()) {
      return Status::InvalidArgument("tokenizer: special token \"" + token + "\" is not in " +
                                     vocab_path);
    }
    *id = it->second;
    return Status::OK();
  };
  FAIRY_RETURN_IF_ERROR(id_of(tok->bos_token_, &tok->bos_id_));
  FAIRY_RETURN_IF_ERROR(id_of(tok->eos_token_, &tok->eos_id_));
  FAIRY_RETURN_IF_ERROR(id_of(tok->pad_token_, &tok->pad_id_));
  FAIRY_RETURN_IF_ERROR(id_of(unk_token, &tok->unk_id_));
  return tok;
}

int64_t CLIPTokenizer::IdOf(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? unk_id_ : it->second;
}

std::vector<std::string> CLIPTokenizer::BpeUncached(const std::string& mapped) const {
  // Symbols: the UTF-8 characters of the byte-level word, '</w>' appended to the last one.
  std::vector<std::string> word;
  for (size_t i = 0; i < mapped.size();) {
    size_t len = 1;
    while (i + len < mapped.size() && (static_cast<unsigned char>(mapped[i + len]) & 0xC0) == 0x80)
      ++len;
    word.emplace_back(mapped, i, len);
    i += len;
  }
  if (word.empty()) return word;
  word.back() += "</w>";
  std::string key;
  while (word.size() > 1) {
    int32_t best = std::numeric_limits<int32_t>::max();
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      key.assign(word[i]).append(" ").append(word[i + 1]);
      auto it = merge_ranks_.find(key);
      if (it != merge_ranks_.end() && it->second < best) {
        best = it->second;
        best_at = i;
      }
    }
    if (best == std::numeric_limits<int32_t>::max()) break;
    // Merge every occurrence of the pair, left to right, without overlap.
    const std::string first = word[best_at], second = word[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size(); ++i) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        ++i;
      } else {
        merged.push_back(std::move(word[i]));
      }
    }
    word = std::move(merged);
  }
  return word;
}

std::vector<std::string> CLIPTokenizer::Bpe(const std::string& word) const {
  std::string mapped;
  for (char b : word) mapped += ByteEncoder()[static_cast<unsigned char>(b)];
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(mapped);
    if (it != cache_.end()) return it->second;
  }
  std::vector<std::string> symbols = BpeUncached(mapped);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(mapped, symbols);
  return symbols;
}

void CLIPTokenizer::TokenizePiece(const std::u32string& piece,
                                  std::vector<std::string>* tokens) const {
  // BasicTokenizer._clean_text and _tokenize_chinese_chars.
  std::u32string cleaned;
  cleaned.reserve(piece.size());
  for (char32_t c : piece) {
    if (c == 0 || c == 0xFFFD || IsBasicControl(c)) continue;
    if (IsBasicWhitespace(c)) {
      cleaned.push_back(U' ');
    } else if (IsCJK(c)) {
      cleaned.push_back(U' ');
      cleaned.push_back(c);
      cleaned.push_back(U' ');
    } else {
      cleaned.push_back(c);
    }
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  std::u32string text = cleaned;
  if (U_SUCCESS(status)) {
    icu::UnicodeString normalized = nfc->normalize(ToIcu(cleaned), status);
    if (U_SUCCESS(status)) text = FromIcu(normalized);
  }
  // whitespace_tokenize, then str.lower() of each word and the CLIP pattern.
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && IsPySpace(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !IsPySpace(text[j])) ++j;
    if (j == i) break;
    icu::UnicodeString word = ToIcu(text.substr(i, j - i));
    word.toLower(icu::Locale::getRoot());
    for (const std::u32string& match : SplitWord(FromIcu(word))) {
      for (std::string& symbol : Bpe(Utf8(match))) tokens->push_back(std::move(symbol));
    }
    i = j;
  }
}

Result<Tokenized> CLIPTokenizer::Tokenize(const std::string& utf8_text, int64_t max_length) const {
  if (max_length < 2) {
    return Status::InvalidArgument("tokenizer: max_length " + std::to_string(max_length) +
                                   " leaves no room for BOS and EOS");
  }
  std::u32string decoded;
  size_t bad = 0;
  if (!DecodeUtf8(utf8_text, &decoded, &bad)) {
    return Status::InvalidArgument("tokenizer: invalid UTF-8 at byte " + std::to_string(bad) +
                                   " of the text");
  }
  // Split out special-token strings (earliest occurrence first, the longest at one position).
  std::vector<std::string> body;
  size_t pos = 0;
  while (pos <= utf8_text.size()) {
    size_t hit = std::string::npos;
    const std::string* special = nullptr;
    for (const std::string& s : special_tokens_) {
      const size_t at = utf8_text.find(s, pos);
      if (at == std::string::npos) continue;
      if (at < hit || (at == hit && s.size() > special->size())) {
        hit = at;
        special = &s;
      }
    }
    const size_t piece_end = hit == std::string::npos ? utf8_text.size() : hit;
    if (piece_end > pos) {
      std::u32string piece;
      DecodeUtf8(utf8_text.substr(pos, piece_end - pos), &piece, &bad);
      TokenizePiece(piece, &body);
    }
    if (special == nullptr) break;
    body.push_back(*special);
    pos = hit + special->size();
  }

  Tokenized out;
  out.untruncated_length = static_cast<int64_t>(body.size()) + 2;
  const size_t kept = std::min(body.size(), static_cast<size_t>(max_length - 2));
  out.tokens.reserve(kept + 2);
  out.tokens.push_back(bos_token_);
  for (size_t i = 0; i < kept; ++i) out.tokens.push_back(std::move(body[i]));
  out.tokens.push_back(eos_token_);
  out.length = static_cast<int64_t>(out.tokens.size());
  out.input_ids.reserve(static_cast<size_t>(max_length));
  out.input_ids.push_back(bos_id_);
  for (size_t i = 1; i + 1 < out.tokens.size(); ++i) out.input_ids.push_back(IdOf(out.tokens[i]));
  out.input_ids.push_back(eos_id_);
  out.input_ids.resize(static_cast<size_t>(max_length), pad_id_);
  return out;
}

}  // namespace fairy::engine
