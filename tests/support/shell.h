// Running shell commands from tests (ffprobe, the fairy binaries) and quoting their arguments.
#pragma once

#include <string>

namespace fairy::testing {

struct ShellResult {
  int exit_code = -1;  // the command's exit status; -1 when it did not exit normally
  std::string output;  // its stdout (append "2>&1" to the command to catch stderr too)
};

// Runs `command` with /bin/sh and collects its stdout.
ShellResult RunShell(const std::string& command);
// `s` as one single-quoted shell word.
std::string ShellQuote(const std::string& s);

}  // namespace fairy::testing
