// `fairy-engine edit` end to end on real clips with the pix2pix-tiny model: real FFmpeg decode,
// shot detection, anchor and frame passes, lossless chunks, H.264 encode with the source audio.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/shell.h"
#include "tests/support/test_paths.h"

namespace {

using fairy::testing::ShellResult;

ShellResult Execute(const std::string& command) {
  return fairy::testing::RunShell(command + " 2>&1");
}
std::string Quote(const std::string& s) { return fairy::testing::ShellQuote(s); }

std::string Engine() { return fairy::testing::BinDir() + "/fairy-engine"; }
std::string Model() { return fairy::testing::SharedDir() + "/fixtures/pix2pix-tiny"; }

std::string EditCommand(const std::string& input, const std::string& output,
                        const std::string& extra = "") {
  return Quote(Engine()) + " edit --model " + Quote(Model()) + " --input " + Quote(input) +
         " --output " + Quote(output) +
         " --instruction 'turn the sky red' --steps 2 --resolution 32 --batch 4 --no-progress " +
         extra;
}

// ffprobe: "codec_type=video|width=..|height=..|nb_read_frames=.." lines.
std::string Probe(const std::string& path) {
  return Execute(
             "ffprobe -v error -count_frames -show_entries "
             "stream=codec_type,width,height,nb_read_frames "
             "-of compact=p=0 " +
             Quote(path))
      .output;
}

TEST(EngineEditTest, EditsAWholeClipWithAudioToTheSourceSize) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/model_index.json", "media/bigbuckbunny.mp4");
  const std::string dir = fairy::testing::MakeTempDir("engine_edit");
  const std::string out = dir + "/bunny_edit.mp4";
  ShellResult run =
      Execute(EditCommand(fairy::testing::MediaPath("bigbuckbunny.mp4"), out, "--seed 7"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("132 frames"), std::string::npos) << run.output;
  const std::string probe = Probe(out);
  EXPECT_NE(probe.find("codec_type=video|width=1280|height=720|nb_read_frames=132"),
            std::string::npos)
      << probe;
  EXPECT_NE(probe.find("codec_type=audio"), std::string::npos) << probe;
  // No work files left beside the output.
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename().string().find(".fairy-edit"), std::string::npos)
        << entry.path();
  }
}

TEST(EngineEditTest, SameSeedSameFramesOtherSeedOtherFrames) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/model_index.json", "media/delayed_start.mp4");
  const std::string dir = fairy::testing::MakeTempDir("engine_edit_seed");
  const std::string input = fairy::testing::MediaPath("delayed_start.mp4");
  const std::string a = dir + "/a.mkv", b = dir + "/b.mkv", c = dir + "/c.mkv";
  ASSERT_EQ(Execute(EditCommand(input, a, "--seed 1 --crf 0")).exit_code, 0);
  ASSERT_EQ(Execute(EditCommand(input, b, "--seed 1 --crf 0 --batch 2")).exit_code, 0);
  ASSERT_EQ(Execute(EditCommand(input, c, "--seed 2 --crf 0")).exit_code, 0);
  // Frame checksums of the decoded outputs.
  auto md5 = [](const std::string& path) {
    return Execute("ffmpeg -v error -i " + Quote(path) + " -f framemd5 -").output;
  };
  const std::string ma = md5(a), mb = md5(b), mc = md5(c);
  auto frames = [](const std::string& framemd5) {
    int n = 0;
    size_t pos = 0;
    while (pos < framemd5.size()) {
      const size_t end = framemd5.find('\n', pos);
      if (framemd5[pos] != '#' && end != pos) ++n;
      if (end == std::string::npos) break;
      pos = end + 1;
    }
    return n;
  };
  EXPECT_EQ(frames(ma), 24) << ma;
  EXPECT_NE(ma, mc) << "a different seed must change the frames";
  // Batch 2 vs 4 agrees within float rounding, which 8-bit output almost always hides; compare the
  // decoded pixels with ffmpeg's PSNR instead of checksums.
  ShellResult psnr = Execute("ffmpeg -v info -i " + Quote(a) + " -i " + Quote(b) +
                             " -lavfi psnr -f null - 2>&1 | grep PSNR");
  EXPECT_NE(psnr.output.find("average:"), std::string::npos) << psnr.output;
  const auto pos = psnr.output.find("average:");
  if (pos != std::string::npos) {
    const std::string value = psnr.output.substr(pos + 8, psnr.output.find(' ', pos + 8) - pos - 8);
    EXPECT_TRUE(value == "inf" || std::stod(value) > 40.0) << psnr.output;
  }
}

TEST(EngineEditTest, BadInputExitsWithUsageErrorAndAMessage) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/model_index.json", "media/delayed_start.mp4");
  const std::string dir = fairy::testing::MakeTempDir("engine_edit_bad");
  const std::string clip = fairy::testing::MediaPath("delayed_start.mp4");
  ShellResult empty =
      Execute(Quote(Engine()) + " edit --model " + Quote(Model()) + " --input " + Quote(clip) +
              " --output " + Quote(dir + "/x.mp4") + " --instruction ''");
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  EXPECT_NE(empty.output.find("instruction"), std::string::npos) << empty.output;
  ShellResult missing = Execute(EditCommand(dir + "/no-such.mp4", dir + "/y.mp4"));
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("no-such.mp4"), std::string::npos) << missing.output;
  ShellResult no_model =
      Execute(Quote(Engine()) + " edit --model " + Quote(dir + "/nothing") + " --input " +
              Quote(clip) + " --output " + Quote(dir + "/z.mp4") + " --instruction 'x'");
  EXPECT_EQ(no_model.exit_code, 2) << no_model.output;
  EXPECT_NE(no_model.output.find("nothing"), std::string::npos) << no_model.output;
  ShellResult noise = Execute(EditCommand(clip, dir + "/n.mp4", "--noise random"));
  EXPECT_EQ(noise.exit_code, 2) << noise.output;
  EXPECT_NE(noise.output.find("--noise: \"random\" is not a noise mode (per_frame, shared)"),
            std::string::npos)
      << noise.output;
  ShellResult sampler = Execute(EditCommand(clip, dir + "/s.mp4", "--scheduler ddim"));
  EXPECT_EQ(sampler.exit_code, 2) << sampler.output;
  EXPECT_NE(sampler.output.find("--scheduler: \"ddim\" is not a sampler (euler_ancestral, euler)"),
            std::string::npos)
      << sampler.output;
  ShellResult flag = Execute(Quote(Engine()) + " edit --bogus 1");
  EXPECT_EQ(flag.exit_code, 2) << flag.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.mp4"));
}

// The working size keeps the aspect ratio (sides rounded to multiples of 8, not to the UNet's
// 2^levels): a 16:9 clip and a 4:3 one (720x480 stored with 8:9 pixels), with the embedded model.
TEST(EngineEditTest, WorkingSizeKeepsTheAspectRatio) {
  FAIRY_REQUIRE_SHARED("media/counter.mp4", "media/sony_good_quality.dv");
  const std::string dir = fairy::testing::MakeTempDir("engine_edit_aspect");
  const std::string model = fairy::testing::SourceDir() + "/models/fairy-tiny";
  for (const auto& [clip, working, source] :
       {std::tuple{"counter.mp4", "working size 128x72 (", "width=1920|height=1080"},
        std::tuple{"sony_good_quality.dv", "working size 128x96 (", "width=640|height=480"}}) {
    const std::string out = dir + "/" + clip + ".mkv";
    ShellResult run = Execute(Quote(Engine()) + " edit --model " + Quote(model) + " --input " +
                              Quote(fairy::testing::MediaPath(clip)) + " --output " + Quote(out) +
                              " --instruction 'make it sepia' --steps 1 --anchors 1 --resolution 128 --no-progress");
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_EQ(run.output.find("fairy-engine edit: " + std::string(working)), 0u)
        << "the first line gives the working size\n" << run.output;
    EXPECT_NE(Probe(out).find(source), std::string::npos) << Probe(out);
  }
}

}  // namespace
