// Equivariant augmentation and the training-pair generator (worker/engine/train).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include "worker/engine/train/augment.h"
#include "worker/engine/train/pair_generator.h"

namespace fairy::engine::train {
namespace {

float MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<float>(); }

TEST(TrainAugment, DisabledReturnsInputs) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto src = torch::rand({2, 3, 8, 8});
  auto tgt = 1 - src;
  AffineRanges ranges;
  ranges.enabled = false;
  auto [a, b] = EquivariantAugment(src, tgt, ranges, gen);
  EXPECT_TRUE(torch::equal(a, src));
  EXPECT_TRUE(torch::equal(b, tgt));
}

TEST(TrainAugment, ZeroRangesAreIdentity) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  auto src = torch::rand({3, 3, 12, 20});
  AffineRanges ranges{true, 0, 0, 1, 1, 0};
  auto [a, b] = EquivariantAugment(src, src * 0.5, ranges, gen);
  EXPECT_LT(MaxAbsDiff(a, src), 1e-5);
  EXPECT_LT(MaxAbsDiff(b, src * 0.5), 1e-5);
}

TEST(TrainAugment, SameTransformOnSourceAndTarget) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto src = torch::rand({4, 3, 32, 48});
  auto tgt = 1 - src;  // an affine edit commutes with the (linear) resampling exactly
  AffineRanges ranges;  // Fairy's defaults
  auto [a, b] = EquivariantAugment(src, tgt, ranges, gen);
  EXPECT_LT(MaxAbsDiff(b, 1 - a), 1e-5);
  EXPECT_GT(MaxAbsDiff(a, src), 0.05) << "the random transform did nothing";
  // Different samples got different transforms: the per-sample change is not the same.
  EXPECT_GT(MaxAbsDiff(a[0] - src[0], a[1] - src[1]), 1e-3);
}

TEST(TrainAugment, ThetaOfKnownTransforms) {
  AffineParams shift;
  shift.translate_x = 0.05;  // 5 px of 100 -> 0.1 in normalised units, sampled from the left
  auto theta = AffineTheta(shift, 50, 100);
  auto expected = torch::tensor({1.0f, 0.0f, -0.1f, 0.0f, 1.0f, 0.0f}).view({2, 3});
  EXPECT_LT(MaxAbsDiff(theta, expected), 1e-6);
  AffineParams zoom;
  zoom.scale = 1.25;
  theta = AffineTheta(zoom, 50, 100);
  expected = torch::tensor({0.8f, 0.0f, 0.0f, 0.0f, 0.8f, 0.0f}).view({2, 3});
  EXPECT_LT(MaxAbsDiff(theta, expected), 1e-6);
}

TEST(TrainAugment, RotationRespectsAspectRatio) {
  // 180 degrees on a non-square image maps pixel centres onto pixel centres: both flips.
  auto img = torch::rand({1, 3, 6, 10});
  AffineParams half_turn;
  half_turn.rotation_deg = 180;
  auto out = WarpImages(img, {half_turn});
  EXPECT_LT(MaxAbsDiff(out, img.flip({2, 3})), 1e-5);
  // 90 degrees on a square image is a rot90 (one of the two directions).
  auto sq = torch::rand({1, 3, 8, 8});
  AffineParams quarter;
  quarter.rotation_deg = 90;
  auto r = WarpImages(sq, {quarter});
  float best = std::min(MaxAbsDiff(r, torch::rot90(sq, 1, {2, 3})), MaxAbsDiff(r, torch::rot90(sq, -1, {2, 3})));
  EXPECT_LT(best, 1e-5);
}

TEST(TrainAugment, SamplesStayInRanges) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(6);
  AffineRanges ranges;
  for (int i = 0; i < 200; ++i) {
    AffineParams p = SampleAffine(ranges, gen);
    EXPECT_LE(std::abs(p.rotation_deg), 5.0);
    EXPECT_LE(std::abs(p.translate_x), 0.05);
    EXPECT_LE(std::abs(p.translate_y), 0.05);
    EXPECT_GE(p.scale, 0.95);
    EXPECT_LE(p.scale, 1.05);
    EXPECT_LE(std::abs(p.shear_deg), 5.0);
  }
}

TEST(TrainPairGenerator, DeterministicPerStepAndTargetsAreExactEdits) {
  PairGeneratorOptions options;
  options.resolution = 32;
  PairGenerator generator(options, {});
  TrainingBatch a = generator.Next(6, 7), b = generator.Next(6, 7), c = generator.Next(6, 8);
  ASSERT_EQ(a.source.sizes(), (std::vector<int64_t>{6, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(a.source, b.source));
  EXPECT_EQ(a.instructions, b.instructions);
  EXPECT_FALSE(torch::equal(a.source, c.source));
  ASSERT_EQ(a.ops.size(), 6u);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(torch::equal(a.target[i], ApplyEdit(a.ops[static_cast<size_t>(i)], a.source[i])));
    EXPECT_EQ(EditOpFromInstruction(a.instructions[static_cast<size_t>(i)]), a.ops[static_cast<size_t>(i)]);
  }
  EXPECT_GE(a.source.min().item<float>(), 0.0f);
  EXPECT_LE(a.source.max().item<float>(), 1.0f);
}

TEST(TrainPairGenerator, CropsComeFromTheFramePool) {
  PairGeneratorOptions options;
  options.resolution = 16;
  options.procedural_fraction = 0;
  // One solid-colour frame: every crop (any size, flipped or not) is that colour.
  auto frame = torch::empty({3, 40, 60}, torch::kUInt8);
  frame[0].fill_(255);
  frame[1].fill_(51);
  frame[2].fill_(0);
  PairGenerator generator(options, {frame});
  auto images = generator.NextImages(5, 1);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{5, 3, 16, 16}));
  EXPECT_LT(MaxAbsDiff(images.select(1, 0), torch::ones({5, 16, 16})), 1e-5);
  EXPECT_LT(MaxAbsDiff(images.select(1, 1), torch::full({5, 16, 16}, 0.2f)), 1e-5);
  EXPECT_LT(images.select(1, 2).abs().max().item<float>(), 1e-5);
}

TEST(TrainPairGenerator, ProceduralImagesVary) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  auto img = ProceduralImage(24, gen);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 24, 24}));
  float spread = 0;
  for (int i = 0; i < 8; ++i) spread = std::max(spread, ProceduralImage(24, gen).std().item<float>());
  EXPECT_GT(spread, 0.05f);
}

}  // namespace
}  // namespace fairy::engine::train
