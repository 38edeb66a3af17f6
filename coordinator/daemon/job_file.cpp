// ParseJobFile and ApplyConfigFile.
//
// TEMPORARY: fairy::jobs (job file schema + validator) and fairy::config (cluster config) had not
// landed when the coordinator was written, so this file reads the job-file keys of DESIGN.md
// section 5 with yaml-cpp directly, with file:line:column errors. It is the one place to switch to
// fairy::jobs::ParseJobFile / fairy::config once they exist.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "coordinator/daemon/daemon_config.h"
#include "coordinator/daemon/job_plan.h"

namespace fairy::coordinator {
namespace {

namespace fs = std::filesystem;

class JobReader {
 public:
  JobReader(std::string source) : source_(std::move(source)) {}

  std::string Where(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return source_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  void Error(const YAML::Node& n, const std::string& field, const std::string& what) {
    errors_.push_back(Where(n) + ": " + field + ": " + what);
  }

  template <typename T>
  void Read(const YAML::Node& map, const std::string& path, const char* key, T* out) {
    YAML::Node n = map[key];
    if (!n) return;
    try {
      *out = n.as<T>();
    } catch (const YAML::Exception&) {
      Error(n, path + key, "has the wrong type");
    }
  }

  void CheckKeys(const YAML::Node& map, const std::string& path, const std::set<std::string>& allowed) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string k = it->first.as<std::string>("");
      if (!allowed.count(k)) Error(it->first, path + k, "unknown key");
    }
  }

  template <typename T>
  void Range(const YAML::Node& map, const std::string& path, const char* key, T value, T lo, T hi) {
    if (value < lo || value > hi) {
      YAML::Node n = map[key] ? map[key] : map;
      Error(n, path + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                               std::to_string(value));
    }
  }

  std::vector<std::string> errors_;

 private:
  std::string source_;
};

bool UnderRoot(const std::string& path, const std::vector<std::string>& roots) {
  for (const auto& root : roots) {
    fs::path rel = fs::path(path).lexically_relative(root);
    if (!rel.empty() && *rel.begin() != "..") return true;
  }
  return false;
}

std::string Resolve(const std::string& path, const SubmitContext& c) {
  fs::path p(path);
  if (p.is_relative() && !c.storage_roots.empty()) p = fs::path(c.storage_roots.front()) / p;
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(p, ec);
  return (ec ? p.lexically_normal() : canon).string();
}

void ParseOne(const YAML::Node& job, JobReader& r, const SubmitContext& c, std::optional<int> priority,
              std::vector<JobPlan>* out) {
  if (!job.IsMap()) {
    r.Error(job, "job", "expected a mapping");
    return;
  }
  r.CheckKeys(job, "", {"name", "input", "output", "instruction", "model", "priority", "anchor_mode", "chunk_frames",
                        "edit", "shots", "encode", "workers"});
  JobPlan p;
  r.Read(job, "", "name", &p.name);
  r.Read(job, "", "input", &p.input);
  r.Read(job, "", "output", &p.output);
  r.Read(job, "", "instruction", &p.instruction);
  r.Read(job, "", "model", &p.model);
  r.Read(job, "", "priority", &p.priority);
  r.Read(job, "", "anchor_mode", &p.anchor_mode);
  r.Read(job, "", "chunk_frames", &p.chunk_frames);
  for (const char* required : {"input", "output", "instruction"}) {
    if (!job[required]) r.Error(job, required, "missing (required)");
  }
  r.Range(job, "", "priority", p.priority, 0, 100);
  r.Range<int64_t>(job, "", "chunk_frames", p.chunk_frames, 1, 100000);
  if (p.anchor_mode != "cache" && p.anchor_mode != "recompute") {
    r.Error(job["anchor_mode"], "anchor_mode", "expected cache or recompute, got '" + p.anchor_mode + "'");
  }
  if (YAML::Node e = job["edit"]) {
    r.CheckKeys(e, "edit.", {"resolution", "steps", "guidance_text", "guidance_image", "seed", "anchors"});
    r.Read(e, "edit.", "resolution", &p.long_side);
    r.Read(e, "edit.", "steps", &p.steps);
    r.Read(e, "edit.", "guidance_text", &p.guidance_text);
    r.Read(e, "edit.", "guidance_image", &p.guidance_image);
    r.Read(e, "edit.", "seed", &p.seed);
    r.Read(e, "edit.", "anchors", &p.anchors_per_shot);
    r.Range<int64_t>(e, "edit.", "resolution", p.long_side, 64, 4096);
    r.Range<int64_t>(e, "edit.", "steps", p.steps, 1, 200);
    r.Range(e, "edit.", "anchors", p.anchors_per_shot, 1, 16);
    r.Range(e, "edit.", "guidance_text", p.guidance_text, 0.0, 100.0);
    r.Range(e, "edit.", "guidance_image", p.guidance_image, 0.0, 100.0);
  }
  if (YAML::Node s = job["shots"]) {
    r.CheckKeys(s, "shots.", {"threshold", "min_length", "max_length"});
    r.Read(s, "shots.", "threshold", &p.shot_threshold);
    r.Read(s, "shots.", "min_length", &p.shot_min_length);
    r.Read(s, "shots.", "max_length", &p.shot_max_length);
    r.Range(s, "shots.", "threshold", p.shot_threshold, 0.0, 255.0);
    r.Range(s, "shots.", "min_length", p.shot_min_length, 1, 100000);
    r.Range(s, "shots.", "max_length", p.shot_max_length, 0, 1000000);
  }
  if (YAML::Node e = job["encode"]) {
    r.CheckKeys(e, "encode.", {"crf", "preset"});
    r.Read(e, "encode.", "crf", &p.crf);
    r.Read(e, "encode.", "preset", &p.preset);
    r.Range(e, "encode.", "crf", p.crf, 0, 51);
  }
  if (YAML::Node w = job["workers"]) {
    r.CheckKeys(w, "workers.", {"tags", "device", "min_memory_mb"});
    r.Read(w, "workers.", "tags", &p.tags);
    r.Read(w, "workers.", "device", &p.device);
    r.Read(w, "workers.", "min_memory_mb", &p.min_memory_mb);
  }
  if (priority) p.priority = *priority;
  if (p.instruction.empty() && job["instruction"]) r.Error(job["instruction"], "instruction", "must not be empty");
  if (p.model.empty()) p.model = c.default_model;
  if (p.model.empty()) r.Error(job, "model", "missing and the coordinator has no default model");
  if (!p.input.empty()) {
    p.input = Resolve(p.input, c);
    if (!UnderRoot(p.input, c.storage_roots)) r.Error(job["input"], "input", "'" + p.input + "' is outside the storage roots");
  }
  if (!p.output.empty()) {
    p.output = Resolve(p.output, c);
    if (!UnderRoot(p.output, c.storage_roots)) {
      r.Error(job["output"], "output", "'" + p.output + "' is outside the storage roots");
    }
  }
  if (!p.model.empty()) p.model = Resolve(p.model, c);
  if (p.name.empty()) p.name = fs::path(p.output).stem().string();
  out->push_back(std::move(p));
}

}  // namespace

Result<std::vector<JobPlan>> ParseJobFile(const std::string& yaml, const std::string& source_name,
                                          const SubmitContext& context, std::optional<int> priority) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    return Status::InvalidArgument(source_name + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg);
  }
  JobReader r(source_name);
  std::vector<JobPlan> plans;
  try {
    YAML::Node jobs = root.IsMap() && root["jobs"] ? root["jobs"] : root;
    if (jobs.IsSequence()) {
      for (const auto& j : jobs) ParseOne(j, r, context, priority, &plans);
    } else if (jobs.IsMap()) {
      ParseOne(jobs, r, context, priority, &plans);
    } else {
      return Status::InvalidArgument(source_name + ":1:1: expected a job (mapping) or a list of jobs");
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(source_name + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!r.errors_.empty()) {
    std::string msg;
    for (const auto& e : r.errors_) msg += (msg.empty() ? "" : "\n") + e;
    return Status::InvalidArgument(msg);
  }
  for (const auto& p : plans) (void)p;
  return plans;
}

Status ApplyConfigFile(const std::string& path, CoordinatorOptions* options) {
  (void)options;
  return Status::Unsupported(path + ": config files need fairy::config (not built yet); use flags");
}

}  // namespace fairy::coordinator
