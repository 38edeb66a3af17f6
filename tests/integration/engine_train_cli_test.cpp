// `fairy-engine train fairy-tiny` end to end at 1/10000 of its steps (one VAE step, three UNet
// steps): the preset writes a complete model folder with the requested latent channels, and
// `fairy-engine edit` edits a real clip with it. Bad preset options are refused by name.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/shell.h"
#include "tests/support/test_paths.h"

namespace {

using fairy::testing::ShellQuote;
using fairy::testing::ShellResult;

// `fairy-engine ARGS` with `env` before it; stdout and stderr together.
ShellResult RunEngine(const std::string& args, const std::string& env = "") {
  return fairy::testing::RunShell(env + ShellQuote(fairy::testing::BinDir() + "/fairy-engine") +
                                  " " + args + " 2>&1");
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

TEST(EngineTrainCliTest, FairyTinyPresetWritesAModelTheEngineEdits) {
  FAIRY_REQUIRE_SHARED("media/carphone_pristine.mp4", "fixtures/pix2pix-tiny/tokenizer");
  const std::string dir = fairy::testing::MakeTempDir("engine_train_cli");
  const std::string model = dir + "/model";
  const std::string clip = fairy::testing::MediaPath("carphone_pristine.mp4");
  ShellResult train = RunEngine(
      "train fairy-tiny --output " + ShellQuote(model) +
          " --scale 0.0001 --latent-channels 8 --videos " + ShellQuote(clip) + " --tokenizer " +
          ShellQuote(fairy::testing::SharedDir() + "/fixtures/pix2pix-tiny/tokenizer"),
      "FAIRY_THREADS=1 ");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("fairy-tiny: model written to"), std::string::npos) << train.output;
  const nlohmann::json vae = ReadJson(model + "/vae/config.json");
  const nlohmann::json unet = ReadJson(model + "/unet/config.json");
  EXPECT_EQ(vae.value("latent_channels", 0), 8);
  EXPECT_EQ(unet.value("in_channels", 0), 16);  // noisy latents and the source's latents
  EXPECT_EQ(unet.value("out_channels", 0), 8);

  const std::string out = dir + "/edited.mp4";
  ShellResult edit = RunEngine("edit --model " + ShellQuote(model) + " --input " +
                               ShellQuote(clip) + " --output " + ShellQuote(out) +
                               " --instruction 'make it sepia' --steps 1 --resolution 32 "
                               "--guidance-text 1 --guidance-image 1 --no-progress");
  ASSERT_EQ(edit.exit_code, 0) << edit.output;
  EXPECT_NE(edit.output.find("120 frames"), std::string::npos) << edit.output;
}

TEST(EngineTrainCliTest, BadPresetOptionsAreRefusedByName) {
  const std::string dir = fairy::testing::MakeTempDir("engine_train_cli_bad");
  ShellResult r =
      RunEngine("train fairy-tiny --output " + ShellQuote(dir + "/m") + " --latent-channels 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--latent-channels must be 1 to 64, got 0"), std::string::npos)
      << r.output;
  r = RunEngine("train fairy-tiny --latent-channels 8");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--output is required"), std::string::npos) << r.output;
}

}  // namespace
