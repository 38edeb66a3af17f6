// Engine core: golden randn checks through the verifier, and bad input to the verifier and loader.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/support/test_paths.h"
#include "worker/engine/engine_info.h"
#include "worker/engine/verify/verifier.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

using testing::TinyFixture;

TEST(EngineCoreVerify, RandnKindsReproduceTorchStream) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/manifest.json");
  verify::VerifyOptions options;
  options.fixture_dir = TinyFixture();
  options.only_kinds = {"randn"};
  std::ostringstream report;
  auto summary = verify::RunVerify(options, report);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->failed, 0) << report.str();
  EXPECT_EQ(summary->passed, 4) << report.str();
}

TEST(EngineCoreVerify, MissingFolderAndUnknownFilterAreErrors) {
  verify::VerifyOptions options;
  options.fixture_dir = "/nonexistent/fixture";
  std::ostringstream report;
  EXPECT_EQ(verify::RunVerify(options, report).status().code(), Status::Code::kNotFound);
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/manifest.json");
  options.fixture_dir = TinyFixture();
  options.only_checks = {"no_such_check"};
  auto r = verify::RunVerify(options, report);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no_such_check"), std::string::npos);
}

TEST(EngineCoreWeights, LoadReportsMissingUnexpectedAndMisshaped) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/text_encoder/model.safetensors");
  torch::nn::Linear linear(4, 3);  // expects weight [3, 4], bias [3]
  const std::string path = TinyFixture() + "/text_encoder/model.safetensors";
  auto tensors = ReadWeightFiles({path}, "linear");
  ASSERT_TRUE(tensors.ok()) << tensors.status().ToString();
  Status s = LoadWeights(*linear, *tensors, "linear");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unexpected: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("and "), std::string::npos) << s.message();  // truncated list
}

TEST(EngineCoreWeights, TruncatedFileIsRefusedWithItsName) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/vae/diffusion_pytorch_model.safetensors");
  const std::string dir = testing::MakeTempDir("engine_core");
  std::ifstream in(TinyFixture() + "/vae/diffusion_pytorch_model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  const std::string path = dir + "/diffusion_pytorch_model.safetensors";
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  Status s = ReadWeightFiles({path}, "vae").status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  auto files = FindWeightFiles(dir);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(FindWeightFiles(dir + "/nope").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(ReadJsonFile(path).status().code(), Status::Code::kInvalidArgument);
}

// Debian's LibTorch runs on OpenBLAS: its own pool must not compete with LibTorch's threads.
TEST(EngineCoreThreads, OpenBlasGetsOneThreadBesideLibTorch) {
  if (BlasThreads() < 0) GTEST_SKIP() << "this build does not use OpenBLAS";
  unsetenv("OPENBLAS_NUM_THREADS");
  ASSERT_TRUE(SetBlasThreads(2));
  EXPECT_EQ(BlasThreads(), 2);
  ConfigureTorchThreads();
  EXPECT_EQ(BlasThreads(), 1);
  // An explicit OPENBLAS_NUM_THREADS is the operator's choice and is left as it is.
  setenv("OPENBLAS_NUM_THREADS", "2", 1);
  ASSERT_TRUE(SetBlasThreads(2));
  ConfigureTorchThreads();
  EXPECT_EQ(BlasThreads(), 2);
  unsetenv("OPENBLAS_NUM_THREADS");
}

}  // namespace
}  // namespace fairy::engine
