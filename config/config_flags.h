// Command-line overrides of the cluster config for CLI11 apps (fairy-coordinator, fairy-worker).
//
// AddConfigFlags registers on `app`:
//   --config FILE          the cluster config file (default: built-in defaults, config/*.yaml)
//   --set KEY.PATH=VALUE   any value of the file, VALUE in YAML (`--set tasks.max_retries=5`,
//                          `--set storage_roots=[/a,/b]`); repeatable
//   named flags            the common values (`--redis-url`, `--storage-root DIR` (repeatable), ...;
//                          NamedConfigFlags lists them with their key paths)
// Every flag becomes a ConfigOverride in *flags, applied on top of the file by Load*Config, so it
// gets the file's validation and its diagnostics name the flag. Named flags are applied before
// --set ones, so --set wins. Secrets (token, password) never appear in diagnostics.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "config/cluster_config.h"

namespace fairy::config {

enum class ConfigKind { kCoordinator, kWorker };

struct ConfigFlags {
  std::string config_file;                // "" = built-in defaults
  std::vector<ConfigOverride> overrides;  // in the order they are applied
};

struct NamedFlag {
  const char* flag;  // "--redis-url"
  const char* path;  // "redis.url"
  const char* help;
  bool list;         // repeatable; the values form a YAML list
};

const std::vector<NamedFlag>& NamedConfigFlags(ConfigKind kind);

// REQUIRES: flags outlives app's parse. A malformed --set makes the parse fail (CLI::ValidationError).
void AddConfigFlags(CLI::App& app, ConfigKind kind, ConfigFlags* flags);

// --config plus overrides -> a validated config; errors as Load*Config.
Result<CoordinatorConfig> LoadCoordinatorConfig(const ConfigFlags& flags, Diagnostics* diags = nullptr);
Result<WorkerConfig> LoadWorkerConfig(const ConfigFlags& flags, Diagnostics* diags = nullptr);

}  // namespace fairy::config
