// JobSpec <-> JSON, for `fairy validate --json`, the control API and the job record in Redis.
// The JSON mirrors the job file's keys (docs/job-files.md), with every default filled in and the
// paths resolved. FromJson accepts exactly what ToJson writes (missing keys take the defaults);
// it checks types but not ranges: validate job files with job_parser.h, not with FromJson.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/job_spec.h"

namespace fairy::jobs {

nlohmann::json JobSpecToJson(const JobSpec& job);
// InvalidArgument naming the key on a wrong type or an unknown anchor_mode.
Result<JobSpec> JobSpecFromJson(const nlohmann::json& j);

}  // namespace fairy::jobs
