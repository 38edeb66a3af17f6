// The model parts as fairy-engine train uses them (the engine's CLIPTextModel and AutoencoderKL,
// loaded through the trainer's checkpoint functions) against the upstream goldens
// of ../shared/fixtures/pix2pix-tiny (same tolerance rule as the engine: max|a-b| <= 1e-5 + 3e-5
// max|b|), the instruction tokenizer, and the weight save/load round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/test_paths.h"
#include "worker/engine/train/checkpoint.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/train/text_model.h"
#include "worker/engine/vae.h"

namespace fairy::engine::train {
namespace {

std::string Fixture() { return fairy::testing::SharedDir() + "/fixtures/pix2pix-tiny"; }

nlohmann::json ReadJson(const std::string& path) {
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
  auto config = VAEConfig::FromJson(ReadJson(Fixture() + "/vae/config.json"), "vae/config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  AutoencoderKL vae(*config);
  auto st = LoadModuleWeights(*vae, Fixture() + "/vae/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto golden = LoadTensors(Fixture() + "/golden/vae.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().ToString();
  torch::NoGradGuard no_grad;
  auto [mean, logvar] = vae->Encode(golden->at("vae.image"));
  ExpectClose(mean, golden->at("vae.latent_mean"), "latent_mean");
  ExpectClose(logvar, golden->at("vae.latent_logvar"), "latent_logvar");
  ExpectClose(vae->Decode(golden->at("vae.decode_input")), golden->at("vae.decode_out"), "decode_out");
}

TEST(TrainModels, TextEncoderMatchesUpstreamGoldens) {
  auto config = CLIPTextConfig::FromJson(ReadJson(Fixture() + "/text_encoder/config.json"), "text_encoder/config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  CLIPTextModel te(*config);
  auto st = LoadModuleWeights(*te, Fixture() + "/text_encoder/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto golden = LoadTensors(Fixture() + "/golden/text_encoder.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().ToString();
  torch::NoGradGuard no_grad;
  ExpectClose(te->forward(golden->at("text.input_ids")), golden->at("text.last_hidden_state"), "last_hidden_state");
}

TEST(TrainModels, TokenizerMatchesUpstreamOnAsciiPrompts) {
  auto tok = InstructionTokenizer::Load(Fixture() + "/tokenizer");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto rows = ReadJson(Fixture() + "/golden/tokens.json")["prompts"];
  int checked = 0;
  for (const auto& row : rows) {
    std::string text = row["text"];
    bool ascii = std::all_of(text.begin(), text.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return u < 0x80 && (u >= 0x20 || c == ' ');
    });
    if (!ascii || text.find("<|") != std::string::npos) continue;
    auto ids = tok->Encode(text);
    ASSERT_TRUE(ids.ok()) << text << ": " << ids.status().ToString();
    EXPECT_EQ(*ids, row["input_ids"].get<std::vector<int64_t>>()) << text;
    ++checked;
  }
  EXPECT_GE(checked, 8);
  EXPECT_FALSE(tok->Encode("caf\xc3\xa9").ok());
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
