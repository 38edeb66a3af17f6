// Engine models: the CLIP text encoder and AutoencoderKL against the pix2pix-tiny goldens through
// the library API and through the verifier, and bad model folders (missing folder, missing or
// unsupported config values, mis-shaped and truncated weights).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "common/safetensors.h"
#include "tests/support/test_paths.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/vae.h"
#include "worker/engine/verify/verifier.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

namespace fs = std::filesystem;

using testing::TinyFixture;

std::map<std::string, torch::Tensor> Golden(const std::string& name) {
  auto file = SafetensorsFile::Open(TinyFixture() + "/golden/" + name);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  std::map<std::string, torch::Tensor> out;
  if (!file.ok()) return out;
  for (const TensorInfo& info : (*file)->tensors())
    out[info.name] = TensorFromSafetensors(**file, info);
  return out;
}

// The manifest's rule: max|a-b| <= 1e-5 + 3e-5 max|b|.
void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_TRUE(b.defined()) << what << ": no golden tensor";
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, 1e-5 + 3e-5 * scale) << what << ": max abs error " << err;
}

// A copy of the fixture's model part `part` ("vae", "text_encoder") in a temp folder, its
// config.json edited by `edit`.
std::string CopyPart(const std::string& part, const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = testing::MakeTempDir("engine_models") + "/" + part;
  fs::copy(TinyFixture() + "/" + part, dir, fs::copy_options::recursive);
  auto json = ReadJsonFile(dir + "/config.json");
  EXPECT_TRUE(json.ok());
  edit(*json);
  std::ofstream(dir + "/config.json") << json->dump(2);
  return dir;
}

bool Contains(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST(EngineModelsTextEncoder, MatchesUpstreamGoldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/text_encoder.safetensors");
  auto model = LoadCLIPTextModel(TinyFixture() + "/text_encoder", torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto golden = Golden("text_encoder.safetensors");
  c10::InferenceMode guard;
  TextEncoderOutput out = (*model)->Forward(golden["text.input_ids"], /*keep_hidden_states=*/true);
  ExpectClose(out.last_hidden_state, golden["text.last_hidden_state"], "last_hidden_state");
  ExpectClose(out.pooler_output, golden["text.pooler_output"], "pooler_output");
  ASSERT_EQ(out.hidden_states.size(), 3u);
  for (size_t i = 0; i < out.hidden_states.size(); ++i) {
    ExpectClose(out.hidden_states[i], golden["text.hidden_states." + std::to_string(i)],
                "hidden_states." + std::to_string(i));
  }
  EXPECT_TRUE(torch::equal((*model)->forward(golden["text.input_ids"]), out.last_hidden_state));
}

TEST(EngineModelsTextEncoder, Float64MatchesTheFloat32Goldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/text_encoder.safetensors");
  auto model = LoadCLIPTextModel(TinyFixture() + "/text_encoder", torch::kCPU, torch::kFloat64);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto golden = Golden("text_encoder.safetensors");
  c10::InferenceMode guard;
  auto out = (*model)->forward(golden["text.input_ids"]);
  EXPECT_EQ(out.scalar_type(), torch::kFloat64);
  ExpectClose(out, golden["text.last_hidden_state"], "last_hidden_state (float64)");
}

// bfloat16 end to end (LayerNorm, GroupNorm, attention, nearest upsampling in the activation
// dtype): within bfloat16's precision of the float32 goldens. The error depends on the CPU's
// kernels: max relative ~2.5% where LibTorch has AVX-512 kernels, up to 13% (VAE encode; RMS 2%
// of the largest value) on an AVX2-only CPU (11-29). Garbage (a wrong dtype or layer) is >= 100%.
TEST(EngineModelsHalf, BFloat16StaysWithinItsPrecision) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/vae.safetensors");
  auto text = LoadCLIPTextModel(TinyFixture() + "/text_encoder", torch::kCPU, torch::kBFloat16);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  auto vae = LoadAutoencoderKL(TinyFixture() + "/vae", torch::kCPU, torch::kBFloat16);
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  auto te = Golden("text_encoder.safetensors");
  auto v = Golden("vae.safetensors");
  c10::InferenceMode guard;
  auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    EXPECT_EQ(a.scalar_type(), torch::kBFloat16);
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>() /
           b.abs().max().item<double>();
  };
  const double bound = 0.2;
  EXPECT_LT(relative((*text)->forward(te["text.input_ids"]), te["text.last_hidden_state"]), bound);
  EXPECT_LT(
      relative((*vae)->Encode(v["vae.image"].to(torch::kBFloat16)).first, v["vae.latent_mean"]),
      bound);
  EXPECT_LT(
      relative((*vae)->Decode(v["vae.decode_input"].to(torch::kBFloat16)), v["vae.decode_out"]),
      bound);
}

TEST(EngineModelsTextEncoder, PoolerPositionFollowsEosTokenId) {
  CLIPTextConfig config;
  config.hidden_size = 8;
  config.intermediate_size = 16;
  config.num_attention_heads = 2;
  config.num_hidden_layers = 1;
  auto ids = torch::tensor({49406, 300, 49407, 2, 49407}, torch::kInt64).unsqueeze(0);
  c10::InferenceMode guard;
  config.eos_token_id = 300;  // first position where ids == 300
  CLIPTextModel by_id(config);
  auto out = by_id->Forward(ids);
  EXPECT_TRUE(out.hidden_states.empty());
  EXPECT_TRUE(torch::equal(out.pooler_output, out.last_hidden_state.select(1, 1)));
  config.eos_token_id = 2;  // legacy: the position of the largest id, not of id 2
  CLIPTextModel legacy(config);
  out = legacy->Forward(ids);
  EXPECT_TRUE(torch::equal(out.pooler_output, out.last_hidden_state.select(1, 2)));
}

TEST(EngineModelsVAE, EncodeAndDecodeMatchUpstreamGoldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/vae.safetensors");
  auto vae = LoadAutoencoderKL(TinyFixture() + "/vae", torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  EXPECT_EQ((*vae)->config().ScaleFactor(), 2);
  auto golden = Golden("vae.safetensors");
  c10::InferenceMode guard;
  std::map<std::string, torch::Tensor> debug;
  auto [mean, logvar] = (*vae)->Encode(golden["vae.image"], &debug);
  ExpectClose(mean, golden["vae.latent_mean"], "latent_mean");
  ExpectClose(logvar, golden["vae.latent_logvar"], "latent_logvar");
  ExpectClose(torch::exp(0.5 * logvar), golden["vae.latent_std"], "latent_std");
  ExpectClose(debug["encoder.mid_block"], golden["vae.debug.encoder.mid_block"],
              "encoder.mid_block");
  auto sample = (*vae)->Decode(golden["vae.decode_input"], &debug);
  ExpectClose(sample, golden["vae.decode_out"], "decode_out");
  ExpectClose(debug["decoder.mid_block"], golden["vae.debug.decoder.mid_block"],
              "decoder.mid_block");
}

TEST(EngineModelsVerify, ModelKindsPassThroughTheVerifier) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/manifest.json");
  verify::VerifyOptions options;
  options.fixture_dir = TinyFixture();
  options.only_kinds = {"text_encoder", "vae_encode", "vae_decode"};
  std::ostringstream report;
  auto summary = verify::RunVerify(options, report);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->failed, 0) << report.str();
  EXPECT_EQ(summary->passed, 3) << report.str();
  EXPECT_EQ(report.str().find("debug not produced"), std::string::npos) << report.str();
  EXPECT_NE(report.str().find("decoder.mid_block"), std::string::npos) << report.str();
}

TEST(EngineModelsConfig, RoundTripsThroughJson) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/text_encoder/config.json");
  auto text = CLIPTextConfig::Load(TinyFixture() + "/text_encoder/config.json");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  auto text2 = CLIPTextConfig::FromJson(text->ToJson(), "text");
  ASSERT_TRUE(text2.ok()) << text2.status().ToString();
  EXPECT_EQ(text2->ToJson(), text->ToJson());
  EXPECT_EQ(text->intermediate_size, 37);
  auto vae = VAEConfig::Load(TinyFixture() + "/vae/config.json");
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  auto vae2 = VAEConfig::FromJson(vae->ToJson(), "vae");
  ASSERT_TRUE(vae2.ok()) << vae2.status().ToString();
  EXPECT_EQ(vae2->ToJson(), vae->ToJson());
  EXPECT_EQ(vae->norm_num_groups, 8);
}

TEST(EngineModelsBadInput, MissingFolderIsNotFound) {
  auto text = LoadCLIPTextModel("/nonexistent/text_encoder", torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(Contains(text.status(), "/nonexistent/text_encoder/config.json"))
      << text.status().ToString();
  auto vae = LoadAutoencoderKL("/nonexistent/vae", torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(vae.ok());
  EXPECT_EQ(vae.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(Contains(vae.status(), "/nonexistent/vae/config.json")) << vae.status().ToString();
}

TEST(EngineModelsBadInput, ConfigErrorsNameFileAndKey) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/text_encoder");
  std::string dir = CopyPart("text_encoder", [](nlohmann::json& j) { j.erase("hidden_size"); });
  auto r = LoadCLIPTextModel(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status(), dir + "/config.json") && Contains(r.status(), "\"hidden_size\""))
      << r.status().ToString();

  dir = CopyPart("text_encoder", [](nlohmann::json& j) { j["hidden_act"] = "relu"; });
  r = LoadCLIPTextModel(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
  EXPECT_TRUE(Contains(r.status(), dir + "/config.json") &&
              Contains(r.status(), "\"hidden_act\"") && Contains(r.status(), "relu"))
      << r.status().ToString();

  dir = CopyPart("vae",
                 [](nlohmann::json& j) { j["down_block_types"][1] = "AttnDownEncoderBlock2D"; });
  auto v = LoadAutoencoderKL(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kUnsupported);
  EXPECT_TRUE(Contains(v.status(), dir + "/config.json") &&
              Contains(v.status(), "\"down_block_types\"") &&
              Contains(v.status(), "AttnDownEncoderBlock2D"))
      << v.status().ToString();

  dir = CopyPart("vae", [](nlohmann::json& j) { j["act_fn"] = "gelu"; });
  v = LoadAutoencoderKL(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(Contains(v.status(), "\"act_fn\"")) << v.status().ToString();

  dir = CopyPart("vae", [](nlohmann::json& j) { j["block_out_channels"] = "wide"; });
  v = LoadAutoencoderKL(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Contains(v.status(), "\"block_out_channels\"") && Contains(v.status(), "wide"))
      << v.status().ToString();
}

TEST(EngineModelsBadInput, MisshapedWeightsAreReportedByName) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/text_encoder");
  std::string dir =
      CopyPart("text_encoder", [](nlohmann::json& j) { j["intermediate_size"] = 40; });
  auto r = LoadCLIPTextModel(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status(), "text_model.encoder.layers.0.mlp.fc1.weight") &&
              Contains(r.status(), "[37, 32]") && Contains(r.status(), "[40, 32]"))
      << r.status().ToString();

  dir = CopyPart("vae", [](nlohmann::json& j) { j["latent_channels"] = 8; });
  auto v = LoadAutoencoderKL(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(Contains(v.status(), "quant_conv.weight") && Contains(v.status(), dir))
      << v.status().ToString();
}

TEST(EngineModelsBadInput, TruncatedWeightsAreRefusedWithTheFileName) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/vae");
  const std::string dir = CopyPart("vae", [](nlohmann::json&) {});
  const std::string path = dir + "/diffusion_pytorch_model.safetensors";
  const auto size = fs::file_size(path);
  fs::resize_file(path, size / 2);
  auto v = LoadAutoencoderKL(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(Contains(v.status(), path)) << v.status().ToString();
}

// The model folder checked in for demos, saved by fairy-engine train: same state_dict names.
TEST(EngineModelsRepoModel, FairyTinyLoads) {
  const std::string dir = testing::SourceDir() + "/models/fairy-tiny";
  auto text = LoadCLIPTextModel(dir + "/text_encoder", torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  auto vae = LoadAutoencoderKL(dir + "/vae", torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  c10::InferenceMode guard;
  auto emb = (*text)->forward(torch::full({1, 77}, 49407, torch::kInt64));
  EXPECT_TRUE(torch::isfinite(emb).all().item<bool>());
  const int64_t f = (*vae)->config().ScaleFactor();
  auto image = torch::zeros({1, 3, 4 * f, 4 * f});
  auto mean = (*vae)->Encode(image).first;
  EXPECT_EQ(mean.size(2), 4);
  EXPECT_EQ((*vae)->Decode(mean).sizes(), image.sizes());
}

}  // namespace
}  // namespace fairy::engine
