#include "coordinator/daemon/daemon_config.h"

#include <algorithm>

#include "common/log.h"

namespace fairy::coordinator {

void AddCoordinatorFlags(CLI::App& app, config::ConfigFlags* flags) {
  config::AddConfigFlags(app, config::ConfigKind::kCoordinator, flags);
}

CoordinatorOptions OptionsFromConfig(const config::CoordinatorConfig& c) {
  CoordinatorOptions o;
  o.worker_bind = c.worker_bind;
  o.api.bind_address = c.api_host;
  o.api.port = static_cast<uint16_t>(c.api_port);
  o.api.token = c.api_token;
  o.redis_url = c.redis.url;
  o.redis_password = c.redis.password;
  o.key_prefix = c.redis.key_prefix;
  o.submit.storage_roots = c.storage_roots;
  o.submit.work_root = c.work_root;
  o.submit.default_model = c.default_model;
  o.scheduler.heartbeat_interval_ms = c.heartbeat_interval_ms;
  o.scheduler.heartbeat_liveness = c.heartbeat_liveness;
  o.scheduler.max_retries = c.max_retries;
  o.scheduler.retry_backoff_ms = c.retry_backoff_ms;
  o.scheduler.max_backoff_ms = c.max_backoff_ms;
  o.scheduler.task_max_ms = c.task_max_ms;
  o.scheduler.progress_timeout_ms = c.progress_timeout_ms;
  o.scheduler.stall_floor_ms = c.stall_floor_ms;
  o.scheduler.stall_factor = c.stall_factor;
  o.scheduler.stall_unmeasured_ms = c.stall_unmeasured_ms;
  o.scheduler.stall_threshold = c.stall_threshold;
  o.scheduler.max_worker_slots = c.max_worker_slots;
  o.scheduler.blacklist_threshold = c.worker_failure_threshold;
  o.scheduler.aging_ms_per_point = c.aging_ms_per_point;
  o.media_threads = c.media_threads;
  o.anchor_cache_ttl_ms = c.anchor_cache_ttl_ms;
  o.finished_job_ttl_ms = c.finished_job_ttl_ms;
  o.tick_ms = std::clamp<int64_t>(c.heartbeat_interval_ms / 4, 20, 500);
  return o;
}

Result<CoordinatorOptions> ResolveCoordinatorOptions(const config::ConfigFlags& flags) {
  FAIRY_ASSIGN_OR_RETURN(config::CoordinatorConfig c, config::LoadCoordinatorConfig(flags));
  LogLevel level;
  if (ParseLogLevel(c.log_level == "warning" ? "warn" : c.log_level, &level)) SetLogLevel(level);
  if (c.api_token.empty()) {
    return Status::InvalidArgument(
        "api.token: the control API needs a bearer token (api.token, api.token_file, "
        "--api-token or --api-token-file)");
  }
  return OptionsFromConfig(c);
}

}  // namespace fairy::coordinator
