// fairy-engine's subcommands. Each lives in its own file (tool/<name>_command.cpp) and is listed
// once in main.cpp's command table; `argv[0]` of the call is the subcommand's name.
// Exit codes: 0 success, 1 the work ran and failed (a check failed, an edit failed), 2 usage or
// input error (bad flag, missing folder).
#pragma once

namespace fairy::engine::tool {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// (ConfigureTorchThreads() is in worker/engine/engine_info.h.)

int RunVerifyCommand(int argc, char** argv);  // verify_command.cpp
int RunEditCommand(int argc, char** argv);   // edit_command.cpp (not in FAIRY_ENGINE_ONLY builds)
int RunBenchCommand(int argc, char** argv);  // bench_command.cpp
int RunConvertCommand(int argc, char** argv);  // model_commands.cpp
int RunInfoCommand(int argc, char** argv);     // model_commands.cpp

}  // namespace fairy::engine::tool
