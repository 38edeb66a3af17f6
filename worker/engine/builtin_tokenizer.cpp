// The CLIP tokenizer files built into the engine (TokenizerFiles::Builtin): the folder named by
// FAIRY_BUILTIN_TOKENIZER_DIR at build time (models/fairy-tiny/tokenizer: CLIP's BPE vocabulary,
// the one SD 1.x text encoders were trained with), embedded by the assembler's .incbin.
#include "worker/engine/tokenizer.h"

#ifndef FAIRY_BUILTIN_TOKENIZER_DIR
#error "FAIRY_BUILTIN_TOKENIZER_DIR must name the tokenizer folder to embed"
#endif

#define FAIRY_EMBED(symbol, file)                       \
  asm(".section .rodata\n"                              \
      ".global " #symbol "_begin\n" #symbol             \
      "_begin:\n"                                       \
      ".incbin \"" FAIRY_BUILTIN_TOKENIZER_DIR "/" file \
      "\"\n"                                            \
      ".global " #symbol "_end\n" #symbol               \
      "_end:\n"                                         \
      ".previous\n");                                   \
  extern "C" const char symbol##_begin[];               \
  extern "C" const char symbol##_end[];

FAIRY_EMBED(fairy_tokenizer_vocab, "vocab.json")
FAIRY_EMBED(fairy_tokenizer_merges, "merges.txt")
FAIRY_EMBED(fairy_tokenizer_config, "tokenizer_config.json")
FAIRY_EMBED(fairy_tokenizer_special, "special_tokens_map.json")

namespace fairy::engine {

const TokenizerFiles& TokenizerFiles::Builtin() {
  static const TokenizerFiles files = [] {
    TokenizerFiles f;
    f.dir = "(built-in CLIP tokenizer)";
    f.vocab_json.assign(fairy_tokenizer_vocab_begin, fairy_tokenizer_vocab_end);
    f.merges_txt.assign(fairy_tokenizer_merges_begin, fairy_tokenizer_merges_end);
    f.tokenizer_config_json.assign(fairy_tokenizer_config_begin, fairy_tokenizer_config_end);
    f.special_tokens_map_json.assign(fairy_tokenizer_special_begin, fairy_tokenizer_special_end);
    return f;
  }();
  return files;
}

}  // namespace fairy::engine
