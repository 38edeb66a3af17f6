#include "worker/daemon/worker_config.h"

#include <unistd.h>

#include "common/log.h"

namespace fairy::worker {

void AddWorkerFlags(CLI::App& app, config::ConfigFlags* flags) {
  config::AddConfigFlags(app, config::ConfigKind::kWorker, flags);
}

WorkerSetup SetupFromConfig(const config::WorkerConfig& c) {
  WorkerSetup s;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  s.worker.link.endpoint = c.coordinator;
  s.worker.link.worker_id = c.worker_id.empty() ? std::string(host) + "-" + std::to_string(getpid()) : c.worker_id;
  s.worker.link.heartbeat_interval_ms = c.heartbeat_interval_ms;
  s.worker.link.liveness = c.heartbeat_liveness;
  s.worker.link.reconnect_initial_ms = c.reconnect_min_ms;
  s.worker.link.reconnect_max_ms = c.reconnect_max_ms;
  s.worker.hostname = host;
  s.worker.device = c.device;
  s.worker.tags = c.tags;
  s.worker.slots = c.slots;
  s.worker.drain_grace_ms = c.drain_grace_ms;
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) s.worker.memory_bytes = static_cast<int64_t>(pages) * page;
  s.executor.device = c.device;
  s.executor.dtype = c.dtype;
  s.executor.fp16_cache = c.anchor_cache_fp16;
  s.executor.redis_url = c.redis.url;
  s.executor.redis_password = c.redis.password;
  s.executor.key_prefix = c.redis.key_prefix;
  s.executor.max_part_bytes = c.anchor_cache_max_part_bytes;
  s.executor.models_dir = c.models_dir;
  s.executor.model_variant = c.model_variant;
  s.worker.models_dir = c.models_dir;  // its model ids go to the coordinator
  s.executor.storage_roots = c.storage_roots;
  return s;
}

Result<WorkerSetup> ResolveWorkerSetup(const config::ConfigFlags& flags) {
  FAIRY_ASSIGN_OR_RETURN(config::WorkerConfig c, config::LoadWorkerConfig(flags));
  LogLevel level;
  if (ParseLogLevel(c.log_level == "warning" ? "warn" : c.log_level, &level)) SetLogLevel(level);
  return SetupFromConfig(c);
}

}  // namespace fairy::worker
