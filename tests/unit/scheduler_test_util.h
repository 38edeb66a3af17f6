// A fake "daemon" for scheduler unit tests: drives a Scheduler with a FakeClock and sorts the
// actions it returns by kind.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/scheduler/scheduler.h"

namespace fairy::scheduler::testing {

struct Collected {
  Actions all;
  std::vector<AssignAction> assigns;
  std::vector<CancelTaskAction> cancels;
  std::vector<PersistAction> persists;
  std::vector<StitchAction> stitches;
  std::vector<AnalyzeAction> analyzes;
  std::vector<DropAnchorCacheAction> drops;
  std::vector<DeleteWorkerAction> deleted_workers;
  std::vector<PersistWorkerAction> workers;

  explicit Collected(Actions actions) : all(std::move(actions)) {
    for (const Action& a : all) {
      if (auto* x = std::get_if<AssignAction>(&a)) assigns.push_back(*x);
      if (auto* x = std::get_if<CancelTaskAction>(&a)) cancels.push_back(*x);
      if (auto* x = std::get_if<PersistAction>(&a)) persists.push_back(*x);
      if (auto* x = std::get_if<StitchAction>(&a)) stitches.push_back(*x);
      if (auto* x = std::get_if<AnalyzeAction>(&a)) analyzes.push_back(*x);
      if (auto* x = std::get_if<DropAnchorCacheAction>(&a)) drops.push_back(*x);
      if (auto* x = std::get_if<DeleteWorkerAction>(&a)) deleted_workers.push_back(*x);
      if (auto* x = std::get_if<PersistWorkerAction>(&a)) workers.push_back(*x);
    }
  }
  // Every event type of every Persist, in order.
  std::vector<std::string> EventTypes() const {
    std::vector<std::string> out;
    for (const auto& p : persists) {
      for (const auto& e : p.mutation.events) out.push_back(e.type);
    }
    return out;
  }
  bool HasEvent(const std::string& type) const {
    for (const auto& t : EventTypes()) {
      if (t == type) return true;
    }
    return false;
  }
};

class SchedulerFixture : public ::testing::Test {
 protected:
  SchedulerFixture() { Reset(SchedulerOptions{}); }

  void Reset(SchedulerOptions options) {
    options_ = options;
    sched_ = std::make_unique<Scheduler>(options_, &clock_);
  }

  // Submits a job and finishes its analysis with shots of the given frame counts. Frames tasks
  // are exactly `chunk` frames (the last of a shot shorter): UNet batches of one frame and no
  // anchor frames in the plan (frame_plan_test covers batches and anchors).
  void SubmitPlanned(const std::string& id, int priority, std::vector<int64_t> shot_frames,
                     int64_t chunk, WorkerRequirements req = {}, bool wait_for_anchor = true) {
    JobSubmission s;
    s.job_id = id;
    s.name = id;
    s.spec = "spec of " + id;
    s.priority = priority;
    s.chunk_frames = chunk;
    s.frame_batch = 1;
    s.requirements = req;
    s.frames_wait_for_anchor = wait_for_anchor;
    Actions out;
    ASSERT_TRUE(sched_->Submit(s, &out).ok());
    std::vector<ShotPlan> shots;
    int64_t first = 0;
    for (size_t i = 0; i < shot_frames.size(); ++i) {
      shots.push_back(ShotPlan{static_cast<int>(i), first, shot_frames[i], {}});
      first += shot_frames[i];
    }
    Status st = sched_->OnAnalyzeDone(id, shots, &out);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  void Hello(const std::string& worker, std::vector<std::string> tags = {}, int slots = 1,
             std::string device = "cpu", int64_t memory_mb = 8000) {
    Actions out;
    Status st = sched_->OnWorkerHello(
        WorkerInfo{worker, "host-" + worker, device, memory_mb, tags, {}, slots, {}, false}, {}, &out);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  Collected Ready(const std::string& worker, int slots = 1) {
    Actions out;
    Status st = sched_->OnWorkerReady(worker, slots, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return Collected(std::move(out));
  }

  // A worker that has not shown progress gets one task at a time: Ready() once, a progress
  // report of one denoising step for that task, then Ready() for the other `slots - 1`.
  Collected ReadyAfterProgress(const std::string& worker, int slots) {
    Collected first = Ready(worker, 1);
    if (first.assigns.empty()) return first;
    const AssignAction& a = first.assigns[0];
    Actions all = first.all;
    Status st = sched_->OnTaskProgress({a.task.job_id, a.task.task_id, a.task.attempt}, worker,
                                       ProgressReport{0, 1}, &all);
    EXPECT_TRUE(st.ok()) << st.ToString();
    Actions more;
    st = sched_->OnWorkerReady(worker, slots - 1, &more);
    EXPECT_TRUE(st.ok()) << st.ToString();
    all.insert(all.end(), more.begin(), more.end());
    return Collected(std::move(all));
  }

  // A progress report of the attempt `a`.
  Status Progress(const AssignAction& a, ProgressReport report) {
    Actions out;
    return sched_->OnTaskProgress({a.task.job_id, a.task.task_id, a.task.attempt}, a.worker_id,
                                  report, &out);
  }

  Collected Done(const AssignAction& a, const std::string& result = "ok") {
    Actions out;
    Status st = sched_->OnTaskDone({a.task.job_id, a.task.task_id, a.task.attempt}, a.worker_id,
                                   result, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return Collected(std::move(out));
  }

  Collected Fail(const AssignAction& a, const std::string& error = "boom", bool retryable = true) {
    Actions out;
    Status st = sched_->OnTaskFailed({a.task.job_id, a.task.task_id, a.task.attempt}, a.worker_id,
                                     error, retryable, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return Collected(std::move(out));
  }

  Collected Tick() {
    Actions out;
    sched_->Tick(&out);
    return Collected(std::move(out));
  }

  Collected Control(const std::string& job, ControlOp op, int priority = 0,
                    Status* status = nullptr) {
    Actions out;
    Status st = sched_->Control(job, op, priority, &out);
    if (status != nullptr) {
      *status = st;
    } else {
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    return Collected(std::move(out));
  }

  // Runs the job to the end with one worker (assign, done, repeat); returns the task ids in
  // the order they were assigned.
  std::vector<std::string> Drain(const std::string& worker, int max_steps = 1000) {
    std::vector<std::string> order;
    for (int i = 0; i < max_steps; ++i) {
      Collected c = Ready(worker);
      if (c.assigns.empty()) break;
      order.push_back(c.assigns[0].task.job_id + "/" + c.assigns[0].task.task_id);
      Done(c.assigns[0]);
    }
    return order;
  }

  TaskState StateOf(const std::string& job, const std::string& task) const {
    const TaskRecord* t = sched_->FindTask(job, task);
    EXPECT_NE(t, nullptr) << job << "/" << task;
    return t == nullptr ? TaskState::kCancelled : t->state;
  }
  JobState JobStateOf(const std::string& job) const { return sched_->FindJob(job)->state; }

  FakeClock clock_;
  SchedulerOptions options_;
  std::unique_ptr<Scheduler> sched_;
};

}  // namespace fairy::scheduler::testing
