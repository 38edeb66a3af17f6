// The model parts as fairy-engine train uses them (the engine's CLIPTextModel and AutoencoderKL,
// loaded through the trainer's checkpoint functions) against the upstream goldens
// of ../shared/fixtures/pix2pix-tiny (same tolerance rule as the engine: max|a-b| <= 1e-5 + 3e-5
// max|b|), the tokenizer as the trainer uses it, and the weight save/load round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/test_paths.h"
#include "worker/engine/train/checkpoint.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/train/model_parts.h"
#include "worker/engine/vae.h"

namespace fairy::engine::train {
namespace {

using fairy::testing::TinyFixture;

nlohmann::json ParseJsonFile(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  double err = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
  double scale = b.abs().max().item<double>();
  EXPECT_LE(err, 1e-5 + 3e-5 * scale) << what << ": max abs error " << err;
}

TEST(TrainModels, VAEMatchesUpstreamGoldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/vae", "fixtures/pix2pix-tiny/golden/vae.safetensors");
  auto config =
      VAEConfig::FromJson(ParseJsonFile(TinyFixture() + "/vae/config.json"), "vae/config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  AutoencoderKL vae(*config);
  auto st = LoadModuleWeights(*vae, TinyFixture() + "/vae/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto golden = LoadTensors(TinyFixture() + "/golden/vae.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().ToString();
  torch::NoGradGuard no_grad;
  auto [mean, logvar] = vae->Encode(golden->at("vae.image"));
  ExpectClose(mean, golden->at("vae.latent_mean"), "latent_mean");
  ExpectClose(logvar, golden->at("vae.latent_logvar"), "latent_logvar");
  ExpectClose(vae->Decode(golden->at("vae.decode_input")), golden->at("vae.decode_out"), "decode_out");
}

TEST(TrainModels, TextEncoderMatchesUpstreamGoldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/text_encoder",
                       "fixtures/pix2pix-tiny/golden/text_encoder.safetensors");
  auto config = CLIPTextConfig::FromJson(ParseJsonFile(TinyFixture() + "/text_encoder/config.json"),
                                         "text_encoder/config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  CLIPTextModel te(*config);
  auto st = LoadModuleWeights(*te, TinyFixture() + "/text_encoder/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto golden = LoadTensors(TinyFixture() + "/golden/text_encoder.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().ToString();
  torch::NoGradGuard no_grad;
  ExpectClose(te->forward(golden->at("text.input_ids")), golden->at("text.last_hidden_state"), "last_hidden_state");
}

// The trainer tokenizes with the engine's CLIPTokenizer (ModelParts::TokenIds): the text
// encoder golden's prompts give its input_ids, and non-ASCII instructions are accepted.
TEST(TrainModels, TokenIdsAreTheEngineTokenizers) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/tokens.json");
  auto parts = ModelParts::Load(TinyFixture(), torch::kCPU, 1);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  auto golden = LoadTensors(TinyFixture() + "/golden/text_encoder.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().ToString();
  auto ids = parts->TokenIds({"turn the sky red", "make it look like a watercolor painting", ""});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_TRUE(torch::equal(*ids, golden->at("text.input_ids")));
  auto rows = ParseJsonFile(TinyFixture() + "/golden/tokens.json")["prompts"];
  std::vector<std::string> texts;
  for (const auto& row : rows) texts.push_back(row["text"]);
  auto all = parts->TokenIds(texts);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->sizes(), (std::vector<int64_t>{static_cast<int64_t>(texts.size()), 77}));
  for (size_t i = 0; i < texts.size(); ++i) {
    auto want = rows[i]["input_ids"].get<std::vector<int64_t>>();
    EXPECT_TRUE(torch::equal((*all)[static_cast<int64_t>(i)], torch::tensor(want, torch::kInt64)))
        << texts[i];
  }
  EXPECT_FALSE(parts->TokenIds({"caf\xc3"}).ok());  // invalid UTF-8
}

TEST(TrainModels, WeightsRoundTripAndMismatchesAreNamed) {
  VAEConfig config;
  config.block_out_channels = {8, 16};
  config.norm_num_groups = 4;
  AutoencoderKL a(config), b(config);
  std::string dir = fairy::testing::MakeTempDir("train_models");
  ASSERT_TRUE(SaveModuleWeights(*a, dir + "/vae.safetensors").ok());
  ASSERT_TRUE(LoadModuleWeights(*b, dir + "/vae.safetensors").ok());
  for (const auto& p : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()])) << p.key();
  }
  VAEConfig other = config;
  other.block_out_channels = {8, 32};
  AutoencoderKL c(other);
  auto st = LoadModuleWeights(*c, dir + "/vae.safetensors");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("mis-shaped"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("decoder.conv_in.weight"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace fairy::engine::train
