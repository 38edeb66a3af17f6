// `fairy-engine verify`: runs the checks of a golden fixture folder and prints the report.
//
// Data-driven: everything comes from FIXTURE_DIR/golden/manifest.json (schema: the fixture's
// golden/README.md) and the model folder it names; nothing is special-cased for one fixture.
// Report: one line per compared quantity (max|a-b|, relative error, bound) and one verdict line
// per check (PASS / FAIL / SKIP), then a summary line.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"

namespace fairy::engine::verify {

struct VerifyOptions {
  std::string fixture_dir;                // the folder that contains golden/manifest.json
  // The model checked against the goldens: a diffusers folder or an original-layout single file
  // (configs from `model_config_dir`, or inferred). Default "": the fixture's own model.
  std::string model;
  std::string model_config_dir;
  std::vector<std::string> only_kinds;    // run only checks of these kinds; empty: all
  std::vector<std::string> only_checks;   // run only checks with these names; empty: all
  torch::Device device = torch::kCPU;     // where models run (tolerances are for CPU float32)
  torch::ScalarType dtype = torch::kFloat32;
};

struct VerifySummary {
  int passed = 0;
  int failed = 0;
  int skipped = 0;        // optional checks this engine does not implement
  int filtered_out = 0;   // checks left out by only_kinds / only_checks
  std::vector<std::string> failed_checks;
  bool ok() const { return failed == 0; }
};

// Runs the checks. A failed Status means the fixture itself could not be used (missing folder,
// unreadable manifest, unknown format/version, a filter naming nothing); failed checks are
// reported in the summary. REQUIRES: RegisterAllCheckKinds() was called (RunVerify calls it).
Result<VerifySummary> RunVerify(const VerifyOptions& options, std::ostream& out);

}  // namespace fairy::engine::verify
