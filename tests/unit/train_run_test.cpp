// fairy-engine train end to end on a micro model: the loss decreases, the checkpoint is a model
// folder the engine's UNet loader reads back to bit-identical outputs, and an interrupted run
// resumed from its training_state ends with the same weights as an uninterrupted one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "tests/support/shell.h"
#include "tests/support/test_paths.h"
#include "worker/engine/train/checkpoint.h"
#include "worker/engine/train/model_parts.h"
#include "worker/engine/train/train_utils.h"
#include "worker/engine/train/trainer.h"
#include "worker/engine/train/triple_folder.h"
#include "worker/engine/unet.h"

namespace fairy::engine::train {
namespace {

namespace fs = std::filesystem;

// A micro InstructPix2Pix configuration (every part a few thousand parameters plus the vocabulary).
std::string WriteMicroConfig(const std::string& dir) {
  for (const char* sub : {"unet", "vae", "text_encoder", "scheduler"}) fs::create_directories(fs::path(dir) / sub);
  nlohmann::json unet = {{"_class_name", "UNet2DConditionModel"}, {"attention_head_dim", 2},
                         {"block_out_channels", {8, 16}}, {"cross_attention_dim", 8},
                         {"down_block_types", {"DownBlock2D", "CrossAttnDownBlock2D"}},
                         {"up_block_types", {"CrossAttnUpBlock2D", "UpBlock2D"}}, {"in_channels", 8},
                         {"out_channels", 4}, {"layers_per_block", 1}, {"norm_num_groups", 4}, {"sample_size", 8}};
  VAEConfig vae;
  vae.block_out_channels = {8, 8};
  vae.norm_num_groups = 4;
  nlohmann::json text = {{"hidden_size", 8}, {"intermediate_size", 16}, {"num_attention_heads", 2},
                         {"num_hidden_layers", 1}};
  nlohmann::json sched = {{"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"beta_end", 0.012},
                          {"num_train_timesteps", 1000}};
  EXPECT_TRUE(WriteJsonFile(dir + "/unet/config.json", unet).ok());
  EXPECT_TRUE(WriteJsonFile(dir + "/vae/config.json", vae.ToJson()).ok());
  EXPECT_TRUE(WriteJsonFile(dir + "/text_encoder/config.json", text).ok());
  EXPECT_TRUE(WriteJsonFile(dir + "/scheduler/scheduler_config.json", sched).ok());
  return dir;
}

// The training runs take the tokenizer from the reference data.
const char* const kTokenizer = "fixtures/pix2pix-tiny/tokenizer";

CommonTrainOptions Common(const std::string& model, const std::string& out, int64_t steps) {
  CommonTrainOptions o;
  o.model_dir = model;
  o.output_dir = out;
  o.tokenizer_dir = fairy::testing::SharedDir() + "/" + kTokenizer;
  o.data.resolution = 16;
  o.batch_size = 4;
  o.steps = steps;
  o.learning_rate = 3e-3;
  o.warmup_steps = 2;
  o.checkpoint_every = 0;
  o.log_every = 1000;
  return o;
}

class TrainRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Without the reference data, SetUp() skips every test.
    if (!fairy::testing::MissingShared({kTokenizer}).empty()) return;
    torch::set_num_threads(1);  // bit-reproducible runs for the resume comparison
    root_ = fairy::testing::MakeTempDir("train_run");
    std::string config = WriteMicroConfig(root_ + "/config");
    TrainVAEOptions vae;
    vae.common = Common(config, root_ + "/with_vae", 60);
    auto r = RunVAETraining(vae);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    vae_report_ = *r;
  }
  void SetUp() override { FAIRY_REQUIRE_SHARED(kTokenizer); }
  static std::string root_;
  static TrainReport vae_report_;
};
std::string TrainRunTest::root_;
TrainReport TrainRunTest::vae_report_;

TEST(TrainScheduleTest, WarmUpThenConstantOrHalfCosineToTheFinalRatio) {
  // Warm-up: linear from lr / warmup at step 0 to lr at the last warm-up step, either way.
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(0, 1.0, 10, 110, true, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(9, 1.0, 10, 110, true, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(50, 1.0, 10, 110, false, 0.1), 1.0);
  // Cosine: lr at the end of the warm-up, the midpoint halfway, lr x ratio at the last step.
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(10, 1.0, 10, 111, true, 0.1), 1.0);
  EXPECT_NEAR(ScheduledLearningRate(60, 1.0, 10, 111, true, 0.1), 0.55, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(110, 1.0, 10, 111, true, 0.1), 0.1, 1e-12);
  double previous = 2.0;
  for (int64_t step = 10; step < 111; ++step) {
    double lr = ScheduledLearningRate(step, 1.0, 10, 111, true, 0.1);
    EXPECT_LE(lr, previous);
    previous = lr;
  }
}

TEST_F(TrainRunTest, VAELossDecreasesAndFolderIsComplete) {
  EXPECT_LT(vae_report_.final_loss, 0.9 * vae_report_.first_loss)
      << vae_report_.first_loss << " -> " << vae_report_.final_loss;
  for (const char* f : {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                        "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                        "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
                        "scheduler/scheduler_config.json"}) {
    EXPECT_TRUE(fs::exists(root_ + "/with_vae/" + f)) << f;
  }
  auto vae_json = ReadJson(root_ + "/with_vae/vae/config.json");
  ASSERT_TRUE(vae_json.ok());
  EXPECT_NE((*vae_json)["scaling_factor"].get<double>(), 0.18215) << "scaling factor was not calibrated";
}

TEST_F(TrainRunTest, UNetLossDecreasesAndTheEngineReloadsItIdentically) {
  TrainUNetOptions o;
  o.common = Common(root_ + "/with_vae", root_ + "/unet", 60);
  o.common.tokenizer_dir = root_ + "/with_vae/tokenizer";
  o.train_text_encoder = true;
  o.ema_decay = 0.9;
  auto r = RunUNetTraining(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LT(r->final_loss, r->first_loss) << r->first_loss << " -> " << r->final_loss;

  // The engine's own loader reads the trained UNet; both give the same numbers.
  auto parts = ModelParts::Load(root_ + "/unet", torch::kCPU, 1);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  auto engine_unet = LoadUNet(root_ + "/unet/unet", torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(engine_unet.ok()) << engine_unet.status().ToString();
  torch::NoGradGuard no_grad;
  parts->unet->eval();
  auto x = torch::randn({2, 8, 8, 8});
  auto t = torch::tensor({10.0f, 700.0f});
  auto emb = torch::randn({2, 77, 8});
  auto a = parts->unet->forward(x, t, emb);
  auto b = (*engine_unet)->forward(x, t, emb);
  EXPECT_TRUE(torch::equal(a, b)) << "max diff " << (a - b).abs().max().item<float>();
}

TEST_F(TrainRunTest, ResumeGivesTheSameWeightsAsOneRun) {
  auto run = [&](const std::string& out, int64_t steps, bool resume) {
    TrainUNetOptions o;
    o.common = Common(root_ + "/with_vae", out, steps);
    o.common.tokenizer_dir = root_ + "/with_vae/tokenizer";
    o.common.resume = resume;
    o.train_text_encoder = true;
    auto r = RunUNetTraining(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  };
  run(root_ + "/straight", 12, false);
  run(root_ + "/resumed", 6, false);
  run(root_ + "/resumed", 12, true);
  for (const char* f : {"/unet/diffusion_pytorch_model.safetensors", "/text_encoder/model.safetensors"}) {
    auto a = LoadTensors(root_ + "/straight" + f);
    auto b = LoadTensors(root_ + "/resumed" + f);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size());
    for (const auto& [name, tensor] : *a) {
      EXPECT_TRUE(torch::allclose(tensor, b->at(name), 1e-6, 1e-7)) << f << " " << name;
    }
  }
  // The resumed run really continued (its state says 12), and a wrong-kind resume is refused.
  auto state = ReadJson(root_ + "/resumed/training_state/state.json");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)["step"].get<int64_t>(), 12);
  TrainVAEOptions wrong;
  wrong.common = Common(root_ + "/with_vae", root_ + "/resumed", 20);
  wrong.common.resume = true;
  auto r = RunVAETraining(wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"kind\""), std::string::npos) << r.status().message();
}

// A triples folder made with the real ffmpeg: sources are test patterns, each target the source's
// colour negation (so a correctly aligned crop pair satisfies target = 1 - source).
std::string WriteTriplesFolder(const std::string& dir) {
  fs::create_directories(dir + "/src");
  fs::create_directories(dir + "/dst");
  std::ofstream list(dir + "/triples.jsonl");
  list << "# studio triples\n\n";
  for (int i = 0; i < 3; ++i) {
    const std::string name = "shot" + std::to_string(i) + ".png";
    const std::string src = fairy::testing::ShellQuote(dir + "/src/" + name);
    EXPECT_EQ(fairy::testing::RunShell("ffmpeg -v error -y -f lavfi -i testsrc2=size=64x48:rate=1 -ss " +
                                       std::to_string(i) + " -frames:v 1 -pix_fmt rgb24 " + src)
                  .exit_code,
              0);
    EXPECT_EQ(fairy::testing::RunShell("ffmpeg -v error -y -i " + src + " -vf negate -pix_fmt rgb24 " +
                                       fairy::testing::ShellQuote(dir + "/dst/" + name))
                  .exit_code,
              0);
    list << nlohmann::json{{"source", "src/" + name}, {"instruction", "invert the colors"}, {"target", "dst/" + name}}
                .dump()
         << "\n";
  }
  return dir;
}

TEST(TripleFolderTest, CropsTheSameWindowOfSourceAndTargetDeterministically) {
  const std::string dir = WriteTriplesFolder(fairy::testing::MakeTempDir("triples") + "/set");
  PairGeneratorOptions data;
  data.resolution = 16;
  auto folder = TripleFolder::Load(dir, data, 64);  // decoded at the images' own size
  ASSERT_TRUE(folder.ok()) << folder.status().ToString();
  EXPECT_EQ((*folder)->size(), 3u);
  TrainingBatch b = (*folder)->Next(6, 3);
  EXPECT_EQ(b.source.sizes(), (std::vector<int64_t>{6, 3, 16, 16}));
  EXPECT_EQ(b.instructions, std::vector<std::string>(6, "invert the colors"));
  EXPECT_LE((b.target - (1 - b.source)).abs().max().item<double>(), 1e-5);
  EXPECT_GT(b.source.std().item<double>(), 0.05);  // real image content, not a constant
  EXPECT_TRUE(torch::equal((*folder)->Next(6, 3).source, b.source));
  EXPECT_FALSE(torch::equal((*folder)->Next(6, 4).source, b.source));
  EXPECT_FALSE(torch::equal((*folder)->WithSeed(99)->Next(6, 3).source, b.source));
  EXPECT_EQ((*folder)->NextImages(5, 0).sizes(), (std::vector<int64_t>{5, 3, 16, 16}));
}

TEST(TripleFolderTest, ErrorsNameTheFileAndLine) {
  const std::string root = fairy::testing::MakeTempDir("triples_bad");
  PairGeneratorOptions data;
  auto missing = TripleFolder::Load(root + "/none", data);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("none/triples.jsonl"), std::string::npos);
  const std::string dir = WriteTriplesFolder(root + "/set");
  auto load_with_line = [&](const std::string& line) {
    std::ofstream(dir + "/triples.jsonl", std::ios::app) << line << "\n";
    auto r = TripleFolder::Load(dir, data);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.status().message();
  };
  // Lines 1-2 are a comment and a blank line, 3-5 the good triples: line 6 is the bad one.
  EXPECT_NE(load_with_line("{not json").find("triples.jsonl:6: not a JSON object"), std::string::npos);
  WriteTriplesFolder(dir);  // rewrite the good list
  std::string m = load_with_line(R"({"source": "src/shot0.png", "target": "dst/nope.png", "instruction": "x"})");
  EXPECT_NE(m.find("triples.jsonl:6: target"), std::string::npos) << m;
  EXPECT_NE(m.find("nope.png"), std::string::npos) << m;
  WriteTriplesFolder(dir);
  m = load_with_line(R"({"source": "src/shot0.png", "target": "dst/shot1.png"})");
  EXPECT_NE(m.find("triples.jsonl:6: \"instruction\""), std::string::npos) << m;
  WriteTriplesFolder(dir);
  ASSERT_EQ(fairy::testing::RunShell("ffmpeg -v error -y -f lavfi -i testsrc2=size=32x32 -frames:v 1 " +
                                     fairy::testing::ShellQuote(dir + "/dst/small.png"))
                .exit_code,
            0);
  m = load_with_line(R"({"source": "src/shot0.png", "target": "dst/small.png", "instruction": "x"})");
  EXPECT_NE(m.find("triples.jsonl:6: source"), std::string::npos) << m;
  EXPECT_NE(m.find("must match"), std::string::npos) << m;
}

TEST_F(TrainRunTest, UNetTrainsOnATriplesFolder) {
  TrainUNetOptions o;
  o.common = Common(root_ + "/with_vae", root_ + "/unet_triples", 60);
  o.common.tokenizer_dir = root_ + "/with_vae/tokenizer";
  o.common.triples_dir = WriteTriplesFolder(root_ + "/triples");
  o.eval_every = 60;
  o.eval_steps = 2;
  auto r = RunUNetTraining(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LT(r->final_loss, r->first_loss) << r->first_loss << " -> " << r->final_loss;
  ASSERT_EQ(r->eval_psnr.size(), 1u);
  EXPECT_EQ(r->eval_psnr[0].first, "triples");
  EXPECT_TRUE(fs::exists(root_ + "/unet_triples/unet/diffusion_pytorch_model.safetensors"));
}

TEST_F(TrainRunTest, BadOptionsAreRefusedWithTheFlagName) {
  TrainUNetOptions o;
  o.common = Common(root_ + "/with_vae", root_ + "/bad", 0);
  auto r = RunUNetTraining(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--steps"), std::string::npos);
  o.common = Common(root_ + "/config", root_ + "/bad", 5);  // no VAE weights there
  r = RunUNetTraining(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("train the VAE first"), std::string::npos) << r.status().message();
  o.common = Common(root_ + "/nonexistent", root_ + "/bad", 5);
  r = RunUNetTraining(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nonexistent/unet/config.json"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace fairy::engine::train
