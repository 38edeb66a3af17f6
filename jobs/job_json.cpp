#include "jobs/job_json.h"

#include "common/edit_values.h"

namespace fairy::jobs {

nlohmann::json JobSpecToJson(const JobSpec& job) {
  nlohmann::json j;
  j["name"] = job.name;
  j["input"] = job.input;
  j["output"] = job.output;
  j["instruction"] = job.instruction;
  j["model"] = job.model;
  j["priority"] = job.priority;
  j["edit"] = {{"resolution", job.edit.resolution},
               {"steps", job.edit.steps},
               {"guidance_text", job.edit.guidance_text},
               {"guidance_image", job.edit.guidance_image},
               {"seed", job.edit.seed},
               {"noise", job.edit.noise},
               {"anchors", job.edit.anchors},
               {"batch", job.edit.batch},
               {"scheduler", job.edit.scheduler},
               {"anchor_mode", AnchorModeName(job.edit.anchor_mode)}};
  j["shots"] = {{"threshold", job.shots.threshold},
                {"min_length", job.shots.min_length},
                {"max_length", job.shots.max_length}};
  j["chunk_frames"] = job.chunk_frames;
  j["encode"] = {{"codec", job.encode.codec},
                 {"crf", job.encode.crf},
                 {"preset", job.encode.preset},
                 {"scale_to_source", job.encode.scale_to_source},
                 {"audio", job.encode.audio}};
  j["worker_tags"] = job.worker_tags;
  j["origin"] = {{"file", job.origin.file}, {"line", job.origin.line}, {"index", job.origin.index}};
  return j;
}

namespace {

// Reads j[key] into *out when present; records the first type error.
template <typename T>
void Get(const nlohmann::json& j, const char* section, const char* key, T* out, Status* status) {
  if (!status->ok() || !j.is_object() || !j.contains(key)) return;
  try {
    *out = j.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    *status = Status::InvalidArgument(std::string("job JSON: ") + section + key + ": " + e.what());
  }
}

// An enumerated edit setting: one of `values`.
void CheckOneOf(const std::vector<std::string_view>& values, const char* key,
                const std::string& value, Status* status) {
  if (!status->ok() || edit_values::Accepts(values, value)) return;
  *status = Status::InvalidArgument(std::string("job JSON: edit.") + key + ": must be " +
                                    edit_values::Listed(values) + ", got " + value);
}

}  // namespace

Result<JobSpec> JobSpecFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("job JSON: must be an object");
  JobSpec job;
  Status s;
  Get(j, "", "name", &job.name, &s);
  Get(j, "", "input", &job.input, &s);
  Get(j, "", "output", &job.output, &s);
  Get(j, "", "instruction", &job.instruction, &s);
  Get(j, "", "model", &job.model, &s);
  Get(j, "", "priority", &job.priority, &s);
  Get(j, "", "chunk_frames", &job.chunk_frames, &s);
  Get(j, "", "worker_tags", &job.worker_tags, &s);
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json& edit = j.contains("edit") ? j["edit"] : kEmpty;
  Get(edit, "edit.", "resolution", &job.edit.resolution, &s);
  Get(edit, "edit.", "steps", &job.edit.steps, &s);
  Get(edit, "edit.", "guidance_text", &job.edit.guidance_text, &s);
  Get(edit, "edit.", "guidance_image", &job.edit.guidance_image, &s);
  Get(edit, "edit.", "seed", &job.edit.seed, &s);
  Get(edit, "edit.", "noise", &job.edit.noise, &s);
  CheckOneOf(edit_values::kNoise, "noise", job.edit.noise, &s);
  Get(edit, "edit.", "anchors", &job.edit.anchors, &s);
  Get(edit, "edit.", "batch", &job.edit.batch, &s);
  Get(edit, "edit.", "scheduler", &job.edit.scheduler, &s);
  CheckOneOf(edit_values::kScheduler, "scheduler", job.edit.scheduler, &s);
  std::string mode = AnchorModeName(job.edit.anchor_mode);
  Get(edit, "edit.", "anchor_mode", &mode, &s);
  CheckOneOf(edit_values::kAnchorMode, "anchor_mode", mode, &s);
  job.edit.anchor_mode = mode == "recompute" ? AnchorMode::kRecompute : AnchorMode::kCache;
  const nlohmann::json& shots = j.contains("shots") ? j["shots"] : kEmpty;
  Get(shots, "shots.", "threshold", &job.shots.threshold, &s);
  Get(shots, "shots.", "min_length", &job.shots.min_length, &s);
  Get(shots, "shots.", "max_length", &job.shots.max_length, &s);
  const nlohmann::json& encode = j.contains("encode") ? j["encode"] : kEmpty;
  Get(encode, "encode.", "codec", &job.encode.codec, &s);
  Get(encode, "encode.", "crf", &job.encode.crf, &s);
  Get(encode, "encode.", "preset", &job.encode.preset, &s);
  Get(encode, "encode.", "scale_to_source", &job.encode.scale_to_source, &s);
  Get(encode, "encode.", "audio", &job.encode.audio, &s);
  const nlohmann::json& origin = j.contains("origin") ? j["origin"] : kEmpty;
  Get(origin, "origin.", "file", &job.origin.file, &s);
  Get(origin, "origin.", "line", &job.origin.line, &s);
  Get(origin, "origin.", "index", &job.origin.index, &s);
  if (!s.ok()) return s;
  return job;
}

}  // namespace fairy::jobs
