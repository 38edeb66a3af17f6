// JobPlan: a validated job as the coordinator keeps it. Built once from the job file (through
// fairy::jobs' parser and validator) at submit, stored as JSON in the job record's `spec` field, and
// read back on a restart without re-validating the YAML (the cluster config may have changed since).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/protocol/task_settings.h"
#include "common/status.h"
#include "coordinator/scheduler/scheduler.h"

namespace fairy::coordinator {

struct JobPlan {
  std::string source_name;   // file name the client submitted (for messages)
  std::string name;          // job name for listings
  std::string input;         // absolute path under a storage root
  std::string output;        // absolute path under a storage root
  std::string work_dir;      // where chunks go (derived from output unless configured)
  std::string model;         // model folder
  std::string instruction;
  int64_t steps = 10;
  double guidance_text = 7.5;
  double guidance_image = 1.5;
  uint64_t seed = 0;
  std::string noise = "per_frame";  // edit.noise
  std::string scheduler = "euler_ancestral";  // edit.scheduler
  int64_t long_side = 512;
  int anchors_per_shot = 3;
  int64_t batch = 4;          // frames per UNet call of the frame pass
  std::string anchor_mode = "cache";
  int64_t chunk_frames = 24;
  int priority = 50;
  double shot_threshold = 27.0;
  int shot_min_length = 15;
  int shot_max_length = 0;
  int crf = 18;
  std::string preset = "medium";
  bool scale_to_source = true;
  bool copy_audio = true;
  std::vector<std::string> tags;
  std::string device;         // required device prefix ("" = any)
  int64_t min_memory_mb = 0;

  nlohmann::json ToJson() const;
  static Result<JobPlan> FromJson(const nlohmann::json& j);

  // The scheduler's view (job_id and spec filled by the caller).
  scheduler::JobSubmission Submission(const std::string& job_id) const;
  // The TASK settings for one task of shot `shot`.
  protocol::TaskSettings Settings(const scheduler::ShotPlan& shot) const;
};

struct SubmitContext {
  std::vector<std::string> storage_roots;  // jobs may read and write only under these
  std::string work_root;                   // "" = "<output dir>/.fairy-work/<job>"
  std::string default_model;               // used when the job names none
};

// Parses and validates a job file's text (one job or a list). Errors carry file:line:column.
Result<std::vector<JobPlan>> ParseJobFile(const std::string& yaml, const std::string& source_name,
                                          const SubmitContext& context, std::optional<int> priority);

}  // namespace fairy::coordinator
