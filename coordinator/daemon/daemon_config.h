// Command-line flags of fairy-coordinator and their merge with the cluster config file
// (--config FILE, loaded by fairy::config): a flag given on the command line overrides the file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "coordinator/daemon/coordinator.h"

namespace fairy::coordinator {

struct DaemonFlags {
  std::string config_file;
  std::optional<std::string> worker_bind;
  std::optional<std::string> api_bind;
  std::optional<int> api_port;
  std::optional<std::string> api_token;
  std::optional<std::string> api_token_file;
  std::optional<std::string> redis_url;
  std::optional<std::string> key_prefix;
  std::vector<std::string> storage_roots;
  std::optional<std::string> work_root;
  std::optional<std::string> default_model;
  std::optional<int64_t> heartbeat_interval_ms;
  std::optional<int> heartbeat_liveness;
  std::optional<int> max_retries;
  std::optional<int64_t> retry_backoff_ms;
  std::optional<int64_t> task_max_ms;
  std::optional<int64_t> progress_timeout_ms;
  std::optional<int> blacklist_threshold;
  std::optional<int> media_threads;
  std::optional<std::string> log_level;
};

void AddCoordinatorFlags(CLI::App& app, DaemonFlags* flags);
// Reads the cluster config's coordinator settings into *options. Errors name file:line and key.
Status ApplyConfigFile(const std::string& path, CoordinatorOptions* options);
// Config file (if any), then flags. Errors name the file/flag.
Result<CoordinatorOptions> ResolveCoordinatorOptions(const DaemonFlags& flags);

}  // namespace fairy::coordinator
