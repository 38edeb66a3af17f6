// The farm's scheduling state machine. PURE: no I/O, no sockets, no threads, no sleeping; time
// comes from a Clock. The coordinator's event loop feeds it events (one method per event) and
// executes the actions it returns, IN ORDER. Persist actions always come before the actions that
// depend on them, so "write to Redis, then act" is simply "execute the list in order".
//
// Threading: not thread-safe; owned by one event loop (DESIGN.md section 2).
//
// Job graph (DESIGN.md section 3): Submit -> QUEUED + Analyze action -> OnAnalyzeDone(shots) ->
// per shot one ANCHOR task (READY) and FRAMES tasks of about `chunk_frames` frames, cut where a
// frame-pass UNet batch of `frame_batch` frames begins (common/frame_plan; PENDING until the shot's
// anchor task is DONE, unless frames_wait_for_anchor is false) -> all tasks DONE ->
// Stitch action -> OnStitchDone -> DONE.
//
// Queue order: among jobs a worker may take (state QUEUED/RUNNING, requirements met: tags,
// device, memory, and the job's model id among the worker's installed models unless the worker
// does not report them; not blacklisted), the highest effective priority wins, then the earliest submit time.
// effective = priority + (now - max(submit, last assignment to the job)) / aging_ms_per_point,
// so a low-priority job waiting long enough gets a task and nothing starves; a worker that has the
// job's model loaded adds model_affinity_points (default 0.5: breaks ties, never beats a whole
// priority point). Within a job: ANCHOR
// tasks first, then FRAMES tasks of the shot the worker worked on last (it holds that shot's anchor
// cache), then frame order.
//
// Fencing: every assignment increments the task's attempt. Reports (progress, done, failed) carry
// the attempt; a report for any attempt but the live one returns FailedPrecondition ("stale") and
// changes nothing. The Persist action of a DONE carries a Fence so the store re-checks it
// atomically in Redis.
//
// Progress supervision: an attempt whose worker heartbeats but whose last progress (a denoising
// step, a frame, model bytes read: a report that only says "alive" is no progress) is older than
// its stall limit is stalled. The limit adapts to the work:
//   max(stall_floor_ms, stall_factor x expected time to the attempt's next report),
// where the expected time is the worker's measured time per step for the job's step_profile and
// task kind (before it has one: the slowest other worker's), and at least one heartbeat interval
// (a worker reports a step at most that often). While a model loads the floor applies; before any
// step of the profile was measured anywhere, stall_unmeasured_ms (a first step includes warm-up).
// progress_timeout_ms > 0 replaces the adaptive limit by a fixed one. A stalled attempt is failed
// like a timed-out one (requeued elsewhere with backoff, its late reports fenced off, a CancelTask
// to the worker), counted against the worker; a worker with stall_threshold stalls in a job is
// kept off that job, and with stall_threshold stalls in all is `suspect` (WorkerRecord).
// Slots: a worker claiming more than max_worker_slots gets max_worker_slots; until an attempt of
// it has shown progress (and again after each stall) it gets one task at a time.
//
// Failures: a failed, timed-out (task_max_ms), stalled or lost (worker dead)
// attempt counts one failure for the task and one for the worker in that job. A task with more
// than max_retries failures is FAILED for good; otherwise it is READY again after
// retry_backoff_ms * 2^(failures-1) (capped at max_backoff_ms). A worker with
// blacklist_threshold failures in a job gets no more of that job's tasks. A job with a FAILED task
// runs its other tasks and then ends FAILED (retry brings it back).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/status.h"
#include "coordinator/scheduler/clock.h"
#include "coordinator/scheduler/records.h"

namespace fairy::scheduler {

struct SchedulerOptions {
  int64_t heartbeat_interval_ms = 1000;   // workers heartbeat this often
  int heartbeat_liveness = 5;             // dead after interval x liveness of silence
  int max_retries = 3;                    // failures allowed per task before it is FAILED
  int64_t retry_backoff_ms = 1000;        // first retry delay; doubles per failure
  int64_t max_backoff_ms = 60000;         // cap of the retry delay
  int64_t task_max_ms = 0;                // an attempt running longer is stopped (0 = no limit)
  int64_t progress_timeout_ms = 0;        // fixed stall limit instead of the adaptive one (0 = off)
  int64_t stall_floor_ms = 300000;        // the adaptive stall limit is never shorter (0 = no
                                          // stall supervision unless progress_timeout_ms is set)
  double stall_factor = 10;               // limit = factor x expected time to the next report
  int64_t stall_unmeasured_ms = 1800000;  // limit while no step of the job's profile is measured
  int stall_threshold = 2;                // stalls of a worker in a job before it is kept off the
                                          // job; as many in all make it suspect (0 = off)
  int max_worker_slots = 4;               // a worker's claimed slots are capped at this (0 = none)
  int blacklist_threshold = 3;            // failures of one worker in one job before it is kept off
  int64_t aging_ms_per_point = 60000;     // waiting this long adds one priority point (0 = off)
  double model_affinity_points = 0.5;     // bonus for a job whose model the worker has loaded
  int64_t recovery_grace_ms = 0;          // after Recover(), how long tasks that were out wait for
                                          // their worker to reconnect (0 = interval x liveness)
};

// ---- Actions: what the daemon must do, in order. ----
struct PersistAction {  // store.Apply(mutation); on failure stop and reload (state diverged)
  Mutation mutation;
};
struct PersistWorkerAction {  // store.PutWorker(worker, ttl_ms)
  WorkerRecord worker;
  int64_t ttl_ms = 0;
};
struct DeleteWorkerAction {  // store.DeleteWorker(worker_id)
  std::string worker_id;
};
struct AnalyzeAction {  // run analyze (probe, shots) off-loop; then OnAnalyzeDone/Failed
  std::string job_id;
};
struct AssignAction {  // send TASK to the worker
  std::string worker_id;
  TaskRecord task;  // carries job_id, task_id, attempt, kind, shot, frame range
};
struct CancelTaskAction {  // tell the worker to stop (job_id, task_id, attempt); fire and forget
  std::string worker_id;
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;
  std::string reason;
};
struct StitchAction {  // stitch and encode off-loop; then OnStitchDone/Failed
  std::string job_id;
};
struct DropAnchorCacheAction {  // the job's anchor cache: delete now (cancel, whole-job retry)
  std::string job_id;           // or let it expire (job finished)
  bool delete_now = false;
  std::string key;  // only this entry, to expire (a shot whose frames are all edited); "" = all
};
using Action = std::variant<PersistAction, PersistWorkerAction, DeleteWorkerAction, AnalyzeAction,
                            AssignAction, CancelTaskAction, StitchAction, DropAnchorCacheAction>;
using Actions = std::vector<Action>;

// A job as submitted (the daemon builds it from fairy::jobs::JobSpec).
struct JobSubmission {
  std::string job_id;  // unique; the daemon generates it
  std::string name;
  std::string spec;  // stored verbatim
  std::string output;
  std::string model;  // model id ("" = unknown): workers with it loaded prefer the job
  int priority = 50;  // clamped to 0..100
  WorkerRequirements requirements;
  int64_t chunk_frames = 24;
  int64_t frame_batch = 4;  // frames per UNet call of the frame pass (the job's edit.batch)
  bool frames_wait_for_anchor = true;
  std::string step_profile;  // JobRecord::step_profile ("" = the job id)
};

// One PROGRESS report of an attempt.
struct ProgressReport {
  int64_t frames_done = 0;       // of the attempt's frames
  int64_t steps_done = -1;       // denoising steps run by the attempt; -1: the worker does not say
                                 // (older workers): then every report counts as progress
  int64_t load_bytes_read = 0;   // model weights read so far (a model being loaded)
  int64_t load_bytes_total = 0;  // 0: no model being loaded
};

enum class ControlOp { kCancel, kPause, kResume, kRetryFailed, kRetryJob, kSetPriority };
Result<ControlOp> ParseControlOp(std::string_view text);  // "cancel", "pause", "retry-failed"...

// Counters for /metrics (monotonic unless noted).
struct SchedulerStats {
  int64_t tasks_assigned = 0;
  int64_t tasks_done = 0;
  int64_t tasks_failed_attempts = 0;
  int64_t tasks_requeued_lost = 0;  // attempts lost with a dead worker
  int64_t tasks_timed_out = 0;      // stopped by task_max_ms
  int64_t tasks_stalled = 0;  // stopped for want of progress (adaptive or progress_timeout_ms)
  int64_t stale_reports = 0;
  int64_t frames_done = 0;
  int64_t workers_dead = 0;
};

class Scheduler {
 public:
  // REQUIRES: clock outlives the scheduler.
  Scheduler(SchedulerOptions options, const Clock* clock);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // ---- Jobs ----
  // InvalidArgument (empty id, chunk_frames < 1, frame_batch < 1) / FailedPrecondition (id exists).
  Status Submit(const JobSubmission& job, Actions* out);
  // shots: contiguous, non-empty, frame_count > 0. InvalidArgument names the shot.
  Status OnAnalyzeDone(const std::string& job_id, const std::vector<ShotPlan>& shots, Actions* out);
  Status OnAnalyzeFailed(const std::string& job_id, const std::string& error, Actions* out);
  Status OnStitchDone(const std::string& job_id, const std::string& output, Actions* out);
  Status OnStitchFailed(const std::string& job_id, const std::string& error, Actions* out);
  // NotFound (job), FailedPrecondition (op not allowed in the job's state, e.g. resume of a
  // RUNNING job), InvalidArgument (priority out of 0..100).
  Status Control(const std::string& job_id, ControlOp op, int priority, Actions* out);

  // Drops a finished (DONE/FAILED/CANCELLED) job from memory, e.g. after the daemon archived or
  // deleted it in the store; a long-running coordinator calls it so memory stays bounded.
  // NotFound / FailedPrecondition (job not finished).
  Status Forget(const std::string& job_id);

  // ---- Workers ----
  // A worker (re)connects. `running` lists the attempts it still runs: those that are the live
  // attempt of their task are re-adopted (stay on it), the others get a CancelTask.
  Status OnWorkerHello(const WorkerInfo& info, const std::vector<RunningTask>& running,
                       Actions* out);
  // The worker has `free_slots` free; assigns up to that many tasks. NotFound for an unknown
  // (e.g. declared dead) worker: the daemon should ask it to say hello again.
  Status OnWorkerReady(const std::string& worker_id, int free_slots, Actions* out);
  // `installed_models` (optional): the worker's model ids changed to these (its models folder
  // changed); the next OnWorkerReady assigns by them.
  Status OnHeartbeat(const std::string& worker_id, Actions* out,
                     const std::vector<std::string>* installed_models = nullptr);
  // Clean leave: its live tasks are requeued without counting a failure.
  Status OnWorkerGone(const std::string& worker_id, Actions* out);

  // ---- Task reports (FailedPrecondition "stale" for anything but the live attempt) ----
  Status OnTaskProgress(const RunningTask& task, const std::string& worker_id,
                        const ProgressReport& report, Actions* out);
  // A report with frames only (steps unknown: counts as progress).
  Status OnTaskProgress(const RunningTask& task, const std::string& worker_id, int64_t frames_done,
                        Actions* out) {
    return OnTaskProgress(task, worker_id, ProgressReport{frames_done}, out);
  }
  Status OnTaskDone(const RunningTask& task, const std::string& worker_id,
                    const std::string& result, Actions* out);
  // retryable=false fails the task for good at once (bad input that no retry can fix).
  Status OnTaskFailed(const RunningTask& task, const std::string& worker_id,
                      const std::string& error, bool retryable, Actions* out);

  // Time passes: dead workers, task timeouts, end of retry backoffs, end of recovery grace.
  // Call every ~heartbeat_interval_ms / 2 (or at NextDeadlineMs()).
  void Tick(Actions* out);
  // The earliest time at which Tick() has something to do (nullopt: nothing pending).
  std::optional<TimeMs> NextDeadlineMs() const;

  // ---- Recovery ----
  // Rebuilds state from the store's snapshots (coordinator restart). REQUIRES: a fresh scheduler.
  // Jobs in ANALYZE get an Analyze action, in STITCH a Stitch action; tasks that were out stay
  // with their attempt until their worker says hello (re-adopted) or recovery_grace_ms passes
  // (requeued, no failure counted).
  Status Recover(const std::vector<JobSnapshot>& snapshots, Actions* out);

  // ---- Reads (for the control API) ----
  const JobRecord* FindJob(const std::string& job_id) const;
  std::vector<const JobRecord*> Jobs() const;  // by submit time
  // Tasks of a job in plan order; empty if unknown.
  std::vector<const TaskRecord*> Tasks(const std::string& job_id) const;
  const TaskRecord* FindTask(const std::string& job_id, const std::string& task_id) const;
  const WorkerRecord* FindWorker(const std::string& worker_id) const;
  std::vector<const WorkerRecord*> Workers() const;  // by id
  const SchedulerStats& stats() const { return stats_; }
  const SchedulerOptions& options() const { return options_; }
  int64_t WorkerTtlMs() const {
    return options_.heartbeat_interval_ms * options_.heartbeat_liveness;
  }
  // The stall limit of a live attempt now (0 = not supervised), and why, e.g. "10 x 2500 ms per
  // step measured on w1". nullopt for a task that is not live.
  std::optional<std::pair<int64_t, std::string>> StallLimitMs(const std::string& job_id,
                                                              const std::string& task_id) const;
  // Tasks the worker may hold now: its slots once it has shown progress, else 1.
  int UsableSlots(const WorkerRecord& worker) const;

 private:
  struct JobEntry;
  struct WorkerEntry;

  JobEntry* MutableJob(const std::string& job_id);
  WorkerEntry* FindWorkerEntry(const std::string& worker_id);
  void FinishJob(JobEntry& job, JobState state, const std::string& error, Mutation* m,
                 Actions* out);
  Status Retry(JobEntry& job, bool whole_job, Actions* out);
  void ReleaseDue(TimeMs now);
  Status CheckLive(const RunningTask& task, const std::string& worker_id, JobEntry** job,
                   int* index);
  void MakeReady(JobEntry& job, int index, TimeMs ready_at);
  void RemoveFromQueues(JobEntry& job, int index);
  // Ends a live attempt with a failure (failed, timed out, lost); retries or fails the task.
  void FailAttempt(JobEntry& job, int index, const std::string& error, bool retryable,
                   bool count_failure, const char* event_type, Mutation* m);
  void DetachFromWorker(const std::string& worker_id, const std::string& job_id,
                        const std::string& task_id);
  void CompleteShotAnchor(JobEntry& job, int shot);
  // Every frames task of the shot DONE: the shot's anchor cache entry may expire (DropAnchorCache).
  void ReleaseShotAnchorIfEdited(const JobEntry& job, int shot, Actions* out) const;
  void MaybeFinishRender(JobEntry& job, Mutation* m, Actions* out);
  bool Eligible(const JobEntry& job, const WorkerEntry& worker) const;
  double EffectivePriority(const JobEntry& job, TimeMs now) const;
  int PickTask(JobEntry& job, const WorkerEntry& worker) const;
  void Assign(JobEntry& job, int index, WorkerEntry& worker, Actions* out);
  void DeclareDead(const std::string& worker_id, Actions* out);
  void AddEvent(Mutation* m, const char* type, const std::string& job_id,
                const std::string& task_id, const std::string& worker_id, int64_t attempt,
                std::string detail) const;
  void PushPersist(JobEntry& job, Mutation m, Actions* out);
  void PushWorker(const WorkerEntry& worker, Actions* out);
  void CancelLiveTasks(JobEntry& job, const std::string& reason, Mutation* m, Actions* out);
  std::pair<int64_t, std::string> StallLimit(const JobEntry& job, int index) const;
  static std::string StepKey(const JobRecord& job, TaskKind kind);
  void CountStall(JobEntry& job, const std::string& worker_id);

  SchedulerOptions options_;
  const Clock* clock_;
  std::unordered_map<std::string, std::unique_ptr<JobEntry>> jobs_;
  std::map<std::string, std::unique_ptr<WorkerEntry>> workers_;
  // Jobs that may have READY tasks (phase RENDER, state QUEUED/RUNNING).
  std::set<std::string> active_jobs_;
  // Tasks in retry backoff: ready_at -> (job, task index).
  std::multimap<TimeMs, std::pair<std::string, int>> delayed_;
  TimeMs recovery_deadline_ms_ = 0;  // 0: no recovery grace pending
  SchedulerStats stats_;
};

// "s003-anchor" / "s003-f000120-000143" (first and last frame, inclusive).
std::string AnchorTaskId(int shot);
std::string FramesTaskId(int shot, int64_t first_frame, int64_t frame_count);

}  // namespace fairy::scheduler
