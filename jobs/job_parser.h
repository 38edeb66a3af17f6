// Job files: YAML, one job (a mapping) or a list of jobs. Every field, type, default and range is
// documented in docs/job-files.md.
//
// Parsing never stops at the first problem: every error of the file is collected, each as
// `FILE:LINE:COLUMN: FIELD: MESSAGE` (`demo.yaml:7:12: edit.steps: must be between 1 and 200,
// got 0`; jobs of a list have paths like `[1].edit.steps`). Unknown keys are errors with a
// did-you-mean hint. Paths escaping the storage roots are errors with code kPermissionDenied.
// The jobs are returned only when there is no error. Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "config/diagnostics.h"
#include "jobs/job_spec.h"

namespace fairy::jobs {

struct ParseOptions {
  // Folders jobs may read and write (absolute, canonical: CoordinatorConfig::storage_roots).
  // Empty = no confinement; relative paths then resolve against base_dir.
  std::vector<std::string> storage_roots;
  std::string base_dir;  // "" = the current directory; used only without storage roots
  std::string default_model = kEmbeddedModel;  // the model of a job that names none
  bool check_files = false;  // input must be an existing file, model an existing diffusers folder
  // > 0: yaml-cpp first reads the text in a forked child, which must finish within this time
  // (yaml-cpp 0.7 hangs on some malformed input; see config/yaml_reader.h), so a malformed
  // submitted file cannot hang the coordinator. 0 = parse in this process only (the fuzzer).
  int isolated_parse_limit_ms = 5000;
};

struct ParseResult {
  std::vector<JobSpec> jobs;         // every job of the file; empty when there is any error
  config::Diagnostics diagnostics;   // errors and warnings, in file order per job

  bool ok() const { return !diagnostics.has_errors(); }
  // OK, or every error joined by newlines (code of the first: InvalidArgument, PermissionDenied..).
  Status ToStatus() const { return diagnostics.ToStatus(); }
};

// `file_name` is what diagnostics carry (the path as the user gave it).
ParseResult ParseJobText(std::string_view text, const std::string& file_name,
                         const ParseOptions& options);
// Reads `path`; an unreadable file is one error naming it (kNotFound / kIOError).
ParseResult ParseJobFile(const std::string& path, const ParseOptions& options);

}  // namespace fairy::jobs
