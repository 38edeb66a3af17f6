// The worker's EngineExecutor with the real engine (pix2pix-tiny) on a real clip and a real
// redis-server: how an attempt reports and stops, and what it does when the anchor cache cannot be
// published or fetched. Its outputs are checked end to end by the farm tests.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "common/media/chunk.h"
#include "common/redis/farm_keys.h"
#include "common/redis/redis_client.h"
#include "tests/support/redis_server.h"
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

protocol::Task FramesTask(const protocol::Task& anchor, int64_t begin, int64_t end) {
  protocol::Task t = anchor;
  t.ref.task_id = "s000-f" + std::to_string(begin);
  t.kind = protocol::TaskKind::kFrames;
  t.frame_begin = begin;
  t.frame_end = end;
  return t;
}

struct Attempt {
  Result<TaskOutcome> outcome = Status::Internal("not run");
  std::vector<std::string> lines;
};

Attempt RunTask(EngineExecutor& executor, const protocol::Task& task) {
  auto settings = protocol::TaskSettingsFromJson(task.settings);
  EXPECT_TRUE(settings.ok());
  std::atomic<bool> cancel{false};
  Attempt a;
  TaskContext ctx;
  ctx.task = &task;
  ctx.settings = &*settings;
  ctx.cancel = &cancel;
  ctx.progress = [&](int64_t, int64_t, const std::string& line) {
    if (!line.empty()) a.lines.push_back(line);
  };
  a.outcome = executor.Run(ctx);
  return a;
}

bool Logged(const Attempt& a, const std::string& text) {
  for (const auto& l : a.lines) {
    if (l.find(text) != std::string::npos) return true;
  }
  return false;
}

std::vector<std::vector<uint8_t>> ChunkFrames(const std::string& path) {
  std::vector<std::vector<uint8_t>> out;
  auto reader = media::ChunkReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return out;
  media::RgbFrame f;
  while (true) {
    auto got = (*reader)->Next(&f);
    if (!got.ok() || !*got) break;
    out.push_back(f.pixels);
  }
  return out;
}

// The anchor cache only saves work. An anchor task whose cache cannot be published (Redis down or
// full) still ends with its anchors' outputs written; the shot's frames tasks recompute them.
TEST(EngineExecutorTest, AnAnchorTaskWhoseCacheCannotBePublishedStillEnds) {
  FAIRY_REQUIRE_SHARED("media/bigbuckbunny.mp4", "fixtures/pix2pix-tiny/model_index.json");
  auto nobody = testing::RedisServer::Start();  // a port where Redis is then stopped
  ASSERT_TRUE(nobody.ok());
  EngineExecutorOptions o;
  o.redis_url = (*nobody)->url();
  nobody->reset();
  auto executor = EngineExecutor::Create(o);
  ASSERT_TRUE(executor.ok());
  const std::string dir = testing::MakeTempDir("fairy-executor");
  Attempt a = RunTask(**executor, AnchorTask(dir, 2));
  ASSERT_TRUE(a.outcome.ok()) << a.outcome.status().ToString();
  EXPECT_EQ(a.outcome->cache_bytes, 0);
  EXPECT_TRUE(Logged(a, "anchor cache not published (")) << ::testing::PrintToString(a.lines);
  for (int64_t i : {0, 21, 43}) {
    EXPECT_TRUE(std::filesystem::exists(protocol::AnchorOutputPath(dir, i))) << i;
  }
  std::filesystem::remove_all(dir);
}

// A frames task that finds its shot's cache corrupt in Redis recomputes the anchors, and its
// output is the same as with the intact cache (it used to fail every attempt until the job
// failed).
TEST(EngineExecutorTest, AFramesTaskRecomputesACorruptCacheWithTheSameOutput) {
  FAIRY_REQUIRE_SHARED("media/bigbuckbunny.mp4", "fixtures/pix2pix-tiny/model_index.json");
  auto redis = testing::RedisServer::Start();
  ASSERT_TRUE(redis.ok());
  EngineExecutorOptions o;
  o.redis_url = (*redis)->url();
  const std::string dir = testing::MakeTempDir("fairy-executor");
  const protocol::Task anchor = AnchorTask(dir, 2);
  const protocol::Task frames = FramesTask(anchor, 1, 9);
  auto client = redis::RedisClient::Connect((*redis)->url());
  ASSERT_TRUE(client.ok());
  // The publish is fenced: the coordinator's attempt table names attempt 1 as live.
  ASSERT_TRUE(
      (*client)->Command({"HSET", redis::FarmKeys().Attempts("job"), "s000-anchor", "1"}).ok());
  auto publisher = EngineExecutor::Create(o);
  ASSERT_TRUE(publisher.ok());
  Attempt published = RunTask(**publisher, anchor);
  ASSERT_TRUE(published.outcome.ok()) << published.outcome.status().ToString();
  ASSERT_GT(published.outcome->cache_bytes, 0);
  const std::string key = published.outcome->output;

  auto intact = EngineExecutor::Create(o);  // a fresh worker: the cache is not in its memory
  ASSERT_TRUE(intact.ok());
  Attempt first = RunTask(**intact, frames);
  ASSERT_TRUE(first.outcome.ok()) << first.outcome.status().ToString();
  EXPECT_TRUE(Logged(first, "fetched the anchor cache")) << ::testing::PrintToString(first.lines);
  const auto expected = ChunkFrames(first.outcome->output);
  ASSERT_EQ(expected.size(), 8u);
  std::filesystem::remove(first.outcome->output);

  ASSERT_TRUE(
      (*client)->Command({"SETRANGE", "fairy:anchor:" + key + ":part:0", "4096", "XXXX"}).ok());
  auto fresh = EngineExecutor::Create(o);
  ASSERT_TRUE(fresh.ok());
  Attempt second = RunTask(**fresh, frames);
  ASSERT_TRUE(second.outcome.ok()) << second.outcome.status().ToString();
  EXPECT_TRUE(Logged(second, "unusable (")) << ::testing::PrintToString(second.lines);
  EXPECT_TRUE(Logged(second, "; recomputing the anchors"));
  EXPECT_EQ(ChunkFrames(second.outcome->output), expected);
  std::filesystem::remove_all(dir);
}

// A cancel stops an anchor pass at the next denoising step (an anchor pass is one long stretch of
// steps: before, it ran to its end whatever the cancel), and every step on the way was reported
// and counted (TaskContext::step), as were the model's bytes while it loaded
// (TaskContext::loading): the coordinator's progress supervision reads both.
TEST(EngineExecutorTest, CancelStopsAnAnchorPassAtTheNextStep) {
  FAIRY_REQUIRE_SHARED("media/bigbuckbunny.mp4", "fixtures/pix2pix-tiny/model_index.json");
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
  int steps_counted = 0;
  std::vector<std::pair<int64_t, int64_t>> loads;
  ctx.step = [&] { ++steps_counted; };
  ctx.loading = [&](int64_t read, int64_t all) { loads.emplace_back(read, all); };
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
  EXPECT_EQ(steps_counted, 2);
  ASSERT_FALSE(loads.empty()) << "loading the model reports the bytes read";
  for (size_t i = 1; i < loads.size(); ++i) EXPECT_GE(loads[i].first, loads[i - 1].first);
  EXPECT_GT(loads.back().second, 0);
  EXPECT_EQ(loads.back().first, loads.back().second) << "every byte read in the end";
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("loading model ", 0), 0u) << lines[0];
  EXPECT_FALSE(std::filesystem::exists(protocol::AnchorOutputPath(dir, 0)))
      << "no output of a cancelled pass";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fairy::worker
