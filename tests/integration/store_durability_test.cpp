// RedisStore durability: state written before a redis-server crash (SIGKILL) is there after the
// restart replays the AOF (appendfsync everysec), and the store reports Unavailable, naming the
// endpoint, while Redis is down, then reconnects by itself.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "coordinator/store/store.h"
#include "tests/support/redis_server.h"

namespace fairy::store {
namespace {

using scheduler::Fence;
using scheduler::JobState;
using scheduler::TaskState;

JobRecord MakeJob() {
  JobRecord r;
  r.job_id = "durable";
  r.spec = "input: clip.mov";
  r.priority = 70;
  r.submit_ms = 1234;
  r.state = JobState::kRunning;
  r.phase = scheduler::JobPhase::kRender;
  r.shots = {{0, 0, 48, {0, 24, 47}}};
  return r;
}

TaskRecord MakeTask(TaskState state, int64_t attempt) {
  TaskRecord t;
  t.job_id = "durable";
  t.task_id = "s000-f000000-000023";
  t.shot = 0;
  t.first_frame = 0;
  t.frame_count = 24;
  t.state = state;
  t.attempt = attempt;
  t.worker_id = "w1";
  return t;
}

TEST(StoreDurabilityTest, StateSurvivesARedisCrashAndTheStoreReconnects) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  redis::RedisOptions o;
  auto parsed = redis::ParseRedisUrl((*server)->url());
  ASSERT_TRUE(parsed.ok());
  o = *parsed;
  o.reconnect_attempts = 2;
  o.reconnect_backoff_ms = 10;
  auto client = redis::RedisClient::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto store = NewRedisStore(std::move(*client));

  Mutation m;
  m.job_id = "durable";
  m.job = MakeJob();
  m.include_spec = true;
  m.include_plan = true;
  m.tasks = {MakeTask(TaskState::kAssigned, 3)};
  m.events.push_back({5, "task.assigned", "durable", "s000-f000000-000023", "w1", 3, "", ""});
  ASSERT_TRUE(store->Apply(m).ok());
  // appendfsync everysec: what was written more than a second before a crash is on disk.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  (*server)->Kill();

  Status down = store->Apply(m);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.code(), Status::Code::kUnavailable);
  EXPECT_NE(down.message().find("127.0.0.1:" + std::to_string((*server)->port())),
            std::string::npos)
      << down.message();
  EXPECT_EQ(store->LoadAll(true).status().code(), Status::Code::kUnavailable);

  ASSERT_TRUE((*server)->Restart().ok());
  auto snaps = store->LoadAll(true);
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ((*snaps)[0].job.spec, "input: clip.mov");
  EXPECT_EQ((*snaps)[0].job.shots.at(0).anchor_frames, (std::vector<int64_t>{0, 24, 47}));
  ASSERT_EQ((*snaps)[0].tasks.size(), 1u);
  EXPECT_EQ((*snaps)[0].tasks[0].attempt, 3);
  EXPECT_EQ(*store->LiveAttempt("durable", "s000-f000000-000023"), 3) << "the fence survives too";
  auto events = store->ReadEvents("", 10);
  ASSERT_TRUE(events.ok());
  EXPECT_FALSE(events->empty());

  // A late report of an older attempt is still refused after the restart.
  Mutation late;
  late.job_id = "durable";
  late.tasks = {MakeTask(TaskState::kDone, 2)};
  late.fence = Fence{"durable", "s000-f000000-000023", 2};
  EXPECT_EQ(store->Apply(late).code(), Status::Code::kFailedPrecondition);
  late.tasks = {MakeTask(TaskState::kDone, 3)};
  late.fence = Fence{"durable", "s000-f000000-000023", 3};
  EXPECT_TRUE(store->Apply(late).ok());
}

TEST(StoreDurabilityTest, DamagedRecordsAreReportedByKeyAndFieldNotCrashed) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto raw = redis::RedisClient::Connect((*server)->url());
  ASSERT_TRUE(raw.ok());
  auto client = redis::RedisClient::Connect((*server)->url());
  ASSERT_TRUE(client.ok());
  auto store = NewRedisStore(std::move(*client));
  Mutation m;
  m.job_id = "durable";
  m.job = MakeJob();
  m.tasks = {MakeTask(TaskState::kReady, 0)};
  ASSERT_TRUE(store->Apply(m).ok());

  ASSERT_TRUE((*raw)->Command({"HSET", "fairy:job:durable", "priority", "{not json"}).ok());
  auto bad_field = store->LoadJob("durable");
  ASSERT_FALSE(bad_field.ok());
  EXPECT_EQ(bad_field.status().code(), Status::Code::kCorruption);
  EXPECT_NE(bad_field.status().message().find("fairy:job:durable field priority"),
            std::string::npos)
      << bad_field.status().message();

  ASSERT_TRUE((*raw)->Command({"HSET", "fairy:job:durable", "priority", "70"}).ok());
  ASSERT_TRUE((*raw)
                  ->Command({"HSET", "fairy:job:durable:tasks", "s000-f000000-000023",
                             R"({"job_id":"durable","task_id":"x","kind":"FRAMES"})"})
                  .ok());
  auto bad_task = store->LoadAll(true);
  ASSERT_FALSE(bad_task.ok());
  EXPECT_NE(bad_task.status().message().find("s000-f000000-000023"), std::string::npos)
      << bad_task.status().message();
  EXPECT_NE(bad_task.status().message().find("'shot' is missing"), std::string::npos)
      << bad_task.status().message();

  ASSERT_TRUE((*raw)->Command({"HSET", "fairy:job:durable:attempts", "t", "seven"}).ok());
  EXPECT_EQ(store->LiveAttempt("durable", "t").status().code(), Status::Code::kCorruption);
  ASSERT_TRUE((*raw)->Command({"SET", "fairy:job:durable:tasks", "not a hash"}).ok());
  EXPECT_FALSE(store->LoadJob("durable").ok());
}

}  // namespace
}  // namespace fairy::store
