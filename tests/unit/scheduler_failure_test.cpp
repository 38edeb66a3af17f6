// Scheduler: fencing, heartbeats and dead workers, retries with backoff, timeouts, blacklists,
// reconnects and recovery after a coordinator restart. Time only moves through the FakeClock.
#include "tests/unit/scheduler_test_util.h"

namespace fairy::scheduler {
namespace {

using testing::Collected;
using testing::SchedulerFixture;

class SchedulerFailureTest : public SchedulerFixture {};

TEST_F(SchedulerFailureTest, StaleAndForeignReportsAreRefusedAndChangeNothing) {
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w1");
  Hello("w2");
  AssignAction a = Ready("w1").assigns.at(0);
  Actions out;
  Status wrong_attempt = sched_->OnTaskDone({"j", a.task.task_id, 2}, "w1", "x", &out);
  EXPECT_EQ(wrong_attempt.code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(wrong_attempt.message().rfind("stale attempt", 0), 0u) << wrong_attempt.message();
  EXPECT_EQ(sched_->OnTaskDone({"j", a.task.task_id, 1}, "w2", "x", &out).code(),
            Status::Code::kFailedPrecondition)
      << "another worker cannot report this attempt";
  EXPECT_EQ(sched_->OnTaskProgress({"j", "no-such-task", 1}, "w1", 3, &out).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(sched_->OnTaskFailed({"nojob", "t", 1}, "w1", "e", true, &out).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(sched_->stats().stale_reports, 4);
  EXPECT_EQ(StateOf("j", a.task.task_id), TaskState::kAssigned);
  Done(a);
  EXPECT_EQ(sched_->OnTaskDone({"j", a.task.task_id, 1}, "w1", "x", &out).code(),
            Status::Code::kFailedPrecondition)
      << "a duplicate DONE is stale too";
}

TEST_F(SchedulerFailureTest, ProgressMarksRunningAndIsPersisted) {
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w");
  AssignAction a = Ready("w").assigns.at(0);
  clock_.Advance(500);
  Actions out;
  ASSERT_TRUE(sched_->OnTaskProgress({"j", a.task.task_id, 1}, "w", 4, &out).ok());
  Collected c(std::move(out));
  const TaskRecord* t = sched_->FindTask("j", a.task.task_id);
  EXPECT_EQ(t->state, TaskState::kRunning);
  EXPECT_EQ(t->frames_done, 4);
  EXPECT_EQ(t->started_ms, clock_.NowMs());
  ASSERT_EQ(c.persists.size(), 1u);
  EXPECT_EQ(c.persists[0].mutation.tasks.at(0).state, TaskState::kRunning);
  EXPECT_TRUE(c.HasEvent("task.running"));

  // A pulse (the same frame count: steps of a batch) resets the silence clock without a write.
  clock_.Advance(700);
  Actions pulse;
  ASSERT_TRUE(sched_->OnTaskProgress({"j", a.task.task_id, 1}, "w", 4, &pulse).ok());
  EXPECT_TRUE(pulse.empty());
  EXPECT_EQ(t->progress_ms, clock_.NowMs());
  clock_.Advance(700);
  Actions more;
  ASSERT_TRUE(sched_->OnTaskProgress({"j", a.task.task_id, 1}, "w", 6, &more).ok());
  Collected m(std::move(more));
  ASSERT_EQ(m.persists.size(), 1u);
  EXPECT_EQ(m.persists[0].mutation.tasks.at(0).frames_done, 6);
  EXPECT_TRUE(m.HasEvent("task.progress"));
}

TEST_F(SchedulerFailureTest, SilentWorkerIsDeclaredDeadAndItsTaskRequeued) {
  SchedulerOptions o;
  o.heartbeat_interval_ms = 1000;
  o.heartbeat_liveness = 3;
  o.retry_backoff_ms = 500;
  Reset(o);
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w1");
  Hello("w2");
  AssignAction a = Ready("w1").assigns.at(0);
  for (int i = 0; i < 5; ++i) {  // w2 keeps heartbeating, w1 is silent
    clock_.Advance(1000);
    Actions out;
    ASSERT_TRUE(sched_->OnHeartbeat("w2", &out).ok());
    Collected c = Tick();
    if (i < 2) {
      EXPECT_TRUE(c.deleted_workers.empty()) << "alive until interval x liveness, step " << i;
    }
  }
  EXPECT_EQ(sched_->FindWorker("w1"), nullptr);
  EXPECT_NE(sched_->FindWorker("w2"), nullptr);
  EXPECT_EQ(sched_->stats().workers_dead, 1);
  const TaskRecord* t = sched_->FindTask("j", a.task.task_id);
  EXPECT_EQ(t->state, TaskState::kReady);
  EXPECT_EQ(t->failures, 1);
  Collected again = Ready("w2");
  ASSERT_EQ(again.assigns.size(), 1u);
  EXPECT_EQ(again.assigns[0].task.attempt, 2);
  // The presumed-dead worker's late report is refused; it must say hello again.
  Actions out;
  EXPECT_EQ(sched_->OnTaskDone({"j", a.task.task_id, 1}, "w1", "late", &out).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(sched_->OnHeartbeat("w1", &out).code(), Status::Code::kNotFound);
  EXPECT_EQ(sched_->OnWorkerReady("w1", 1, &out).code(), Status::Code::kNotFound);
  Done(again.assigns[0]);
}

TEST_F(SchedulerFailureTest, RetriesBackOffExponentiallyThenGiveUp) {
  SchedulerOptions o;
  o.max_retries = 2;
  o.retry_backoff_ms = 1000;
  o.max_backoff_ms = 1500;
  o.blacklist_threshold = 0;
  Reset(o);
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w");
  Fail(Ready("w").assigns.at(0), "cuda oom");
  EXPECT_EQ(sched_->FindTask("j", "s000-anchor")->ready_at_ms, clock_.NowMs() + 1000);
  EXPECT_EQ(sched_->NextDeadlineMs().value_or(0), clock_.NowMs() + 1000);
  clock_.Advance(999);
  EXPECT_TRUE(Ready("w").assigns.empty()) << "still in backoff";
  clock_.Advance(1);
  AssignAction second = Ready("w").assigns.at(0);
  EXPECT_EQ(second.task.attempt, 2);
  Fail(second, "cuda oom");
  EXPECT_EQ(sched_->FindTask("j", "s000-anchor")->ready_at_ms, clock_.NowMs() + 1500)
      << "2000 capped at 1500";
  clock_.Advance(1500);
  Collected last = Fail(Ready("w").assigns.at(0), "cuda oom again");
  EXPECT_EQ(StateOf("j", "s000-anchor"), TaskState::kFailed);
  // The anchor failed for good: its frames can never run, so the job ends FAILED naming the task.
  EXPECT_EQ(JobStateOf("j"), JobState::kFailed);
  EXPECT_NE(
      sched_->FindJob("j")->error.find("s000-anchor failed after 3 attempt(s): cuda oom again"),
      std::string::npos)
      << sched_->FindJob("j")->error;
  EXPECT_TRUE(last.HasEvent("task.gave_up"));
  EXPECT_TRUE(last.HasEvent("job.failed"));
  // retry: the failed task gets a fresh budget and the job finishes.
  Control("j", ControlOp::kRetryFailed);
  EXPECT_EQ(JobStateOf("j"), JobState::kRunning);
  EXPECT_EQ(Drain("w").size(), 2u);
  EXPECT_EQ(sched_->FindJob("j")->phase, JobPhase::kStitch);
}

TEST_F(SchedulerFailureTest, NonRetryableFailureFailsAtOnceButOtherTasksFinishFirst) {
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  Hello("w2");
  Ready("w1");  // anchor
  AssignAction f1 = Ready("w2").assigns.at(0);
  Fail(f1, "frame 3 is corrupt", /*retryable=*/false);
  EXPECT_EQ(StateOf("j", f1.task.task_id), TaskState::kFailed);
  EXPECT_NE(JobStateOf("j"), JobState::kFailed) << "other tasks still run";
  Drain("w2");
  Done(AssignAction{"w1", *sched_->FindTask("j", "s000-anchor")});
  EXPECT_EQ(JobStateOf("j"), JobState::kFailed);
}

TEST_F(SchedulerFailureTest, TaskOverMaxTimeOrWithoutProgressIsStoppedAndRetried) {
  SchedulerOptions o;
  o.task_max_ms = 10000;
  o.progress_timeout_ms = 3000;
  o.heartbeat_interval_ms = 100000;  // keep workers alive in this test
  Reset(o);
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  Hello("w2");
  AssignAction slow = Ready("w1").assigns.at(0);
  AssignAction stuck = Ready("w2").assigns.at(0);
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(2500);
    Actions out;
    ASSERT_TRUE(sched_->OnTaskProgress({"j", slow.task.task_id, 1}, "w1", i, &out).ok());
    Collected c = Tick();
    if (i == 1) {
      ASSERT_EQ(c.cancels.size(), 1u) << "w2 reported nothing for 5 s";
      EXPECT_NE(std::get_if<PersistAction>(&c.all.front()), nullptr) << "requeue persisted first";
      EXPECT_EQ(c.cancels[0].worker_id, "w2");
      EXPECT_EQ(c.cancels[0].attempt, stuck.task.attempt);
      EXPECT_NE(c.cancels[0].reason.find("progress_timeout_ms"), std::string::npos);
      EXPECT_EQ(StateOf("j", stuck.task.task_id), TaskState::kReady);
    }
  }
  clock_.Advance(1000);  // 11 s since w1's assignment, although it kept reporting progress
  Collected c = Tick();
  ASSERT_EQ(c.cancels.size(), 1u);
  EXPECT_EQ(c.cancels[0].worker_id, "w1");
  EXPECT_NE(c.cancels[0].reason.find("task_max_ms"), std::string::npos);
  EXPECT_EQ(sched_->stats().tasks_timed_out, 1);
  EXPECT_EQ(sched_->stats().tasks_stalled, 1);
  EXPECT_EQ(sched_->FindTask("j", slow.task.task_id)->failures, 1);
}

TEST_F(SchedulerFailureTest, WorkerFailingAJobRepeatedlyIsKeptOffThatJobOnly) {
  SchedulerOptions o;
  o.blacklist_threshold = 2;
  o.retry_backoff_ms = 0;
  o.max_retries = 10;
  Reset(o);
  SubmitPlanned("j", 90, {40}, 10, {}, false);
  SubmitPlanned("other", 10, {10}, 10);
  Hello("bad");
  Hello("good");
  Fail(Ready("bad").assigns.at(0));
  Fail(Ready("bad").assigns.at(0));
  EXPECT_EQ(sched_->FindJob("j")->worker_failures.at("bad"), 2);
  Collected c = Ready("bad");
  ASSERT_EQ(c.assigns.size(), 1u);
  EXPECT_EQ(c.assigns[0].task.job_id, "other") << "blacklisted for j, still good for other jobs";
  EXPECT_EQ(Ready("good").assigns.at(0).task.job_id, "j");
}

TEST_F(SchedulerFailureTest, CleanLeaveRequeuesWithoutCountingAFailure) {
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w1");
  AssignAction a = Ready("w1").assigns.at(0);
  Actions out;
  ASSERT_TRUE(sched_->OnWorkerGone("w1", &out).ok());
  Collected c(std::move(out));
  EXPECT_EQ(c.deleted_workers.size(), 1u);
  const TaskRecord* t = sched_->FindTask("j", a.task.task_id);
  EXPECT_EQ(t->state, TaskState::kReady);
  EXPECT_EQ(t->failures, 0);
  EXPECT_EQ(t->ready_at_ms, clock_.NowMs()) << "no backoff for a clean hand-back";
}

TEST_F(SchedulerFailureTest, ReconnectingWorkerKeepsReportedTasksAndLosesTheOthers) {
  SubmitPlanned("j", 50, {30}, 10, {}, false);
  Hello("w", {}, 2);
  Collected c = ReadyAfterProgress("w", 2);
  ASSERT_EQ(c.assigns.size(), 2u);
  // It reconnects reporting only the first task, plus one it cannot have (wrong attempt).
  Actions out;
  ASSERT_TRUE(sched_
                  ->OnWorkerHello(
                      WorkerInfo{"w", "h", "cpu", 0, {}, {}, 2, {}, false},
                      {{"j", c.assigns[0].task.task_id, 1}, {"j", "s000-f000020-000029", 7}}, &out)
                  .ok());
  Collected h(std::move(out));
  EXPECT_TRUE(IsLive(StateOf("j", c.assigns[0].task.task_id)));
  EXPECT_EQ(StateOf("j", c.assigns[1].task.task_id), TaskState::kReady);
  ASSERT_EQ(h.cancels.size(), 1u);
  EXPECT_EQ(h.cancels[0].task_id, "s000-f000020-000029");
  EXPECT_EQ(sched_->FindWorker("w")->running.size(), 1u);
  Done(c.assigns[0]);
}

TEST_F(SchedulerFailureTest, RecoveryReadoptsReportedTasksAndRequeuesOrphansAfterGrace) {
  SchedulerOptions o;
  o.heartbeat_interval_ms = 1000;
  o.heartbeat_liveness = 3;
  Reset(o);
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  Hello("w2");
  AssignAction a1 = Ready("w1").assigns.at(0);
  AssignAction a2 = Ready("w2").assigns.at(0);
  // Snapshot what the store would hold.
  JobSnapshot snap;
  snap.job = *sched_->FindJob("j");
  for (const TaskRecord* t : sched_->Tasks("j")) snap.tasks.push_back(*t);
  std::reverse(snap.tasks.begin(), snap.tasks.end());  // the store keeps no order

  Scheduler b(o, &clock_);
  Actions out;
  ASSERT_TRUE(b.Recover({snap}, &out).ok());
  EXPECT_EQ(b.Tasks("j").front()->task_id, "s000-anchor") << "plan order is rebuilt";
  ASSERT_TRUE(
      b.OnWorkerHello(WorkerInfo{"w1", "h", "cpu", 0, {}, {}, 1, {}, false}, {{"j", a1.task.task_id, 1}}, &out)
          .ok());
  clock_.Advance(2000);
  out.clear();
  b.Tick(&out);
  EXPECT_EQ(b.FindTask("j", a2.task.task_id)->state, TaskState::kAssigned) << "grace not over yet";
  clock_.Advance(1500);
  out.clear();
  ASSERT_TRUE(b.OnHeartbeat("w1", &out).ok());
  b.Tick(&out);
  EXPECT_EQ(b.FindTask("j", a1.task.task_id)->state, TaskState::kAssigned)
      << "re-adopted task stays";
  const TaskRecord* orphan = b.FindTask("j", a2.task.task_id);
  EXPECT_EQ(orphan->state, TaskState::kReady) << "w2 never came back";
  EXPECT_EQ(orphan->failures, 0);
  ASSERT_TRUE(b.OnTaskDone({"j", a1.task.task_id, 1}, "w1", "r", &out).ok());
  out.clear();
  ASSERT_TRUE(b.OnWorkerReady("w1", 1, &out).ok());
  Collected c(std::move(out));
  ASSERT_EQ(c.assigns.size(), 1u);
  EXPECT_EQ(c.assigns[0].task.attempt, a2.task.attempt + 1);
  EXPECT_EQ(b.Recover({snap}, &out).code(), Status::Code::kFailedPrecondition);
}

TEST_F(SchedulerFailureTest, RecoveryReissuesAnalyzeAndStitch) {
  JobSnapshot analyzing;
  analyzing.job.job_id = "a";
  analyzing.job.phase = JobPhase::kAnalyze;
  JobSnapshot stitching;
  stitching.job.job_id = "s";
  stitching.job.phase = JobPhase::kStitch;
  stitching.job.state = JobState::kRunning;
  stitching.job.shots = {{0, 0, 5, {0}}};
  TaskRecord anchor;
  anchor.job_id = "s";
  anchor.task_id = "s000-anchor";
  anchor.kind = TaskKind::kAnchor;
  anchor.state = TaskState::kDone;
  stitching.tasks = {anchor};
  JobSnapshot done = stitching;
  done.job.job_id = "d";
  done.job.state = JobState::kDone;
  Actions out;
  ASSERT_TRUE(sched_->Recover({analyzing, stitching, done}, &out).ok());
  Collected c(std::move(out));
  ASSERT_EQ(c.analyzes.size(), 1u);
  EXPECT_EQ(c.analyzes[0].job_id, "a");
  ASSERT_EQ(c.stitches.size(), 1u);
  EXPECT_EQ(c.stitches[0].job_id, "s");
  EXPECT_EQ(sched_->FindJob("s")->tasks_done, 1);
}

TEST_F(SchedulerFailureTest, NextDeadlineCoversHeartbeatsAndTimeouts) {
  SchedulerOptions o;
  o.heartbeat_interval_ms = 1000;
  o.heartbeat_liveness = 2;
  o.progress_timeout_ms = 500;
  Reset(o);
  EXPECT_FALSE(sched_->NextDeadlineMs().has_value());
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w");
  EXPECT_EQ(sched_->NextDeadlineMs().value(), clock_.NowMs() + 2001);
  Ready("w");
  EXPECT_EQ(sched_->NextDeadlineMs().value(), clock_.NowMs() + 501);
}

}  // namespace
}  // namespace fairy::scheduler
