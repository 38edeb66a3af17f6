#include "config/config_flags.h"

#include <yaml-cpp/yaml.h>

namespace fairy::config {
namespace {

bool IsSecret(const std::string& path) {
  return path.find("token") != std::string::npos || path.find("password") != std::string::npos;
}

const std::vector<NamedFlag> kCoordinatorFlags = {
    {"--worker-bind", "worker_bind", "ZeroMQ ROUTER endpoint for workers", false},
    {"--api-host", "api.host", "control API listen address", false},
    {"--api-port", "api.port", "control API port (0 = any free port)", false},
    {"--api-token", "api.token", "control API bearer token", false},
    {"--api-token-file", "api.token_file", "file holding the control API bearer token", false},
    {"--redis-url", "redis.url", "Redis URL (\"\" = in-memory store)", false},
    {"--redis-password", "redis.password", "Redis AUTH password", false},
    {"--key-prefix", "redis.key_prefix", "Redis key namespace", false},
    {"--storage-root", "storage_roots",
     "storage root folder (repeatable; replaces the file's list)", true},
    {"--work-root", "work_root", "folder for intermediate chunks", false},
    {"--default-model", "default_model", "model of jobs that name none", false},
    {"--heartbeat-interval-ms", "heartbeat_interval_ms", "worker heartbeat period", false},
    {"--heartbeat-liveness", "heartbeat_liveness", "missed beats before a worker is dead", false},
    {"--max-retries", "tasks.max_retries", "failed attempts per task before it fails", false},
    {"--retry-backoff-ms", "tasks.retry_backoff_ms", "first retry delay", false},
    {"--task-max-ms", "tasks.max_time_ms", "longest attempt (0 = no limit)", false},
    {"--progress-timeout-ms", "tasks.progress_timeout_ms",
     "fixed stall limit: longest time without progress (0 = adaptive)", false},
    {"--stall-floor-ms", "tasks.stall_floor_ms",
     "shortest adaptive stall limit (0 = no progress supervision)", false},
    {"--max-worker-slots", "workers.max_slots", "most slots a worker may claim", false},
    {"--worker-failure-threshold", "tasks.worker_failure_threshold",
     "failures of a worker in a job before it is kept off", false},
    {"--media-threads", "media_threads", "analyze/stitch threads", false},
    {"--finished-job-ttl-ms", "finished_job_ttl_ms",
     "how long finished jobs stay listed and retryable (0 = forever)", false},
    {"--log-level", "log_level", "debug, info, warning, error", false},
};

const std::vector<NamedFlag> kWorkerFlags = {
    {"--coordinator", "coordinator", "the coordinator's ZeroMQ endpoint", false},
    {"--worker-id", "worker_id", "this worker's id (default: hostname-pid)", false},
    {"--device", "device", "cpu, cuda or cuda:N", false},
    {"--dtype", "dtype", "float32, float16, bfloat16", false},
    {"--slots", "slots", "tasks run at once", false},
    {"--tag", "tags", "worker tag (repeatable; replaces the file's list)", true},
    {"--models-dir", "models_dir", "folder of model folders", false},
    {"--model-variant", "model_variant", "diffusers weights variant to read (fp16)", false},
    {"--redis-url", "redis.url", "Redis URL of the anchor cache", false},
    {"--redis-password", "redis.password", "Redis AUTH password", false},
    {"--key-prefix", "redis.key_prefix", "Redis key namespace", false},
    {"--storage-root", "storage_roots",
     "storage root folder (repeatable; replaces the file's list)", true},
    {"--heartbeat-interval-ms", "heartbeat_interval_ms", "heartbeat period", false},
    {"--heartbeat-liveness", "heartbeat_liveness", "missed beats before the coordinator is lost",
     false},
    {"--drain-grace-ms", "drain_grace_ms", "SIGTERM: time running tasks may finish", false},
    {"--max-part-bytes", "anchor_cache.max_part_bytes", "anchor cache part size in Redis", false},
    {"--log-level", "log_level", "debug, info, warning, error", false},
};

}  // namespace

const std::vector<NamedFlag>& NamedConfigFlags(ConfigKind kind) {
  return kind == ConfigKind::kCoordinator ? kCoordinatorFlags : kWorkerFlags;
}

void AddConfigFlags(CLI::App& app, ConfigKind kind, ConfigFlags* flags) {
  app.add_option("--config", flags->config_file, "cluster config file (YAML)")
      ->check(CLI::ExistingFile);
  for (const NamedFlag& f : NamedConfigFlags(kind)) {
    const std::string path = f.path;
    const std::string label = f.flag;
    if (f.list) {
      app.add_option_function<std::vector<std::string>>(
          f.flag,
          [flags, path, label](const std::vector<std::string>& values) {
            YAML::Node seq(YAML::NodeType::Sequence);
            for (const std::string& v : values) seq.push_back(v);
            YAML::Emitter out;
            out << YAML::Flow << seq;
            flags->overrides.push_back({path, out.c_str(), false, label});
          },
          f.help);
    } else {
      app.add_option_function<std::string>(
          f.flag,
          [flags, path, label](const std::string& value) {
            flags->overrides.push_back({path, value, true, label});
          },
          f.help);
    }
  }
  app.add_option_function<std::vector<std::string>>(
      "--set",
      [flags](const std::vector<std::string>& values) {
        for (const std::string& v : values) {
          auto o = ParseOverride(v);
          if (!o.ok()) throw CLI::ValidationError("--set", o.status().message());
          if (IsSecret(o->path)) o->label = "--set " + o->path + "=***";
          flags->overrides.push_back(*std::move(o));
        }
      },
      "override any config value: KEY.PATH=VALUE (YAML value); repeatable");
}

Result<CoordinatorConfig> LoadCoordinatorConfig(const ConfigFlags& flags, Diagnostics* diags) {
  LoadOptions options;
  options.overrides = flags.overrides;
  return LoadCoordinatorConfig(flags.config_file, options, diags);
}

Result<WorkerConfig> LoadWorkerConfig(const ConfigFlags& flags, Diagnostics* diags) {
  LoadOptions options;
  options.overrides = flags.overrides;
  return LoadWorkerConfig(flags.config_file, options, diags);
}

}  // namespace fairy::config
