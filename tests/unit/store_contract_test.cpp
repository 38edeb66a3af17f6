// The Store contract (coordinator/store/store.h), compiled twice: against MemoryStore (unit) and
// against RedisStore on a private redis-server (integration), FAIRY_STORE_BACKEND_REDIS=1.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/store.h"
#if FAIRY_STORE_BACKEND_REDIS
#include "tests/support/redis_server.h"
#endif

namespace fairy::store {
namespace {

using scheduler::Fence;
using scheduler::JobState;
using scheduler::TaskKind;
using scheduler::TaskState;

class StoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if FAIRY_STORE_BACKEND_REDIS
    auto s = testing::RedisServer::Start();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    auto c = redis::RedisClient::Connect(server_->url());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    RedisStoreOptions o;
    o.key_prefix = "test:";
    store_ = NewRedisStore(std::move(*c), o);
#else
    store_ = NewMemoryStore(&clock_);
#endif
  }

  // Lets `ms` of store time pass (worker TTLs): the fake clock for memory, real time for Redis.
  void Elapse(int64_t ms) {
#if FAIRY_STORE_BACKEND_REDIS
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
#else
    clock_.Advance(ms);
#endif
  }

  static JobRecord Job(const std::string& id, int priority, int64_t submit_ms) {
    JobRecord r;
    r.job_id = id;
    r.name = "name of " + id;
    r.spec = "input: a.mp4\ninstruction: \"make it snow\"\n";
    r.output = "/out/" + id + ".mp4";
    r.priority = priority;
    r.submit_ms = submit_ms;
    r.state = JobState::kRunning;
    r.phase = scheduler::JobPhase::kRender;
    r.requirements.tags = {"gpu", "studio-a"};
    r.requirements.device = "cuda";
    r.requirements.min_memory_mb = 16000;
    r.chunk_frames = 12;
    r.frame_batch = 6;
    r.frames_wait_for_anchor = false;
    r.shots = {{0, 0, 30, {0, 15, 29}}, {1, 30, 10, {30, 39}}};
    r.total_frames = 40;
    r.frames_done = 12;
    r.tasks_total = 5;
    r.tasks_done = 1;
    r.started_ms = submit_ms + 5;
    r.last_assign_ms = submit_ms + 9;
    r.error = "";
    r.worker_failures = {{"w1", 2}};
    return r;
  }

  static TaskRecord Task(const std::string& job, const std::string& id, TaskState state,
                         int64_t attempt) {
    TaskRecord t;
    t.job_id = job;
    t.task_id = id;
    t.kind = TaskKind::kFrames;
    t.shot = 1;
    t.first_frame = 30;
    t.frame_count = 10;
    t.state = state;
    t.attempt = attempt;
    t.failures = 1;
    t.worker_id = "w2";
    t.ready_at_ms = 11;
    t.assigned_ms = 12;
    t.started_ms = 13;
    t.progress_ms = 14;
    t.finished_ms = 0;
    t.frames_done = 4;
    t.result = "";
    t.last_error = "cuda oom";
    return t;
  }

  static Mutation Put(const JobRecord& job, std::vector<TaskRecord> tasks = {}, bool spec = true) {
    Mutation m;
    m.job_id = job.job_id;
    m.job = job;
    m.include_spec = spec;
    m.include_plan = spec;
    m.tasks = std::move(tasks);
    m.events.push_back(Event{100, "test.put", job.job_id, "", "", 0, "put", ""});
    return m;
  }

#if FAIRY_STORE_BACKEND_REDIS
  std::unique_ptr<testing::RedisServer> server_;
#endif
  scheduler::FakeClock clock_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreContractTest, RecordsRoundTripEveryField) {
  JobRecord job = Job("j1", 70, 1000);
  TaskRecord task = Task("j1", "s001-f000030-000039", TaskState::kRunning, 3);
  ASSERT_TRUE(store_->Apply(Put(job, {task})).ok());
  auto s = store_->LoadJob("j1");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->job.ToJson(), job.ToJson());
  ASSERT_EQ(s->tasks.size(), 1u);
  EXPECT_EQ(s->tasks[0].ToJson(), task.ToJson());
  auto missing = store_->LoadJob("nope");
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

// A mutation may carry thousands of tasks (analysis writes every task of a long video at once;
// RedisStore writes them in HSETs of 256).
TEST_F(StoreContractTest, ManyTasksInOneMutationAllReadBack) {
  JobRecord job = Job("j1", 70, 1000);
  std::vector<TaskRecord> tasks;
  for (int i = 0; i < 600; ++i) {
    TaskRecord t = Task("j1", scheduler::FramesTaskId(1, i, 1),
                        i % 3 == 0 ? TaskState::kRunning : TaskState::kReady, i);
    t.first_frame = i;
    t.frame_count = 1;
    tasks.push_back(t);
  }
  ASSERT_TRUE(store_->Apply(Put(job, tasks)).ok());
  auto s = store_->LoadJob("j1");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->tasks.size(), 600u);
  std::sort(s->tasks.begin(), s->tasks.end(),
            [](auto& a, auto& b) { return a.first_frame < b.first_frame; });
  for (int i = 0; i < 600; ++i) {
    EXPECT_EQ(s->tasks[i].ToJson(), tasks[i].ToJson()) << i;
    EXPECT_EQ(*store_->LiveAttempt("j1", tasks[i].task_id), i % 3 == 0 ? i : 0) << i;
  }
}

TEST_F(StoreContractTest, SpecAndPlanAreKeptUnlessRewritten) {
  JobRecord job = Job("j1", 50, 1000);
  ASSERT_TRUE(store_->Apply(Put(job)).ok());
  JobRecord changed = job;
  changed.spec = "should not be written";
  changed.shots.clear();
  changed.state = JobState::kPaused;
  ASSERT_TRUE(store_->Apply(Put(changed, {}, /*spec=*/false)).ok());
  auto s = store_->LoadJob("j1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->job.spec, job.spec);
  EXPECT_EQ(s->job.shots.size(), 2u);
  EXPECT_EQ(s->job.state, JobState::kPaused);
}

TEST_F(StoreContractTest, QueueOrderIsPriorityThenSubmitTimeAndDropsFinishedJobs) {
  ASSERT_TRUE(store_->Apply(Put(Job("late-normal", 50, 2000))).ok());
  ASSERT_TRUE(store_->Apply(Put(Job("urgent", 90, 3000))).ok());
  ASSERT_TRUE(store_->Apply(Put(Job("early-normal", 50, 1000))).ok());
  ASSERT_TRUE(store_->Apply(Put(Job("low", 0, 500))).ok());
  auto q = store_->QueueOrder();
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, (std::vector<std::string>{"urgent", "early-normal", "late-normal", "low"}));
  JobRecord done = Job("urgent", 90, 3000);
  done.state = JobState::kDone;
  ASSERT_TRUE(store_->Apply(Put(done)).ok());
  JobRecord bumped = Job("low", 100, 500);
  ASSERT_TRUE(store_->Apply(Put(bumped)).ok());
  q = store_->QueueOrder();
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, (std::vector<std::string>{"low", "early-normal", "late-normal"}));
  auto unfinished = store_->LoadAll(true);
  ASSERT_TRUE(unfinished.ok());
  EXPECT_EQ(unfinished->size(), 3u);
  auto all = store_->LoadAll(false);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].job.job_id, "low");  // by submit time
}

TEST_F(StoreContractTest, FencedCommitAcceptsOnlyTheLiveAttemptAtomically) {
  const std::string id = "s000-f000000-000011";
  ASSERT_TRUE(store_->Apply(Put(Job("j", 50, 1), {Task("j", id, TaskState::kAssigned, 1)})).ok());
  EXPECT_EQ(*store_->LiveAttempt("j", id), 1);
  // The worker of attempt 1 is presumed dead; attempt 2 goes out.
  ASSERT_TRUE(store_->Apply(Put(Job("j", 50, 1), {Task("j", id, TaskState::kReady, 1)})).ok());
  EXPECT_EQ(*store_->LiveAttempt("j", id), 0);
  ASSERT_TRUE(store_->Apply(Put(Job("j", 50, 1), {Task("j", id, TaskState::kAssigned, 2)})).ok());
  auto before = store_->ReadEvents("", 1000);
  ASSERT_TRUE(before.ok());

  // The late DONE of attempt 1 is refused and changes nothing (not the job, the task, the events).
  JobRecord late_job = Job("j", 50, 1);
  late_job.tasks_done = 99;
  TaskRecord late = Task("j", id, TaskState::kDone, 1);
  late.result = "/chunks/old.mkv";
  Mutation m = Put(late_job, {late}, false);
  m.fence = Fence{"j", id, 1};
  Status st = store_->Apply(m);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(st.message().rfind("stale attempt", 0), 0u) << st.message();
  auto after = store_->LoadJob("j");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->tasks[0].state, TaskState::kAssigned);
  EXPECT_EQ(after->tasks[0].attempt, 2);
  EXPECT_EQ(after->job.tasks_done, 1);
  EXPECT_EQ(store_->ReadEvents("", 1000)->size(), before->size());

  // The live attempt commits; a duplicate of the same DONE is then refused too.
  TaskRecord done = Task("j", id, TaskState::kDone, 2);
  done.result = "/chunks/new.mkv";
  Mutation ok = Put(Job("j", 50, 1), {done}, false);
  ok.fence = Fence{"j", id, 2};
  ASSERT_TRUE(store_->Apply(ok).ok());
  EXPECT_EQ(*store_->LiveAttempt("j", id), 0);
  EXPECT_EQ(store_->LoadJob("j")->tasks[0].result, "/chunks/new.mkv");
  EXPECT_EQ(store_->Apply(ok).code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(*store_->LiveAttempt("j", "unknown-task"), 0);
}

TEST_F(StoreContractTest, ApplyAllAppliesInOrderAndReportsEachMutation) {
  const std::string a = "s000-f000000-000003", b = "s000-f000004-000007";
  ASSERT_TRUE(store_->Apply(Put(Job("j", 50, 1), {Task("j", a, TaskState::kAssigned, 1)})).ok());
  // A fenced DONE of the live attempt, a stale one, then the next assignment: one batch.
  TaskRecord done = Task("j", a, TaskState::kDone, 1);
  done.result = "/chunks/a.mkv";
  Mutation commit = Put(Job("j", 50, 1), {done}, false);
  commit.fence = Fence{"j", a, 1};
  Mutation stale = Put(Job("j", 50, 1), {Task("j", a, TaskState::kFailed, 1)}, false);
  stale.fence = Fence{"j", a, 1};  // attempt 1 is no longer live once `commit` ran
  Mutation assign = Put(Job("j", 50, 1), {Task("j", b, TaskState::kAssigned, 1)}, false);
  Mutation invalid;  // no job id: refused before it reaches the store
  std::vector<Status> st = store_->ApplyAll({&commit, &stale, &invalid, &assign});
  ASSERT_EQ(st.size(), 4u);
  EXPECT_TRUE(st[0].ok()) << st[0].ToString();
  EXPECT_EQ(st[1].message().rfind("stale attempt", 0), 0u) << st[1].ToString();
  EXPECT_EQ(st[2].code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(st[3].ok()) << st[3].ToString();
  auto after = store_->LoadJob("j");
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->tasks.size(), 2u);
  EXPECT_EQ(after->tasks[0].state, TaskState::kDone);
  EXPECT_EQ(after->tasks[0].result, "/chunks/a.mkv");
  EXPECT_EQ(after->tasks[1].state, TaskState::kAssigned);
  EXPECT_EQ(*store_->LiveAttempt("j", a), 0);
  EXPECT_EQ(*store_->LiveAttempt("j", b), 1);
  EXPECT_TRUE(store_->ApplyAll({}).empty());
}

TEST_F(StoreContractTest, ApplyAllOfConsecutiveUnfencedMutationsEndsAsAppliedOneByOne) {
  const std::string a = "s000-f000000-000003", b = "s000-f000004-000007";
  ASSERT_TRUE(store_->Apply(Put(Job("other", 50, 1))).ok());
  const size_t events_before = store_->ReadEvents("", 1000)->size();
  Mutation first = Put(Job("j", 50, 1), {Task("j", a, TaskState::kReady, 0)}, true);
  first.events = {Event{1, "e.first", "j", a, "", 0, "1", ""}};
  JobRecord later = Job("j", 60, 1);
  later.tasks_done = 5;
  later.spec = "not written";  // `second` does not write the spec: `first`'s stays
  Mutation second = Put(later, {Task("j", a, TaskState::kAssigned, 1), Task("j", b, TaskState::kReady, 0)}, false);
  second.events = {Event{2, "e.second", "j", b, "", 0, "2", ""}};
  Mutation third;  // tasks only
  third.job_id = "j";
  third.tasks = {Task("j", b, TaskState::kAssigned, 1)};
  third.events = {Event{3, "e.third", "j", b, "", 0, "3", ""}};
  Mutation other = Put(Job("other", 40, 1), {}, false);  // another job ends the run
  std::vector<Status> st = store_->ApplyAll({&first, &second, &third, &other});
  for (const Status& s : st) EXPECT_TRUE(s.ok()) << s.ToString();
  auto j = store_->LoadJob("j");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->job.tasks_done, 5);
  EXPECT_EQ(j->job.priority, 60);
  EXPECT_EQ(j->job.spec, first.job->spec);
  ASSERT_EQ(j->tasks.size(), 2u);
  EXPECT_EQ(j->tasks[0].state, TaskState::kAssigned);
  EXPECT_EQ(j->tasks[1].state, TaskState::kAssigned);
  EXPECT_EQ(*store_->LiveAttempt("j", a), 1);
  EXPECT_EQ(*store_->LiveAttempt("j", b), 1);
  EXPECT_EQ(store_->LoadJob("other")->job.priority, 40);
  auto events = store_->ReadEvents("", 1000);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> types;
  for (size_t i = events_before; i < events->size(); ++i) types.push_back((*events)[i].type);
  EXPECT_EQ(types, (std::vector<std::string>{"e.first", "e.second", "e.third", "test.put"}));
  const auto order = store_->QueueOrder();
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(*order, (std::vector<std::string>{"j", "other"}));  // priority 60 before 40
}

// RedisStore writes only the job fields that changed since its last successful write; whatever
// the order, fences and deletions in between, a job must read back as the last record applied.
TEST_F(StoreContractTest, JobRecordReadsBackWholeAfterRevertsStaleFencesAndDeletion) {
  const std::string a = "s000-f000000-000003";
  JobRecord base = Job("j", 50, 1);
  ASSERT_TRUE(store_->Apply(Put(base, {Task("j", a, TaskState::kAssigned, 1)})).ok());

  // A field changed and changed back in one batch (the calls are not merged: another job sits
  // between them): the store must not skip the change back.
  JobRecord paused = base;
  paused.state = JobState::kPaused;
  paused.priority = 10;
  Mutation to_paused = Put(paused, {}, false);
  Mutation other = Put(Job("other", 50, 2));
  Mutation back = Put(base, {}, false);
  for (const Status& s : store_->ApplyAll({&to_paused, &other, &back}))
    EXPECT_TRUE(s.ok()) << s.ToString();
  auto j = store_->LoadJob("j");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->job.ToJson(), base.ToJson());
  EXPECT_EQ(store_->QueueOrder()->front(), "j");  // priority 50 submitted at 1, not 10

  // A stale fenced mutation (writes nothing) ahead of an accepted one of the same job.
  JobRecord stale_job = base;
  stale_job.tasks_done = 99;
  stale_job.error = "stale";
  Mutation stale = Put(stale_job, {Task("j", a, TaskState::kFailed, 7)}, false);
  stale.fence = Fence{"j", a, 7};
  JobRecord next = base;
  next.frames_done = 20;
  Mutation accepted = Put(next, {}, false);
  std::vector<Status> st = store_->ApplyAll({&stale, &other, &accepted});
  EXPECT_FALSE(st[0].ok());
  EXPECT_TRUE(st[2].ok()) << st[2].ToString();
  j = store_->LoadJob("j");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->job.ToJson(), next.ToJson());
  // After the failure the next write of an unchanged field still lands.
  JobRecord after_failure = next;
  after_failure.error = "written";
  ASSERT_TRUE(store_->Apply(Put(after_failure, {}, false)).ok());
  EXPECT_EQ(store_->LoadJob("j")->job.error, "written");

  // Deleted and written again with the same record: every field is back, and it is queued again.
  ASSERT_TRUE(store_->DeleteJob("j").ok());
  ASSERT_TRUE(store_->Apply(Put(after_failure)).ok());
  j = store_->LoadJob("j");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->job.ToJson(), after_failure.ToJson());
  EXPECT_EQ(store_->QueueOrder()->front(), "j");

  // Finished, then retried with the same score: back in the queue.
  JobRecord done = after_failure;
  done.state = JobState::kDone;
  ASSERT_TRUE(store_->Apply(Put(done, {}, false)).ok());
  EXPECT_EQ(*store_->QueueOrder(), std::vector<std::string>{"other"});
  ASSERT_TRUE(store_->Apply(Put(after_failure, {}, false)).ok());
  EXPECT_EQ(*store_->QueueOrder(), (std::vector<std::string>{"j", "other"}));
  EXPECT_EQ(store_->LoadJob("j")->job.ToJson(), after_failure.ToJson());
}

TEST_F(StoreContractTest, DeleteJobRemovesEverything) {
  ASSERT_TRUE(store_->Apply(Put(Job("j", 50, 1), {Task("j", "t", TaskState::kAssigned, 4)})).ok());
  ASSERT_TRUE(store_->AppendLog("j", LogLine{1, "t", "w", "hello", ""}).ok());
  ASSERT_TRUE(store_->DeleteJob("j").ok());
  EXPECT_EQ(store_->LoadJob("j").status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(store_->LoadAll(false)->empty());
  EXPECT_TRUE(store_->QueueOrder()->empty());
  EXPECT_EQ(*store_->LiveAttempt("j", "t"), 0);
  EXPECT_TRUE(store_->ReadLog("j", "", 10)->empty());
  EXPECT_TRUE(store_->DeleteJob("j").ok());
}

TEST_F(StoreContractTest, WorkersExpireAfterTheirTtl) {
  WorkerRecord w;
  w.info.worker_id = "gpu-01";
  w.info.host = "render01";
  w.info.device = "cuda:0";
  w.info.memory_mb = 24000;
  w.info.tags = {"gpu"};
  w.info.models = {"pix2pix-tiny"};
  w.info.slots = 2;
  w.last_seen_ms = 77;
  w.running = {{"j", "t", 3}};
  ASSERT_TRUE(store_->PutWorker(w, 1000).ok());
  WorkerRecord other = w;
  other.info.worker_id = "gpu-02";
  ASSERT_TRUE(store_->PutWorkersLater({{&other, 60000}}).ok());  // read back by the next call
  auto ws = store_->LoadWorkers();
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  ASSERT_EQ(ws->size(), 2u);
  std::sort(ws->begin(), ws->end(),
            [](auto& a, auto& b) { return a.info.worker_id < b.info.worker_id; });
  EXPECT_EQ((*ws)[0].ToJson(), w.ToJson());
  Elapse(500);
  ASSERT_TRUE(store_->PutWorkersLater({{&w, 1000}}).ok());  // heartbeat refresh
  Elapse(600);
  EXPECT_EQ(store_->LoadWorkers()->size(), 2u) << "refreshed TTL must keep it";
  Elapse(1200);
  ws = store_->LoadWorkers();
  ASSERT_TRUE(ws.ok());
  ASSERT_EQ(ws->size(), 1u);
  EXPECT_EQ((*ws)[0].info.worker_id, "gpu-02");
  ASSERT_TRUE(store_->DeleteWorker("gpu-02").ok());
  EXPECT_TRUE(store_->LoadWorkers()->empty());
}

TEST_F(StoreContractTest, EventsAndLogsPageInOrder) {
  for (int i = 0; i < 25; ++i) {
    Mutation m;
    m.job_id = "j";
    m.events.push_back(Event{i, "test.n", "j", "t" + std::to_string(i), "w", i,
                             "detail " + std::to_string(i), ""});
    ASSERT_TRUE(store_->Apply(m).ok());
    LogLine line{i, "t", "w", "line " + std::to_string(i), ""};
    // Lines appended without waiting come back in order with the others, between writes.
    ASSERT_TRUE(i % 2 == 0 ? store_->AppendLog("j", line).ok()
                           : store_->AppendLogsLater({{"j", line}}).ok());
  }
  std::vector<Event> all;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto e = store_->ReadEvents(after, 10);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    if (e->empty()) break;
    all.insert(all.end(), e->begin(), e->end());
    after = e->back().id;
  }
  ASSERT_EQ(all.size(), 25u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(all[i].task_id, "t" + std::to_string(i));
    EXPECT_EQ(all[i].attempt, i);
    EXPECT_EQ(all[i].detail, "detail " + std::to_string(i));
    EXPECT_EQ(all[i].time_ms, i);
    EXPECT_FALSE(all[i].id.empty());
  }
  auto logs = store_->ReadLog("j", "", 100);
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 25u);
  EXPECT_EQ((*logs)[24].line, "line 24");
  auto rest = store_->ReadLog("j", (*logs)[19].id, 100);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 5u);
  EXPECT_EQ((*rest)[0].line, "line 20");
  EXPECT_EQ(store_->ReadEvents("not-an-id", 5).status().code(), Status::Code::kInvalidArgument);
}

// The scheduler's persisted actions are enough for a fresh scheduler to resume the job: a
// restarted coordinator re-adopts a reconnecting worker's task and finishes the job.
TEST_F(StoreContractTest, PersistedSchedulerStateRecoversAfterRestart) {
  scheduler::FakeClock clock(1'000'000);
  scheduler::SchedulerOptions opts;
  auto execute = [&](const scheduler::Actions& actions,
                     std::vector<scheduler::AssignAction>* assigns) {
    for (const auto& a : actions) {
      if (auto* p = std::get_if<scheduler::PersistAction>(&a)) {
        ASSERT_TRUE(store_->Apply(p->mutation).ok()) << store_->Apply(p->mutation).ToString();
      } else if (auto* as = std::get_if<scheduler::AssignAction>(&a)) {
        if (assigns) assigns->push_back(*as);
      }
    }
  };
  std::vector<scheduler::AssignAction> assigns;
  {
    scheduler::Scheduler a(opts, &clock);
    scheduler::Actions out;
    scheduler::JobSubmission sub;
    sub.job_id = "movie";
    sub.spec = "spec-text";
    sub.chunk_frames = 10;  // 3 UNet batches of 4: tasks [0, 13) and [13, 20)
    ASSERT_TRUE(a.Submit(sub, &out).ok());
    ASSERT_TRUE(a.OnAnalyzeDone("movie", {{0, 0, 20, {0, 19}}}, &out).ok());
    ASSERT_TRUE(a.OnWorkerHello({"w1", "h", "cpu", 0, {}, {}, 1}, {}, &out).ok());
    ASSERT_TRUE(a.OnWorkerReady("w1", 1, &out).ok());
    execute(out, &assigns);
    ASSERT_EQ(assigns.size(), 1u);
    out.clear();
    ASSERT_TRUE(a.OnTaskDone({"movie", assigns[0].task.task_id, 1}, "w1", "cache-key", &out).ok());
    ASSERT_TRUE(a.OnWorkerReady("w1", 1, &out).ok());
    assigns.clear();
    execute(out, &assigns);
    ASSERT_EQ(assigns.size(), 1u);
    EXPECT_EQ(assigns[0].task.task_id, "s000-f000000-000012");
  }  // the coordinator dies here, with s000-f000000-000012 out on w1
  clock.Advance(2000);
  auto snaps = store_->LoadAll(true);
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ((*snaps)[0].job.spec, "spec-text");
  scheduler::Scheduler b(opts, &clock);
  scheduler::Actions out;
  ASSERT_TRUE(b.Recover(*snaps, &out).ok());
  ASSERT_TRUE(
      b.OnWorkerHello({"w1", "h", "cpu", 0, {}, {}, 1}, {{"movie", "s000-f000000-000012", 1}}, &out)
          .ok());
  EXPECT_EQ(b.FindTask("movie", "s000-f000000-000012")->state, TaskState::kAssigned);
  ASSERT_TRUE(b.OnTaskDone({"movie", "s000-f000000-000012", 1}, "w1", "/c/0.mkv", &out).ok());
  // The other frames task was never assigned: released by the anchor's DONE (stored as PENDING
  // behind a DONE anchor), it is READY and goes out now.
  EXPECT_EQ(b.FindTask("movie", "s000-f000013-000019")->state, TaskState::kReady);
  ASSERT_TRUE(b.OnWorkerReady("w1", 1, &out).ok());
  std::vector<scheduler::AssignAction> after;
  execute(out, &after);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].task.task_id, "s000-f000013-000019");
  EXPECT_EQ(after[0].task.attempt, 1);
  out.clear();
  ASSERT_TRUE(b.OnTaskDone({"movie", "s000-f000013-000019", 1}, "w1", "/c/1.mkv", &out).ok());
  bool stitch = false;
  for (const auto& a : out) stitch |= std::holds_alternative<scheduler::StitchAction>(a);
  EXPECT_TRUE(stitch);
  execute(out, nullptr);
  auto final_state = store_->LoadJob("movie");
  ASSERT_TRUE(final_state.ok());
  EXPECT_EQ(final_state->job.phase, scheduler::JobPhase::kStitch);
  EXPECT_EQ(final_state->job.tasks_done, 3);
  EXPECT_EQ(final_state->job.frames_done, 20);
}

}  // namespace
}  // namespace fairy::store
