// The worker's EngineExecutor with the real engine (pix2pix-tiny) on a real clip, without Redis:
// how an attempt reports and stops. Its outputs are checked end to end by the farm tests.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "tests/support/test_paths.h"
#include "worker/executor/engine_executor.h"

namespace fairy::worker {
namespace {

protocol::Task AnchorTask(const std::string& work_dir, int64_t steps) {
  protocol::TaskSettings s;
  s.input = testing::MediaPath("bigbuckbunny.mp4");
  s.work_dir = work_dir;
  s.model = testing::SharedDir() + "/fixtures/pix2pix-tiny";
  s.instruction = "make it snow";
  s.steps = steps;
  s.long_side = 64;
  s.shot_first = 0;
  s.shot_count = 44;
  s.anchor_frames = {0, 21, 43};
  return protocol::Task{{"job", "s000-anchor", 1}, protocol::TaskKind::kAnchor, 0, 0, 44,
                        protocol::ToJson(s)};
}

// A cancel stops an anchor pass at the next denoising step (an anchor pass is one long stretch of
// steps: before, it ran to its end whatever the cancel), and every step on the way was reported.
TEST(EngineExecutorTest, CancelStopsAnAnchorPassAtTheNextStep) {
  auto executor = EngineExecutor::Create({});
  ASSERT_TRUE(executor.ok()) << executor.status().ToString();
  const std::string dir = testing::MakeTempDir("fairy-executor");
  const protocol::Task task = AnchorTask(dir, 50);
  auto settings = protocol::TaskSettingsFromJson(task.settings);
  ASSERT_TRUE(settings.ok());
  std::atomic<bool> cancel{false};
  int steps_reported = 0;
  std::vector<std::string> lines;
  TaskContext ctx;
  ctx.task = &task;
  ctx.settings = &*settings;
  ctx.cancel = &cancel;
  ctx.progress = [&](int64_t done, int64_t total, const std::string& line) {
    EXPECT_EQ(total, 3) << "an anchor task counts its anchors";
    EXPECT_EQ(done, 0);
    if (!line.empty()) {
      lines.push_back(line);
      return;
    }
    if (++steps_reported == 2) cancel = true;
  };
  Result<TaskOutcome> r = (*executor)->Run(ctx);
  EXPECT_EQ(r.status().code(), Status::Code::kCancelled) << r.status().ToString();
  EXPECT_EQ(steps_reported, 2) << "stopped at the step after the cancel, not after 50";
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("loading model ", 0), 0u) << lines[0];
  EXPECT_FALSE(std::filesystem::exists(protocol::AnchorOutputPath(dir, 0)))
      << "no output of a cancelled pass";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fairy::worker
