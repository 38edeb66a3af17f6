// Jobs, tasks and reports. Workers, time and recovery are in scheduler_workers.cpp.
#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <cstdio>

#include "common/frame_plan/frame_plan.h"
#include "coordinator/scheduler/scheduler_internal.h"

namespace fairy::scheduler {

std::string AnchorTaskId(int shot) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "s%03d-anchor", shot);
  return buf;
}

std::string FramesTaskId(int shot, int64_t first_frame, int64_t frame_count) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "s%03d-f%06lld-%06lld", shot, static_cast<long long>(first_frame),
                static_cast<long long>(first_frame + frame_count - 1));
  return buf;
}

Result<ControlOp> ParseControlOp(std::string_view t) {
  if (t == "cancel") return ControlOp::kCancel;
  if (t == "pause") return ControlOp::kPause;
  if (t == "resume") return ControlOp::kResume;
  if (t == "retry-failed" || t == "retry") return ControlOp::kRetryFailed;
  if (t == "retry-job") return ControlOp::kRetryJob;
  if (t == "priority") return ControlOp::kSetPriority;
  return Status::InvalidArgument(
      "unknown job control '" + std::string(t) +
      "' (expected cancel, pause, resume, retry, retry-failed, retry-job, priority)");
}

Scheduler::Scheduler(SchedulerOptions options, const Clock* clock)
    : options_(options), clock_(clock) {}
Scheduler::~Scheduler() = default;

Scheduler::JobEntry* Scheduler::MutableJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

void Scheduler::AddEvent(Mutation* m, const char* type, const std::string& job_id,
                         const std::string& task_id, const std::string& worker_id, int64_t attempt,
                         std::string detail) const {
  m->events.push_back(
      Event{clock_->NowMs(), type, job_id, task_id, worker_id, attempt, std::move(detail), ""});
}

void Scheduler::PushPersist(JobEntry& job, Mutation m, Actions* out) {
  m.job_id = job.rec.job_id;
  out->push_back(PersistAction{std::move(m)});
}

void Scheduler::MakeReady(JobEntry& job, int index, TimeMs ready_at) {
  TaskRecord& t = job.tasks[index];
  t.state = TaskState::kReady;
  t.ready_at_ms = ready_at;
  if (ready_at > clock_->NowMs()) {
    delayed_.emplace(ready_at, std::make_pair(job.rec.job_id, index));
    return;
  }
  if (t.kind == TaskKind::kAnchor) {
    job.ready_anchor.insert(index);
  } else {
    job.ready_frames.insert(index);
    job.ready_frames_by_shot[t.shot].insert(index);
  }
}

void Scheduler::RemoveFromQueues(JobEntry& job, int index) {
  job.ready_anchor.erase(index);
  if (job.ready_frames.erase(index) > 0) {
    auto it = job.ready_frames_by_shot.find(job.tasks[index].shot);
    if (it != job.ready_frames_by_shot.end()) {
      it->second.erase(index);
      if (it->second.empty()) job.ready_frames_by_shot.erase(it);
    }
  }
}

// ---- Jobs ----

Status Scheduler::Submit(const JobSubmission& s, Actions* out) {
  if (s.job_id.empty() || s.job_id.find_first_of(" :\r\n") != std::string::npos) {
    return Status::InvalidArgument("job id '" + s.job_id +
                                   "' is empty or contains ' ', ':' or a newline");
  }
  if (s.chunk_frames < 1) {
    return Status::InvalidArgument("job " + s.job_id + ": chunk_frames must be >= 1, got " +
                                   std::to_string(s.chunk_frames));
  }
  if (s.frame_batch < 1) {
    return Status::InvalidArgument("job " + s.job_id + ": frame_batch must be >= 1, got " +
                                   std::to_string(s.frame_batch));
  }
  if (jobs_.count(s.job_id) != 0)
    return Status::FailedPrecondition("job " + s.job_id + " already exists");
  auto entry = std::make_unique<JobEntry>();
  JobRecord& r = entry->rec;
  r.job_id = s.job_id;
  r.name = s.name;
  r.spec = s.spec;
  r.output = s.output;
  r.model = s.model;
  r.priority = std::clamp(s.priority, 0, 100);
  r.requirements = s.requirements;
  r.chunk_frames = s.chunk_frames;
  r.frame_batch = s.frame_batch;
  r.frames_wait_for_anchor = s.frames_wait_for_anchor;
  r.step_profile = s.step_profile;
  r.state = JobState::kQueued;
  r.phase = JobPhase::kAnalyze;
  r.submit_ms = clock_->NowMs();
  Mutation m;
  m.job = r;
  m.include_spec = true;
  m.include_plan = true;
  AddEvent(&m, "job.submitted", r.job_id, "", "", 0, "priority " + std::to_string(r.priority));
  JobEntry& job = *entry;
  jobs_.emplace(s.job_id, std::move(entry));
  PushPersist(job, std::move(m), out);
  out->push_back(AnalyzeAction{s.job_id});
  return Status::OK();
}

Status Scheduler::OnAnalyzeDone(const std::string& job_id, const std::vector<ShotPlan>& shots,
                                Actions* out) {
  JobEntry* job = MutableJob(job_id);
  if (job == nullptr) return Status::NotFound("job " + job_id + " is unknown");
  if (job->rec.phase != JobPhase::kAnalyze || IsFinal(job->rec.state)) {
    return Status::FailedPrecondition("job " + job_id + " is " + Name(job->rec.state) + "/" +
                                      Name(job->rec.phase) + ", not waiting for analysis");
  }
  if (shots.empty()) return Status::InvalidArgument("job " + job_id + ": analysis found no shots");
  for (size_t i = 0; i < shots.size(); ++i) {
    const ShotPlan& s = shots[i];
    const std::string where = "job " + job_id + ": shot " + std::to_string(i);
    if (s.index != static_cast<int>(i))
      return Status::InvalidArgument(where + ": index is " + std::to_string(s.index));
    if (s.frame_count < 1) return Status::InvalidArgument(where + ": frame_count must be >= 1");
    if (i > 0 && s.first_frame != shots[i - 1].first_frame + shots[i - 1].frame_count) {
      return Status::InvalidArgument(where + ": first_frame " + std::to_string(s.first_frame) +
                                     " does not follow the previous shot");
    }
    for (size_t k = 0; k < s.anchor_frames.size(); ++k) {
      const int64_t a = s.anchor_frames[k];
      if (a < s.first_frame || a >= s.first_frame + s.frame_count) {
        return Status::InvalidArgument(where + ": anchor frame " + std::to_string(a) +
                                       " is outside the shot");
      }
      if (k > 0 && a <= s.anchor_frames[k - 1]) {
        return Status::InvalidArgument(where + ": anchor frames are not sorted and distinct");
      }
    }
  }
  JobRecord& r = job->rec;
  r.shots = shots;
  r.total_frames = 0;
  job->tasks.clear();
  job->index.clear();
  job->anchor_of_shot.clear();
  const TimeMs now = clock_->NowMs();
  for (const ShotPlan& s : shots) {
    r.total_frames += s.frame_count;
    TaskRecord a;
    a.job_id = job_id;
    a.task_id = AnchorTaskId(s.index);
    a.kind = TaskKind::kAnchor;
    a.shot = s.index;
    a.first_frame = s.first_frame;
    a.frame_count = s.frame_count;
    a.state = TaskState::kReady;
    a.ready_at_ms = now;
    job->anchor_of_shot.push_back(static_cast<int>(job->tasks.size()));
    job->tasks.push_back(std::move(a));
    for (const frame_plan::FrameRange& range : frame_plan::FramesTaskRanges(
             s.first_frame, s.frame_count, s.anchor_frames, r.frame_batch, r.chunk_frames)) {
      TaskRecord t;
      t.job_id = job_id;
      t.kind = TaskKind::kFrames;
      t.shot = s.index;
      t.first_frame = range.first;
      t.frame_count = range.count;
      t.task_id = FramesTaskId(s.index, t.first_frame, t.frame_count);
      t.state = r.frames_wait_for_anchor ? TaskState::kPending : TaskState::kReady;
      t.ready_at_ms = now;
      job->tasks.push_back(std::move(t));
    }
  }
  for (size_t i = 0; i < job->tasks.size(); ++i) {
    job->index.emplace(job->tasks[i].task_id, static_cast<int>(i));
    if (job->tasks[i].state == TaskState::kReady) MakeReady(*job, static_cast<int>(i), now);
  }
  r.tasks_total = static_cast<int>(job->tasks.size());
  r.tasks_done = r.tasks_failed = 0;
  r.frames_done = 0;
  r.phase = JobPhase::kRender;
  if (r.state == JobState::kQueued || r.state == JobState::kRunning) active_jobs_.insert(job_id);
  Mutation m;
  m.job = r;
  m.include_plan = true;
  m.tasks = job->tasks;
  AddEvent(&m, "job.planned", job_id, "", "", 0,
           std::to_string(shots.size()) + " shots, " + std::to_string(r.total_frames) +
               " frames, " + std::to_string(r.tasks_total) + " tasks");
  PushPersist(*job, std::move(m), out);
  return Status::OK();
}

void Scheduler::FinishJob(JobEntry& job, JobState state, const std::string& error, Mutation* m,
                          Actions* out) {
  JobRecord& r = job.rec;
  r.state = state;
  r.phase = JobPhase::kFinished;
  r.finished_ms = clock_->NowMs();
  r.error = error;
  active_jobs_.erase(r.job_id);
  m->job = r;
  AddEvent(m,
           state == JobState::kDone ? "job.done"
                                    : (state == JobState::kFailed ? "job.failed" : "job.cancelled"),
           r.job_id, "", "", 0, error);
  PushPersist(job, std::move(*m), out);
  out->push_back(DropAnchorCacheAction{r.job_id, state == JobState::kCancelled, ""});
}

Status Scheduler::OnAnalyzeFailed(const std::string& job_id, const std::string& error,
                                  Actions* out) {
  JobEntry* job = MutableJob(job_id);
  if (job == nullptr) return Status::NotFound("job " + job_id + " is unknown");
  if (job->rec.phase != JobPhase::kAnalyze || IsFinal(job->rec.state)) {
    return Status::FailedPrecondition("job " + job_id + " is not waiting for analysis");
  }
  Mutation m;
  FinishJob(*job, JobState::kFailed, "analyze: " + error, &m, out);
  return Status::OK();
}

Status Scheduler::OnStitchDone(const std::string& job_id, const std::string& output, Actions* out) {
  JobEntry* job = MutableJob(job_id);
  if (job == nullptr) return Status::NotFound("job " + job_id + " is unknown");
  if (job->rec.phase != JobPhase::kStitch || IsFinal(job->rec.state)) {
    return Status::FailedPrecondition("job " + job_id + " is not stitching");
  }
  if (!output.empty()) job->rec.output = output;
  Mutation m;
  FinishJob(*job, JobState::kDone, "", &m, out);
  return Status::OK();
}

Status Scheduler::OnStitchFailed(const std::string& job_id, const std::string& error,
                                 Actions* out) {
  JobEntry* job = MutableJob(job_id);
  if (job == nullptr) return Status::NotFound("job " + job_id + " is unknown");
  if (job->rec.phase != JobPhase::kStitch || IsFinal(job->rec.state)) {
    return Status::FailedPrecondition("job " + job_id + " is not stitching");
  }
  Mutation m;
  FinishJob(*job, JobState::kFailed, "stitch: " + error, &m, out);
  return Status::OK();
}

void Scheduler::MaybeFinishRender(JobEntry& job, Mutation* m, Actions* out) {
  JobRecord& r = job.rec;
  if (r.phase != JobPhase::kRender || IsFinal(r.state)) {
    PushPersist(job, std::move(*m), out);
    return;
  }
  if (r.tasks_done == r.tasks_total) {
    r.phase = JobPhase::kStitch;
    active_jobs_.erase(r.job_id);
    m->job = r;
    AddEvent(m, "job.stitching", r.job_id, "", "", 0, "");
    PushPersist(job, std::move(*m), out);
    out->push_back(StitchAction{r.job_id});
    return;
  }
  if (r.tasks_failed > 0 && job.live.empty()) {
    // Anything left that could still run? READY (or in backoff), or PENDING behind a live anchor.
    bool runnable = false;
    std::string first_error;
    for (const TaskRecord& t : job.tasks) {
      if (t.state == TaskState::kReady) runnable = true;
      if (t.state == TaskState::kPending) {
        const TaskRecord& anchor = job.tasks[job.anchor_of_shot[t.shot]];
        if (anchor.state != TaskState::kFailed) runnable = true;
      }
      if (t.state == TaskState::kFailed && first_error.empty()) {
        first_error = "task " + t.task_id + " failed after " + std::to_string(t.failures) +
                      " attempt(s): " + t.last_error;
      }
      if (runnable) break;
    }
    if (!runnable) {
      FinishJob(job, JobState::kFailed, first_error, m, out);
      return;
    }
  }
  PushPersist(job, std::move(*m), out);
}

void Scheduler::CancelLiveTasks(JobEntry& job, const std::string& reason, Mutation* m,
                                Actions* out) {
  for (int index : std::vector<int>(job.live.begin(), job.live.end())) {
    TaskRecord& t = job.tasks[index];
    out->push_back(CancelTaskAction{t.worker_id, t.job_id, t.task_id, t.attempt, reason});
    DetachFromWorker(t.worker_id, t.job_id, t.task_id);
    t.state = TaskState::kCancelled;
    t.finished_ms = clock_->NowMs();
    m->tasks.push_back(t);
  }
  job.live.clear();
}

Status Scheduler::Control(const std::string& job_id, ControlOp op, int priority, Actions* out) {
  JobEntry* job = MutableJob(job_id);
  if (job == nullptr) return Status::NotFound("job " + job_id + " is unknown");
  JobRecord& r = job->rec;
  auto refuse = [&](const char* what) {
    return Status::FailedPrecondition("job " + job_id + " is " + Name(r.state) + ": cannot " +
                                      what);
  };
  Mutation m;
  switch (op) {
    case ControlOp::kCancel: {
      if (r.state == JobState::kDone || r.state == JobState::kCancelled) return refuse("cancel");
      Actions cancels;  // sent only after the cancellation is persisted
      CancelLiveTasks(*job, "job cancelled", &m, &cancels);
      for (TaskRecord& t : job->tasks) {
        if (t.state == TaskState::kPending || t.state == TaskState::kReady) {
          t.state = TaskState::kCancelled;
          m.tasks.push_back(t);
        }
      }
      job->ready_anchor.clear();
      job->ready_frames.clear();
      job->ready_frames_by_shot.clear();
      FinishJob(*job, JobState::kCancelled, "cancelled", &m, out);
      out->insert(out->end(), cancels.begin(), cancels.end());
      return Status::OK();
    }
    case ControlOp::kPause:
      if (r.state != JobState::kQueued && r.state != JobState::kRunning) return refuse("pause");
      r.state = JobState::kPaused;
      active_jobs_.erase(job_id);
      AddEvent(&m, "job.paused", job_id, "", "", 0, "running tasks finish; no new ones start");
      break;
    case ControlOp::kResume:
      if (r.state != JobState::kPaused) return refuse("resume");
      r.state = r.started_ms > 0 ? JobState::kRunning : JobState::kQueued;
      if (r.phase == JobPhase::kRender) active_jobs_.insert(job_id);
      AddEvent(&m, "job.resumed", job_id, "", "", 0, "");
      break;
    case ControlOp::kSetPriority:
      if (priority < 0 || priority > 100) {
        return Status::InvalidArgument("job " + job_id + ": priority must be in 0..100, got " +
                                       std::to_string(priority));
      }
      if (IsFinal(r.state)) return refuse("change priority");
      AddEvent(&m, "job.priority", job_id, "", "", 0,
               std::to_string(r.priority) + " -> " + std::to_string(priority));
      r.priority = priority;
      break;
    case ControlOp::kRetryFailed:
    case ControlOp::kRetryJob:
      return Retry(*job, op == ControlOp::kRetryJob, out);
  }
  m.job = r;
  PushPersist(*job, std::move(m), out);
  return Status::OK();
}

Status Scheduler::Retry(JobEntry& job, bool whole_job, Actions* out) {
  JobRecord& r = job.rec;
  const std::string& job_id = r.job_id;
  if (!whole_job && r.state != JobState::kFailed && r.state != JobState::kCancelled &&
      r.tasks_failed == 0) {
    return Status::FailedPrecondition("job " + job_id + " is " + Name(r.state) +
                                      " with no failed tasks: nothing to retry");
  }
  const TimeMs now = clock_->NowMs();
  Mutation m;
  Actions after;  // acted on only after the retry is persisted
  if (whole_job) {
    CancelLiveTasks(job, "whole job retried", &m, &after);
    m.tasks.clear();
    after.push_back(DropAnchorCacheAction{job_id, true, ""});
  }
  const bool was_final = IsFinal(r.state);
  if (r.phase == JobPhase::kAnalyze || r.shots.empty()) {
    r.phase = JobPhase::kAnalyze;
    r.state = JobState::kQueued;
    r.error.clear();
    r.finished_ms = 0;
    m.job = r;
    AddEvent(&m, "job.retry", job_id, "", "", 0, "from analysis");
    PushPersist(job, std::move(m), out);
    out->insert(out->end(), after.begin(), after.end());
    out->push_back(AnalyzeAction{job_id});
    return Status::OK();
  }
  // A finished job's anchor caches were deleted (cancel) or left to expire (failure): a shot that
  // still has frames to edit computes its anchors again before them.
  std::vector<bool> rerun_anchor(job.anchor_of_shot.size(), false);
  if (was_final && r.frames_wait_for_anchor) {
    for (const TaskRecord& t : job.tasks) {
      if (t.kind == TaskKind::kFrames && t.state != TaskState::kDone) rerun_anchor[t.shot] = true;
    }
  }
  int reset = 0;
  for (size_t i = 0; i < job.tasks.size(); ++i) {
    TaskRecord& t = job.tasks[i];
    const bool again = whole_job || t.state == TaskState::kFailed ||
                       t.state == TaskState::kCancelled ||
                       (t.kind == TaskKind::kAnchor && rerun_anchor[t.shot]);
    if (!again) continue;
    RemoveFromQueues(job, static_cast<int>(i));
    if (t.state == TaskState::kDone && t.kind == TaskKind::kFrames) r.frames_done -= t.frame_count;
    if (t.state == TaskState::kDone) --r.tasks_done;
    t.failures = 0;
    t.frames_done = 0;
    t.result.clear();
    t.last_error.clear();
    t.worker_id.clear();
    t.finished_ms = 0;
    t.state = TaskState::kPending;
    ++reset;
    m.tasks.push_back(t);
  }
  // Second pass: anchors may have been reset above, so decide readiness after all resets.
  for (auto& t : m.tasks) {
    const int i = job.index[t.task_id];
    TaskRecord& live = job.tasks[i];
    const bool blocked = live.kind == TaskKind::kFrames && r.frames_wait_for_anchor &&
                         job.tasks[job.anchor_of_shot[live.shot]].state != TaskState::kDone;
    if (!blocked) MakeReady(job, i, now);
    t = live;
  }
  r.tasks_failed = 0;
  if (whole_job) {
    r.tasks_done = 0;
    r.frames_done = 0;
    r.worker_failures.clear();
  }
  r.error.clear();
  r.finished_ms = 0;
  r.phase = r.tasks_done == r.tasks_total ? JobPhase::kStitch : JobPhase::kRender;
  if (was_final || r.state == JobState::kQueued || r.state == JobState::kRunning) {
    r.state = r.started_ms > 0 && !whole_job ? JobState::kRunning : JobState::kQueued;
  }
  if (whole_job) r.started_ms = 0;
  if (r.phase == JobPhase::kRender &&
      (r.state == JobState::kQueued || r.state == JobState::kRunning)) {
    active_jobs_.insert(job_id);
  }
  m.job = r;
  AddEvent(&m, "job.retry", job_id, "", "", 0,
           std::string(whole_job ? "whole job" : "failed tasks") + ": " + std::to_string(reset) +
               " task(s)");
  PushPersist(job, std::move(m), out);
  out->insert(out->end(), after.begin(), after.end());
  if (r.phase == JobPhase::kStitch) out->push_back(StitchAction{job_id});
  return Status::OK();
}

Status Scheduler::Forget(const std::string& job_id) {
  JobEntry* job = MutableJob(job_id);
  if (job == nullptr) return Status::NotFound("job " + job_id + " is unknown");
  if (!IsFinal(job->rec.state)) {
    return Status::FailedPrecondition("job " + job_id + " is " + Name(job->rec.state) +
                                      ": only finished jobs can be forgotten");
  }
  active_jobs_.erase(job_id);
  jobs_.erase(job_id);  // delayed_ entries of it are skipped when they come due
  return Status::OK();
}

// ---- Task reports ----

Status Scheduler::CheckLive(const RunningTask& task, const std::string& worker_id,
                            JobEntry** job_out, int* index_out) {
  JobEntry* job = MutableJob(task.job_id);
  if (job == nullptr) {
    ++stats_.stale_reports;
    return Status::FailedPrecondition("stale attempt: job " + task.job_id + " is unknown");
  }
  auto it = job->index.find(task.task_id);
  if (it == job->index.end()) {
    ++stats_.stale_reports;
    return Status::FailedPrecondition("stale attempt: job " + task.job_id + " has no task " +
                                      task.task_id);
  }
  const TaskRecord& t = job->tasks[it->second];
  if (!IsLive(t.state) || t.attempt != task.attempt || t.worker_id != worker_id) {
    ++stats_.stale_reports;
    return Status::FailedPrecondition("stale attempt: " + task.job_id + "/" + task.task_id +
                                      " attempt " + std::to_string(task.attempt) + " from worker " +
                                      worker_id + "; the task is " + Name(t.state) +
                                      " with attempt " + std::to_string(t.attempt) +
                                      (t.worker_id.empty() ? "" : " on " + t.worker_id));
  }
  *job_out = job;
  *index_out = it->second;
  return Status::OK();
}

Status Scheduler::OnTaskProgress(const RunningTask& task, const std::string& worker_id,
                                 const ProgressReport& report, Actions* out) {
  JobEntry* job = nullptr;
  int index = 0;
  FAIRY_RETURN_IF_ERROR(CheckLive(task, worker_id, &job, &index));
  WorkerEntry* w = FindWorkerEntry(worker_id);
  const TimeMs now = clock_->NowMs();
  if (w != nullptr) w->rec.last_seen_ms = now;
  TaskRecord& t = job->tasks[index];
  const bool started = t.state == TaskState::kAssigned;
  const int64_t done = std::clamp<int64_t>(report.frames_done, 0, t.frame_count);
  JobEntry::AttemptWatch& watch = job->watch[index];
  const bool new_frames = done > t.frames_done;
  const bool new_steps = report.steps_done > 0 && report.steps_done > watch.steps;
  const bool new_bytes = report.load_bytes_total > 0 && report.load_bytes_read > watch.load_bytes;
  watch.loading = report.load_bytes_total > 0 && report.load_bytes_read < report.load_bytes_total;
  if (new_bytes) watch.load_bytes = report.load_bytes_read;
  if (new_steps) {
    // Time per step between two reports of this attempt (never from the assignment: the first
    // step also pays for loading, decoding and encoding the prompt).
    if (watch.steps >= 0 && w != nullptr) {
      const double sample = static_cast<double>(now - watch.step_ms) /
                            static_cast<double>(report.steps_done - watch.steps);
      double& rate = w->rec.step_ms[StepKey(job->rec, t.kind)];
      rate = rate <= 0 ? sample : 0.7 * rate + 0.3 * sample;
    }
    watch.steps = report.steps_done;
    watch.step_ms = now;
  }
  if (w != nullptr && (new_steps || new_frames)) w->rec.proven = true;
  // A report that only says "alive" (no new step, frame or byte) is no progress: a worker whose
  // task hangs while its link still runs would otherwise hold the task for ever. Workers that do
  // not count steps (steps_done -1) are taken at their word.
  const bool progressed = report.steps_done < 0 || started || new_frames || new_steps || new_bytes;
  if (progressed) t.progress_ms = now;
  // Only news of the task's state is written: steps and bytes move the stall clock but cost no
  // Redis writes or events.
  if (!started && !new_frames) return Status::OK();
  t.state = TaskState::kRunning;
  if (started) t.started_ms = now;
  t.frames_done = done;
  Mutation m;
  m.tasks.push_back(t);
  AddEvent(&m, started ? "task.running" : "task.progress", t.job_id, t.task_id, worker_id,
           t.attempt,
           std::to_string(t.frames_done) + "/" + std::to_string(t.frame_count) + " frames");
  PushPersist(*job, std::move(m), out);
  return Status::OK();
}

Status Scheduler::OnTaskDone(const RunningTask& task, const std::string& worker_id,
                             const std::string& result, Actions* out) {
  JobEntry* job = nullptr;
  int index = 0;
  FAIRY_RETURN_IF_ERROR(CheckLive(task, worker_id, &job, &index));
  TaskRecord& t = job->tasks[index];
  const TimeMs now = clock_->NowMs();
  DetachFromWorker(worker_id, t.job_id, t.task_id);
  job->live.erase(index);
  t.state = TaskState::kDone;
  t.finished_ms = now;
  t.progress_ms = now;
  if (t.started_ms == 0) t.started_ms = now;
  t.frames_done = t.frame_count;
  t.result = result;
  JobRecord& r = job->rec;
  ++r.tasks_done;
  ++stats_.tasks_done;
  if (t.kind == TaskKind::kFrames) {
    r.frames_done += t.frame_count;
    stats_.frames_done += t.frame_count;
  }
  Mutation m;
  m.fence = Fence{t.job_id, t.task_id, t.attempt};
  m.tasks.push_back(t);
  AddEvent(&m, "task.done", t.job_id, t.task_id, worker_id, t.attempt, result);
  if (t.kind == TaskKind::kAnchor) CompleteShotAnchor(*job, t.shot);
  m.job = r;
  MaybeFinishRender(*job, &m, out);
  if (t.kind == TaskKind::kFrames) ReleaseShotAnchorIfEdited(*job, t.shot, out);
  return Status::OK();
}

void Scheduler::ReleaseShotAnchorIfEdited(const JobEntry& job, int shot, Actions* out) const {
  // A shot's tasks are contiguous: its anchor task, then its frames tasks. Once every frames task
  // is DONE, nothing of this job reads the shot's anchor cache again, so it need not wait in
  // Redis for the job's end (at SD 1.5 size an entry is GBs; a long job has hundreds of shots).
  const int anchor = job.anchor_of_shot[shot];
  for (size_t i = anchor + 1; i < job.tasks.size() && job.tasks[i].shot == shot; ++i) {
    if (job.tasks[i].state != TaskState::kDone) return;
  }
  const std::string& key = job.tasks[anchor].result;
  if (!key.empty()) out->push_back(DropAnchorCacheAction{job.rec.job_id, false, key});
}

void Scheduler::CompleteShotAnchor(JobEntry& job, int shot) {
  // The released tasks are not written: a frames task PENDING behind a DONE anchor is READY, and
  // Recover() reads it so. (Writing them made an anchor's DONE rewrite every frames task of its
  // shot: 117 task records per shot in the loopback bench, with chunk_frames 1.)
  const TimeMs now = clock_->NowMs();
  for (size_t i = job.anchor_of_shot[shot] + 1; i < job.tasks.size() && job.tasks[i].shot == shot;
       ++i) {
    if (job.tasks[i].state == TaskState::kPending) MakeReady(job, static_cast<int>(i), now);
  }
}

Status Scheduler::OnTaskFailed(const RunningTask& task, const std::string& worker_id,
                               const std::string& error, bool retryable, Actions* out) {
  JobEntry* job = nullptr;
  int index = 0;
  FAIRY_RETURN_IF_ERROR(CheckLive(task, worker_id, &job, &index));
  Mutation m;
  FailAttempt(*job, index, error, retryable, /*count_failure=*/true, "task.failed", &m);
  m.job = job->rec;
  MaybeFinishRender(*job, &m, out);
  return Status::OK();
}

void Scheduler::FailAttempt(JobEntry& job, int index, const std::string& error, bool retryable,
                            bool count_failure, const char* event_type, Mutation* m) {
  TaskRecord& t = job.tasks[index];
  const TimeMs now = clock_->NowMs();
  const std::string worker = t.worker_id;
  DetachFromWorker(worker, t.job_id, t.task_id);
  job.live.erase(index);
  t.last_error = error;
  t.finished_ms = now;
  if (count_failure) {
    ++t.failures;
    ++stats_.tasks_failed_attempts;
    if (!worker.empty()) ++job.rec.worker_failures[worker];
  }
  AddEvent(m, event_type, t.job_id, t.task_id, worker, t.attempt, error);
  if (!retryable || t.failures > options_.max_retries) {
    t.state = TaskState::kFailed;
    ++job.rec.tasks_failed;
    AddEvent(m, "task.gave_up", t.job_id, t.task_id, worker, t.attempt,
             std::to_string(t.failures) + " failure(s): " + error);
  } else {
    TimeMs delay = 0;
    if (count_failure && t.failures > 0) {
      delay = options_.retry_backoff_ms;
      for (int i = 1; i < t.failures && delay < options_.max_backoff_ms; ++i) delay *= 2;
      delay = std::min(delay, options_.max_backoff_ms);
    }
    MakeReady(job, index, now + delay);
  }
  m->tasks.push_back(t);
}

}  // namespace fairy::scheduler
