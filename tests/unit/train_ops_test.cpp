// The exact edit operations (worker/engine/train/edit_ops.h) on known pixel values.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/engine/train/edit_ops.h"

namespace fairy::engine::train {
namespace {

// A 1x1 image of one RGB pixel.
torch::Tensor Pixel(float r, float g, float b) { return torch::tensor({r, g, b}).view({3, 1, 1}); }

void ExpectPixel(const torch::Tensor& image, float r, float g, float b) {
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 1, 1}));
  EXPECT_NEAR(image[0][0][0].item<float>(), r, 1e-6);
  EXPECT_NEAR(image[1][0][0].item<float>(), g, 1e-6);
  EXPECT_NEAR(image[2][0][0].item<float>(), b, 1e-6);
}

TEST(TrainEditOps, BlackAndWhiteIsRec601Luma) {
  ExpectPixel(ApplyEdit(EditOp::kBlackAndWhite, Pixel(1, 0, 0)), 0.299f, 0.299f, 0.299f);
  ExpectPixel(ApplyEdit(EditOp::kBlackAndWhite, Pixel(0.2f, 0.4f, 0.6f)), 0.363f, 0.363f, 0.363f);
  ExpectPixel(ApplyEdit(EditOp::kBlackAndWhite, Pixel(1, 1, 1)), 1, 1, 1);
}

TEST(TrainEditOps, Invert) {
  ExpectPixel(ApplyEdit(EditOp::kInvert, Pixel(0.2f, 0.4f, 0.6f)), 0.8f, 0.6f, 0.4f);
}

TEST(TrainEditOps, SepiaMatrixClamped) {
  ExpectPixel(ApplyEdit(EditOp::kSepia, Pixel(0.5f, 0.5f, 0.5f)), 0.6755f, 0.6015f, 0.4685f);
  ExpectPixel(ApplyEdit(EditOp::kSepia, Pixel(1, 1, 1)), 1.0f, 1.0f, 0.937f);
}

TEST(TrainEditOps, WarmerAndCoolerGains) {
  ExpectPixel(ApplyEdit(EditOp::kWarmer, Pixel(0.5f, 0.5f, 0.5f)), 0.575f, 0.5f, 0.425f);
  ExpectPixel(ApplyEdit(EditOp::kWarmer, Pixel(0.95f, 0.3f, 1.0f)), 1.0f, 0.3f, 0.85f);
  ExpectPixel(ApplyEdit(EditOp::kCooler, Pixel(0.5f, 0.5f, 0.5f)), 0.425f, 0.5f, 0.575f);
  ExpectPixel(ApplyEdit(EditOp::kCooler, Pixel(1.0f, 0.3f, 0.95f)), 0.85f, 0.3f, 1.0f);
}

TEST(TrainEditOps, ContrastAroundMidGrey) {
  ExpectPixel(ApplyEdit(EditOp::kIncreaseContrast, Pixel(0.5f, 0.6f, 0.1f)), 0.5f, 0.65f, 0.0f);
  ExpectPixel(ApplyEdit(EditOp::kIncreaseContrast, Pixel(0.9f, 0.3f, 0.7f)), 1.0f, 0.2f, 0.8f);
}

TEST(TrainEditOps, BatchedEqualsPerImageAndStaysInRange) {
  auto batch = torch::rand({4, 3, 5, 7}, torch::TensorOptions().dtype(torch::kFloat32));
  for (EditOp op : AllEditOps()) {
    auto out = ApplyEdit(op, batch);
    ASSERT_EQ(out.sizes(), batch.sizes()) << EditOpName(op);
    EXPECT_GE(out.min().item<float>(), 0.0f) << EditOpName(op);
    EXPECT_LE(out.max().item<float>(), 1.0f) << EditOpName(op);
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_TRUE(torch::allclose(out[i], ApplyEdit(op, batch[i]))) << EditOpName(op);
    }
    EXPECT_FALSE(torch::allclose(out, batch, 1e-3, 1e-3)) << EditOpName(op) << " changed nothing";
  }
}

TEST(TrainEditOps, RejectsNonRgb) {
  EXPECT_THROW(ApplyEdit(EditOp::kInvert, torch::rand({4, 5, 5})), c10::Error);
  EXPECT_THROW(ApplyEdit(EditOp::kInvert, torch::rand({5, 5})), c10::Error);
}

TEST(TrainEditOps, InstructionsRoundTrip) {
  for (EditOp op : AllEditOps()) {
    EXPECT_EQ(EditOpFromInstruction(CanonicalInstruction(op)), op);
    EXPECT_EQ(EditOpFromInstruction(EditOpName(op)), op);
    for (const auto& v : InstructionVariants(op)) EXPECT_EQ(EditOpFromInstruction(v), op) << v;
  }
  EXPECT_EQ(EditOpFromInstruction("  Make it Black and White. "), EditOp::kBlackAndWhite);
  EXPECT_EQ(EditOpFromInstruction("turn the cat into a lion"), std::nullopt);
  EXPECT_EQ(EditOpFromInstruction(""), std::nullopt);
}

}  // namespace
}  // namespace fairy::engine::train
