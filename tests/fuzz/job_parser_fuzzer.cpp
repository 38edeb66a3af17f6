// libFuzzer target: the job-file parser must never crash, hang or leak on any input, and its
// contract must hold: jobs come back only without errors, and every diagnostic has a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "jobs/job_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fairy::jobs::ParseOptions options;
  // A root that does not exist: confinement is checked without touching real files.
  options.storage_roots = {"/nonexistent-fairy-fuzz-root"};
  options.isolated_parse_limit_ms = 0;  // fuzz the in-process parser and its pre-scan
  fairy::jobs::ParseResult result = fairy::jobs::ParseJobText(text, "fuzz.yaml", options);
  if (result.ok() == result.jobs.empty()) std::abort();  // jobs exactly when there is no error
  for (const auto& d : result.diagnostics.items()) {
    if (d.message.empty() || d.line < 0 || d.column < 0) std::abort();
    (void)d.ToString();
  }
  (void)result.ToStatus();
  return 0;
}
