// The farm sub-commands of `fairy`: thin clients of the coordinator's control API
// (coordinator/api/http_server.h). Every listing takes --json (the API's JSON, unchanged).
//
// Connection: --api URL (else $FAIRY_API, else http://127.0.0.1:8765) and --token TOKEN (else
// --token-file FILE, else $FAIRY_TOKEN). Exit codes (commands.h): 0 ok; 1 the coordinator refused
// (invalid job file, unknown job, bad state) or a waited-for job did not end DONE; 2 usage;
// 3 the coordinator could not be reached.
#pragma once

#include <CLI/CLI.hpp>

namespace fairy::cli {

// Registers submit, jobs, status, watch, workers, cancel, pause, resume, retry, priority, logs.
void AddFarmCommands(CLI::App& app, int* exit_code);

}  // namespace fairy::cli
