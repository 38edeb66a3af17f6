// Workers, assignment, time (Tick) and recovery. Jobs and reports are in scheduler.cpp.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

#include "coordinator/scheduler/scheduler.h"
#include "coordinator/scheduler/scheduler_internal.h"

namespace fairy::scheduler {

Scheduler::WorkerEntry* Scheduler::FindWorkerEntry(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : it->second.get();
}

void Scheduler::PushWorker(const WorkerEntry& worker, Actions* out) {
  out->push_back(PersistWorkerAction{worker.rec, WorkerTtlMs()});
}

void Scheduler::DetachFromWorker(const std::string& worker_id, const std::string& job_id,
                                 const std::string& task_id) {
  WorkerEntry* w = FindWorkerEntry(worker_id);
  if (w == nullptr) return;
  auto& running = w->rec.running;
  running.erase(std::remove_if(running.begin(), running.end(),
                               [&](const RunningTask& r) {
                                 return r.job_id == job_id && r.task_id == task_id;
                               }),
                running.end());
}

Status Scheduler::OnWorkerHello(const WorkerInfo& info, const std::vector<RunningTask>& running,
                                Actions* out) {
  if (info.worker_id.empty() || info.worker_id.find_first_of(" :\r\n") != std::string::npos) {
    return Status::InvalidArgument("worker id '" + info.worker_id +
                                   "' is empty or contains ' ', ':' or a newline");
  }
  const TimeMs now = clock_->NowMs();
  auto& slot = workers_[info.worker_id];
  const bool known = slot != nullptr;
  if (!known) {
    slot = std::make_unique<WorkerEntry>();
    slot->rec.registered_ms = now;
  }
  WorkerEntry& w = *slot;
  w.rec.info = info;
  std::sort(w.rec.info.installed_models.begin(), w.rec.info.installed_models.end());
  if (w.rec.info.slots < 1) w.rec.info.slots = 1;
  if (options_.max_worker_slots > 0)
    w.rec.info.slots = std::min(w.rec.info.slots, options_.max_worker_slots);
  w.rec.last_seen_ms = now;
  w.rec.draining = false;

  // Tasks we believe it runs but it no longer reports: lost with its previous life.
  std::vector<RunningTask> before = w.rec.running;
  for (const RunningTask& had : before) {
    bool still = std::any_of(running.begin(), running.end(), [&](const RunningTask& r) {
      return r.job_id == had.job_id && r.task_id == had.task_id && r.attempt == had.attempt;
    });
    if (still) continue;
    JobEntry* job = MutableJob(had.job_id);
    if (job == nullptr) continue;
    auto it = job->index.find(had.task_id);
    if (it == job->index.end() || !IsLive(job->tasks[it->second].state)) continue;
    Mutation m;
    FailAttempt(*job, it->second, "worker " + info.worker_id + " reconnected without the task",
                true, true, "task.lost", &m);
    ++stats_.tasks_requeued_lost;
    m.job = job->rec;
    MaybeFinishRender(*job, &m, out);
  }
  w.rec.running.clear();
  // Re-adopt what it reports, if that is still the live attempt on this worker; cancel the rest.
  for (const RunningTask& r : running) {
    JobEntry* job = MutableJob(r.job_id);
    bool adopt = false;
    if (job != nullptr) {
      auto it = job->index.find(r.task_id);
      if (it != job->index.end()) {
        const TaskRecord& t = job->tasks[it->second];
        adopt = IsLive(t.state) && t.attempt == r.attempt && t.worker_id == info.worker_id;
      }
    }
    if (adopt) {
      w.rec.running.push_back(r);
      Mutation m;
      AddEvent(&m, "task.readopted", r.job_id, r.task_id, info.worker_id, r.attempt, "");
      PushPersist(*job, std::move(m), out);
    } else {
      out->push_back(
          CancelTaskAction{info.worker_id, r.job_id, r.task_id, r.attempt, "not the live attempt"});
    }
  }
  PushWorker(w, out);
  return Status::OK();
}

Status Scheduler::OnHeartbeat(const std::string& worker_id, Actions* out,
                               const std::vector<std::string>* installed_models) {
  WorkerEntry* w = FindWorkerEntry(worker_id);
  if (w == nullptr)
    return Status::NotFound("worker " + worker_id +
                            " is unknown (declared dead?): it must say hello again");
  w->rec.last_seen_ms = clock_->NowMs();
  if (installed_models != nullptr) {
    w->rec.info.installed_models = *installed_models;
    std::sort(w->rec.info.installed_models.begin(), w->rec.info.installed_models.end());
    w->rec.info.reports_models = true;
  }
  PushWorker(*w, out);
  return Status::OK();
}

Status Scheduler::OnWorkerGone(const std::string& worker_id, Actions* out) {
  WorkerEntry* w = FindWorkerEntry(worker_id);
  if (w == nullptr) return Status::NotFound("worker " + worker_id + " is unknown");
  for (const RunningTask& r : std::vector<RunningTask>(w->rec.running)) {
    JobEntry* job = MutableJob(r.job_id);
    if (job == nullptr) continue;
    auto it = job->index.find(r.task_id);
    if (it == job->index.end() || !IsLive(job->tasks[it->second].state)) continue;
    Mutation m;
    FailAttempt(*job, it->second, "worker " + worker_id + " left", true, /*count_failure=*/false,
                "task.requeued", &m);
    m.job = job->rec;
    MaybeFinishRender(*job, &m, out);
  }
  workers_.erase(worker_id);
  out->push_back(DeleteWorkerAction{worker_id});
  return Status::OK();
}

void Scheduler::DeclareDead(const std::string& worker_id, Actions* out) {
  WorkerEntry* w = FindWorkerEntry(worker_id);
  if (w == nullptr) return;
  ++stats_.workers_dead;
  for (const RunningTask& r : std::vector<RunningTask>(w->rec.running)) {
    JobEntry* job = MutableJob(r.job_id);
    if (job == nullptr) continue;
    auto it = job->index.find(r.task_id);
    if (it == job->index.end() || !IsLive(job->tasks[it->second].state)) continue;
    Mutation m;
    FailAttempt(*job, it->second, "worker " + worker_id + " stopped answering heartbeats", true,
                true, "task.lost", &m);
    ++stats_.tasks_requeued_lost;
    m.job = job->rec;
    MaybeFinishRender(*job, &m, out);
  }
  workers_.erase(worker_id);
  out->push_back(DeleteWorkerAction{worker_id});
}

// ---- Assignment ----

bool Scheduler::Eligible(const JobEntry& job, const WorkerEntry& worker) const {
  const WorkerRequirements& req = job.rec.requirements;
  const WorkerInfo& info = worker.rec.info;
  if (!req.device.empty() && info.device.rfind(req.device, 0) != 0) return false;
  if (info.memory_mb < req.min_memory_mb) return false;
  for (const std::string& tag : req.tags) {
    if (std::find(info.tags.begin(), info.tags.end(), tag) == info.tags.end()) return false;
  }
  if (!HasModel(info, req.model_id)) return false;
  if (options_.blacklist_threshold > 0) {
    auto it = job.rec.worker_failures.find(info.worker_id);
    if (it != job.rec.worker_failures.end() && it->second >= options_.blacklist_threshold)
      return false;
  }
  if (options_.stall_threshold > 0) {
    auto it = job.rec.worker_stalls.find(info.worker_id);
    if (it != job.rec.worker_stalls.end() && it->second >= options_.stall_threshold) return false;
  }
  return true;
}

double Scheduler::EffectivePriority(const JobEntry& job, TimeMs now) const {
  double p = job.rec.priority;
  if (options_.aging_ms_per_point > 0) {
    const TimeMs since = now - std::max(job.rec.submit_ms, job.rec.last_assign_ms);
    if (since > 0)
      p += static_cast<double>(since) / static_cast<double>(options_.aging_ms_per_point);
  }
  return p;
}

int Scheduler::PickTask(JobEntry& job, const WorkerEntry& worker) const {
  if (!job.ready_anchor.empty()) return *job.ready_anchor.begin();
  if (worker.rec.last_job_id == job.rec.job_id) {
    auto it = job.ready_frames_by_shot.find(worker.rec.last_shot);
    if (it != job.ready_frames_by_shot.end() && !it->second.empty()) return *it->second.begin();
  }
  return job.ready_frames.empty() ? -1 : *job.ready_frames.begin();
}

void Scheduler::Assign(JobEntry& job, int index, WorkerEntry& worker, Actions* out) {
  const TimeMs now = clock_->NowMs();
  TaskRecord& t = job.tasks[index];
  RemoveFromQueues(job, index);
  job.live.insert(index);
  ++t.attempt;
  t.state = TaskState::kAssigned;
  t.worker_id = worker.rec.info.worker_id;
  t.assigned_ms = now;
  t.started_ms = 0;
  t.progress_ms = now;
  t.finished_ms = 0;
  t.frames_done = 0;
  job.watch[index] = JobEntry::AttemptWatch{};
  JobRecord& r = job.rec;
  r.last_assign_ms = now;
  Mutation m;
  if (r.state == JobState::kQueued) {
    r.state = JobState::kRunning;
    r.started_ms = now;
    m.job = r;
    AddEvent(&m, "job.running", r.job_id, "", "", 0, "");
  }
  m.tasks.push_back(t);
  AddEvent(&m, "task.assigned", r.job_id, t.task_id, t.worker_id, t.attempt, "");
  worker.rec.running.push_back(RunningTask{r.job_id, t.task_id, t.attempt});
  worker.rec.last_job_id = r.job_id;
  worker.rec.last_shot = t.shot;
  ++stats_.tasks_assigned;
  PushPersist(job, std::move(m), out);
  out->push_back(AssignAction{worker.rec.info.worker_id, t});
}

Status Scheduler::OnWorkerReady(const std::string& worker_id, int free_slots, Actions* out) {
  WorkerEntry* w = FindWorkerEntry(worker_id);
  if (w == nullptr)
    return Status::NotFound("worker " + worker_id +
                            " is unknown (declared dead?): it must say hello again");
  const TimeMs now = clock_->NowMs();
  w->rec.last_seen_ms = now;
  if (w->rec.draining) return Status::OK();
  ReleaseDue(now);
  int want = std::min(free_slots, UsableSlots(w->rec) - static_cast<int>(w->rec.running.size()));
  for (; want > 0; --want) {
    JobEntry* best = nullptr;
    double best_priority = -std::numeric_limits<double>::infinity();
    for (const std::string& id : active_jobs_) {
      JobEntry& job = *jobs_.at(id);
      if (!job.HasReady() || !Eligible(job, *w)) continue;
      double p = EffectivePriority(job, now);
      if (options_.model_affinity_points > 0 && !job.rec.model.empty()) {
        const auto& models = w->rec.info.models;
        if (std::find(models.begin(), models.end(), job.rec.model) != models.end()) {
          p += options_.model_affinity_points;
        }
      }
      if (best == nullptr || p > best_priority ||
          (p == best_priority &&
           (job.rec.submit_ms < best->rec.submit_ms ||
            (job.rec.submit_ms == best->rec.submit_ms && job.rec.job_id < best->rec.job_id)))) {
        best = &job;
        best_priority = p;
      }
    }
    if (best == nullptr) break;
    const int index = PickTask(*best, *w);
    if (index < 0) break;
    Assign(*best, index, *w, out);
  }
  return Status::OK();
}

// ---- Time ----

void Scheduler::ReleaseDue(TimeMs now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    auto [at, ref] = *delayed_.begin();
    delayed_.erase(delayed_.begin());
    JobEntry* job = MutableJob(ref.first);
    if (job == nullptr || ref.second >= static_cast<int>(job->tasks.size())) continue;
    const TaskRecord& t = job->tasks[ref.second];
    if (t.state != TaskState::kReady || t.ready_at_ms != at) continue;  // superseded
    MakeReady(*job, ref.second, at);
  }
}

void Scheduler::Tick(Actions* out) {
  const TimeMs now = clock_->NowMs();
  ReleaseDue(now);
  const TimeMs ttl = WorkerTtlMs();
  std::vector<std::string> dead;
  for (const auto& [id, w] : workers_) {
    if (now - w->rec.last_seen_ms > ttl) dead.push_back(id);
  }
  for (const std::string& id : dead) DeclareDead(id, out);

  const bool grace_over = recovery_deadline_ms_ != 0 && now >= recovery_deadline_ms_;
  if (grace_over) recovery_deadline_ms_ = 0;
  std::set<std::string> stalled_workers;
  for (auto& [id, job] : jobs_) {
    if (job->live.empty()) continue;
    Mutation m;
    Actions cancels;
    for (int index : std::vector<int>(job->live.begin(), job->live.end())) {
      TaskRecord& t = job->tasks[index];
      WorkerEntry* w = FindWorkerEntry(t.worker_id);
      const bool owned =
          w != nullptr &&
          std::any_of(w->rec.running.begin(), w->rec.running.end(), [&](const RunningTask& r) {
            return r.job_id == t.job_id && r.task_id == t.task_id && r.attempt == t.attempt;
          });
      if (!owned) {
        if (recovery_deadline_ms_ != 0) continue;  // still waiting for its worker to reconnect
        FailAttempt(*job, index, "not re-adopted after coordinator restart", true, false,
                    "task.requeued", &m);
        continue;
      }
      std::string why;
      const char* event = "task.timeout";
      if (options_.task_max_ms > 0 && now - t.assigned_ms > options_.task_max_ms) {
        why = "ran longer than task_max_ms=" + std::to_string(options_.task_max_ms);
        ++stats_.tasks_timed_out;
      } else if (auto [limit, basis] = StallLimit(*job, index);
                 limit > 0 && now - t.progress_ms > limit) {
        why = "stalled: no progress for " + std::to_string(now - t.progress_ms) + " ms (limit " +
              std::to_string(limit) + " ms: " + basis + ")";
        event = "task.stalled";
        ++stats_.tasks_stalled;
        CountStall(*job, t.worker_id);
        stalled_workers.insert(t.worker_id);
      }
      if (why.empty()) continue;
      cancels.push_back(CancelTaskAction{t.worker_id, t.job_id, t.task_id, t.attempt, why});
      FailAttempt(*job, index, why, true, true, event, &m);
    }
    if (m.tasks.empty()) continue;
    m.job = job->rec;
    MaybeFinishRender(*job, &m, out);
    out->insert(out->end(), cancels.begin(), cancels.end());  // after the requeue is persisted
  }
  for (const std::string& id : stalled_workers) {
    if (const WorkerEntry* w = FindWorkerEntry(id)) PushWorker(*w, out);
  }
}

std::optional<TimeMs> Scheduler::NextDeadlineMs() const {
  std::optional<TimeMs> next;
  auto take = [&](TimeMs t) {
    if (!next || t < *next) next = t;
  };
  if (!delayed_.empty()) take(delayed_.begin()->first);
  for (const auto& [id, w] : workers_) take(w->rec.last_seen_ms + WorkerTtlMs() + 1);
  if (recovery_deadline_ms_ != 0) take(recovery_deadline_ms_);
  for (const auto& [id, job] : jobs_) {
    for (int index : job->live) {
      const TaskRecord& t = job->tasks[index];
      if (options_.task_max_ms > 0) take(t.assigned_ms + options_.task_max_ms + 1);
      const int64_t limit = StallLimit(*job, index).first;
      if (limit > 0) take(t.progress_ms + limit + 1);
    }
  }
  return next;
}

// ---- Progress supervision ----

std::string Scheduler::StepKey(const JobRecord& job, TaskKind kind) {
  return (job.step_profile.empty() ? job.job_id : job.step_profile) + "|" + Name(kind);
}

int Scheduler::UsableSlots(const WorkerRecord& worker) const {
  return worker.proven ? worker.info.slots : 1;
}

std::pair<int64_t, std::string> Scheduler::StallLimit(const JobEntry& job, int index) const {
  if (options_.progress_timeout_ms > 0)
    return {options_.progress_timeout_ms, "progress_timeout_ms"};
  if (options_.stall_floor_ms <= 0) return {0, "off"};
  const int64_t floor = options_.stall_floor_ms;
  auto it = job.watch.find(index);
  if (it != job.watch.end() && it->second.loading)
    return {floor, "stall_floor_ms, loading a model"};
  const TaskRecord& t = job.tasks[index];
  const std::string key = StepKey(job.rec, t.kind);
  // This worker's own measurement, else the slowest other worker's (a fresh worker of the same
  // kind is about as fast; a faster guess could stall a slow one that is fine).
  double rate = 0;
  std::string whose;
  if (auto w = workers_.find(t.worker_id); w != workers_.end()) {
    if (auto r = w->second->rec.step_ms.find(key); r != w->second->rec.step_ms.end()) {
      rate = r->second;
      whose = t.worker_id;
    }
  }
  if (rate <= 0) {
    for (const auto& [id, w] : workers_) {
      auto r = w->rec.step_ms.find(key);
      if (r != w->rec.step_ms.end() && r->second > rate) {
        rate = r->second;
        whose = id;
      }
    }
  }
  if (rate <= 0) {
    return {std::max(floor, options_.stall_unmeasured_ms),
            "stall_unmeasured_ms, no step of this job's settings measured yet"};
  }
  // A worker reports a step at most once per heartbeat interval.
  const double expected = std::max(rate, static_cast<double>(options_.heartbeat_interval_ms));
  const auto adaptive = static_cast<int64_t>(options_.stall_factor * expected);
  char basis[160];
  std::snprintf(basis, sizeof basis, "%s%g x %.0f ms per step measured on %s",
                adaptive <= floor ? "stall_floor_ms >= " : "", options_.stall_factor, rate,
                whose.c_str());
  return {std::max(floor, adaptive), basis};
}

std::optional<std::pair<int64_t, std::string>> Scheduler::StallLimitMs(
    const std::string& job_id, const std::string& task_id) const {
  auto j = jobs_.find(job_id);
  if (j == jobs_.end()) return std::nullopt;
  auto t = j->second->index.find(task_id);
  if (t == j->second->index.end() || !IsLive(j->second->tasks[t->second].state))
    return std::nullopt;
  return StallLimit(*j->second, t->second);
}

void Scheduler::CountStall(JobEntry& job, const std::string& worker_id) {
  ++job.rec.worker_stalls[worker_id];
  WorkerEntry* w = FindWorkerEntry(worker_id);
  if (w == nullptr) return;
  ++w->rec.stalls;
  w->rec.proven = false;  // one task at a time until it shows progress again
  if (options_.stall_threshold > 0 && w->rec.stalls >= options_.stall_threshold)
    w->rec.suspect = true;
}

// ---- Recovery ----

Status Scheduler::Recover(const std::vector<JobSnapshot>& snapshots, Actions* out) {
  if (!jobs_.empty() || !workers_.empty())
    return Status::FailedPrecondition("Recover() needs a fresh scheduler");
  const TimeMs now = clock_->NowMs();
  bool any_live = false;
  for (const JobSnapshot& snap : snapshots) {
    const std::string& id = snap.job.job_id;
    if (jobs_.count(id) != 0)
      return Status::InvalidArgument("Recover: job " + id + " appears twice");
    auto entry = std::make_unique<JobEntry>();
    JobEntry& job = *entry;
    job.rec = snap.job;
    // Plan order is shot, then anchor before frames, then first frame: the store does not keep it.
    job.tasks = snap.tasks;
    std::sort(job.tasks.begin(), job.tasks.end(), [](const TaskRecord& a, const TaskRecord& b) {
      if (a.shot != b.shot) return a.shot < b.shot;
      if (a.kind != b.kind) return a.kind == TaskKind::kAnchor;
      return a.first_frame < b.first_frame;
    });
    job.anchor_of_shot.assign(job.rec.shots.size(), -1);
    JobRecord& r = job.rec;
    r.tasks_total = static_cast<int>(job.tasks.size());
    r.tasks_done = r.tasks_failed = 0;
    r.frames_done = 0;
    for (size_t i = 0; i < job.tasks.size(); ++i) {
      const TaskRecord& t = job.tasks[i];
      if (t.shot < 0 || t.shot >= static_cast<int>(job.anchor_of_shot.size())) {
        return Status::Corruption("Recover: job " + id + " task " + t.task_id + " has shot " +
                                  std::to_string(t.shot) + " but the job has " +
                                  std::to_string(job.anchor_of_shot.size()) + " shots");
      }
      job.index.emplace(t.task_id, static_cast<int>(i));
      if (t.kind == TaskKind::kAnchor) job.anchor_of_shot[t.shot] = static_cast<int>(i);
      if (t.state == TaskState::kDone) {
        ++r.tasks_done;
        if (t.kind == TaskKind::kFrames) r.frames_done += t.frame_count;
      }
      if (t.state == TaskState::kFailed) ++r.tasks_failed;
    }
    if (r.phase != JobPhase::kAnalyze &&
        std::count(job.anchor_of_shot.begin(), job.anchor_of_shot.end(), -1) > 0) {
      return Status::Corruption("Recover: job " + id + " lacks an anchor task for some shot");
    }
    for (size_t i = 0; i < job.tasks.size(); ++i) {
      TaskRecord& t = job.tasks[i];
      if (IsFinal(r.state)) continue;
      // A frames task PENDING behind a DONE anchor was released when the anchor finished (the
      // release is not written: CompleteShotAnchor).
      const int anchor = job.anchor_of_shot[t.shot];
      const bool released = t.state == TaskState::kPending && t.kind == TaskKind::kFrames &&
                            anchor >= 0 && job.tasks[anchor].state == TaskState::kDone;
      if (t.state == TaskState::kReady || released)
        MakeReady(job, static_cast<int>(i), std::max(t.ready_at_ms, now));
      if (IsLive(t.state)) {
        job.live.insert(static_cast<int>(i));
        any_live = true;
      }
    }
    jobs_.emplace(id, std::move(entry));
    if (IsFinal(r.state)) continue;
    if (r.phase == JobPhase::kAnalyze) out->push_back(AnalyzeAction{id});
    if (r.phase == JobPhase::kStitch) out->push_back(StitchAction{id});
    if (r.phase == JobPhase::kRender &&
        (r.state == JobState::kQueued || r.state == JobState::kRunning)) {
      active_jobs_.insert(id);
    }
  }
  if (any_live) {
    const TimeMs grace =
        options_.recovery_grace_ms > 0 ? options_.recovery_grace_ms : WorkerTtlMs();
    recovery_deadline_ms_ = now + grace;
  }
  return Status::OK();
}

// ---- Reads ----

const JobRecord* Scheduler::FindJob(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second->rec;
}

std::vector<const JobRecord*> Scheduler::Jobs() const {
  std::vector<const JobRecord*> out;
  for (const auto& [id, job] : jobs_) out.push_back(&job->rec);
  std::sort(out.begin(), out.end(), [](const JobRecord* a, const JobRecord* b) {
    return a->submit_ms != b->submit_ms ? a->submit_ms < b->submit_ms : a->job_id < b->job_id;
  });
  return out;
}

std::vector<const TaskRecord*> Scheduler::Tasks(const std::string& job_id) const {
  std::vector<const TaskRecord*> out;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return out;
  for (const TaskRecord& t : it->second->tasks) out.push_back(&t);
  return out;
}

const TaskRecord* Scheduler::FindTask(const std::string& job_id, const std::string& task_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return nullptr;
  auto t = it->second->index.find(task_id);
  return t == it->second->index.end() ? nullptr : &it->second->tasks[t->second];
}

const WorkerRecord* Scheduler::FindWorker(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second->rec;
}

std::vector<const WorkerRecord*> Scheduler::Workers() const {
  std::vector<const WorkerRecord*> out;
  for (const auto& [id, w] : workers_) out.push_back(&w->rec);
  return out;
}

}  // namespace fairy::scheduler
