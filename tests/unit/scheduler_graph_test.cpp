// Scheduler: job graph, queue order, aging, locality, capabilities and job control.
#include <algorithm>

#include "tests/unit/scheduler_test_util.h"

namespace fairy::scheduler {
namespace {

using testing::Collected;
using testing::SchedulerFixture;

class SchedulerGraphTest : public SchedulerFixture {};

TEST_F(SchedulerGraphTest, SubmitPersistsBeforeAnalyze) {
  JobSubmission s;
  s.job_id = "j1";
  s.spec = "the yaml";
  s.priority = 150;  // clamped
  Actions out;
  ASSERT_TRUE(sched_->Submit(s, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  auto* p = std::get_if<PersistAction>(&out[0]);
  ASSERT_NE(p, nullptr) << "the job must be written before it is analyzed";
  EXPECT_TRUE(p->mutation.include_spec);
  EXPECT_EQ(p->mutation.job->spec, "the yaml");
  EXPECT_EQ(p->mutation.job->priority, 100);
  EXPECT_EQ(p->mutation.job->state, JobState::kQueued);
  EXPECT_EQ(p->mutation.events.at(0).type, "job.submitted");
  ASSERT_NE(std::get_if<AnalyzeAction>(&out[1]), nullptr);
  EXPECT_EQ(sched_->Submit(s, &out).code(), Status::Code::kFailedPrecondition) << "duplicate id";
  s.job_id = "bad id";
  EXPECT_EQ(sched_->Submit(s, &out).code(), Status::Code::kInvalidArgument);
  s.job_id = "j2";
  s.chunk_frames = 0;
  EXPECT_EQ(sched_->Submit(s, &out).code(), Status::Code::kInvalidArgument);
}

TEST_F(SchedulerGraphTest, PlanMakesAnchorThenChunkedFramesPerShot) {
  SubmitPlanned("j", 50, {50, 30}, 24);
  std::vector<std::string> ids;
  for (const TaskRecord* t : sched_->Tasks("j")) ids.push_back(t->task_id);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"s000-anchor", "s000-f000000-000023", "s000-f000024-000047",
                                      "s000-f000048-000049", "s001-anchor", "s001-f000050-000073",
                                      "s001-f000074-000079"}));
  EXPECT_EQ(StateOf("j", "s000-anchor"), TaskState::kReady);
  EXPECT_EQ(StateOf("j", "s000-f000024-000047"), TaskState::kPending);
  const TaskRecord* last = sched_->FindTask("j", "s001-f000074-000079");
  EXPECT_EQ(last->first_frame, 74);
  EXPECT_EQ(last->frame_count, 6);
  const JobRecord* job = sched_->FindJob("j");
  EXPECT_EQ(job->tasks_total, 7);
  EXPECT_EQ(job->total_frames, 80);
  EXPECT_EQ(job->phase, JobPhase::kRender);
}

TEST_F(SchedulerGraphTest, FramesTasksAreCutWhereAUNetBatchBegins) {
  JobSubmission s;
  s.job_id = "j";
  s.chunk_frames = 8;
  s.frame_batch = 4;
  Actions out;
  ASSERT_TRUE(sched_->Submit(s, &out).ok());
  // Non-anchors 1-9, 11-18 in batches {1-4} {5-8} {9 11 12 13} {14-17} {18}: two per task.
  ASSERT_TRUE(sched_->OnAnalyzeDone("j", {{0, 0, 20, {0, 10, 19}}}, &out).ok());
  std::vector<std::string> ids;
  for (const TaskRecord* t : sched_->Tasks("j")) ids.push_back(t->task_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"s000-anchor", "s000-f000000-000008", "s000-f000009-000017",
                                           "s000-f000018-000019"}));
  EXPECT_EQ(sched_->FindJob("j")->frame_batch, 4);

  s.job_id = "k";
  s.frame_batch = 0;
  EXPECT_EQ(sched_->Submit(s, &out).code(), Status::Code::kInvalidArgument);
  s.frame_batch = 4;
  ASSERT_TRUE(sched_->Submit(s, &out).ok());
  Status unsorted = sched_->OnAnalyzeDone("k", {{0, 0, 20, {10, 0}}}, &out);
  EXPECT_NE(unsorted.message().find("not sorted"), std::string::npos) << unsorted.message();
}

TEST_F(SchedulerGraphTest, AnalysisResultsAreValidated) {
  JobSubmission s;
  s.job_id = "j";
  Actions out;
  ASSERT_TRUE(sched_->Submit(s, &out).ok());
  EXPECT_EQ(sched_->OnAnalyzeDone("j", {}, &out).code(), Status::Code::kInvalidArgument);
  Status gap = sched_->OnAnalyzeDone("j", {{0, 0, 10, {}}, {1, 11, 5, {}}}, &out);
  EXPECT_EQ(gap.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(gap.message().find("shot 1"), std::string::npos) << gap.message();
  Status anchor = sched_->OnAnalyzeDone("j", {{0, 0, 10, {10}}}, &out);
  EXPECT_NE(anchor.message().find("anchor frame 10"), std::string::npos) << anchor.message();
  EXPECT_EQ(sched_->OnAnalyzeDone("nope", {{0, 0, 10, {}}}, &out).code(), Status::Code::kNotFound);
  ASSERT_TRUE(sched_->OnAnalyzeDone("j", {{0, 0, 10, {0}}}, &out).ok());
  EXPECT_EQ(sched_->OnAnalyzeDone("j", {{0, 0, 10, {0}}}, &out).code(),
            Status::Code::kFailedPrecondition);
}

TEST_F(SchedulerGraphTest, FramesWaitForTheirShotsAnchorThenTheJobStitchesAndEnds) {
  SubmitPlanned("j", 50, {20, 20}, 10);
  Hello("w1");
  Hello("w2");
  Hello("w3");
  Collected a1 = Ready("w1");
  Collected a2 = Ready("w2");
  ASSERT_EQ(a1.assigns.size(), 1u);
  ASSERT_EQ(a2.assigns.size(), 1u);
  EXPECT_EQ(a1.assigns[0].task.task_id, "s000-anchor");
  EXPECT_EQ(a2.assigns[0].task.task_id, "s001-anchor");
  EXPECT_TRUE(Ready("w3").assigns.empty()) << "frames must wait for their anchor";
  // Persist comes before Assign, and the job is RUNNING from the first assignment.
  ASSERT_GE(a1.all.size(), 2u);
  EXPECT_NE(std::get_if<PersistAction>(&a1.all[0]), nullptr);
  EXPECT_NE(std::get_if<AssignAction>(&a1.all.back()), nullptr);
  EXPECT_EQ(a1.assigns[0].task.attempt, 1);
  EXPECT_EQ(JobStateOf("j"), JobState::kRunning);

  Collected d = Done(a1.assigns[0], "anchor-key-0");
  ASSERT_EQ(d.persists.size(), 1u);
  ASSERT_TRUE(d.persists[0].mutation.fence.has_value()) << "DONE must be fenced in the store";
  EXPECT_EQ(d.persists[0].mutation.fence->attempt, 1);
  // The released frames tasks are not rewritten (Recover reads PENDING behind a DONE anchor as
  // READY: store_contract's PersistedSchedulerStateRecoversAfterRestart).
  ASSERT_EQ(d.persists[0].mutation.tasks.size(), 1u);
  EXPECT_EQ(d.persists[0].mutation.tasks[0].task_id, "s000-anchor");
  EXPECT_EQ(StateOf("j", "s000-f000000-000009"), TaskState::kReady);
  EXPECT_EQ(StateOf("j", "s001-f000020-000029"), TaskState::kPending);
  Collected f = Ready("w3");
  ASSERT_EQ(f.assigns.size(), 1u);
  EXPECT_EQ(f.assigns[0].task.task_id, "s000-f000000-000009");
  Done(a2.assigns[0]);
  Done(f.assigns[0]);
  std::vector<std::string> rest = Drain("w1");
  EXPECT_EQ(rest.size(), 3u);
  EXPECT_EQ(sched_->FindJob("j")->phase, JobPhase::kStitch);
  EXPECT_EQ(sched_->FindJob("j")->frames_done, 40);
  Actions out;
  ASSERT_TRUE(sched_->OnStitchDone("j", "/out/j.mp4", &out).ok());
  Collected end(std::move(out));
  EXPECT_EQ(JobStateOf("j"), JobState::kDone);
  EXPECT_EQ(sched_->FindJob("j")->output, "/out/j.mp4");
  ASSERT_EQ(end.drops.size(), 1u);
  EXPECT_FALSE(end.drops[0].delete_now)
      << "a finished job's cache expires, it is not deleted at once";
  EXPECT_TRUE(end.HasEvent("job.done"));
  EXPECT_TRUE(Ready("w1").assigns.empty());
}

TEST_F(SchedulerGraphTest, LastFrameTaskEmitsStitchAfterPersist) {
  SubmitPlanned("j", 50, {5}, 10);
  Hello("w");
  Done(Ready("w").assigns.at(0));
  Collected c = Ready("w");
  Collected d = Done(c.assigns.at(0));
  ASSERT_EQ(d.stitches.size(), 1u);
  EXPECT_NE(std::get_if<PersistAction>(&d.all.front()), nullptr);
  EXPECT_NE(std::get_if<StitchAction>(&d.all.at(1)), nullptr);
  Actions out;
  ASSERT_TRUE(sched_->OnStitchFailed("j", "disk full", &out).ok());
  EXPECT_EQ(JobStateOf("j"), JobState::kFailed);
  EXPECT_NE(sched_->FindJob("j")->error.find("disk full"), std::string::npos);
}

TEST_F(SchedulerGraphTest, AShotsAnchorCacheIsReleasedOnceAllItsFramesAreEdited) {
  SubmitPlanned("j", 50, {20, 20}, 10);
  Hello("w");
  std::map<int, int> frames_left = {{0, 2}, {1, 2}};
  bool failed_once = false;
  std::vector<std::string> released;
  for (int step = 0; step < 20; ++step) {
    Collected c = Ready("w");
    if (c.assigns.empty()) {
      clock_.Advance(60000);  // past a retry's backoff
      c = Ready("w");
      if (c.assigns.empty()) break;
    }
    const AssignAction a = c.assigns.at(0);
    const int shot = a.task.shot;
    if (a.task.kind == TaskKind::kAnchor) {
      EXPECT_TRUE(Done(a, "key-" + std::to_string(shot)).drops.empty())
          << "an anchor's DONE releases nothing";
      continue;
    }
    if (shot == 0 && !failed_once) {  // the release waits for the retry's DONE
      failed_once = true;
      EXPECT_TRUE(Fail(a).drops.empty());
      continue;
    }
    Collected d = Done(a);
    if (--frames_left[shot] > 0) {
      EXPECT_TRUE(d.drops.empty()) << a.task.task_id << ": its shot has frames left";
      continue;
    }
    ASSERT_EQ(d.drops.size(), 1u) << a.task.task_id;
    EXPECT_EQ(d.drops[0].job_id, "j");
    EXPECT_EQ(d.drops[0].key, "key-" + std::to_string(shot));
    EXPECT_FALSE(d.drops[0].delete_now);
    EXPECT_NE(std::get_if<PersistAction>(&d.all.front()), nullptr) << "the DONE is written first";
    released.push_back(d.drops[0].key);
  }
  EXPECT_TRUE(failed_once);
  std::sort(released.begin(), released.end());
  EXPECT_EQ(released, (std::vector<std::string>{"key-0", "key-1"}));
  EXPECT_EQ(sched_->FindJob("j")->phase, JobPhase::kStitch);
  Actions out;
  ASSERT_TRUE(sched_->OnStitchDone("j", "/out/j.mp4", &out).ok());
  Collected end(std::move(out));
  ASSERT_EQ(end.drops.size(), 1u);
  EXPECT_EQ(end.drops[0].key, "") << "the job's end lets go of every entry it still holds";
}

TEST_F(SchedulerGraphTest, RecomputeModeMakesFramesReadyAtOnce) {
  SubmitPlanned("j", 50, {30}, 10, {}, /*wait_for_anchor=*/false);
  Hello("w", {}, 4);
  Collected c = ReadyAfterProgress("w", 4);
  ASSERT_EQ(c.assigns.size(), 4u);
  EXPECT_EQ(c.assigns[0].task.task_id, "s000-anchor") << "anchors still go first";
  EXPECT_EQ(c.assigns[3].task.task_id, "s000-f000020-000029");
}

TEST_F(SchedulerGraphTest, HigherPrioritySubmittedLaterStartsFirst) {
  SubmitPlanned("low", 10, {10}, 10);
  clock_.Advance(1000);
  SubmitPlanned("high", 90, {10}, 10);
  Hello("w");
  Collected c = Ready("w");
  ASSERT_EQ(c.assigns.size(), 1u);
  EXPECT_EQ(c.assigns[0].task.job_id, "high");
  EXPECT_EQ(JobStateOf("low"), JobState::kQueued);
}

TEST_F(SchedulerGraphTest, EqualPriorityGoesBySubmitTime) {
  SubmitPlanned("first", 50, {10}, 10);
  clock_.Advance(1);
  SubmitPlanned("second", 50, {10}, 10);
  Hello("w");
  std::vector<std::string> order = Drain("w");
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], "first/s000-anchor");
  EXPECT_EQ(order[1], "first/s000-f000000-000009");
  EXPECT_EQ(order[2], "second/s000-anchor");
}

TEST_F(SchedulerGraphTest, AgingLetsALowPriorityJobThroughEventually) {
  SchedulerOptions o;
  o.aging_ms_per_point = 1000;  // one point per second of waiting
  Reset(o);
  SubmitPlanned("high", 60, {10000}, 10, {}, false);
  SubmitPlanned("low", 50, {10}, 10);
  Hello("w");
  int low_at = -1;
  for (int step = 0; step < 60 && low_at < 0; ++step) {
    clock_.Advance(1000);
    Collected c = Ready("w");
    ASSERT_EQ(c.assigns.size(), 1u);
    if (c.assigns[0].task.job_id == "low") low_at = step;
    Done(c.assigns[0]);
  }
  // low waits ~10 s (10 points) until its effective priority passes high's.
  EXPECT_GE(low_at, 5);
  EXPECT_LE(low_at, 15);

  o.aging_ms_per_point = 0;  // no aging: strict priority starves "low"
  Reset(o);
  SubmitPlanned("high", 60, {10000}, 10, {}, false);
  SubmitPlanned("low", 50, {10}, 10);
  Hello("w");
  for (int step = 0; step < 60; ++step) {
    clock_.Advance(1000);
    Collected c = Ready("w");
    ASSERT_EQ(c.assigns.size(), 1u);
    EXPECT_EQ(c.assigns[0].task.job_id, "high");
    Done(c.assigns[0]);
  }
}

TEST_F(SchedulerGraphTest, WorkersPreferJobsWhoseModelTheyHaveLoaded) {
  auto submit = [&](const std::string& id, int priority, const std::string& model) {
    JobSubmission s;
    s.job_id = id;
    s.priority = priority;
    s.model = model;
    Actions out;
    ASSERT_TRUE(sched_->Submit(s, &out).ok());
    ASSERT_TRUE(sched_->OnAnalyzeDone(id, {{0, 0, 10, {0}}}, &out).ok());
    clock_.Advance(1);
  };
  submit("sd15-job", 50, "sd15");
  submit("tiny-job", 50, "pix2pix-tiny");
  submit("urgent-sd15", 51, "sd15");
  Actions out;
  ASSERT_TRUE(
      sched_->OnWorkerHello({"has-tiny", "h", "cuda:0", 24000, {}, {"pix2pix-tiny"}, 1, {}, false}, {}, &out)
          .ok());
  ASSERT_TRUE(sched_->OnWorkerHello({"fresh", "h", "cuda:0", 24000, {}, {}, 1, {}, false}, {}, &out).ok());
  // A whole priority point still wins over the loaded model...
  AssignAction first = Ready("has-tiny").assigns.at(0);
  EXPECT_EQ(first.task.job_id, "urgent-sd15");
  Done(first);  // urgent-sd15's frames now wait behind nothing: finish that job first
  Done(Ready("has-tiny").assigns.at(0));
  // ...but between equal priorities the loaded model beats the earlier submit.
  EXPECT_EQ(Ready("has-tiny").assigns.at(0).task.job_id, "tiny-job");
  EXPECT_EQ(Ready("fresh").assigns.at(0).task.job_id, "sd15-job");
  EXPECT_EQ(sched_->FindJob("tiny-job")->model, "pix2pix-tiny");
}

TEST_F(SchedulerGraphTest, SeveralJobsShareWorkers) {
  SubmitPlanned("a", 50, {10}, 10, {}, false);
  SubmitPlanned("b", 50, {10}, 10, {}, false);
  Hello("w1", {}, 2);
  Hello("w2", {}, 2);
  Collected c1 = ReadyAfterProgress("w1", 2);
  Collected c2 = ReadyAfterProgress("w2", 2);
  ASSERT_EQ(c1.assigns.size() + c2.assigns.size(), 4u);
  std::vector<std::string> jobs;
  for (auto& a : c1.assigns) jobs.push_back(a.task.job_id);
  for (auto& a : c2.assigns) jobs.push_back(a.task.job_id);
  EXPECT_EQ(std::count(jobs.begin(), jobs.end(), "a"), 2);
  EXPECT_EQ(std::count(jobs.begin(), jobs.end(), "b"), 2);
  EXPECT_TRUE(Ready("w1", 2).assigns.empty()) << "no slots left";
}

TEST_F(SchedulerGraphTest, WorkerStaysOnTheShotWhoseCacheItHolds) {
  SubmitPlanned("j", 50, {30, 30}, 10);
  Hello("w1");
  Hello("w2");
  Done(Ready("w1").assigns.at(0));  // s000 anchor
  Done(Ready("w2").assigns.at(0));  // s001 anchor
  // w2 last worked on shot 1: it gets shot 1's frames although shot 0's come first in order.
  Collected c2 = Ready("w2");
  EXPECT_EQ(c2.assigns.at(0).task.shot, 1);
  Collected c1 = Ready("w1");
  EXPECT_EQ(c1.assigns.at(0).task.shot, 0);
  Done(c2.assigns[0]);
  EXPECT_EQ(Ready("w2").assigns.at(0).task.shot, 1);
}

TEST_F(SchedulerGraphTest, CapabilitiesDecideWhoMayTakeAJob) {
  WorkerRequirements req;
  req.tags = {"gpu", "studio-a"};
  req.device = "cuda";
  req.min_memory_mb = 16000;
  SubmitPlanned("j", 50, {10}, 10, req);
  Hello("cpu-box", {"gpu", "studio-a"}, 1, "cpu", 64000);
  Hello("small-gpu", {"gpu", "studio-a"}, 1, "cuda:0", 8000);
  Hello("other-studio", {"gpu"}, 1, "cuda:0", 24000);
  Hello("right", {"studio-a", "gpu", "extra"}, 1, "cuda:1", 24000);
  EXPECT_TRUE(Ready("cpu-box").assigns.empty());
  EXPECT_TRUE(Ready("small-gpu").assigns.empty());
  EXPECT_TRUE(Ready("other-studio").assigns.empty());
  EXPECT_EQ(Ready("right").assigns.size(), 1u);
}

TEST_F(SchedulerGraphTest, PauseStopsNewWorkResumeRestartsIt) {
  SubmitPlanned("j", 50, {20}, 10, {}, false);
  Hello("w1");
  Hello("w2");
  Collected running = Ready("w1");
  Control("j", ControlOp::kPause);
  EXPECT_EQ(JobStateOf("j"), JobState::kPaused);
  EXPECT_TRUE(Ready("w2").assigns.empty());
  Done(running.assigns.at(0));  // running tasks finish normally
  Status st;
  Control("j", ControlOp::kPause, 0, &st);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  Control("j", ControlOp::kResume);
  EXPECT_EQ(JobStateOf("j"), JobState::kRunning);
  EXPECT_EQ(Ready("w2").assigns.size(), 1u);
  Control("j", ControlOp::kResume, 0, &st);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  Control("nope", ControlOp::kPause, 0, &st);
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
}

TEST_F(SchedulerGraphTest, CancelStopsLiveTasksAndDeletesTheCache) {
  SubmitPlanned("j", 50, {30}, 10, {}, false);
  Hello("w1", {}, 2);
  Collected c = ReadyAfterProgress("w1", 2);
  ASSERT_EQ(c.assigns.size(), 2u);
  Collected x = Control("j", ControlOp::kCancel);
  EXPECT_EQ(x.cancels.size(), 2u);
  ASSERT_FALSE(x.all.empty());
  EXPECT_NE(std::get_if<PersistAction>(&x.all.front()), nullptr)
      << "the cancellation is written before any worker is told";
  ASSERT_EQ(x.drops.size(), 1u);
  EXPECT_TRUE(x.drops[0].delete_now);
  EXPECT_EQ(JobStateOf("j"), JobState::kCancelled);
  for (const TaskRecord* t : sched_->Tasks("j"))
    EXPECT_EQ(t->state, TaskState::kCancelled) << t->task_id;
  // The cancelled attempts' reports are stale now; the worker's slots are free again.
  Actions out;
  EXPECT_EQ(sched_->OnTaskDone({"j", c.assigns[0].task.task_id, 1}, "w1", "x", &out).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_TRUE(sched_->FindWorker("w1")->running.empty());
  Status st;
  Control("j", ControlOp::kCancel, 0, &st);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
}

TEST_F(SchedulerGraphTest, RetryOfACancelledJobRecomputesTheDeletedAnchorsFirst) {
  SubmitPlanned("j", 50, {20, 10}, 10);
  Hello("w");
  Done(Ready("w").assigns.at(0));  // s000 anchor
  Done(Ready("w").assigns.at(0));  // s001 anchor (anchors first)
  Done(Ready("w").assigns.at(0));  // shot 1's only frames task (locality): shot 1 is complete
  Done(Ready("w").assigns.at(0));  // s000 first frames task
  Collected x = Control("j", ControlOp::kCancel);
  ASSERT_TRUE(x.drops.at(0).delete_now);
  Control("j", ControlOp::kRetryFailed);
  EXPECT_EQ(StateOf("j", "s000-anchor"), TaskState::kReady)
      << "its cache was deleted and frames remain";
  EXPECT_EQ(StateOf("j", "s000-f000010-000019"), TaskState::kPending);
  EXPECT_EQ(StateOf("j", "s001-anchor"), TaskState::kDone) << "shot 1 needs no cache any more";
  EXPECT_EQ(StateOf("j", "s000-f000000-000009"), TaskState::kDone) << "finished chunks are kept";
  std::vector<std::string> order = Drain("w");
  EXPECT_EQ(order, (std::vector<std::string>{"j/s000-anchor", "j/s000-f000010-000019"}));
  EXPECT_EQ(sched_->FindJob("j")->phase, JobPhase::kStitch);
}

TEST_F(SchedulerGraphTest, OnlyFinishedJobsCanBeForgotten) {
  SubmitPlanned("j", 50, {10}, 10);
  EXPECT_EQ(sched_->Forget("j").code(), Status::Code::kFailedPrecondition);
  Control("j", ControlOp::kCancel);
  ASSERT_TRUE(sched_->Forget("j").ok());
  EXPECT_EQ(sched_->FindJob("j"), nullptr);
  EXPECT_TRUE(sched_->Tasks("j").empty());
  EXPECT_EQ(sched_->Forget("j").code(), Status::Code::kNotFound);
  Actions out;
  Tick();
  JobSubmission again;
  again.job_id = "j";
  EXPECT_TRUE(sched_->Submit(again, &out).ok()) << "the id is free again";
}

TEST_F(SchedulerGraphTest, PriorityChangeReordersTheQueue) {
  SubmitPlanned("a", 50, {10}, 10);
  SubmitPlanned("b", 40, {10}, 10);
  Collected c = Control("b", ControlOp::kSetPriority, 80);
  ASSERT_EQ(c.persists.size(), 1u);
  EXPECT_EQ(c.persists[0].mutation.job->priority, 80);
  Hello("w");
  EXPECT_EQ(Ready("w").assigns.at(0).task.job_id, "b");
  Status st;
  Control("b", ControlOp::kSetPriority, 101, &st);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
}

TEST_F(SchedulerGraphTest, RetryWholeJobRerunsEverythingWithNewAttempts) {
  SubmitPlanned("j", 50, {10}, 10);
  Hello("w");
  Drain("w");
  Actions out;
  ASSERT_TRUE(sched_->OnStitchDone("j", "", &out).ok());
  Collected r = Control("j", ControlOp::kRetryJob);
  ASSERT_EQ(r.drops.size(), 1u);
  EXPECT_TRUE(r.drops[0].delete_now);
  EXPECT_EQ(JobStateOf("j"), JobState::kQueued);
  EXPECT_EQ(sched_->FindJob("j")->tasks_done, 0);
  Collected c = Ready("w");
  EXPECT_EQ(c.assigns.at(0).task.task_id, "s000-anchor");
  EXPECT_EQ(c.assigns.at(0).task.attempt, 2)
      << "attempts only grow, so old reports stay fenced out";
  Done(c.assigns[0]);
  Done(Ready("w").assigns.at(0));
  EXPECT_EQ(sched_->FindJob("j")->phase, JobPhase::kStitch);
  ASSERT_TRUE(sched_->OnStitchDone("j", "", &out).ok());
  EXPECT_EQ(JobStateOf("j"), JobState::kDone);
}

TEST_F(SchedulerGraphTest, AnalyzeFailureFailsTheJobAndRetryReanalyzes) {
  JobSubmission s;
  s.job_id = "j";
  Actions out;
  ASSERT_TRUE(sched_->Submit(s, &out).ok());
  ASSERT_TRUE(sched_->OnAnalyzeFailed("j", "missing input /x.mp4", &out).ok());
  EXPECT_EQ(JobStateOf("j"), JobState::kFailed);
  EXPECT_NE(sched_->FindJob("j")->error.find("/x.mp4"), std::string::npos);
  Collected r = Control("j", ControlOp::kRetryFailed);
  ASSERT_EQ(r.analyzes.size(), 1u);
  EXPECT_EQ(JobStateOf("j"), JobState::kQueued);
}

}  // namespace
}  // namespace fairy::scheduler
