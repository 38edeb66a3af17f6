#include "common/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "tests/support/test_paths.h"

namespace fairy {
namespace {

std::vector<std::byte> Bytes(const std::vector<float>& v) {
  std::vector<std::byte> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

void WriteRaw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header;
  f << std::string(data_bytes, '\0');
}

TEST(SafetensorsTest, RoundTripKeepsNamesShapesAndBytes) {
  std::string dir = testing::MakeTempDir("safetensors");
  auto a = Bytes({1, 2, 3, 4, 5, 6});
  auto b = Bytes({-1.5f});
  std::string path = dir + "/x.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"b.weight", DType::kF32, {2, 3}, a}, {"a", DType::kF32, {1}, b}},
                               {{"format", "pt"}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ((*file)->tensors().size(), 2u);
  EXPECT_EQ((*file)->tensors()[0].name, "a");  // sorted by name
  const TensorInfo* info = (*file)->Find("b.weight");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->shape, (std::vector<int64_t>{2, 3}));
  auto data = (*file)->Data(*info);
  ASSERT_EQ(data.size(), a.size());
  EXPECT_EQ(std::memcmp(data.data(), a.data(), a.size()), 0);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->Find("missing"), nullptr);
}

TEST(SafetensorsTest, ReadsTheFixtureModel) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/unet/diffusion_pytorch_model.safetensors");
  auto file = SafetensorsFile::Open(testing::SharedDir() +
                                    "/fixtures/pix2pix-tiny/unet/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_NE((*file)->Find("conv_in.weight"), nullptr);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto file = SafetensorsFile::Open("/nonexistent/model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), Status::Code::kNotFound);
  EXPECT_NE(file.status().message().find("/nonexistent/model.safetensors"), std::string::npos);
}

TEST(SafetensorsTest, HeaderLongerThanFileIsCorruption) {
  std::string path = testing::MakeTempDir("safetensors") + "/t.safetensors";
  std::ofstream(path, std::ios::binary).write("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), Status::Code::kCorruption);
}

TEST(SafetensorsTest, OffsetsBeyondDataAreRejectedByName) {
  std::string path = testing::MakeTempDir("safetensors") + "/t.safetensors";
  WriteRaw(path, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("'w'"), std::string::npos) << file.status().message();
}

TEST(SafetensorsTest, SizeThatDisagreesWithShapeIsRejected) {
  std::string path = testing::MakeTempDir("safetensors") + "/t.safetensors";
  WriteRaw(path, R"({"w":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}})", 16);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), Status::Code::kCorruption);
}

TEST(SafetensorsTest, OverlappingTensorsAreRejected) {
  std::string path = testing::MakeTempDir("safetensors") + "/t.safetensors";
  WriteRaw(path,
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           12);
  EXPECT_FALSE(SafetensorsFile::Open(path).ok());
}

TEST(SafetensorsTest, UnknownDTypeIsUnsupported) {
  std::string path = testing::MakeTempDir("safetensors") + "/t.safetensors";
  WriteRaw(path, R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), Status::Code::kUnsupported);
}

}  // namespace
}  // namespace fairy
