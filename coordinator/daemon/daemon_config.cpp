#include "coordinator/daemon/daemon_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/log.h"

namespace fairy::coordinator {

void AddCoordinatorFlags(CLI::App& app, DaemonFlags* f) {
  app.add_option("--config", f->config_file, "Cluster config YAML (flags override its values)");
  app.add_option("--worker-bind", f->worker_bind, "ZeroMQ endpoint workers connect to (tcp://0.0.0.0:5555)");
  app.add_option("--api-bind", f->api_bind, "Control API listen address (127.0.0.1)");
  app.add_option("--api-port", f->api_port, "Control API port (8765; 0 = any free port)")->check(CLI::Range(0, 65535));
  app.add_option("--api-token", f->api_token, "Control API bearer token (else $FAIRY_TOKEN)");
  app.add_option("--api-token-file", f->api_token_file, "Read the API bearer token from this file");
  app.add_option("--redis-url", f->redis_url, "redis://[:password@]host[:port][/db]; empty = in-memory store");
  app.add_option("--key-prefix", f->key_prefix, "Redis key prefix (fairy:)");
  app.add_option("--storage-root", f->storage_roots, "Folder jobs may read and write under (repeatable)");
  app.add_option("--work-root", f->work_root, "Folder for job chunks (default: beside each job's output)");
  app.add_option("--default-model", f->default_model, "Model folder for jobs that name none");
  app.add_option("--heartbeat-interval-ms", f->heartbeat_interval_ms, "Heartbeat period (1000)")->check(CLI::Range(10, 600000));
  app.add_option("--heartbeat-liveness", f->heartbeat_liveness, "Missed heartbeats before a worker is dead (5)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-retries", f->max_retries, "Failed attempts allowed per task (3)")->check(CLI::Range(0, 1000));
  app.add_option("--retry-backoff-ms", f->retry_backoff_ms, "First retry delay, doubles per failure (1000)")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--task-max-ms", f->task_max_ms, "Stop an attempt running longer (0 = no limit)");
  app.add_option("--progress-timeout-ms", f->progress_timeout_ms, "Stop an attempt silent this long (0 = no limit)");
  app.add_option("--blacklist-threshold", f->blacklist_threshold, "Failures of a worker in a job before it is kept off (3)");
  app.add_option("--media-threads", f->media_threads, "Analyze/stitch threads (2)")->check(CLI::Range(1, 64));
  app.add_option("--log-level", f->log_level, "debug, info, warn, error");
}

Result<CoordinatorOptions> ResolveCoordinatorOptions(const DaemonFlags& f) {
  CoordinatorOptions o;
  o.api.port = 8765;
  if (!f.config_file.empty()) {
    FAIRY_RETURN_IF_ERROR(ApplyConfigFile(f.config_file, &o));
  }
  if (f.worker_bind) o.worker_bind = *f.worker_bind;
  if (f.api_bind) o.api.bind_address = *f.api_bind;
  if (f.api_port) o.api.port = static_cast<uint16_t>(*f.api_port);
  if (f.api_token) o.api.token = *f.api_token;
  if (f.api_token_file) {
    std::ifstream in(*f.api_token_file);
    if (!in) return Status::NotFound("--api-token-file: cannot read '" + *f.api_token_file + "'");
    std::getline(in, o.api.token);
    while (!o.api.token.empty() && (o.api.token.back() == '\r' || o.api.token.back() == ' ')) o.api.token.pop_back();
  }
  if (o.api.token.empty()) {
    if (const char* env = std::getenv("FAIRY_TOKEN")) o.api.token = env;
  }
  if (o.api.token.empty()) {
    return Status::InvalidArgument("no API token: set api.token in the config, --api-token, --api-token-file or $FAIRY_TOKEN");
  }
  if (f.redis_url) o.redis_url = *f.redis_url;
  if (f.key_prefix) o.key_prefix = *f.key_prefix;
  if (!f.storage_roots.empty()) o.submit.storage_roots = f.storage_roots;
  if (f.work_root) o.submit.work_root = *f.work_root;
  if (f.default_model) o.submit.default_model = *f.default_model;
  if (f.heartbeat_interval_ms) o.scheduler.heartbeat_interval_ms = *f.heartbeat_interval_ms;
  if (f.heartbeat_liveness) o.scheduler.heartbeat_liveness = *f.heartbeat_liveness;
  if (f.max_retries) o.scheduler.max_retries = *f.max_retries;
  if (f.retry_backoff_ms) o.scheduler.retry_backoff_ms = *f.retry_backoff_ms;
  if (f.task_max_ms) o.scheduler.task_max_ms = *f.task_max_ms;
  if (f.progress_timeout_ms) o.scheduler.progress_timeout_ms = *f.progress_timeout_ms;
  if (f.blacklist_threshold) o.scheduler.blacklist_threshold = *f.blacklist_threshold;
  if (f.media_threads) o.media_threads = *f.media_threads;
  if (f.log_level) {
    LogLevel level;
    if (!ParseLogLevel(*f.log_level, &level)) {
      return Status::InvalidArgument("--log-level: expected debug, info, warn or error, got '" + *f.log_level + "'");
    }
    SetLogLevel(level);
  }
  if (o.submit.storage_roots.empty()) {
    return Status::InvalidArgument("no storage roots: set storage.roots in the config or --storage-root");
  }
  for (auto& root : o.submit.storage_roots) {
    std::error_code ec;
    auto abs = std::filesystem::weakly_canonical(root, ec);
    if (ec) return Status::InvalidArgument("storage root '" + root + "': " + ec.message());
    root = abs.string();
  }
  o.tick_ms = std::clamp<int64_t>(o.scheduler.heartbeat_interval_ms / 4, 20, 500);
  return o;
}

}  // namespace fairy::coordinator
