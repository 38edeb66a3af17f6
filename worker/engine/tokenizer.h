// CLIP's byte-level BPE tokenizer, exact to transformers' CLIPTokenizer (slow, Python) when ftfy is
// not installed, for any Unicode text. Plain C++ (no LibTorch); Unicode data from ICU.
//
// Per text (transformers 4.36 CLIPTokenizer + PreTrainedTokenizer.tokenize):
//   1. special-token strings (bos/eos/pad/unk and the added tokens of tokenizer_config.json,
//      e.g. "<|endoftext|>") are split out first and become their ids;
//   2. every other piece goes through BasicTokenizer(do_lower_case, strip_accents=False,
//      do_split_on_punc=False): drop U+0000, U+FFFD and control characters (category C*, except
//      \t \n \r), whitespace -> ' ', spaces around CJK ideographs, NFC, split on whitespace,
//      lower-case each word (Python str.lower: full case mapping, final sigma), join with ' ';
//   3. the CLIP pattern
//   `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
//      [^\s\p{L}\p{N}]+` (IGNORECASE, Python `regex` semantics) cuts it into words;
//   4. each word: UTF-8 bytes -> the byte-level unicode alphabet -> BPE by merge rank, '</w>' on
//      the last symbol -> vocab ids (unknown symbols -> unk id);
//   5. ids = BOS + the first max_length-2 ids + EOS, padded with the pad id to max_length.
// ftfy.fix_text (the other upstream path) is not implemented.
//
// Thread safety: a loaded CLIPTokenizer is immutable except for an internal word cache guarded
// by a mutex; Tokenize may be called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace fairy::engine {

struct Tokenized {
  std::vector<int64_t> input_ids;   // max_length ids: BOS, ids, EOS, padding (pad id, 49407)
  std::vector<std::string> tokens;  // token strings of the unpadded ids, BOS/EOS included ("</w>"
                                    // marks word ends, byte-level symbols as in vocab.json)
  int64_t length = 0;               // number of unpadded ids
  int64_t untruncated_length = 0;   // number without truncation
  bool truncated() const { return untruncated_length > length; }
};

// The files of a tokenizer folder, as text ("" for an absent optional one).
struct TokenizerFiles {
  std::string dir;  // names the files in errors ("<dir>/vocab.json")
  std::string vocab_json, merges_txt;                              // required
  std::string tokenizer_config_json, special_tokens_map_json;  // optional
  // Reads `dir`'s files. NotFound names a missing required file.
  static Result<TokenizerFiles> Read(const std::string& dir);
  // CLIP's BPE vocabulary with the InstructPix2Pix tokenizer settings, built into the engine
  // (what an original-layout checkpoint, which holds no tokenizer, is used with).
  static const TokenizerFiles& Builtin();
};

class CLIPTokenizer {
 public:
  // tokenizer_dir holds vocab.json and merges.txt, optionally special_tokens_map.json and
  // tokenizer_config.json (bos/eos/pad/unk tokens, added tokens, model_max_length; defaults:
  // <|startoftext|>, <|endoftext|> for eos/pad/unk, 77). Errors name the file.
  static Result<std::unique_ptr<CLIPTokenizer>> Load(const std::string& tokenizer_dir);
  static Result<std::unique_ptr<CLIPTokenizer>> FromFiles(const TokenizerFiles& files);

  // Tokenizes UTF-8 text as tok(text, padding="max_length", max_length=max_length,
  // truncation=True) does. Invalid UTF-8 or max_length < 2 -> InvalidArgument.
  Result<Tokenized> Tokenize(const std::string& utf8_text, int64_t max_length = 77) const;

  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t model_max_length() const { return model_max_length_; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

  // The BPE symbols of one pre-tokenised word (UTF-8, before the byte-level mapping), e.g.
  // "cats" -> {"cats</w>"}. Exposed for tests.
  std::vector<std::string> Bpe(const std::string& word) const;

 private:
  CLIPTokenizer() = default;
  // Appends the token strings of one piece of text that holds no special-token string.
  void TokenizePiece(const std::u32string& piece, std::vector<std::string>* tokens) const;
  std::vector<std::string> BpeUncached(const std::string& mapped_word) const;
  int64_t IdOf(const std::string& token) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "first second" -> rank
  std::vector<std::string> special_tokens_;               // split out before the clean-up
  std::string bos_token_, eos_token_, pad_token_;
  int64_t bos_id_ = 49406, eos_id_ = 49407, pad_id_ = 49407, unk_id_ = 49407;
  int64_t model_max_length_ = 77;

  // Word (byte-level mapped) -> BPE symbols. Guarded by cache_mutex_; cleared when it grows large.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace fairy::engine
