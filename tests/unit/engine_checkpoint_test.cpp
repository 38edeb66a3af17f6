// Checkpoint layouts: the pix2pix-tiny fixture's own weights rewritten as users hold them (an
// original-layout single file, a diffusers folder with pre-0.14 VAE attention names, an fp16
// variant) load and pass the same goldens; the original layout's key mapping against real SD 1.5
// key names; architecture inference; conversion; bad checkpoints.
//
// The original-layout writer here is this test's own, written from upstream's mapping in the
// other direction (diffusers -> original), so the engine's reader is checked against an
// independent implementation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "common/safetensors.h"
#include "tests/support/shell.h"
#include "tests/support/test_paths.h"
#include "worker/engine/convert.h"
#include "worker/engine/ldm_layout.h"
#include "worker/engine/model_source.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/unet.h"
#include "worker/engine/vae.h"
#include "worker/engine/verify/verifier.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

namespace fs = std::filesystem;

std::string Fixture() { return testing::SharedDir() + "/fixtures/pix2pix-tiny"; }

#define REQUIRE_FIXTURE() FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/manifest.json")

// A part folder's tensors (a failure is a test failure and an empty map).
TensorMap Part(const std::string& dir) {
  auto tensors = ReadPartFolder(dir);
  EXPECT_TRUE(tensors.ok()) << tensors.status().ToString();
  return tensors.ok() ? *tensors : TensorMap{};
}

// ---- The test's own diffusers -> original writer (upstream's convert_from_ckpt.py, reversed).

std::string ResnetToOriginal(std::string r) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"norm1", "in_layers.0"},          {"conv1", "in_layers.2"},
      {"norm2", "out_layers.0"},         {"conv2", "out_layers.3"},
      {"time_emb_proj", "emb_layers.1"}, {"conv_shortcut", "skip_connection"}};
  for (const auto& [from, to] : kNames) {
    if (r.rfind(std::string(from) + ".", 0) == 0) return to + r.substr(std::strlen(from));
  }
  ADD_FAILURE() << "no resnet rule for " << r;
  return r;
}

// Diffusers UNet key -> original key (without "model.diffusion_model."). `up_has_attention[b]`:
// up block b has attentions (its upsampler then sits at index 2).
std::string UNetToOriginal(const std::string& k, int L, const std::vector<bool>& up_has_attention) {
  std::smatch m;
  static const std::regex down_res(R"(down_blocks\.(\d+)\.resnets\.(\d+)\.(.*))");
  static const std::regex down_att(R"(down_blocks\.(\d+)\.attentions\.(\d+)\.(.*))");
  static const std::regex down_smp(R"(down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*))");
  static const std::regex up_res(R"(up_blocks\.(\d+)\.resnets\.(\d+)\.(.*))");
  static const std::regex up_att(R"(up_blocks\.(\d+)\.attentions\.(\d+)\.(.*))");
  static const std::regex up_smp(R"(up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*))");
  static const std::regex mid_res(R"(mid_block\.resnets\.(\d)\.(.*))");
  const auto n = [&](int i) { return std::stoi(m[i].str()); };
  if (std::regex_match(k, m, down_res)) {
    return "input_blocks." + std::to_string(1 + n(1) * (L + 1) + n(2)) + ".0." +
           ResnetToOriginal(m[3]);
  }
  if (std::regex_match(k, m, down_att)) {
    return "input_blocks." + std::to_string(1 + n(1) * (L + 1) + n(2)) + ".1." + m[3].str();
  }
  if (std::regex_match(k, m, down_smp))
    return "input_blocks." + std::to_string((n(1) + 1) * (L + 1)) + ".0.op." + m[2].str();
  if (std::regex_match(k, m, up_res)) {
    return "output_blocks." + std::to_string(n(1) * (L + 1) + n(2)) + ".0." +
           ResnetToOriginal(m[3]);
  }
  if (std::regex_match(k, m, up_att))
    return "output_blocks." + std::to_string(n(1) * (L + 1) + n(2)) + ".1." + m[3].str();
  if (std::regex_match(k, m, up_smp)) {
    return "output_blocks." + std::to_string(n(1) * (L + 1) + L) +
           (up_has_attention[n(1)] ? ".2" : ".1") + ".conv." + m[2].str();
  }
  if (std::regex_match(k, m, mid_res))
    return "middle_block." + std::to_string(2 * n(1)) + "." + ResnetToOriginal(m[2]);
  if (k.rfind("mid_block.attentions.0.", 0) == 0) return "middle_block.1." + k.substr(23);
  static const std::pair<const char*, const char*> kTop[] = {
      {"time_embedding.linear_1.", "time_embed.0."},
      {"time_embedding.linear_2.", "time_embed.2."},
      {"conv_in.", "input_blocks.0.0."},
      {"conv_norm_out.", "out.0."},
      {"conv_out.", "out.2."}};
  for (const auto& [from, to] : kTop) {
    if (k.rfind(from, 0) == 0) return to + k.substr(std::strlen(from));
  }
  ADD_FAILURE() << "no UNet rule for " << k;
  return k;
}

// Diffusers VAE key -> original key (without "first_stage_model."); `levels` decoder levels.
// Sets *conv_1x1 for attention weights stored as 1x1 convolutions in the original.
std::string VAEToOriginal(const std::string& k, int levels, bool* conv_1x1) {
  *conv_1x1 = false;
  std::smatch m;
  static const std::regex res(
      R"((encoder|decoder)\.(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.*))");
  static const std::regex smp(
      R"((encoder|decoder)\.(down|up)_blocks\.(\d+)\.(down|up)samplers\.0\.conv\.(.*))");
  static const std::regex mid_res(R"((encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*))");
  static const std::regex mid_att(
      R"((encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*))");
  static const std::regex norm_out(R"((encoder|decoder)\.conv_norm_out\.(.*))");
  const auto level = [&](const std::string& side, int i) {
    return side == "decoder" ? levels - 1 - i : i;
  };
  const auto shortcut = [](std::string r) {
    return r.rfind("conv_shortcut.", 0) == 0 ? "nin_shortcut." + r.substr(14) : r;
  };
  if (std::regex_match(k, m, res)) {
    return m[1].str() + "." + m[2].str() + "." + std::to_string(level(m[1], std::stoi(m[3]))) +
           ".block." + m[4].str() + "." + shortcut(m[5]);
  }
  if (std::regex_match(k, m, smp)) {
    return m[1].str() + "." + m[2].str() + "." + std::to_string(level(m[1], std::stoi(m[3]))) +
           "." + m[4].str() + "sample.conv." + m[5].str();
  }
  if (std::regex_match(k, m, mid_res)) {
    return m[1].str() + ".mid.block_" + std::to_string(std::stoi(m[2]) + 1) + "." + shortcut(m[3]);
  }
  if (std::regex_match(k, m, mid_att)) {
    static const std::map<std::string, std::string> kLeaf = {{"group_norm", "norm"},
                                                             {"to_q", "q"},
                                                             {"to_k", "k"},
                                                             {"to_v", "v"},
                                                             {"to_out.0", "proj_out"}};
    *conv_1x1 = m[2] != "group_norm" && m[3] == "weight";
    return m[1].str() + ".mid.attn_1." + kLeaf.at(m[2]) + "." + m[3].str();
  }
  if (std::regex_match(k, m, norm_out)) return m[1].str() + ".norm_out." + m[2].str();
  return k;  // conv_in, conv_out, quant_conv, post_quant_conv keep their names
}

struct Written {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<DType> dtypes;
  std::vector<std::vector<std::byte>> bytes;
  void Add(const std::string& name, const CheckpointTensor& t, std::vector<int64_t> shape) {
    names.push_back(name);
    shapes.push_back(std::move(shape));
    dtypes.push_back(t.info->dtype);
    auto data = t.file->Data(*t.info);
    bytes.emplace_back(data.begin(), data.end());
  }
  void AddRaw(const std::string& name, std::vector<int64_t> shape, std::vector<float> values) {
    names.push_back(name);
    shapes.push_back(std::move(shape));
    dtypes.push_back(DType::kF32);
    const auto* p = reinterpret_cast<const std::byte*>(values.data());
    bytes.emplace_back(p, p + values.size() * sizeof(float));
  }
  Status Write(const std::string& path) const {
    std::vector<TensorToWrite> out;
    for (size_t i = 0; i < names.size(); ++i)
      out.push_back({names[i], dtypes[i], shapes[i], bytes[i]});
    return WriteSafetensors(path, out);
  }
};

// The fixture's weights as one original-layout file, with the extras real files carry: an EMA
// copy of a UNet tensor, noise-schedule buffers, the text encoder's position_ids.
Written OriginalFromFolder(const std::string& dir) {
  Written w;
  auto unet_config = ReadJsonFile(dir + "/unet/config.json");
  EXPECT_TRUE(unet_config.ok());
  const int L = (*unet_config)["layers_per_block"].get<int>();
  std::vector<bool> up_has_attention;
  for (const auto& type : (*unet_config)["up_block_types"])
    up_has_attention.push_back(type == "CrossAttnUpBlock2D");
  const int vae_levels =
      static_cast<int>(ReadJsonFile(dir + "/vae/config.json").value()["block_out_channels"].size());
  for (const auto& [name, t] : Part(dir + "/unet")) {
    w.Add(kOriginalUNetPrefix + UNetToOriginal(name, L, up_has_attention), t, t.shape);
  }
  for (const auto& [name, t] : Part(dir + "/vae")) {
    bool conv = false;
    const std::string key = VAEToOriginal(name, vae_levels, &conv);
    std::vector<int64_t> shape = t.shape;
    if (conv) shape.insert(shape.end(), {1, 1});
    w.Add(kOriginalVAEPrefix + key, t, shape);
  }
  for (const auto& [name, t] : Part(dir + "/text_encoder")) {
    w.Add(kOriginalTextPrefix + name, t, t.shape);
  }
  w.AddRaw("betas", {4}, {0.1f, 0.2f, 0.3f, 0.4f});
  w.AddRaw("alphas_cumprod", {4}, {0.9f, 0.8f, 0.7f, 0.6f});
  return w;
}

// The goldens of every model part (the anchor and frame passes, which add no weights, left out
// for time); `pipeline` adds the whole InstructPix2Pix pipeline.
verify::VerifySummary Verify(const std::string& model, const std::string& config_dir = "",
                             bool pipeline = false) {
  verify::VerifyOptions options;
  options.fixture_dir = Fixture();
  options.only_kinds = {"tokenize",   "text_encoder",       "unet",          "vae_encode",
                        "vae_decode", "scheduler_schedule", "scheduler_step"};
  if (pipeline) options.only_kinds.push_back("pipeline");
  options.model = model;
  options.model_config_dir = config_dir;
  std::ostringstream report;
  auto summary = verify::RunVerify(options, report);
  EXPECT_TRUE(summary.ok()) << summary.status().ToString();
  if (!summary.ok()) return {};
  EXPECT_GE(summary->passed, pipeline ? 15 : 14) << report.str();
  EXPECT_EQ(summary->failed, 0) << report.str();
  return *summary;
}

// ---- Tests.

TEST(EngineCheckpointTest, OriginalSingleFilePassesTheGoldens) {
  REQUIRE_FIXTURE();
  const std::string file = testing::MakeTempDir("ckpt") + "/ip2p.safetensors";
  ASSERT_TRUE(OriginalFromFolder(Fixture()).Write(file).ok());
  auto source = ModelSource::Open(file, {.config_dir = Fixture()});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ(source->layout, ModelSource::Layout::kSingleFile);
  bool noted = false;
  for (const auto& note : source->notes)
    noted = noted || note.find("ignored 2 tensors") != std::string::npos;
  EXPECT_TRUE(noted) << "the schedule buffers are reported as ignored";
  Verify(file, Fixture(), /*pipeline=*/true);
}

TEST(EngineCheckpointTest, ConvertWritesTheFixtureBackByteForByte) {
  REQUIRE_FIXTURE();
  const std::string tmp = testing::MakeTempDir("ckpt");
  const std::string file = tmp + "/ip2p.safetensors";
  ASSERT_TRUE(OriginalFromFolder(Fixture()).Write(file).ok());
  auto source = ModelSource::Open(file, {.config_dir = Fixture()});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  const std::string out = tmp + "/converted";
  Status st = WriteDiffusersFolder(*source, out);
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (const char* part : {"unet", "vae", "text_encoder"}) {
    const TensorMap original = Part(Fixture() + "/" + part);
    const TensorMap converted = Part(out + "/" + part);
    ASSERT_EQ(original.size(), converted.size()) << part;
    for (const auto& [name, t] : original) {
      ASSERT_TRUE(converted.count(name)) << part << ": " << name;
      const CheckpointTensor& c = converted.at(name);
      EXPECT_EQ(c.shape, t.shape) << name;
      auto a = t.file->Data(*t.info);
      auto b = c.file->Data(*c.info);
      EXPECT_TRUE(a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin())) << name;
    }
  }
  Verify(out);
  EXPECT_EQ(WriteDiffusersFolder(*source, out).code(), Status::Code::kFailedPrecondition)
      << "OUT exists";
}

TEST(EngineCheckpointTest, DeprecatedVAEAttentionNamesLoadAsUpstream) {
  REQUIRE_FIXTURE();
  const std::string dir = testing::MakeTempDir("ckpt") + "/old-names";
  fs::copy(Fixture(), dir, fs::copy_options::recursive);
  fs::remove_all(dir + "/golden");
  Written w;
  int renamed = 0;
  for (const auto& [name, t] : Part(Fixture() + "/vae")) {
    std::string old = name;
    for (auto [from, to] :
         {std::pair{".to_q.", ".query."}, std::pair{".to_k.", ".key."},
          std::pair{".to_v.", ".value."}, std::pair{".to_out.0.", ".proj_attn."}}) {
      if (const size_t at = old.find(from);
          at != std::string::npos && old.find("mid_block.attentions") != std::string::npos) {
        old.replace(at, std::strlen(from), to);
        ++renamed;
      }
    }
    w.Add(old, t, t.shape);
  }
  ASSERT_EQ(renamed, 16) << "the fixture's two mid-block attentions, 8 tensors each";
  ASSERT_TRUE(w.Write(dir + "/vae/diffusion_pytorch_model.safetensors").ok());
  auto source = ModelSource::Open(dir);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  ASSERT_FALSE(source->notes.empty());
  EXPECT_NE(source->notes[0].find("16 attention tensors"), std::string::npos) << source->notes[0];
  Verify(dir);
}

TEST(EngineCheckpointTest, Fp16VariantIsFoundAndConvertedToTheWorkingDtype) {
  REQUIRE_FIXTURE();
  const std::string tmp = testing::MakeTempDir("ckpt");
  auto source = ModelSource::Open(Fixture());
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(WriteDiffusersFolder(*source, tmp + "/half", {.dtype = torch::kFloat16}).ok());
  for (const auto& [part, file] :
       {std::pair{"unet", "diffusion_pytorch_model"}, std::pair{"vae", "diffusion_pytorch_model"},
        std::pair{"text_encoder", "model"}}) {
    const std::string base = tmp + "/half/" + part + "/" + file;
    fs::rename(base + ".safetensors", base + ".fp16.safetensors");
  }
  auto half = ModelSource::Open(tmp + "/half");
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  EXPECT_EQ(half->unet.tensors.begin()->second.info->dtype, DType::kF16);
  EXPECT_TRUE(ModelSource::Open(tmp + "/half", {.variant = "fp16"}).ok());
  auto wrong = ModelSource::Open(Fixture(), {.variant = "fp16"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("no weights of variant \"fp16\""), std::string::npos)
      << wrong.status().ToString();
  // Loaded into float32: the fp16-rounded weights of the fixture.
  auto unet = LoadUNet(UNetConfig::FromJson(half->unet.config, "unet").value(), half->unet.tensors,
                       "unet", torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(unet.ok()) << unet.status().ToString();
  const CheckpointTensor& conv_in = source->unet.tensors.at("conv_in.weight");
  torch::Tensor expected =
      TensorFromSafetensors(*conv_in.file, *conv_in.info).to(torch::kFloat16).to(torch::kFloat32);
  EXPECT_TRUE(torch::equal((*unet)->named_parameters()["conv_in.weight"], expected));
}

// Real Stable Diffusion 1.5 key names (v1-5-pruned, layers_per_block 2, 4 levels) and where
// diffusers puts them.
TEST(EngineCheckpointTest, OriginalKeysOfSD15MapAsUpstream) {
  const std::vector<std::pair<std::string, std::string>> kPairs = {
      {"model.diffusion_model.time_embed.2.bias", "time_embedding.linear_2.bias"},
      {"model.diffusion_model.input_blocks.0.0.weight", "conv_in.weight"},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
       "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"},
      {"model.diffusion_model.input_blocks.3.0.op.weight",
       "down_blocks.0.downsamplers.0.conv.weight"},
      {"model.diffusion_model.input_blocks.4.0.skip_connection.weight",
       "down_blocks.1.resnets.0.conv_shortcut.weight"},
      {"model.diffusion_model.input_blocks.8.1.proj_out.bias",
       "down_blocks.2.attentions.1.proj_out.bias"},
      {"model.diffusion_model.input_blocks.11.0.emb_layers.1.weight",
       "down_blocks.3.resnets.1.time_emb_proj.weight"},
      {"model.diffusion_model.middle_block.0.in_layers.0.weight",
       "mid_block.resnets.0.norm1.weight"},
      {"model.diffusion_model.middle_block.1.norm.weight", "mid_block.attentions.0.norm.weight"},
      {"model.diffusion_model.middle_block.2.out_layers.3.weight",
       "mid_block.resnets.1.conv2.weight"},
      {"model.diffusion_model.output_blocks.2.1.conv.weight",
       "up_blocks.0.upsamplers.0.conv.weight"},
      {"model.diffusion_model.output_blocks.5.1.transformer_blocks.0.ff.net.0.proj.weight",
       "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj.weight"},
      {"model.diffusion_model.output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"},
      {"model.diffusion_model.output_blocks.11.0.in_layers.2.weight",
       "up_blocks.3.resnets.2.conv1.weight"},
      {"model.diffusion_model.out.2.weight", "conv_out.weight"},
      {"first_stage_model.encoder.norm_out.weight", "encoder.conv_norm_out.weight"},
      {"first_stage_model.encoder.down.1.block.0.nin_shortcut.weight",
       "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"},
      {"first_stage_model.encoder.down.2.downsample.conv.bias",
       "encoder.down_blocks.2.downsamplers.0.conv.bias"},
      {"first_stage_model.encoder.mid.attn_1.proj_out.weight",
       "encoder.mid_block.attentions.0.to_out.0.weight"},
      {"first_stage_model.decoder.mid.attn_1.norm.bias",
       "decoder.mid_block.attentions.0.group_norm.bias"},
      {"first_stage_model.decoder.mid.block_2.conv1.weight",
       "decoder.mid_block.resnets.1.conv1.weight"},
      {"first_stage_model.decoder.up.3.block.0.conv1.weight",
       "decoder.up_blocks.0.resnets.0.conv1.weight"},
      {"first_stage_model.decoder.up.1.upsample.conv.weight",
       "decoder.up_blocks.2.upsamplers.0.conv.weight"},
      {"first_stage_model.post_quant_conv.weight", "post_quant_conv.weight"},
      {"cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias",
       "text_model.encoder.layers.11.mlp.fc2.bias"},
  };
  Written w;
  for (const auto& [key, name] : kPairs) {
    const bool conv_attention = key.find("attn_1.proj_out.weight") != std::string::npos;
    w.AddRaw(key, conv_attention ? std::vector<int64_t>{1, 1, 1, 1} : std::vector<int64_t>{1},
             {0.5f});
  }
  w.AddRaw("first_stage_model.decoder.up.0.block.0.conv1.weight", {1}, {0.5f});
  w.AddRaw("model_ema.decay", {1}, {0.9999f});
  const std::string path = testing::MakeTempDir("ckpt") + "/sd15-keys.safetensors";
  ASSERT_TRUE(w.Write(path).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  auto parts = MapOriginalLayout(*file, /*layers_per_block=*/2);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  for (const auto& [key, name] : kPairs) {
    const TensorMap& part = key.rfind("model.", 0) == 0        ? parts->unet
                            : key.rfind("first_stage", 0) == 0 ? parts->vae
                                                               : parts->text_encoder;
    ASSERT_TRUE(part.count(name)) << key << " -> " << name;
    EXPECT_EQ(part.at(name).stored_name, key);
  }
  EXPECT_EQ(parts->vae.at("encoder.mid_block.attentions.0.to_out.0.weight").shape,
            (std::vector<int64_t>{1, 1}))
      << "a 1x1 convolution is read as a linear weight";
}

// An SD 1.x-shaped model (32 norm groups, 8 heads, 64-wide CLIP heads) at toy size: its original
// file's architecture is inferred exactly.
TEST(EngineCheckpointTest, ArchitectureIsInferredFromTheShapes) {
  REQUIRE_FIXTURE();
  const std::string tmp = testing::MakeTempDir("ckpt");
  const std::string dir = tmp + "/sd1x-toy";
  fs::copy(Fixture(), dir, fs::copy_options::recursive);
  fs::remove_all(dir + "/golden");
  nlohmann::json unet = ReadJsonFile(dir + "/unet/config.json").value();
  unet["block_out_channels"] = {32, 64};
  unet["down_block_types"] = {"CrossAttnDownBlock2D", "DownBlock2D"};
  unet["up_block_types"] = {"UpBlock2D", "CrossAttnUpBlock2D"};
  unet["norm_num_groups"] = 32;
  unet["layers_per_block"] = 2;
  unet["cross_attention_dim"] = 64;
  nlohmann::json vae = ReadJsonFile(dir + "/vae/config.json").value();
  vae["norm_num_groups"] = 32;
  nlohmann::json text = ReadJsonFile(dir + "/text_encoder/config.json").value();
  text["hidden_size"] = 64;
  text["num_attention_heads"] = 1;
  text["num_hidden_layers"] = 3;
  // Random weights for these configs, written as a diffusers folder, then as one original file.
  torch::manual_seed(7);
  UNet u(UNetConfig::FromJson(unet, "unet").value());
  AutoencoderKL v(VAEConfig::FromJson(vae, "vae").value());
  CLIPTextModel t(CLIPTextConfig::FromJson(text, "text").value());
  for (auto [module, part, file, config] :
       {std::tuple{static_cast<torch::nn::Module*>(u.get()), "unet", "diffusion_pytorch_model",
                   &unet},
        std::tuple{static_cast<torch::nn::Module*>(v.get()), "vae", "diffusion_pytorch_model",
                   &vae},
        std::tuple{static_cast<torch::nn::Module*>(t.get()), "text_encoder", "model", &text}}) {
    std::vector<torch::Tensor> keep;
    std::vector<TensorToWrite> out;
    for (const auto& p : module->named_parameters()) {
      keep.push_back(p.value().detach().contiguous());
      out.push_back(
          {p.key(), DType::kF32, keep.back().sizes().vec(),
           std::span<const std::byte>(static_cast<const std::byte*>(keep.back().data_ptr()),
                                      keep.back().nbytes())});
    }
    ASSERT_TRUE(WriteSafetensors(dir + "/" + part + "/" + file + ".safetensors", out).ok());
    std::ofstream(dir + "/" + part + "/config.json") << config->dump(2);
  }
  const std::string file = tmp + "/toy.safetensors";
  ASSERT_TRUE(OriginalFromFolder(dir).Write(file).ok());
  auto source = ModelSource::Open(file);  // no --config: inferred
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  for (const char* key :
       {"block_out_channels", "down_block_types", "up_block_types", "layers_per_block",
        "cross_attention_dim", "in_channels", "out_channels", "norm_num_groups"}) {
    EXPECT_EQ(source->unet.config[key], unet[key]) << "unet " << key;
  }
  for (const char* key :
       {"block_out_channels", "latent_channels", "layers_per_block", "norm_num_groups"}) {
    EXPECT_EQ(source->vae.config[key], vae[key]) << "vae " << key;
  }
  for (const char* key :
       {"hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size"}) {
    EXPECT_EQ(source->text_encoder.config[key], text[key]) << "text_encoder " << key;
  }
  EXPECT_EQ(source->tokenizer.dir, "(built-in CLIP tokenizer)");
  Status checked = CheckModelSource(*source);
  EXPECT_TRUE(checked.ok()) << checked.ToString();
}

// ---- Bad checkpoints: one clear error naming the file and the first offending tensors; nothing
// written.

TEST(EngineCheckpointTest, BadSingleFilesNameTheFileAndTensorAndWriteNothing) {
  REQUIRE_FIXTURE();
  const std::string tmp = testing::MakeTempDir("ckpt");
  const auto expect_error = [&](Written w, const std::string& what, const std::string& needle) {
    const std::string file = tmp + "/" + what + ".safetensors";
    ASSERT_TRUE(w.Write(file).ok());
    const std::string out = tmp + "/" + what + "-out";
    Status st;
    auto source = ModelSource::Open(file, {.config_dir = Fixture()});
    st = source.ok() ? WriteDiffusersFolder(*source, out) : source.status();
    ASSERT_FALSE(st.ok()) << what;
    EXPECT_NE(st.message().find(file), std::string::npos) << what << ": " << st.ToString();
    EXPECT_NE(st.message().find(needle), std::string::npos) << what << ": " << st.ToString();
    EXPECT_FALSE(fs::exists(out)) << what;
    for (const auto& entry : fs::directory_iterator(tmp)) {
      EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos)
          << entry.path();
    }
  };
  Written good = OriginalFromFolder(Fixture());
  {
    Written w = good;  // a UNet tensor dropped
    const auto it = std::find(w.names.begin(), w.names.end(), "model.diffusion_model.out.2.weight");
    ASSERT_NE(it, w.names.end());
    const size_t i = it - w.names.begin();
    w.names.erase(w.names.begin() + i);
    w.shapes.erase(w.shapes.begin() + i);
    w.dtypes.erase(w.dtypes.begin() + i);
    w.bytes.erase(w.bytes.begin() + i);
    expect_error(w, "missing", "1 missing: conv_out.weight");
  }
  {
    Written w = good;
    w.AddRaw("model.diffusion_model.input_blocks.1.7.weight", {1}, {1.0f});
    expect_error(w, "unknown",
                 "tensors of no known original-layout block (layers_per_block 1): "
                 "model.diffusion_model.input_blocks.1.7.weight");
  }
  {
    Written w = good;  // a block the configs do not have
    w.AddRaw("first_stage_model.encoder.down.0.block.5.conv1.weight", {1}, {1.0f});
    expect_error(w, "extra", "1 unexpected: first_stage_model.encoder.down.0.block.5.conv1.weight");
  }
  {
    Written w = good;
    const size_t i = std::find(w.names.begin(), w.names.end(), "model.diffusion_model.out.2.bias") -
                     w.names.begin();
    ASSERT_LT(i, w.names.size());
    w.shapes[i] = {2, 2};
    expect_error(w, "misshaped", "mis-shaped: conv_out.bias (checkpoint [2, 2], model [4])");
  }
  // A truncated file and a header that lies about an offset.
  const std::string good_file = tmp + "/good.safetensors";
  ASSERT_TRUE(good.Write(good_file).ok());
  const std::string truncated = tmp + "/truncated.safetensors";
  fs::copy_file(good_file, truncated);
  fs::resize_file(truncated, fs::file_size(truncated) - 100);
  auto t = ModelSource::Open(truncated);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(truncated), std::string::npos) << t.status().ToString();
  std::string bytes;
  {
    std::ifstream in(good_file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = bytes.find("\"data_offsets\":[0,");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 18, "\"data_offsets\":[9,");
  const std::string lying = tmp + "/lying.safetensors";
  std::ofstream(lying, std::ios::binary) << bytes;
  auto l = ModelSource::Open(lying);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find(lying), std::string::npos) << l.status().ToString();
}

TEST(EngineCheckpointTest, PickledCheckpointsAreRefusedWithTheConvertCommand) {
  const std::string tmp = testing::MakeTempDir("ckpt");
  const std::string ckpt = tmp + "/instruct-pix2pix-00-22000.ckpt";
  std::ofstream(ckpt) << "not read";
  auto source = ModelSource::Open(ckpt);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), Status::Code::kUnsupported);
  const std::string& m = source.status().message();
  EXPECT_NE(m.find("weights_only=True"), std::string::npos) << m;
  EXPECT_NE(m.find("fairy-engine convert " + tmp + "/instruct-pix2pix-00-22000.safetensors"),
            std::string::npos)
      << m;
  fs::create_directories(tmp + "/folder/unet");
  std::ofstream(tmp + "/folder/unet/diffusion_pytorch_model.bin") << "not read";
  auto files = FindWeightFiles(tmp + "/folder/unet");
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.status().message().find("unet/diffusion_pytorch_model.safetensors')"),
            std::string::npos)
      << files.status().ToString();
}

// The command line: `info` and `convert` on a single file, and `edit` with the single file as
// --model gives the same frames as with the folder it came from.
TEST(EngineCheckpointTest, CommandLineInfoConvertAndEditWithASingleFile) {
  REQUIRE_FIXTURE();
  FAIRY_REQUIRE_SHARED("media/sony_good_quality.dv");
  const std::string clip = testing::MediaPath("sony_good_quality.dv");  // 5 frames
  const std::string tmp = testing::MakeTempDir("ckpt_cli");
  const std::string file = tmp + "/ip2p.safetensors";
  ASSERT_TRUE(OriginalFromFolder(Fixture()).Write(file).ok());
  const std::string engine = testing::ShellQuote(testing::BinDir() + "/fairy-engine");
  const auto run = [&](const std::string& args) {
    return testing::RunShell(engine + " " + args + " 2>&1");
  };

  testing::ShellResult info = run("info " + file + " --config " + Fixture());
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("layout: original single file"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("in_channels 8: an InstructPix2Pix UNet"), std::string::npos)
      << info.output;
  EXPECT_NE(info.output.find("loads: yes"), std::string::npos) << info.output;
  testing::ShellResult inferred = run("info " + file);  // the tiny model is not SD 1.x-shaped
  EXPECT_EQ(inferred.exit_code, 2) << inferred.output;
  EXPECT_NE(inferred.output.find("not a multiple of CLIP's 64-wide heads; pass --config"),
            std::string::npos)
      << inferred.output;

  testing::ShellResult convert = run("convert " + file + " --config " + Fixture() + " --output " +
                                     tmp + "/converted --dtype bfloat16");
  ASSERT_EQ(convert.exit_code, 0) << convert.output;
  EXPECT_NE(convert.output.find("wrote " + tmp + "/converted"), std::string::npos)
      << convert.output;
  auto converted = ModelSource::Open(tmp + "/converted");
  ASSERT_TRUE(converted.ok()) << converted.status().ToString();
  EXPECT_EQ(converted->unet.tensors.at("conv_in.weight").info->dtype, DType::kBF16);
  testing::ShellResult again =
      run("convert " + file + " --config " + Fixture() + " --output " + tmp + "/converted");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;

  const auto edit = [&](const std::string& model, const std::string& out) {
    return run("edit --model " + model + " --input " + clip + " --output " + out +
               " --instruction 'make it sepia' --steps 1 --resolution 32 --no-progress --crf 0");
  };
  const std::string from_file = tmp + "/file.mkv", from_folder = tmp + "/folder.mkv";
  ASSERT_EQ(edit(file + " --config " + Fixture(), from_file).exit_code, 0);
  ASSERT_EQ(edit(Fixture(), from_folder).exit_code, 0);
  const auto md5 = [](const std::string& path) {
    return testing::RunShell("ffmpeg -v error -i " + testing::ShellQuote(path) +
                             " -f framemd5 - | grep -v '^#'")
        .output;
  };
  const std::string a = md5(from_file);
  EXPECT_GT(a.size(), 100u);
  EXPECT_EQ(a, md5(from_folder)) << "the same weights in another layout give the same frames";
}

}  // namespace
}  // namespace fairy::engine
