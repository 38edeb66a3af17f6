// fairy-worker's configuration: the cluster config file (--config FILE, fairy::config) with
// command-line overrides (named flags such as --device, or --set KEY.PATH=VALUE), mapped onto the
// Worker's and the EngineExecutor's options.
#pragma once

#include <CLI/CLI.hpp>

#include "config/cluster_config.h"
#include "config/config_flags.h"
#include "worker/executor/engine_executor.h"
#include "worker/runner/worker.h"

namespace fairy::worker {

struct WorkerSetup {
  WorkerOptions worker;
  EngineExecutorOptions executor;
};

void AddWorkerFlags(CLI::App& app, config::ConfigFlags* flags);
WorkerSetup SetupFromConfig(const config::WorkerConfig& config);
// Loads and validates the config, applies the log level, maps it.
Result<WorkerSetup> ResolveWorkerSetup(const config::ConfigFlags& flags);

}  // namespace fairy::worker
