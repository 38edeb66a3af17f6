// Sub-commands of `fairy`. Each Add*Command registers its sub-command on `app`; when the user picks
// it, CLI11 runs its callback, which stores the process exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace fairy::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command ran and found errors (invalid job, job failed)
inline constexpr int kExitUsage = 2;    // bad command line
inline constexpr int kExitUnavailable = 3;  // the coordinator or a file could not be reached

// `fairy shots VIDEO [--threshold T] [--min-length N] [--max-length N] [--anchors K] [--json]`
// (shots_command.cpp).
void AddShotsCommand(CLI::App& app, int* exit_code);

// `fairy validate FILE... [--config CLUSTER.yaml] [--storage-root DIR]... [--check-files] [--json]`
// (validate_command.cpp): every error of every job file; exit 1 when any.
void AddValidateCommand(CLI::App& app, int* exit_code);

}  // namespace fairy::cli
