// fairy-coordinator's configuration: the cluster config file (--config FILE, fairy::config) with
// command-line overrides (named flags such as --redis-url, or --set KEY.PATH=VALUE), mapped onto
// CoordinatorOptions. Errors name file:line:column and key, or the flag.
#pragma once

#include <CLI/CLI.hpp>

#include "config/cluster_config.h"
#include "config/config_flags.h"
#include "coordinator/daemon/coordinator.h"

namespace fairy::coordinator {

// Registers --config, --set and the named flags (config::NamedConfigFlags(kCoordinator)).
void AddCoordinatorFlags(CLI::App& app, config::ConfigFlags* flags);
// Loads and validates the config, applies the log level, maps it.
Result<CoordinatorOptions> ResolveCoordinatorOptions(const config::ConfigFlags& flags);
CoordinatorOptions OptionsFromConfig(const config::CoordinatorConfig& config);

}  // namespace fairy::coordinator
