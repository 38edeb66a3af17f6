// Engine tokenizer: CLIPTokenizer against transformers' CLIPTokenizer without ftfy (every row of
// the pix2pix-tiny tokens.json, ids and token strings exact), special tokens inside text,
// truncation, Unicode edge cases (expected values from the upstream algorithm), invalid UTF-8,
// load errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_paths.h"
#include "worker/engine/tokenizer.h"

namespace fairy::engine {
namespace {

constexpr int64_t kBos = 49406, kEos = 49407;

using testing::TinyFixture;

const CLIPTokenizer& Tok() {
  static const std::unique_ptr<CLIPTokenizer> tok = [] {
    auto loaded = CLIPTokenizer::Load(TinyFixture() + "/tokenizer");
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    return loaded.ok() ? std::move(loaded).value() : nullptr;
  }();
  return *tok;
}

// The unpadded ids of `text`.
std::vector<int64_t> Ids(const std::string& text) {
  auto t = Tok().Tokenize(text);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return {};
  return std::vector<int64_t>(t->input_ids.begin(), t->input_ids.begin() + t->length);
}

TEST(EngineTokenizer, LoadsTheFixtureTokenizer) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  auto start = std::chrono::steady_clock::now();
  auto tok = CLIPTokenizer::Load(TinyFixture() + "/tokenizer");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->bos_id(), kBos);
  EXPECT_EQ((*tok)->eos_id(), kEos);
  EXPECT_EQ((*tok)->pad_id(), kEos);
  EXPECT_EQ((*tok)->model_max_length(), 77);
  EXPECT_EQ((*tok)->vocab_size(), 49408);
  EXPECT_LT(seconds, 2.0) << "loading vocab.json + 48894 merges should take well under 1 s";
  EXPECT_EQ((*tok)->Bpe("cats"), (std::vector<std::string>{"cats</w>"}));
}

TEST(EngineTokenizer, EveryGoldenRowExact) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/tokens.json",
                       "fixtures/pix2pix-tiny/tokenizer/vocab.json");
  std::ifstream in(TinyFixture() + "/golden/tokens.json");
  ASSERT_TRUE(in) << "tokens.json";
  const nlohmann::json golden = nlohmann::json::parse(in);
  ASSERT_EQ(golden["prompts"].size(), 30u);
  for (const auto& row : golden["prompts"]) {
    const std::string text = row["text"];
    auto t = Tok().Tokenize(text, 77);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status().ToString();
    EXPECT_EQ(t->input_ids, row["input_ids"].get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(t->tokens, row["tokens"].get<std::vector<std::string>>()) << text;
    EXPECT_EQ(t->length, row["length"].get<int64_t>()) << text;
    EXPECT_EQ(t->untruncated_length, row["untruncated_length"].get<int64_t>()) << text;
    EXPECT_EQ(t->truncated(), row["truncated"].get<bool>()) << text;
  }
}

TEST(EngineTokenizer, SpecialTokensInsideText) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  EXPECT_EQ(Ids("hello<|endoftext|>world"), (std::vector<int64_t>{kBos, 3306, kEos, 1002, kEos}));
  EXPECT_EQ(Ids("hello <|startoftext|> world<|endoftext|>"),
            (std::vector<int64_t>{kBos, 3306, kBos, 1002, kEos, kEos}));
  auto t = Tok().Tokenize("<|endoftext|>");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->tokens,
            (std::vector<std::string>{"<|startoftext|>", "<|endoftext|>", "<|endoftext|>"}));
  // Matching is case-sensitive: an upper-case spelling is lower-cased text, BPE'd like any other.
  EXPECT_EQ(Ids("<|ENDOFTEXT|>"),
            (std::vector<int64_t>{kBos, 27, 91, 40786, 18169, 91, 285, kEos}));
}

TEST(EngineTokenizer, TruncatesAndPads) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  std::string text;
  for (int i = 0; i < 100; ++i) text += "a ";
  auto t = Tok().Tokenize(text);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->length, 77);
  EXPECT_EQ(t->untruncated_length, 102);
  EXPECT_TRUE(t->truncated());
  ASSERT_EQ(t->input_ids.size(), 77u);
  EXPECT_EQ(t->input_ids.front(), kBos);
  EXPECT_EQ(t->input_ids[75], 320);  // "a</w>"
  EXPECT_EQ(t->input_ids.back(), kEos);
  EXPECT_EQ(t->tokens.size(), 77u);

  auto short_max = Tok().Tokenize("a photo of a cat", 5);
  ASSERT_TRUE(short_max.ok());
  EXPECT_EQ(short_max->input_ids, (std::vector<int64_t>{kBos, 320, 1125, 539, kEos}));
  EXPECT_EQ(short_max->untruncated_length, 7);

  auto exact = Tok().Tokenize("a photo of a cat", 7);
  ASSERT_TRUE(exact.ok());
  EXPECT_FALSE(exact->truncated());
  EXPECT_EQ(exact->input_ids, (std::vector<int64_t>{kBos, 320, 1125, 539, 320, 2368, kEos}));

  EXPECT_FALSE(Tok().Tokenize("a", 1).ok());
}

TEST(EngineTokenizer, EmptyAndBlankText) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  for (const std::string& text : {std::string(), std::string(" \t\n "), std::string("\x01\x02", 2),
                                  std::string("\0", 1), std::string("\xef\xbf\xbd")}) {
    auto t = Tok().Tokenize(text);
    ASSERT_TRUE(t.ok());
    std::vector<int64_t> want(77, kEos);
    want[0] = kBos;
    EXPECT_EQ(t->input_ids, want);
    EXPECT_EQ(t->length, 2);
    EXPECT_EQ(t->untruncated_length, 2);
    EXPECT_EQ(t->tokens, (std::vector<std::string>{"<|startoftext|>", "<|endoftext|>"}));
  }
}

// Expected ids from transformers' algorithm (BasicTokenizer + the `regex` pattern + BPE).
TEST(EngineTokenizer, UnicodeEdgeCases) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  // Final sigma (str.lower per word), Greek bytes.
  EXPECT_EQ(Ids("\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3"),
            (std::vector<int64_t>{kBos, 138, 123, 138, 112, 138, 123, 139, 480, 139, 225, 138, 109,
                                  139, 480, kEos}));
  // Full case mapping: U+0130 -> "i" + U+0307.
  EXPECT_EQ(Ids("\u0130stanbul"), (std::vector<int64_t>{kBos, 328, 16384, 11231, kEos}));
  // U+0345 matches no alternative of the pattern under IGNORECASE (a case variant is a letter).
  EXPECT_EQ(Ids("a\u0345b"), (std::vector<int64_t>{kBos, 320, 321, kEos}));
  // Long s matches the contraction 's under IGNORECASE.
  EXPECT_EQ(Ids("x'\u017ft"), (std::vector<int64_t>{kBos, 343, 6, 129, 379, 339, kEos}));
  // CJK compatibility ideograph: spaced out, then NFC to U+8C48.
  EXPECT_EQ(Ids("\uf900\u4e00x"),
            (std::vector<int64_t>{kBos, 164, 109, 486, 19759, 478, 343, kEos}));
  // NFC composes A + ring; U+2028 splits words; U+001C and U+200B are dropped.
  EXPECT_EQ(Ids("A\u030a\u2028b\x1c"
                "c\u200bd"),
            (std::vector<int64_t>{kBos, 127, 354, 3116, 323, kEos}));
}

TEST(EngineTokenizer, InvalidUtf8IsRefused) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  for (const std::string& bad :
       {std::string("\xff"), std::string("caf\xc3"), std::string("\xc0\xaf"),
        std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"), std::string("a\x80z")}) {
    auto t = Tok().Tokenize(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(t.status().message().find("UTF-8"), std::string::npos);
  }
}

TEST(EngineTokenizer, LoadErrorsNameTheFile) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/merges.txt");
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("fairy_tok_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(TinyFixture() + "/tokenizer/merges.txt", dir / "merges.txt",
                fs::copy_options::overwrite_existing);
  auto missing = CLIPTokenizer::Load(dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find((dir / "vocab.json").string()), std::string::npos)
      << missing.status().ToString();

  std::ofstream(dir / "vocab.json") << "{\"a\": 1,";
  auto broken = CLIPTokenizer::Load(dir.string());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("vocab.json"), std::string::npos);

  std::ofstream(dir / "vocab.json") << "{\"a\": 1}";
  auto no_specials = CLIPTokenizer::Load(dir.string());
  ASSERT_FALSE(no_specials.ok());
  EXPECT_NE(no_specials.status().message().find("<|startoftext|>"), std::string::npos);

  fs::remove(dir / "merges.txt");
  auto no_merges = CLIPTokenizer::Load(dir.string());
  ASSERT_FALSE(no_merges.ok());
  EXPECT_NE(no_merges.status().message().find("merges.txt"), std::string::npos);
  fs::remove_all(dir);
}

TEST(EngineTokenizer, ConcurrentCallsAgree) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/tokenizer/vocab.json");
  const std::vector<std::string> texts = {"turn the sky red", "caf\xc3\xa9 na\xc3\xafve",
                                          "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "it's 1,000"};
  std::vector<std::vector<int64_t>> want;
  for (const auto& t : texts) want.push_back(Tok().Tokenize(t)->input_ids);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 200; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (Tok().Tokenize(texts[i])->input_ids != want[i]) ++mismatches[k];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace fairy::engine
