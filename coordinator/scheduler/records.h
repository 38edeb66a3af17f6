// The coordinator's state records: jobs, tasks, workers, events, and the Mutation that persists a
// change. The scheduler produces them; coordinator/store persists them; the control API lists
// them. Plain structs, no I/O. JSON forms (ToJson/FromJson) are what the store writes and what
// the HTTP API can return as-is.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "coordinator/scheduler/clock.h"

namespace fairy::scheduler {

// DESIGN.md section 3.
enum class JobState { kQueued, kRunning, kPaused, kDone, kFailed, kCancelled };
// A job's position in its graph: analyze -> render (anchor + frames tasks) -> stitch -> finished.
enum class JobPhase { kAnalyze, kRender, kStitch, kFinished };
// PENDING: waits for its shot's anchor task. READY: queued (possibly in retry backoff until
// ready_at_ms). ASSIGNED: sent to a worker. RUNNING: the worker reported progress. CANCELLED:
// its job was cancelled (or the whole job is being retried).
enum class TaskState { kPending, kReady, kAssigned, kRunning, kDone, kFailed, kCancelled };
enum class TaskKind { kAnchor, kFrames };

// "QUEUED", "RUNNING", ... (upper case, as stored and shown by the CLI).
const char* Name(JobState state);
const char* Name(JobPhase phase);
const char* Name(TaskState state);
const char* Name(TaskKind kind);
Result<JobState> ParseJobState(std::string_view text);
Result<JobPhase> ParseJobPhase(std::string_view text);
Result<TaskState> ParseTaskState(std::string_view text);
Result<TaskKind> ParseTaskKind(std::string_view text);
// `text` as a JSON string literal (quotes, escapes; invalid UTF-8 bytes become U+FFFD, as
// nlohmann::json's dump with the replace handler), appended to `out`.
void AppendJsonString(std::string_view text, std::string* out);

bool IsFinal(JobState state);  // DONE, FAILED, CANCELLED
bool IsLive(TaskState state);  // ASSIGNED, RUNNING (an attempt is out on a worker)

struct WorkerInfo;
// Whether the worker may run a job needing `model_id`: "" needs nothing; a worker that does not
// report its models is not checked (true); otherwise the id must be among its installed models.
bool HasModel(const WorkerInfo& worker, const std::string& model_id);

// What a worker must offer to take a job's tasks. Empty fields match every worker.
struct WorkerRequirements {
  std::vector<std::string> tags;  // the worker must carry every one of them
  std::string device;             // "cuda", "cpu", ... ("" = any)
  int64_t min_memory_mb = 0;      // device memory the worker reports
  // A model id (not a path) the worker must have installed (WorkerInfo::installed_models); "" =
  // any (a job naming its model by path). Workers that do not report their models are not checked.
  std::string model_id;
};

// One shot as analyze planned it: frames [first_frame, first_frame + frame_count).
struct ShotPlan {
  int index = 0;
  int64_t first_frame = 0;
  int64_t frame_count = 0;
  std::vector<int64_t> anchor_frames;  // absolute frame indices
  bool operator==(const ShotPlan&) const = default;
};

struct TaskRecord {
  std::string job_id;
  std::string task_id;  // unique in the job: "s003-anchor", "s003-f000120-000143"
  TaskKind kind = TaskKind::kFrames;
  int shot = 0;
  int64_t first_frame = 0;  // frames [first_frame, first_frame + frame_count)
  int64_t frame_count = 0;
  TaskState state = TaskState::kPending;
  int64_t attempt = 0;     // number of the latest assignment; 0 = never assigned; only grows
  int failures = 0;        // failed attempts counted against the retry limit
  std::string worker_id;   // worker of the live (or last) attempt
  TimeMs ready_at_ms = 0;  // not assigned before this time (retry backoff)
  TimeMs assigned_ms = 0;  // latest attempt sent
  TimeMs started_ms = 0;   // first progress of the latest attempt
  TimeMs progress_ms = 0;  // latest progress of the latest attempt
  TimeMs finished_ms = 0;
  int64_t frames_done = 0;  // of the latest attempt
  std::string result;       // DONE: chunk path or anchor cache key, as the worker reported
  std::string last_error;

  nlohmann::json ToJson() const;
  // ToJson() as compact JSON text (the same keys and values), written without building a json
  // tree: the store writes one per task per state change.
  std::string ToJsonText() const;
  // Errors name the field that is missing or wrong.
  static Result<TaskRecord> FromJson(const nlohmann::json& j);
};

// One top-level key of JobRecord::ToJson() and its value: a string value as the string itself
// (`str`), any other value as compact JSON text (`json`).
struct RecordField {
  const char* key = "";
  const std::string* str = nullptr;  // points into the record; null when the value is no string
  std::string json;
};

struct JobRecord {
  std::string job_id;
  std::string name;    // for listings
  std::string spec;    // the job as submitted (YAML/JSON text); opaque to the scheduler
  std::string output;  // output path, for listings
  std::string model;   // model id the job uses ("" = unknown); for model affinity
  int priority = 50;   // 0..100, higher runs first
  JobState state = JobState::kQueued;
  JobPhase phase = JobPhase::kAnalyze;
  WorkerRequirements requirements;
  int64_t chunk_frames = 24;           // frames per FRAMES task (rounded up to whole batches)
  int64_t frame_batch = 4;             // frames per UNet call of the frame pass
  bool frames_wait_for_anchor = true;  // false for anchor_mode: recompute
  std::vector<ShotPlan> shots;         // filled by analyze
  int64_t total_frames = 0;
  int64_t frames_done = 0;  // frames of DONE frames tasks
  int tasks_total = 0;
  int tasks_done = 0;
  int tasks_failed = 0;  // tasks FAILED for good
  TimeMs submit_ms = 0;
  TimeMs started_ms = 0;  // first assignment
  TimeMs finished_ms = 0;
  TimeMs last_assign_ms = 0;                   // for aging
  std::string error;                           // why the job FAILED
  std::map<std::string, int> worker_failures;  // worker id -> failed attempts in this job
  std::map<std::string, int> worker_stalls;    // worker id -> stalled attempts in this job
  // What the time of one denoising step depends on (model, resolution, frames per UNet call):
  // workers' measured step times are kept per profile. "" = the job id (no sharing across jobs).
  std::string step_profile;

  // include_plan=false leaves out `shots` (large for long videos; written once, at planning).
  nlohmann::json ToJson(bool include_spec = true, bool include_plan = true) const;
  // ToJson()'s keys and values without building a json tree (the store writes only the fields
  // that changed, and compares them all on every write).
  std::vector<RecordField> Fields(bool include_spec = true, bool include_plan = true) const;
  static Result<JobRecord> FromJson(const nlohmann::json& j);
};

// A task out on a worker, as the worker reports it when it (re)connects.
struct RunningTask {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;
};

struct WorkerInfo {
  std::string worker_id;
  std::string host;
  std::string device;  // "cuda:0", "cpu"; matched by prefix against requirements.device
  int64_t memory_mb = 0;
  std::vector<std::string> tags;
  std::vector<std::string> models;  // models loaded now
  int slots = 1;  // tasks it runs at once (as claimed, capped by the scheduler's max_worker_slots)
  // Model ids in its models folder (diffusers folders, "NAME.safetensors" files), sorted.
  std::vector<std::string> installed_models;
  bool reports_models = false;  // false: a worker older than the field; its models are unknown
};

struct WorkerRecord {
  WorkerInfo info;
  TimeMs registered_ms = 0;
  TimeMs last_seen_ms = 0;
  bool draining = false;  // leaving: gets no new tasks
  std::vector<RunningTask> running;
  std::string last_job_id;  // locality: prefer the same shot's tasks next
  int last_shot = -1;
  // Progress supervision. A worker gets one task at a time until an attempt of it has shown
  // progress (a denoising step or a frame), and again after each stall.
  bool proven = false;
  int stalls = 0;        // attempts of it declared stalled since it registered
  bool suspect = false;  // stalls >= the scheduler's stall_threshold; cleared only by a new
                         // registration (the worker left or was declared dead)
  // Measured milliseconds per denoising step, by "<job step_profile>|<task kind>".
  std::map<std::string, double> step_ms;

  nlohmann::json ToJson() const;
  static Result<WorkerRecord> FromJson(const nlohmann::json& j);
};

// One entry of the events stream.
struct Event {
  TimeMs time_ms = 0;
  std::string type;  // "job.submitted", "task.assigned", "task.done", "worker.dead", ...
  std::string job_id;
  std::string task_id;
  std::string worker_id;
  int64_t attempt = 0;
  std::string detail;  // human-readable: state names, error text, frames done
  std::string id;      // stream entry id, filled when read back ("1700000000000-0")
};

// A fence: the write is applied only while `attempt` is the live attempt of (job_id, task_id).
struct Fence {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;
};

// One atomic change of one job's state. A store applies all of it or none of it; with a fence, it
// applies it only while the fence holds (else FailedPrecondition "stale attempt").
// After applying, the live-attempt table holds, for every task written, `attempt` when the task
// is ASSIGNED/RUNNING and 0 otherwise; that table is what fences check.
struct Mutation {
  std::string job_id;
  std::optional<JobRecord> job;   // the job record after the change (nullopt: unchanged)
  bool include_spec = false;      // also (re)write the spec field (on submit)
  bool include_plan = false;      // also (re)write the shot plan (on submit and after analysis);
                                  // otherwise the stored `shots` stay as they are
  std::vector<TaskRecord> tasks;  // task records after the change
  std::optional<Fence> fence;
  std::vector<Event> events;  // appended to the events stream, in order
};

// What LoadAll returns for one job.
struct JobSnapshot {
  JobRecord job;
  std::vector<TaskRecord> tasks;
};

// A task log line (log:{job} stream).
struct LogLine {
  TimeMs time_ms = 0;
  std::string task_id;
  std::string worker_id;
  std::string line;
  std::string id;  // stream entry id when read back
};

}  // namespace fairy::scheduler
