// Progress supervision: stalled attempts (a worker that heartbeats but whose task makes no
// progress), the adaptive stall limit, the stall blocklist and `suspect`, and slot limits.
#include <gtest/gtest.h>

#include "tests/unit/scheduler_test_util.h"

namespace fairy::scheduler::testing {
namespace {

class SchedulerStallTest : public SchedulerFixture {
 protected:
  // Workers stay alive for the whole test unless a test says otherwise; the stall floor is short.
  static SchedulerOptions Options() {
    SchedulerOptions o;
    o.heartbeat_interval_ms = 100;
    o.heartbeat_liveness = 100000;
    o.stall_floor_ms = 1000;
    o.stall_factor = 10;
    o.stall_unmeasured_ms = 60000;
    o.retry_backoff_ms = 0;
    return o;
  }
  void SetUp() override { Reset(Options()); }

  // Reports steps 1..n of `a`, `step_ms` apart.
  void Steps(const AssignAction& a, int n, int64_t step_ms, int first = 1) {
    for (int s = first; s < first + n; ++s) {
      clock_.Advance(step_ms);
      Status st = Progress(a, ProgressReport{0, s});
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
  }
  int64_t Limit(const AssignAction& a) {
    auto l = sched_->StallLimitMs(a.task.job_id, a.task.task_id);
    EXPECT_TRUE(l.has_value());
    return l ? l->first : -1;
  }
};

TEST_F(SchedulerStallTest, AttemptWithoutStepsForTenMeasuredStepsIsStalledAndFenced) {
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  Hello("w2");
  AssignAction a = Ready("w1").assigns.at(0);
  Steps(a, 3, 500);  // 500 ms per step measured between reports 1-2 and 2-3
  EXPECT_EQ(Limit(a), 5000) << sched_->StallLimitMs("j", a.task.task_id)->second;
  EXPECT_NE(
      sched_->StallLimitMs("j", a.task.task_id)->second.find("500 ms per step measured on w1"),
      std::string::npos);
  // The task hangs: the worker still says it is alive (heartbeats, step pulses without a new
  // step), which is no progress.
  for (int i = 0; i < 49; ++i) {
    clock_.Advance(100);
    Actions out;
    ASSERT_TRUE(sched_->OnHeartbeat("w1", &out).ok());
    ASSERT_TRUE(Progress(a, ProgressReport{0, 3}).ok());
    EXPECT_TRUE(Tick().cancels.empty()) << "stalled too early, at " << (i + 1) * 100 << " ms";
  }
  clock_.Advance(101);  // 5001 ms since step 3
  Collected c = Tick();
  ASSERT_EQ(c.cancels.size(), 1u);
  EXPECT_EQ(c.cancels[0].worker_id, "w1");
  EXPECT_EQ(c.cancels[0].attempt, a.task.attempt);
  EXPECT_NE(c.cancels[0].reason.find("stalled: no progress for 5001 ms (limit 5000 ms"),
            std::string::npos)
      << c.cancels[0].reason;
  EXPECT_NE(std::get_if<PersistAction>(&c.all.front()), nullptr) << "requeue persisted first";
  EXPECT_TRUE(c.HasEvent("task.stalled"));
  EXPECT_EQ(StateOf("j", a.task.task_id), TaskState::kReady);
  EXPECT_EQ(sched_->stats().tasks_stalled, 1);
  EXPECT_EQ(sched_->stats().tasks_timed_out, 0);
  EXPECT_EQ(sched_->FindJob("j")->worker_stalls.at("w1"), 1);
  EXPECT_EQ(sched_->FindJob("j")->worker_failures.at("w1"), 1);
  EXPECT_EQ(sched_->FindTask("j", a.task.task_id)->failures, 1);
  const WorkerRecord* w1 = sched_->FindWorker("w1");
  EXPECT_EQ(w1->stalls, 1);
  EXPECT_FALSE(w1->suspect);
  EXPECT_FALSE(w1->proven) << "back to one task at a time";
  ASSERT_EQ(c.workers.size(), 1u) << "the worker's stall count is written";
  EXPECT_EQ(c.workers[0].worker.stalls, 1);

  // Requeued elsewhere; the hung attempt's late DONE is refused and changes nothing.
  AssignAction again = Ready("w2").assigns.at(0);
  EXPECT_EQ(again.task.task_id, a.task.task_id);
  EXPECT_EQ(again.task.attempt, a.task.attempt + 1);
  Actions out;
  EXPECT_EQ(sched_->OnTaskDone({"j", a.task.task_id, a.task.attempt}, "w1", "late", &out).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(StateOf("j", a.task.task_id), TaskState::kAssigned);
  Done(again, "good");
  EXPECT_EQ(sched_->FindTask("j", a.task.task_id)->result, "good");
}

TEST_F(SchedulerStallTest, TheFloorHoldsForFastSteps) {
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  AssignAction a = Ready("w1").assigns.at(0);
  Steps(a, 3, 10);
  EXPECT_EQ(Limit(a), 1000) << "10 x max(10 ms, a heartbeat interval) is below the floor";
  EXPECT_NE(sched_->StallLimitMs("j", a.task.task_id)->second.find("stall_floor_ms"),
            std::string::npos);
  clock_.Advance(1000);
  EXPECT_TRUE(Tick().cancels.empty());
  clock_.Advance(1);
  EXPECT_EQ(Tick().cancels.size(), 1u);
}

TEST_F(SchedulerStallTest, BeforeAnyMeasurementTheUnmeasuredLimitThenAnotherWorkersRate) {
  SubmitPlanned("j", 50, {40}, 10, {}, false);
  Hello("w1");
  Hello("w2");
  AssignAction a1 = Ready("w1").assigns.at(0);
  AssignAction a2 = Ready("w2").assigns.at(0);
  ASSERT_EQ(a1.task.kind, TaskKind::kAnchor);
  EXPECT_EQ(Limit(a1), 60000);
  EXPECT_NE(sched_->StallLimitMs("j", a1.task.task_id)->second.find("stall_unmeasured_ms"),
            std::string::npos);
  Steps(a1, 2, 800);
  EXPECT_EQ(Limit(a1), 8000);
  EXPECT_EQ(Limit(a2), 60000) << "w2 runs a frames task: anchor steps say nothing about it";
  Done(a1);
  AssignAction f1 = Ready("w1").assigns.at(0);
  ASSERT_EQ(f1.task.kind, TaskKind::kFrames);
  Steps(a2, 3, 300);  // w2 measures frames steps: 300 ms
  EXPECT_EQ(Limit(a2), 3000);
  EXPECT_EQ(Limit(f1), 3000) << "w1 has no frames measurement yet: w2's is used";
  Steps(f1, 3, 2000);
  EXPECT_EQ(Limit(f1), 20000) << "then its own";
}

TEST_F(SchedulerStallTest, ModelLoadingKeepsAnAttemptAliveWhileBytesAreRead) {
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  AssignAction a = Ready("w1").assigns.at(0);
  const int64_t total = 4000000000;
  // A slow first load: 150 s, far past the unmeasured limit, in reports of new bytes.
  for (int i = 1; i <= 150; ++i) {
    clock_.Advance(1000);
    ASSERT_TRUE(Progress(a, ProgressReport{0, 0, i * int64_t{20000000}, total}).ok());
    ASSERT_TRUE(Tick().cancels.empty()) << "stalled while loading, at " << i << " s";
  }
  EXPECT_EQ(Limit(a), 1000) << "while loading the floor applies";
  // The read hangs (an NFS server gone): the same byte count again is no progress.
  clock_.Advance(600);
  ASSERT_TRUE(Progress(a, ProgressReport{0, 0, 150 * int64_t{20000000}, total}).ok());
  clock_.Advance(401);
  Collected c = Tick();
  ASSERT_EQ(c.cancels.size(), 1u);
  EXPECT_NE(c.cancels[0].reason.find("loading a model"), std::string::npos) << c.cancels[0].reason;
}

TEST_F(SchedulerStallTest, RepeatedStallsKeepTheWorkerOffTheJobAndMakeItSuspect) {
  SubmitPlanned("j", 90, {40}, 10, {}, false);
  SubmitPlanned("other", 10, {10}, 10);
  Hello("bad");
  Hello("good");
  for (int stall = 1; stall <= 2; ++stall) {
    Collected c = Ready("bad");
    ASSERT_EQ(c.assigns.size(), 1u);
    ASSERT_EQ(c.assigns[0].task.job_id, "j");
    clock_.Advance(60001);  // unmeasured limit
    Actions out;
    ASSERT_TRUE(sched_->OnHeartbeat("bad", &out).ok());
    ASSERT_TRUE(sched_->OnHeartbeat("good", &out).ok());
    Collected t = Tick();
    ASSERT_EQ(t.cancels.size(), 1u);
    EXPECT_EQ(sched_->FindWorker("bad")->suspect, stall == 2);
  }
  EXPECT_EQ(sched_->FindJob("j")->worker_stalls.at("bad"), 2);
  EXPECT_EQ(sched_->FindJob("j")->worker_failures.at("bad"), 2)
      << "below blacklist_threshold 3: the stall count keeps it off";
  Collected c = Ready("bad");
  ASSERT_EQ(c.assigns.size(), 1u);
  EXPECT_EQ(c.assigns[0].task.job_id, "other") << "kept off j only";
  EXPECT_EQ(Ready("good").assigns.at(0).task.job_id, "j");
  // A new registration (it left, or was declared dead) starts clean.
  Actions out;
  ASSERT_TRUE(sched_->OnWorkerGone("bad", &out).ok());
  Hello("bad");
  EXPECT_FALSE(sched_->FindWorker("bad")->suspect);
  EXPECT_EQ(sched_->FindWorker("bad")->stalls, 0);
}

TEST_F(SchedulerStallTest, ClaimedSlotsAreCappedAndCountOnlyAfterProgress) {
  SchedulerOptions o = Options();
  o.max_worker_slots = 4;
  Reset(o);
  SubmitPlanned("j", 50, {100}, 10, {}, false);
  Hello("greedy", {}, 1024);
  EXPECT_EQ(sched_->FindWorker("greedy")->info.slots, 4);
  Collected first = Ready("greedy", 1024);
  ASSERT_EQ(first.assigns.size(), 1u) << "one task until it has shown progress";
  EXPECT_TRUE(Ready("greedy", 1024).assigns.empty());
  ASSERT_TRUE(Progress(first.assigns[0], ProgressReport{0, 0, 100, 1000}).ok());
  EXPECT_TRUE(Ready("greedy", 1024).assigns.empty()) << "model bytes are not a task's progress";
  ASSERT_TRUE(Progress(first.assigns[0], ProgressReport{0, 1}).ok());
  EXPECT_TRUE(sched_->FindWorker("greedy")->proven);
  EXPECT_EQ(Ready("greedy", 1024).assigns.size(), 3u) << "capped at max_worker_slots";
  EXPECT_EQ(sched_->FindWorker("greedy")->running.size(), 4u);
}

TEST_F(SchedulerStallTest, FixedProgressTimeoutOverridesAndFloorZeroTurnsSupervisionOff) {
  SchedulerOptions o = Options();
  o.progress_timeout_ms = 3000;
  Reset(o);
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  AssignAction a = Ready("w1").assigns.at(0);
  Steps(a, 3, 1000);
  EXPECT_EQ(Limit(a), 3000);

  o = Options();
  o.stall_floor_ms = 0;
  Reset(o);
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  a = Ready("w1").assigns.at(0);
  EXPECT_EQ(Limit(a), 0);
  clock_.Advance(24 * 3600 * 1000);
  Actions out;
  ASSERT_TRUE(sched_->OnHeartbeat("w1", &out).ok());
  EXPECT_TRUE(Tick().cancels.empty());
  EXPECT_EQ(StateOf("j", a.task.task_id), TaskState::kAssigned);
}

TEST_F(SchedulerStallTest, JobsWithTheSameStepProfileShareMeasurements) {
  for (const char* id : {"a", "b", "c"}) {
    JobSubmission s;
    s.job_id = id;
    s.frame_batch = 1;
    s.chunk_frames = 10;
    s.frames_wait_for_anchor = false;
    s.step_profile = std::string(id) == "c" ? "sd15|768|b4" : "sd15|512|b4";
    Actions out;
    ASSERT_TRUE(sched_->Submit(s, &out).ok());
    ASSERT_TRUE(sched_->OnAnalyzeDone(id, {ShotPlan{0, 0, 10, {}}}, &out).ok());
    clock_.Advance(1);
  }
  Hello("w1");
  AssignAction a = Ready("w1").assigns.at(0);
  ASSERT_EQ(a.task.job_id, "a");
  Steps(a, 2, 700);
  Done(a);
  AssignAction b = Ready("w1").assigns.at(0);
  ASSERT_EQ(b.task.job_id, "b");
  ASSERT_EQ(b.task.kind, TaskKind::kAnchor);
  EXPECT_EQ(Limit(b), 7000);
  Done(b);
  AssignAction c = Ready("w1").assigns.at(0);
  ASSERT_EQ(c.task.job_id, "c");
  EXPECT_EQ(Limit(c), 60000) << "another resolution: not measured";
}

}  // namespace
}  // namespace fairy::scheduler::testing
