// Cluster config: the coordinator's and the worker's settings, their defaults, and the loader.
//
// Files: config/coordinator.yaml and config/worker.yaml hold every key with its default value;
// docs/configuration.md documents each. A loaded config is validated as a whole: every problem is
// reported at once as `FILE:LINE:COLUMN: FIELD: MESSAGE` (unknown keys get a did-you-mean hint).
// Every value can be overridden from the command line (config_flags.h): an override is applied
// to the YAML tree before validation, so it gets the same checks; its diagnostics name the flag.
// Values carry their unit in the name (_ms, _bytes). Relative paths in a file (storage_roots,
// models_dir, token_file, password_file) are resolved against the file's folder; relative paths
// from the command line against the current directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/diagnostics.h"

namespace fairy::config {

struct RedisConfig {
  std::string url = "redis://127.0.0.1:6379/0";  // redis://[user@]host:port[/db] or unix:///path;
                                                 // "" = no Redis (coordinator: in-memory store)
  std::string password;                          // AUTH password; "" = none
  std::string password_file;  // read the password from this file instead (trailing newline cut)
  std::string key_prefix = "fairy:";  // namespace of every key; non-empty, no spaces
};

struct CoordinatorConfig {
  std::string worker_bind = "tcp://0.0.0.0:5555";  // ZeroMQ ROUTER endpoint (tcp://, ipc://)
  std::string api_host = "127.0.0.1";              // control API listen address
  int api_port = 8765;                             // 0..65535; 0 = any free port
  std::string api_token;       // bearer token of the control API ("" with no token_file: the
                               // daemon refuses to start)
  std::string api_token_file;  // read the token from this file instead (trailing newline cut)
  RedisConfig redis;
  std::vector<std::string> storage_roots = {"/srv/fairy"};  // absolute, normalised, existing
                                                            // folders; jobs stay under them
  std::string work_root;  // intermediate chunks; "" = "<output dir>/.fairy-work/<job>"
  std::string default_model = "fairy-tiny";  // model of a job that names none
  int64_t heartbeat_interval_ms = 1000;      // 10..60000
  int heartbeat_liveness = 5;                // 1..100 missed beats before a worker is dead
  int max_retries = 3;                       // 0..100 failed attempts per task before FAILED
  int64_t retry_backoff_ms = 1000;           // first retry delay, doubled per failure
  int64_t max_backoff_ms = 60000;            // cap of the retry delay (>= retry_backoff_ms)
  int64_t task_max_ms = 0;                   // an attempt running longer is stopped; 0 = no limit
  // Progress supervision (docs/scheduler.md): an attempt without progress (a new denoising step,
  // frame or model bytes read) for max(stall_floor_ms, stall_factor x the worker's measured time
  // to its next report) is stalled: requeued elsewhere, counted against the worker.
  int64_t progress_timeout_ms = 0;        // a fixed stall limit instead; 0 = adaptive
  int64_t stall_floor_ms = 300000;        // the adaptive limit's floor; 0 = no supervision
                                          // (unless progress_timeout_ms is set)
  double stall_factor = 10;               // 1..1000
  int64_t stall_unmeasured_ms = 1800000;  // the limit before any step of the job's settings
                                          // was measured (a first step includes warm-up)
  int stall_threshold = 2;                // stalls of one worker in one job before it is kept
                                          // off that job; as many in all: `suspect`; 0 = never
  int worker_failure_threshold = 3;       // failures of one worker in one job before it is
                                          // kept off that job; 0 = never
  int max_worker_slots = 4;               // workers.max_slots: slots a worker may claim, 1..1024
  int64_t aging_ms_per_point = 60000;     // queue wait that adds one priority point; 0 = off
  int media_threads = 2;                  // analyze/stitch pool, 1..64
  uint64_t anchor_cache_max_part_bytes = 64ull << 20;  // 1 MiB..512 MiB
  int64_t anchor_cache_ttl_ms = 600 * 1000;  // an entry no task needs any more lives this long
  // A finished job stays listed and retryable this long, then it is deleted; 0 = kept forever;
  // at most 365 days.
  int64_t finished_job_ttl_ms = int64_t{7} * 24 * 3600 * 1000;
  std::string log_level = "info";  // debug, info, warning, error
};

struct WorkerConfig {
  std::string coordinator = "tcp://127.0.0.1:5555";  // the coordinator's ROUTER endpoint
  std::string worker_id;                             // "" = "<hostname>-<pid>"
  std::string device = "cpu";                        // cpu, cuda, cuda:N
  std::string dtype = "float32";  // float32; float16 and bfloat16 need a cuda device
  int slots = 1;                  // tasks run at once, 1..64
  std::vector<std::string> tags;  // matched against a job's worker_tags
  std::string models_dir = "/var/lib/fairy/models";  // where model folders named by id live
  // A diffusers weights variant to read ("fp16": *.fp16.safetensors); "" = the default files, or
  // a part's only variant when it has nothing else.
  std::string model_variant;
  RedisConfig redis;
  std::vector<std::string> storage_roots = {"/srv/fairy"};  // as the coordinator's
  int64_t heartbeat_interval_ms = 1000;                     // 10..60000
  int heartbeat_liveness = 5;                               // 1..100
  int64_t reconnect_min_ms = 100;                      // first reconnect delay, doubled per try
  int64_t reconnect_max_ms = 10000;                    // cap (>= reconnect_min_ms)
  int64_t drain_grace_ms = 30000;                      // SIGTERM: how long running tasks may finish
  uint64_t anchor_cache_max_part_bytes = 64ull << 20;  // 1 MiB..512 MiB
  bool anchor_cache_fp16 = false;                      // store anchor features as float16
  std::string log_level = "info";
};

// One command-line override: the YAML value `value` at the dotted key `path`.
struct ConfigOverride {
  std::string path;      // "redis.url", "tasks.max_retries"
  std::string value;     // YAML text ("5", "[/a, /b]", "tcp://x:1") unless `literal`
  bool literal = false;  // true: `value` is a plain string, not parsed as YAML
  std::string label;     // where it came from, for diagnostics: "--set redis.url=x", "--redis-url"
};

// "key.path=value" (the --set syntax) -> override; InvalidArgument naming the text otherwise.
Result<ConfigOverride> ParseOverride(const std::string& text);

struct LoadOptions {
  std::vector<ConfigOverride> overrides;  // applied in order after the file
  bool check_paths = true;  // storage roots must exist; token/password files must be readable
};

// Loads `path` ("" = the built-in defaults above), applies the overrides, validates. All problems
// are collected into *diags (may hold warnings on success); the Result's Status joins the errors.
Result<CoordinatorConfig> LoadCoordinatorConfig(const std::string& path, const LoadOptions& options,
                                                Diagnostics* diags = nullptr);
Result<WorkerConfig> LoadWorkerConfig(const std::string& path, const LoadOptions& options,
                                      Diagnostics* diags = nullptr);

// As above from text; `file_name` is what diagnostics carry, `base_dir` resolves relative paths.
Result<CoordinatorConfig> ParseCoordinatorConfig(const std::string& text,
                                                 const std::string& file_name,
                                                 const std::string& base_dir,
                                                 const LoadOptions& options,
                                                 Diagnostics* diags = nullptr);
Result<WorkerConfig> ParseWorkerConfig(const std::string& text, const std::string& file_name,
                                       const std::string& base_dir, const LoadOptions& options,
                                       Diagnostics* diags = nullptr);

}  // namespace fairy::config
