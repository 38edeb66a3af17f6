#include "coordinator/scheduler/records.h"

#include <algorithm>
#include <array>

namespace fairy::scheduler {
namespace {

using nlohmann::json;

template <typename E, size_t N>
Result<E> ParseName(std::string_view text, const std::array<const char*, N>& names,
                    const char* what) {
  for (size_t i = 0; i < N; ++i) {
    if (text == names[i]) return static_cast<E>(i);
  }
  std::string all;
  for (const char* n : names) all += std::string(all.empty() ? "" : ", ") + n;
  return Status::InvalidArgument(std::string("unknown ") + what + " '" + std::string(text) +
                                 "' (expected one of " + all + ")");
}

constexpr std::array<const char*, 6> kJobStates = {"QUEUED", "RUNNING", "PAUSED",
                                                   "DONE",   "FAILED",  "CANCELLED"};
constexpr std::array<const char*, 4> kJobPhases = {"ANALYZE", "RENDER", "STITCH", "FINISHED"};
constexpr std::array<const char*, 7> kTaskStates = {"PENDING", "READY",  "ASSIGNED", "RUNNING",
                                                    "DONE",    "FAILED", "CANCELLED"};
constexpr std::array<const char*, 2> kTaskKinds = {"ANCHOR", "FRAMES"};

// Reads field `name` of `j` into `out`; errors name the record and the field.
template <typename T>
Status Get(const json& j, const char* record, const char* name, T* out, bool required = true) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (!required) return Status::OK();
    return Status::Corruption(std::string(record) + ": field '" + name + "' is missing");
  }
  try {
    it->get_to(*out);
  } catch (const json::exception& e) {
    return Status::Corruption(std::string(record) + ": field '" + name + "' has the wrong type (" +
                              e.what() + ")");
  }
  return Status::OK();
}

template <typename E>
Status GetEnum(const json& j, const char* record, const char* name, E* out,
               Result<E> (*parse)(std::string_view)) {
  std::string text;
  FAIRY_RETURN_IF_ERROR(Get(j, record, name, &text));
  auto v = parse(text);
  if (!v.ok())
    return Status::Corruption(std::string(record) + ": field '" + name +
                              "': " + v.status().message());
  *out = *v;
  return Status::OK();
}

// Length of the valid UTF-8 sequence at text[i], 0 when the byte there starts none.
size_t Utf8Length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  uint32_t min = 0;
  uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, min = 0x80, cp = c & 0x1fu;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, min = 0x800, cp = c & 0x0fu;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, min = 0x10000, cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0u) != 0x80u) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// JSON's two-character escape of `c`, or null when it has none.
const char* ShortEscape(unsigned char c) {
  static constexpr std::pair<char, const char*> kShort[] = {
      {'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\r', "\\r"},
      {'\t', "\\t"}, {'\b', "\\b"},  {'\f', "\\f"}};
  for (const auto& [from, to] : kShort) {
    if (static_cast<unsigned char>(from) == c) return to;
  }
  return nullptr;
}

void AppendInt(int64_t v, std::string* out) { out->append(std::to_string(v)); }

// `"key":` for the task record's text.
void AppendKey(const char* key, std::string* out) {
  out->push_back(out->empty() ? '{' : ',');
  out->push_back('"');
  out->append(key);
  out->append("\":");
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = Utf8Length(text, i);
      if (n == 0) {
        out->append("\xEF\xBF\xBD");  // U+FFFD
        ++i;
      } else {
        out->append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      out->push_back(static_cast<char>(c));
    } else if (const char* escape = ShortEscape(c)) {
      out->append(escape);
    } else {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    }
    ++i;
  }
  out->push_back('"');
}

const char* Name(JobState s) { return kJobStates[static_cast<size_t>(s)]; }
const char* Name(JobPhase p) { return kJobPhases[static_cast<size_t>(p)]; }
const char* Name(TaskState s) { return kTaskStates[static_cast<size_t>(s)]; }
const char* Name(TaskKind k) { return kTaskKinds[static_cast<size_t>(k)]; }
Result<JobState> ParseJobState(std::string_view t) {
  return ParseName<JobState>(t, kJobStates, "job state");
}
Result<JobPhase> ParseJobPhase(std::string_view t) {
  return ParseName<JobPhase>(t, kJobPhases, "job phase");
}
Result<TaskState> ParseTaskState(std::string_view t) {
  return ParseName<TaskState>(t, kTaskStates, "task state");
}
Result<TaskKind> ParseTaskKind(std::string_view t) {
  return ParseName<TaskKind>(t, kTaskKinds, "task kind");
}

bool IsFinal(JobState s) {
  return s == JobState::kDone || s == JobState::kFailed || s == JobState::kCancelled;
}
bool IsLive(TaskState s) { return s == TaskState::kAssigned || s == TaskState::kRunning; }

bool HasModel(const WorkerInfo& worker, const std::string& model_id) {
  if (model_id.empty() || !worker.reports_models) return true;
  const auto& m = worker.installed_models;
  return std::find(m.begin(), m.end(), model_id) != m.end();
}

namespace {
// model_id only when set, so records of jobs without one read and write as before.
json RequirementsJson(const WorkerRequirements& r) {
  json j{{"tags", r.tags}, {"device", r.device}, {"min_memory_mb", r.min_memory_mb}};
  if (!r.model_id.empty()) j["model_id"] = r.model_id;
  return j;
}
}  // namespace

json TaskRecord::ToJson() const {
  return json{{"job_id", job_id},           {"task_id", task_id},
              {"kind", Name(kind)},         {"shot", shot},
              {"first_frame", first_frame}, {"frame_count", frame_count},
              {"state", Name(state)},       {"attempt", attempt},
              {"failures", failures},       {"worker_id", worker_id},
              {"ready_at_ms", ready_at_ms}, {"assigned_ms", assigned_ms},
              {"started_ms", started_ms},   {"progress_ms", progress_ms},
              {"finished_ms", finished_ms}, {"frames_done", frames_done},
              {"result", result},           {"last_error", last_error}};
}

std::string TaskRecord::ToJsonText() const {
  std::string out;
  out.reserve(320 + job_id.size() + task_id.size() + worker_id.size() + result.size() +
              last_error.size());
  const auto str = [&](const char* key, std::string_view v) {
    AppendKey(key, &out);
    AppendJsonString(v, &out);
  };
  const auto num = [&](const char* key, int64_t v) {
    AppendKey(key, &out);
    AppendInt(v, &out);
  };
  str("job_id", job_id);
  str("task_id", task_id);
  str("kind", Name(kind));
  num("shot", shot);
  num("first_frame", first_frame);
  num("frame_count", frame_count);
  str("state", Name(state));
  num("attempt", attempt);
  num("failures", failures);
  str("worker_id", worker_id);
  num("ready_at_ms", ready_at_ms);
  num("assigned_ms", assigned_ms);
  num("started_ms", started_ms);
  num("progress_ms", progress_ms);
  num("finished_ms", finished_ms);
  num("frames_done", frames_done);
  str("result", result);
  str("last_error", last_error);
  out.push_back('}');
  return out;
}

Result<TaskRecord> TaskRecord::FromJson(const json& j) {
  const char* r = "task record";
  if (!j.is_object()) return Status::Corruption("task record: not a JSON object");
  TaskRecord t;
  FAIRY_RETURN_IF_ERROR(Get(j, r, "job_id", &t.job_id));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "task_id", &t.task_id));
  FAIRY_RETURN_IF_ERROR(GetEnum(j, r, "kind", &t.kind, &ParseTaskKind));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "shot", &t.shot));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "first_frame", &t.first_frame));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "frame_count", &t.frame_count));
  FAIRY_RETURN_IF_ERROR(GetEnum(j, r, "state", &t.state, &ParseTaskState));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "attempt", &t.attempt));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "failures", &t.failures, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "worker_id", &t.worker_id, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "ready_at_ms", &t.ready_at_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "assigned_ms", &t.assigned_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "started_ms", &t.started_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "progress_ms", &t.progress_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "finished_ms", &t.finished_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "frames_done", &t.frames_done, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "result", &t.result, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "last_error", &t.last_error, false));
  return t;
}

json JobRecord::ToJson(bool include_spec, bool include_plan) const {
  json j{{"job_id", job_id},
         {"name", name},
         {"output", output},
         {"model", model},
         {"priority", priority},
         {"state", Name(state)},
         {"phase", Name(phase)},
         {"requirements", RequirementsJson(requirements)},
         {"chunk_frames", chunk_frames},
         {"frame_batch", frame_batch},
         {"frames_wait_for_anchor", frames_wait_for_anchor},
         {"total_frames", total_frames},
         {"frames_done", frames_done},
         {"tasks_total", tasks_total},
         {"tasks_done", tasks_done},
         {"tasks_failed", tasks_failed},
         {"submit_ms", submit_ms},
         {"started_ms", started_ms},
         {"finished_ms", finished_ms},
         {"last_assign_ms", last_assign_ms},
         {"error", error},
         {"worker_failures", worker_failures},
         {"worker_stalls", worker_stalls},
         {"step_profile", step_profile}};
  if (include_spec) j["spec"] = spec;
  if (include_plan) {
    json shots_json = json::array();
    for (const auto& s : shots) {
      shots_json.push_back({{"index", s.index},
                            {"first_frame", s.first_frame},
                            {"frame_count", s.frame_count},
                            {"anchor_frames", s.anchor_frames}});
    }
    j["shots"] = std::move(shots_json);
  }
  return j;
}

std::vector<RecordField> JobRecord::Fields(bool include_spec, bool include_plan) const {
  std::vector<RecordField> out;
  out.reserve(28);
  const auto str = [&](const char* key, const std::string& v) { out.push_back({key, &v, {}}); };
  const auto num = [&](const char* key, int64_t v) {
    out.push_back({key, nullptr, std::to_string(v)});
  };
  const auto tree = [&](const char* key, const json& v) {
    out.push_back({key, nullptr, v.dump(-1, ' ', false, json::error_handler_t::replace)});
  };
  // RecordField::str points at a string: the names as strings, made once.
  static const std::vector<std::string> kStateNames(kJobStates.begin(), kJobStates.end());
  static const std::vector<std::string> kPhaseNames(kJobPhases.begin(), kJobPhases.end());
  str("job_id", job_id);
  str("name", name);
  str("output", output);
  str("model", model);
  num("priority", priority);
  str("state", kStateNames[static_cast<size_t>(state)]);
  str("phase", kPhaseNames[static_cast<size_t>(phase)]);
  if (requirements.tags.empty() && requirements.device.empty() &&
      requirements.model_id.empty()) {
    out.push_back({"requirements", nullptr,
                   "{\"device\":\"\",\"min_memory_mb\":" +
                       std::to_string(requirements.min_memory_mb) + ",\"tags\":[]}"});
  } else {
    tree("requirements", RequirementsJson(requirements));
  }
  num("chunk_frames", chunk_frames);
  num("frame_batch", frame_batch);
  out.push_back({"frames_wait_for_anchor", nullptr, frames_wait_for_anchor ? "true" : "false"});
  num("total_frames", total_frames);
  num("frames_done", frames_done);
  num("tasks_total", tasks_total);
  num("tasks_done", tasks_done);
  num("tasks_failed", tasks_failed);
  num("submit_ms", submit_ms);
  num("started_ms", started_ms);
  num("finished_ms", finished_ms);
  num("last_assign_ms", last_assign_ms);
  str("error", error);
  if (worker_failures.empty()) {
    out.push_back({"worker_failures", nullptr, "{}"});
  } else {
    tree("worker_failures", json(worker_failures));
  }
  if (worker_stalls.empty()) {
    out.push_back({"worker_stalls", nullptr, "{}"});
  } else {
    tree("worker_stalls", json(worker_stalls));
  }
  str("step_profile", step_profile);
  if (include_spec) str("spec", spec);
  if (include_plan) tree("shots", ToJson(false, true)["shots"]);
  return out;
}

Result<JobRecord> JobRecord::FromJson(const json& j) {
  const char* r = "job record";
  if (!j.is_object()) return Status::Corruption("job record: not a JSON object");
  JobRecord job;
  FAIRY_RETURN_IF_ERROR(Get(j, r, "job_id", &job.job_id));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "name", &job.name, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "spec", &job.spec, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "output", &job.output, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "model", &job.model, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "priority", &job.priority));
  FAIRY_RETURN_IF_ERROR(GetEnum(j, r, "state", &job.state, &ParseJobState));
  FAIRY_RETURN_IF_ERROR(GetEnum(j, r, "phase", &job.phase, &ParseJobPhase));
  if (auto it = j.find("requirements"); it != j.end() && it->is_object()) {
    FAIRY_RETURN_IF_ERROR(
        Get(*it, "job record requirements", "tags", &job.requirements.tags, false));
    FAIRY_RETURN_IF_ERROR(
        Get(*it, "job record requirements", "device", &job.requirements.device, false));
    FAIRY_RETURN_IF_ERROR(Get(*it, "job record requirements", "min_memory_mb",
                              &job.requirements.min_memory_mb, false));
    FAIRY_RETURN_IF_ERROR(
        Get(*it, "job record requirements", "model_id", &job.requirements.model_id, false));
  }
  FAIRY_RETURN_IF_ERROR(Get(j, r, "chunk_frames", &job.chunk_frames));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "frame_batch", &job.frame_batch, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "frames_wait_for_anchor", &job.frames_wait_for_anchor, false));
  if (auto it = j.find("shots"); it != j.end() && it->is_array()) {
    for (const auto& s : *it) {
      ShotPlan p;
      FAIRY_RETURN_IF_ERROR(Get(s, "job record shot", "index", &p.index));
      FAIRY_RETURN_IF_ERROR(Get(s, "job record shot", "first_frame", &p.first_frame));
      FAIRY_RETURN_IF_ERROR(Get(s, "job record shot", "frame_count", &p.frame_count));
      FAIRY_RETURN_IF_ERROR(Get(s, "job record shot", "anchor_frames", &p.anchor_frames, false));
      job.shots.push_back(std::move(p));
    }
  }
  FAIRY_RETURN_IF_ERROR(Get(j, r, "total_frames", &job.total_frames, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "frames_done", &job.frames_done, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "tasks_total", &job.tasks_total, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "tasks_done", &job.tasks_done, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "tasks_failed", &job.tasks_failed, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "submit_ms", &job.submit_ms));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "started_ms", &job.started_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "finished_ms", &job.finished_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "last_assign_ms", &job.last_assign_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "error", &job.error, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "worker_failures", &job.worker_failures, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "worker_stalls", &job.worker_stalls, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "step_profile", &job.step_profile, false));
  return job;
}

json WorkerRecord::ToJson() const {
  json running_json = json::array();
  for (const auto& t : running)
    running_json.push_back({{"job_id", t.job_id}, {"task_id", t.task_id}, {"attempt", t.attempt}});
  return json{{"worker_id", info.worker_id},
              {"host", info.host},
              {"device", info.device},
              {"memory_mb", info.memory_mb},
              {"tags", info.tags},
              {"models", info.models},
              {"installed_models", info.installed_models},
              {"reports_models", info.reports_models},
              {"slots", info.slots},
              {"registered_ms", registered_ms},
              {"last_seen_ms", last_seen_ms},
              {"draining", draining},
              {"running", running_json},
              {"last_job_id", last_job_id},
              {"last_shot", last_shot},
              {"proven", proven},
              {"stalls", stalls},
              {"suspect", suspect},
              {"step_ms", step_ms}};
}

Result<WorkerRecord> WorkerRecord::FromJson(const json& j) {
  const char* r = "worker record";
  if (!j.is_object()) return Status::Corruption("worker record: not a JSON object");
  WorkerRecord w;
  FAIRY_RETURN_IF_ERROR(Get(j, r, "worker_id", &w.info.worker_id));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "host", &w.info.host, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "device", &w.info.device, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "memory_mb", &w.info.memory_mb, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "tags", &w.info.tags, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "models", &w.info.models, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "installed_models", &w.info.installed_models, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "reports_models", &w.info.reports_models, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "slots", &w.info.slots, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "registered_ms", &w.registered_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "last_seen_ms", &w.last_seen_ms, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "draining", &w.draining, false));
  if (auto it = j.find("running"); it != j.end() && it->is_array()) {
    for (const auto& t : *it) {
      RunningTask rt;
      FAIRY_RETURN_IF_ERROR(Get(t, "worker record running", "job_id", &rt.job_id));
      FAIRY_RETURN_IF_ERROR(Get(t, "worker record running", "task_id", &rt.task_id));
      FAIRY_RETURN_IF_ERROR(Get(t, "worker record running", "attempt", &rt.attempt));
      w.running.push_back(std::move(rt));
    }
  }
  FAIRY_RETURN_IF_ERROR(Get(j, r, "last_job_id", &w.last_job_id, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "last_shot", &w.last_shot, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "proven", &w.proven, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "stalls", &w.stalls, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "suspect", &w.suspect, false));
  FAIRY_RETURN_IF_ERROR(Get(j, r, "step_ms", &w.step_ms, false));
  return w;
}

}  // namespace fairy::scheduler
