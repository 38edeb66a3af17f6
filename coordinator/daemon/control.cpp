// The coordinator's control API handlers (api::ControlHandler) and /metrics. Loop thread only.
#include <cmath>
#include <random>
#include <set>
#include <sstream>

#include "common/log.h"
#include "coordinator/daemon/coordinator.h"
#include "coordinator/daemon/model_check.h"
#include "jobs/job_spec.h"

namespace fairy::coordinator {

using nlohmann::json;
using scheduler::Actions;

namespace {

std::string NewJobId(int64_t now_ms) {
  static std::mt19937_64 rng{std::random_device{}()};
  std::time_t t = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "job-%04d%02d%02d-%02d%02d%02d-%04x", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<unsigned>(rng() & 0xffff));
  return buf;
}

double Rate(int64_t frames, int64_t start_ms, int64_t end_ms) {
  if (start_ms <= 0 || end_ms <= start_ms || frames <= 0) return 0.0;
  return static_cast<double>(frames) * 1000.0 / static_cast<double>(end_ms - start_ms);
}

// The frames a task edits: a frames task its range, an anchor task its shot's anchors (its range
// is the whole shot, which it reads to pick them).
int64_t TaskFramesTotal(const scheduler::JobRecord& job, const scheduler::TaskRecord& t) {
  if (t.kind != scheduler::TaskKind::kAnchor) return t.frame_count;
  if (t.shot < 0 || t.shot >= static_cast<int>(job.shots.size())) return 0;
  return static_cast<int64_t>(job.shots[t.shot].anchor_frames.size());
}

int64_t TaskFramesDone(const scheduler::TaskRecord& t, int64_t total) {
  return t.state == scheduler::TaskState::kDone ? total : std::min(t.frames_done, total);
}

json TaskJson(const scheduler::JobRecord& job, const scheduler::TaskRecord& t) {
  const int64_t total = TaskFramesTotal(job, t);
  return json{{"id", t.task_id},
              {"kind", scheduler::Name(t.kind)},
              {"shot", t.shot},
              {"first_frame", t.first_frame},
              {"frame_count", t.frame_count},
              {"state", scheduler::Name(t.state)},
              {"attempt", t.attempt},
              {"failures", t.failures},
              {"worker", t.worker_id},
              {"assigned_ms", t.assigned_ms},
              {"started_ms", t.started_ms},
              {"finished_ms", t.finished_ms},
              {"frames_total", total},
              {"frames_done", TaskFramesDone(t, total)},
              {"result", t.result},
              {"error", t.last_error}};
}

}  // namespace

json Coordinator::JobSummary(const scheduler::JobRecord& j) const {
  int64_t now = clock_.NowMs();
  int64_t end = j.finished_ms > 0 ? j.finished_ms : now;
  double fps = Rate(j.frames_done, j.started_ms, end);
  double eta = fps > 0 ? static_cast<double>(j.total_frames - j.frames_done) / fps : -1.0;
  return json{{"id", j.job_id},
              {"name", j.name},
              {"state", scheduler::Name(j.state)},
              {"phase", scheduler::Name(j.phase)},
              {"priority", j.priority},
              {"output", j.output},
              {"frames_total", j.total_frames},
              {"frames_done", j.frames_done},
              {"tasks_total", j.tasks_total},
              {"tasks_done", j.tasks_done},
              {"tasks_failed", j.tasks_failed},
              {"shots_total", j.shots.size()},
              {"submit_ms", j.submit_ms},
              {"started_ms", j.started_ms},
              {"finished_ms", j.finished_ms},
              {"error", j.error},
              {"frames_per_s", fps},
              {"eta_s", eta}};
}

Result<json> Coordinator::Submit(const std::string& yaml, const std::string& source_name,
                                 std::optional<int> priority) {
  FAIRY_ASSIGN_OR_RETURN(std::vector<JobPlan> plans,
                         ParseJobFile(yaml, source_name, options_.submit, priority));
  FAIRY_RETURN_IF_ERROR(CheckOutputsAreFree(plans, source_name));
  const std::vector<const scheduler::WorkerRecord*> connected =
      ConnectedWorkers(scheduler_->Workers());
  for (const JobPlan& plan : plans) {
    if (!jobs::IsModelId(plan.model)) continue;  // a path: the job parser checked it
    FAIRY_RETURN_IF_ERROR(CheckModelOnWorkers(source_name, plan.name, plan.model, connected));
  }
  json ids = json::array();
  for (auto& plan : plans) {
    std::string id;
    do {
      id = NewJobId(clock_.NowMs());
    } while (scheduler_->FindJob(id) != nullptr);
    scheduler::JobSubmission sub = plan.Submission(id);
    if (plan.work_dir.empty()) {
      plan.work_dir =
          options_.submit.work_root.empty()
              ? (std::filesystem::path(plan.output).parent_path() / ".fairy-work" / id).string()
              : (std::filesystem::path(options_.submit.work_root) / id).string();
    }
    sub.spec = plan.ToJson().dump();
    Actions actions;
    FAIRY_RETURN_IF_ERROR(scheduler_->Submit(sub, &actions));
    plans_[id] = plan;
    Log(id, "", "",
        "submitted from " + source_name + " (priority " + std::to_string(sub.priority) + ")");
    if (!sub.requirements.model_id.empty())
      Log(id, "", "", ModelWorkersLine(sub.requirements.model_id, connected));
    Execute(std::move(actions));
    ids.push_back(id);
  }
  ExecuteAndDispatch({});
  return json{{"jobs", ids}};
}

// Two unfinished jobs must not write one file: the later stitch would overwrite the earlier
// result, and an output that is another job's input would destroy its source while it is read.
// (Within one file the job parser checks the same.) A finished job's output may be rendered again.
Status Coordinator::CheckOutputsAreFree(const std::vector<JobPlan>& plans,
                                        const std::string& source_name) {
  for (const scheduler::JobRecord* job : scheduler_->Jobs()) {
    if (scheduler::IsFinal(job->state)) continue;
    const JobPlan* other = Plan(job->job_id);
    if (other == nullptr) continue;
    for (const JobPlan& plan : plans) {
      const char* as = plan.output == other->output  ? "output"
                       : plan.output == other->input ? "input"
                                                     : nullptr;
      if (as == nullptr) continue;
      return Status::FailedPrecondition(source_name + ": job '" + plan.name + "': output " +
                                        plan.output + " is the " + as + " of job " + job->job_id +
                                        " (" + scheduler::Name(job->state) +
                                        "); cancel that job or choose another output");
    }
  }
  return Status::OK();
}

Result<json> Coordinator::ListJobs(const std::vector<std::string>& states) {
  std::set<scheduler::JobState> wanted;
  for (const std::string& name : states) {
    Result<scheduler::JobState> s = scheduler::ParseJobState(name);
    if (!s.ok()) return Status::InvalidArgument("query parameter 'state': " + s.status().message());
    wanted.insert(*s);
  }
  json jobs = json::array();
  for (const auto* j : scheduler_->Jobs()) {
    if (wanted.empty() || wanted.count(j->state) != 0) jobs.push_back(JobSummary(*j));
  }
  return json{{"jobs", jobs}};
}

Result<json> Coordinator::JobStatus(const std::string& job_id) {
  const scheduler::JobRecord* job = scheduler_->FindJob(job_id);
  if (job == nullptr) return Status::NotFound("no job '" + job_id + "'");
  json out = JobSummary(*job);
  json tasks = json::array();
  std::vector<json> shots;
  for (const auto& s : job->shots) {
    shots.push_back(json{{"index", s.index},
                         {"first_frame", s.first_frame},
                         {"frame_count", s.frame_count},
                         {"anchors", s.anchor_frames},
                         {"frames_done", 0},
                         {"state", "PENDING"},
                         {"worker", ""},
                         {"attempt", 0},
                         {"started_ms", 0},
                         {"finished_ms", 0},
                         {"frames_per_s", 0.0}});
  }
  std::vector<std::map<std::string, int>> shot_states(shots.size());
  for (const auto* t : scheduler_->Tasks(job_id)) {
    tasks.push_back(TaskJson(*job, *t));
    if (t->shot < 0 || t->shot >= static_cast<int>(shots.size())) continue;
    json& s = shots[t->shot];
    shot_states[t->shot][scheduler::Name(t->state)]++;
    if (t->kind == scheduler::TaskKind::kFrames) {
      s["frames_done"] = s["frames_done"].get<int64_t>() + TaskFramesDone(*t, t->frame_count);
    }
    s["attempt"] = std::max<int64_t>(s["attempt"].get<int64_t>(), t->attempt);
    // A shot starts when its first task went to a worker (which starts a task when it gets it).
    const int64_t start = t->assigned_ms;
    if (start > 0 &&
        (s["started_ms"].get<int64_t>() == 0 || start < s["started_ms"].get<int64_t>()))
      s["started_ms"] = start;
    s["finished_ms"] = std::max<int64_t>(s["finished_ms"].get<int64_t>(), t->finished_ms);
    if (scheduler::IsLive(t->state) || s["worker"].get<std::string>().empty()) {
      if (!t->worker_id.empty()) s["worker"] = t->worker_id;
    }
  }
  for (size_t i = 0; i < shots.size(); ++i) {
    auto& st = shot_states[i];
    int total = 0;
    for (auto& [k, v] : st) total += v;
    std::string state = "PENDING";
    if (total > 0 && st["DONE"] == total) {
      state = "DONE";
    } else if (st["FAILED"] > 0) {
      state = "FAILED";
    } else if (st["RUNNING"] + st["ASSIGNED"] > 0) {
      state = "RUNNING";
    } else if (st["CANCELLED"] > 0) {
      state = "CANCELLED";
    } else if (st["READY"] > 0 || st["DONE"] > 0) {
      state = "READY";
    }
    shots[i]["state"] = state;
    if (state != "DONE") shots[i]["finished_ms"] = 0;
    int64_t end = state == "DONE" ? shots[i]["finished_ms"].get<int64_t>() : clock_.NowMs();
    shots[i]["frames_per_s"] =
        Rate(shots[i]["frames_done"].get<int64_t>(), shots[i]["started_ms"].get<int64_t>(), end);
  }
  out["tasks"] = tasks;
  out["shots"] = shots;
  return out;
}

Result<json> Coordinator::Control(const std::string& job_id, const std::string& op, int priority) {
  FAIRY_ASSIGN_OR_RETURN(scheduler::ControlOp control, scheduler::ParseControlOp(op));
  Actions actions;
  FAIRY_RETURN_IF_ERROR(scheduler_->Control(job_id, control, priority, &actions));
  ExecuteAndDispatch(std::move(actions));
  Log(job_id, "", "",
      op + (op == "priority" ? " " + std::to_string(priority) : std::string()) + " (control API)");
  const scheduler::JobRecord* job = scheduler_->FindJob(job_id);
  if (job == nullptr) return Status::NotFound("no job '" + job_id + "'");
  return JobSummary(*job);
}

Result<json> Coordinator::Workers() {
  json workers = json::array();
  for (const auto* w : scheduler_->Workers()) {
    json running = json::array();
    for (const auto& r : w->running)
      running.push_back({{"job_id", r.job_id}, {"task_id", r.task_id}, {"attempt", r.attempt}});
    workers.push_back(
        json{{"id", w->info.worker_id},
             {"host", w->info.host},
             {"device", w->info.device},
             {"memory_mb", w->info.memory_mb},
             {"tags", w->info.tags},
             {"models", w->info.models},
             // model ids in its models folder; null: the worker does not say (older)
             {"installed_models", w->info.reports_models ? json(w->info.installed_models) : json()},
             {"slots", w->info.slots},
             // one until it has shown progress (and again after a stall)
             {"usable_slots", scheduler_->UsableSlots(*w)},
             {"running", running},
             {"stalls", w->stalls},
             {"suspect", w->suspect},
             {"step_ms", w->step_ms},
             {"registered_ms", w->registered_ms},
             {"last_seen_ms", w->last_seen_ms},
             {"draining", w->draining}});
  }
  return json{{"workers", workers}};
}

Result<json> Coordinator::Logs(const std::string& job_id, const std::string& task_filter,
                               const std::string& after_id, int limit) {
  const scheduler::JobRecord* job = scheduler_->FindJob(job_id);
  if (job == nullptr) return Status::NotFound("no job '" + job_id + "'");
  FAIRY_ASSIGN_OR_RETURN(std::vector<scheduler::LogLine> lines,
                         store_->ReadLog(job_id, after_id, limit));
  json out = json::array();
  std::string next = after_id;
  for (const auto& l : lines) {
    next = l.id;
    if (!task_filter.empty() && l.task_id != task_filter) continue;
    out.push_back({{"id", l.id},
                   {"time_ms", l.time_ms},
                   {"task", l.task_id},
                   {"worker", l.worker_id},
                   {"line", l.line}});
  }
  // A follower stops once the job is final and it has read everything.
  bool finished = scheduler::IsFinal(job->state) && static_cast<int>(lines.size()) < limit;
  return json{{"lines", out}, {"next", next}, {"finished", finished}};
}

Result<json> Coordinator::Events(const std::string& after_id, int limit) {
  FAIRY_ASSIGN_OR_RETURN(std::vector<scheduler::Event> events, store_->ReadEvents(after_id, limit));
  json out = json::array();
  std::string next = after_id;
  for (const auto& e : events) {
    next = e.id;
    out.push_back({{"id", e.id},
                   {"time_ms", e.time_ms},
                   {"type", e.type},
                   {"job", e.job_id},
                   {"task", e.task_id},
                   {"worker", e.worker_id},
                   {"attempt", e.attempt},
                   {"detail", e.detail}});
  }
  return json{{"events", out}, {"next", next}};
}

void Coordinator::RecordRate() {
  int64_t now = clock_.NowMs();
  rate_samples_.emplace_back(now, scheduler_->stats().frames_done);
  while (!rate_samples_.empty() && now - rate_samples_.front().first > 60000)
    rate_samples_.pop_front();
}

std::string Coordinator::Metrics() {
  std::ostringstream m;
  std::map<std::string, int> job_states, task_states;
  for (const char* s : {"QUEUED", "RUNNING", "PAUSED", "DONE", "FAILED", "CANCELLED"})
    job_states[s] = 0;
  for (const char* s : {"PENDING", "READY", "ASSIGNED", "RUNNING", "DONE", "FAILED", "CANCELLED"})
    task_states[s] = 0;
  for (const auto* j : scheduler_->Jobs()) {
    job_states[scheduler::Name(j->state)]++;
    for (const auto* t : scheduler_->Tasks(j->job_id)) task_states[scheduler::Name(t->state)]++;
  }
  m << "# HELP fairy_jobs Jobs known to the coordinator, by state.\n# TYPE fairy_jobs gauge\n";
  for (auto& [s, n] : job_states) m << "fairy_jobs{state=\"" << s << "\"} " << n << "\n";
  m << "# HELP fairy_tasks Tasks of known jobs, by state.\n# TYPE fairy_tasks gauge\n";
  for (auto& [s, n] : task_states) m << "fairy_tasks{state=\"" << s << "\"} " << n << "\n";
  int workers = 0, slots = 0, busy = 0, suspects = 0;
  std::ostringstream suspect_lines, stall_lines;
  for (const auto* w : scheduler_->Workers()) {
    ++workers;
    slots += w->info.slots;
    busy += static_cast<int>(w->running.size());
    // Worker ids have no space, ':' or newline (OnWorkerHello); a quote or backslash is escaped.
    std::string label;
    for (char ch : w->info.worker_id) {
      if (ch == '"' || ch == '\\') label += '\\';
      label += ch;
    }
    if (w->stalls > 0)
      stall_lines << "fairy_worker_stalls{worker=\"" << label << "\"} " << w->stalls << "\n";
    if (w->suspect) {
      ++suspects;
      suspect_lines << "fairy_worker_suspect{worker=\"" << label << "\"} 1\n";
    }
  }
  m << "# HELP fairy_workers Connected workers.\n# TYPE fairy_workers gauge\nfairy_workers "
    << workers << "\n";
  m << "# HELP fairy_workers_suspect Connected workers with repeated stalled attempts "
       "(tasks.stall_threshold).\n"
    << "# TYPE fairy_workers_suspect gauge\nfairy_workers_suspect " << suspects << "\n";
  m << "# HELP fairy_worker_suspect 1 for each suspect worker.\n# TYPE fairy_worker_suspect gauge\n"
    << suspect_lines.str();
  m << "# HELP fairy_worker_stalls Stalled attempts of each connected worker that has had any.\n"
    << "# TYPE fairy_worker_stalls gauge\n"
    << stall_lines.str();
  m << "# HELP fairy_worker_slots Task slots of connected workers.\n# TYPE fairy_worker_slots "
       "gauge\n"
    << "fairy_worker_slots{state=\"total\"} " << slots << "\nfairy_worker_slots{state=\"busy\"} "
    << busy << "\n";
  const auto& st = scheduler_->stats();
  auto counter = [&m](const char* name, const char* help, int64_t v) {
    m << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
      << name << " " << v << "\n";
  };
  counter("fairy_frames_edited_total", "Frames of completed frames tasks.", st.frames_done);
  counter("fairy_tasks_assigned_total", "Task attempts sent to workers.", st.tasks_assigned);
  counter("fairy_tasks_done_total", "Task attempts completed.", st.tasks_done);
  counter("fairy_task_attempts_failed_total", "Task attempts that failed.",
          st.tasks_failed_attempts);
  counter("fairy_tasks_requeued_lost_total", "Attempts lost with a dead worker and requeued.",
          st.tasks_requeued_lost);
  counter("fairy_tasks_timed_out_total",
          "Attempts stopped for running longer than tasks.max_time_ms.", st.tasks_timed_out);
  counter("fairy_tasks_stalled_total",
          "Attempts stalled (no progress within their limit) and requeued elsewhere.",
          st.tasks_stalled);
  counter("fairy_stale_reports_total", "Reports for attempts that were no longer current (fenced).",
          st.stale_reports);
  counter("fairy_workers_dead_total", "Workers declared dead after missing heartbeats.",
          st.workers_dead);
  counter("fairy_anchor_cache_bytes_published_total",
          "Anchor cache bytes published by anchor tasks.", cache_bytes_published_);
  counter("fairy_anchor_caches_unpublished_total",
          "Anchor tasks (anchor_mode cache) that could not publish their cache: every frames task "
          "of their shot recomputes the anchors.",
          anchor_caches_unpublished_);
  counter("fairy_protocol_messages_rejected_total",
          "Malformed or wrong-version worker messages dropped.", link_ ? link_->rejected() : 0);
  double fps = 0;
  if (rate_samples_.size() >= 2 && rate_samples_.back().first > rate_samples_.front().first) {
    fps = static_cast<double>(rate_samples_.back().second - rate_samples_.front().second) * 1000.0 /
          static_cast<double>(rate_samples_.back().first - rate_samples_.front().first);
  }
  m << "# HELP fairy_frames_per_second Frames edited per second over the last minute.\n"
    << "# TYPE fairy_frames_per_second gauge\nfairy_frames_per_second " << fps << "\n";
  m << "# HELP fairy_task_duration_seconds Duration of completed task attempts (assignment to "
       "DONE).\n"
    << "# TYPE fairy_task_duration_seconds histogram\n";
  for (size_t i = 0; i < std::size(kDurationBuckets); ++i) {
    m << "fairy_task_duration_seconds_bucket{le=\"" << kDurationBuckets[i] << "\"} "
      << duration_counts_[i] << "\n";
  }
  m << "fairy_task_duration_seconds_bucket{le=\"+Inf\"} " << duration_count_ << "\n"
    << "fairy_task_duration_seconds_sum " << duration_sum_s_
    << "\nfairy_task_duration_seconds_count " << duration_count_ << "\n";
  return m.str();
}

}  // namespace fairy::coordinator
