// The InstructPix2Pix pipeline and Fairy's video path on the pix2pix-tiny model: the upstream
// golden, partition invariance with the anchor cache passed through bytes, bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/safetensors.h"
#include "tests/support/test_paths.h"
#include "worker/engine/pipeline.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

using fairy::testing::TinyFixture;

torch::Tensor GoldenTensor(const std::string& file, const std::string& name) {
  auto st = SafetensorsFile::Open(TinyFixture() + "/golden/" + file);
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  if (!st.ok()) return {};
  const TensorInfo* info = (*st)->Find(name);
  EXPECT_NE(info, nullptr) << name;
  return info ? TensorFromSafetensors(**st, *info) : torch::Tensor();
}

// max|a-b| / max|b|
double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return (a64 - b64).abs().max().item<double>() / b64.abs().max().item<double>();
}

class PipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Without the reference data, SetUp() skips every test.
    if (!fairy::testing::MissingShared({"fixtures/pix2pix-tiny"}).empty()) return;
    auto model = Model::Load(TinyFixture());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = new std::shared_ptr<Model>(*model);
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny", "fixtures/pix2pix-tiny/golden/input.png");
  }
  Model& model() { return **model_; }

  // Six 32x32 frames: the golden input image halved, shifted a pixel per frame (a camera pan).
  // (The fixture's attention runs at 1/2 of the image size; 32x32 keeps the tests quick.)
  static torch::Tensor Frames() {
    auto image = ReadPngImage(TinyFixture() + "/golden/input.png");
    EXPECT_TRUE(image.ok()) << image.status().ToString();
    auto half = torch::avg_pool2d(*image, 2);
    std::vector<torch::Tensor> frames;
    for (int64_t i = 0; i < 6; ++i) frames.push_back(torch::roll(half, {i}, {3}));
    return torch::cat(frames, 0);
  }
  static EditSettings Settings() {
    EditSettings s;
    s.instruction = "turn the sky red";
    s.steps = 3;
    s.seed = 42;
    return s;
  }

  static std::shared_ptr<Model>* model_;
  c10::InferenceMode inference_;
};
std::shared_ptr<Model>* PipelineTest::model_ = nullptr;

TEST_F(PipelineTest, EditImageMatchesUpstreamGolden) {
  auto image = ReadPngImage(TinyFixture() + "/golden/input.png");
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EditSettings s;
  s.instruction = "turn the sky red";
  s.steps = 4;
  s.guidance_text = 7.5;
  s.guidance_image = 1.5;
  InjectedNoise noise(GoldenTensor("pipeline.safetensors", "pipe.initial_latents"),
                      GoldenTensor("pipeline.safetensors", "pipe.step_noise"));
  PipelineTrace trace;
  auto out = EditImage(model(), *image, s, noise, &trace);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto golden = GoldenTensor("pipeline.safetensors", "pipe.output_image");
  const double err =
      (out->to(torch::kFloat64) - golden.to(torch::kFloat64)).abs().max().item<double>();
  EXPECT_LE(err, 1e-5 + 3e-5 * 1.0);
  auto latents = torch::cat(trace.latents_per_step, 0);
  auto golden_latents = GoldenTensor("pipeline.safetensors", "pipe.latents_per_step");
  const double bound = 1e-5 + 3e-5 * golden_latents.abs().max().item<double>();
  EXPECT_LE((latents - golden_latents).abs().max().item<double>(), bound);
}

TEST_F(PipelineTest, FramesDoNotDependOnPartitionOrBatch) {
  auto frames = Frames();
  const std::vector<int64_t> anchors = {0, 3, 5};
  AnchorCache cache;
  auto anchor_images = frames.index_select(0, torch::tensor(anchors, torch::kLong));
  auto anchor_out = RunAnchorPass(model(), anchor_images, anchors, Settings(), &cache);
  ASSERT_TRUE(anchor_out.ok()) << anchor_out.status().ToString();
  EXPECT_EQ(anchor_out->sizes(), (std::vector<int64_t>{3, 32, 32, 3}));
  EXPECT_TRUE(cache.Complete());
  EXPECT_EQ(cache.num_branches(), 3);
  // The cache travels as bytes, as it does through Redis.
  auto restored = AnchorCache::Deserialize(cache.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();

  const std::vector<int64_t> others = {1, 2, 4};
  auto images = frames.index_select(0, torch::tensor(others, torch::kLong));
  // One pass, batch 1 (on the original cache).
  auto whole = RunFramePass(model(), cache, images, others, Settings(), 1);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  // Ranges {4} then {1, 2} (another order), batch 1, restored cache: bit-identical.
  auto last = RunFramePass(model(), *restored, images.narrow(0, 2, 1), {4}, Settings(), 1);
  auto first = RunFramePass(model(), *restored, images.narrow(0, 0, 2), {1, 2}, Settings(), 1);
  ASSERT_TRUE(last.ok() && first.ok());
  EXPECT_TRUE(torch::equal(torch::cat({*first, *last}, 0), *whole));
  // Batch 2: one pass groups {1, 2}, {4}; the same groups as two ranges: bit-identical.
  auto whole2 = RunFramePass(model(), cache, images, others, Settings(), 2);
  auto a2 = RunFramePass(model(), *restored, images.narrow(0, 0, 2), {1, 2}, Settings(), 2);
  auto b2 = RunFramePass(model(), *restored, images.narrow(0, 2, 1), {4}, Settings(), 2);
  ASSERT_TRUE(whole2.ok() && a2.ok() && b2.ok());
  EXPECT_TRUE(torch::equal(torch::cat({*a2, *b2}, 0), *whole2));
  // Different batch sizes: the same within float rounding.
  auto whole3 = RunFramePass(model(), cache, images, others, Settings(), 3);
  ASSERT_TRUE(whole3.ok());
  EXPECT_LE(RelativeError(*whole3, *whole), 1e-4);
  EXPECT_LE(RelativeError(*whole2, *whole), 1e-4);
  // The anchors matter: another anchor set changes the frames.
  AnchorCache other_cache;
  ASSERT_TRUE(RunAnchorPass(model(), frames.narrow(0, 0, 1), {0}, Settings(), &other_cache).ok());
  auto other = RunFramePass(model(), other_cache, images, others, Settings(), 1);
  ASSERT_TRUE(other.ok());
  EXPECT_GT(RelativeError(*other, *whole), 1e-3);
}

TEST_F(PipelineTest, SeedAndFrameIndexDriveTheNoise) {
  auto frames = Frames();
  AnchorCache cache;
  ASSERT_TRUE(RunAnchorPass(model(), frames.narrow(0, 0, 2), {0, 1}, Settings(), &cache).ok());
  auto image = frames.narrow(0, 2, 1);
  auto a = RunFramePass(model(), cache, image, {2}, Settings(), 1);
  auto same = RunFramePass(model(), cache, image, {2}, Settings(), 1);
  auto other_index = RunFramePass(model(), cache, image, {7}, Settings(), 1);
  EditSettings reseeded = Settings();
  reseeded.seed = 43;
  auto other_seed = RunFramePass(model(), cache, image, {2}, reseeded, 1);
  ASSERT_TRUE(a.ok() && same.ok() && other_index.ok() && other_seed.ok());
  EXPECT_TRUE(torch::equal(*a, *same));
  EXPECT_FALSE(torch::equal(*a, *other_index));
  EXPECT_FALSE(torch::equal(*a, *other_seed));
}

TEST_F(PipelineTest, SharedNoiseIsTheSameForEveryFrame) {
  auto frames = Frames();
  EditSettings shared = Settings();
  shared.noise = NoiseMode::kShared;
  AnchorCache cache;
  ASSERT_TRUE(RunAnchorPass(model(), frames.narrow(0, 0, 2), {0, 1}, shared, &cache).ok());
  auto image = frames.narrow(0, 2, 1);
  auto a = RunFramePass(model(), cache, image, {2}, shared, 1);
  auto other_index = RunFramePass(model(), cache, image, {7}, shared, 1);
  EditSettings reseeded = shared;
  reseeded.seed = 43;
  auto other_seed = RunFramePass(model(), cache, image, {2}, reseeded, 1);
  ASSERT_TRUE(a.ok() && other_index.ok() && other_seed.ok());
  EXPECT_TRUE(torch::equal(*a, *other_index));  // same source, same noise: same output
  EXPECT_FALSE(torch::equal(*a, *other_seed));
  // A frame pass must use the noise mode its anchor cache was computed with.
  auto mixed = RunFramePass(model(), cache, image, {2}, Settings(), 1);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("noise shared"), std::string::npos)
      << mixed.status().ToString();
  auto restored = AnchorCache::Deserialize(cache.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_FALSE(RunFramePass(model(), *restored, image, {2}, Settings(), 1).ok());
  EXPECT_EQ(*ParseNoiseMode("shared"), NoiseMode::kShared);
  EXPECT_EQ(*ParseNoiseMode(NoiseModeName(NoiseMode::kPerFrame)), NoiseMode::kPerFrame);
  auto bad = ParseNoiseMode("random");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("per_frame, shared"), std::string::npos);
}

TEST_F(PipelineTest, EulerSamplerDrawsNoStepNoise) {
  EditSettings euler = Settings();
  euler.sampler = Sampler::kEuler;
  auto image = torch::avg_pool2d(*ReadPngImage(TinyFixture() + "/golden/input.png"), 2);
  const int64_t c = model().latent_channels(), h = image.size(2) / model().vae_scale_factor();
  const auto initial = torch::randn({1, c, h, h});
  const auto steps = torch::randn({Settings().steps, c, h, h});
  auto edit = [&](const EditSettings& s, const torch::Tensor& step_noise, PipelineTrace* trace) {
    InjectedNoise noise(initial, step_noise);
    auto out = EditImage(model(), image, s, noise, trace);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : torch::Tensor();
  };
  // Euler: the output depends on the initial latents only; Euler ancestral draws per step.
  PipelineTrace trace;
  auto a = edit(euler, steps, &trace);
  EXPECT_TRUE(torch::equal(a, edit(euler, steps * 2, nullptr)));
  EXPECT_FALSE(
      torch::equal(edit(Settings(), steps, nullptr), edit(Settings(), steps * 2, nullptr)));
  EXPECT_FALSE(torch::equal(a, edit(Settings(), steps, nullptr)));
  // Each step is the Euler step x' = x + eps * (sigma' - sigma) on the guided prediction.
  auto x = initial * trace.init_noise_sigma;
  ASSERT_EQ(trace.latents_per_step.size(), static_cast<size_t>(euler.steps));
  for (size_t i = 0; i < trace.latents_per_step.size(); ++i) {
    const double ds = trace.sigmas[i + 1].item<double>() - trace.sigmas[i].item<double>();
    auto expected = x + trace.guided_noise_pred[i] * ds;
    EXPECT_LE((trace.latents_per_step[i] - expected).abs().max().item<double>(), 1e-5)
        << "step " << i;
    x = trace.latents_per_step[i];
  }

  // A frame pass refuses an anchor cache computed with the other sampler.
  auto frames = Frames();
  AnchorCache cache;
  ASSERT_TRUE(RunAnchorPass(model(), frames.narrow(0, 0, 2), {0, 1}, euler, &cache).ok());
  EXPECT_TRUE(RunFramePass(model(), cache, frames.narrow(0, 2, 1), {2}, euler, 1).ok());
  auto mixed = RunFramePass(model(), cache, frames.narrow(0, 2, 1), {2}, Settings(), 1);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("sampler euler, this pass uses euler_ancestral"),
            std::string::npos)
      << mixed.status().ToString();
  EXPECT_EQ(*ParseSampler("euler"), Sampler::kEuler);
  EXPECT_EQ(*ParseSampler(SamplerName(Sampler::kEulerAncestral)), Sampler::kEulerAncestral);
  auto bad = ParseSampler("ddim");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("(euler_ancestral, euler)"), std::string::npos);
}

TEST_F(PipelineTest, BadInputIsAnErrorNotACrash) {
  auto frames = Frames();
  EditSettings empty = Settings();
  empty.instruction = "   ";
  AnchorCache cache;
  auto r = RunAnchorPass(model(), frames.narrow(0, 0, 1), {0}, empty, &cache);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("instruction"), std::string::npos);
  // Image size not a multiple of the VAE factor, wrong channel count, index count mismatch.
  EXPECT_FALSE(RunAnchorPass(model(), torch::zeros({1, 3, 63, 64}), {0}, Settings(), &cache).ok());
  EXPECT_FALSE(RunAnchorPass(model(), torch::zeros({1, 4, 64, 64}), {0}, Settings(), &cache).ok());
  EXPECT_FALSE(RunAnchorPass(model(), frames.narrow(0, 0, 2), {0}, Settings(), &cache).ok());
  // A cache made for fewer steps, or an incomplete one.
  ASSERT_TRUE(RunAnchorPass(model(), frames.narrow(0, 0, 1), {0}, Settings(), &cache).ok());
  EditSettings more = Settings();
  more.steps = 5;
  EXPECT_FALSE(RunFramePass(model(), cache, frames.narrow(0, 1, 1), {1}, more, 1).ok());
  AnchorCache incomplete(model().unet().SelfAttentionLayers(), 3, false);
  EXPECT_FALSE(RunFramePass(model(), incomplete, frames.narrow(0, 1, 1), {1}, Settings(), 1).ok());
  EXPECT_FALSE(ReadPngImage(TinyFixture() + "/golden/manifest.json").ok());
  EXPECT_FALSE(ReadPngImage(TinyFixture() + "/golden/no-such.png").ok());
}

TEST_F(PipelineTest, OverLongInstructionIsTruncatedTo77Tokens) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "red ";
  auto a = model().EncodePrompt(text);
  auto b = model().EncodePrompt(text + "and then blue");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(1), 77);
  EXPECT_TRUE(torch::equal(*a, *b));  // everything past token 75 is dropped
}

TEST(ModelLoadTest, MissingFolderOrPartIsNamed) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/model_index.json");
  auto missing = Model::Load(TinyFixture() + "/no-such-model");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no-such-model"), std::string::npos);
  // A copy of the model without its VAE.
  std::string dir = fairy::testing::MakeTempDir("model_no_vae");
  for (const char* part : {"model_index.json", "tokenizer", "text_encoder", "unet", "scheduler"}) {
    std::filesystem::copy(TinyFixture() + "/" + part, dir + "/" + part,
                          std::filesystem::copy_options::recursive);
  }
  auto no_vae = Model::Load(dir);
  ASSERT_FALSE(no_vae.ok());
  EXPECT_NE(no_vae.status().message().find("vae"), std::string::npos) << no_vae.status().ToString();
}

}  // namespace
}  // namespace fairy::engine
