// `fairy validate FILE... [--config CLUSTER.yaml] [--storage-root DIR]... [--check-files] [--json]`
//
// Parses every job file and prints every problem of every file (not only the first), one per line
// on stderr as `FILE:LINE:COLUMN: FIELD: MESSAGE`, and `FILE: ok (N jobs)` on stdout for good files.
// Exit: 0 all valid (warnings allowed), 1 any error, 2 bad command line.
// Paths are confined to the storage roots of --config's cluster config (or of --storage-root);
// with neither, relative paths resolve against each job file's folder and nothing is confined.
//
// --json prints one object on stdout (schema "fairy.validate/1", documented in docs/job-files.md):
//   {"schema": "fairy.validate/1", "ok": bool, "error_count": N, "warning_count": N,
//    "config": {"file": "...", "storage_roots": [...], "diagnostics": [...]} | null,
//    "files": [{"file": "...", "ok": bool, "jobs": [JobSpec...], "diagnostics": [D...]}]}
//   D = {"severity": "error"|"warning", "file", "line", "column" (0 = none), "field", "message",
//        "code" (Status code name), "text" (the one-line form)}
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/cluster_config.h"
#include "coordinator/cli/commands.h"
#include "jobs/job_json.h"
#include "jobs/job_parser.h"

namespace fairy::cli {
namespace {

struct ValidateOptions {
  std::vector<std::string> files;
  std::string config_file;
  std::vector<std::string> storage_roots;
  bool check_files = false;
  bool json = false;
};

nlohmann::json DiagnosticsToJson(const config::Diagnostics& diags) {
  nlohmann::json out = nlohmann::json::array();
  for (const config::Diagnostic& d : diags.items()) {
    out.push_back({{"severity", d.severity == config::Severity::kError ? "error" : "warning"},
                   {"file", d.file},
                   {"line", d.line},
                   {"column", d.column},
                   {"field", d.field},
                   {"message", d.message},
                   {"code", Status::CodeName(d.code)},
                   {"text", d.ToString()}});
  }
  return out;
}

void PrintDiagnostics(const config::Diagnostics& diags) {
  for (const config::Diagnostic& d : diags.items()) std::cerr << d.ToString() << "\n";
}

int RunValidate(const ValidateOptions& o) {
  namespace fs = std::filesystem;
  int errors = 0, warnings = 0;
  jobs::ParseOptions parse;
  nlohmann::json config_json = nullptr;

  if (!o.config_file.empty()) {
    config::Diagnostics diags;
    config::LoadOptions load;
    auto cfg = config::LoadCoordinatorConfig(o.config_file, load, &diags);
    errors += diags.error_count();
    warnings += diags.warning_count();
    if (cfg.ok()) {
      parse.storage_roots = cfg->storage_roots;
      parse.default_model = cfg->default_model;
    }
    config_json = {{"file", o.config_file},
                   {"storage_roots", parse.storage_roots},
                   {"diagnostics", DiagnosticsToJson(diags)}};
    if (!o.json) PrintDiagnostics(diags);
    if (!cfg.ok()) {
      // Without valid roots the confinement rules cannot be checked: stop here.
      if (o.json) {
        std::cout << nlohmann::json{{"schema", "fairy.validate/1"}, {"ok", false},
                                    {"error_count", errors}, {"warning_count", warnings},
                                    {"config", config_json}, {"files", nlohmann::json::array()}}
                         .dump(2)
                  << "\n";
      } else {
        std::cerr << o.config_file << ": the cluster config has errors; job files not checked\n";
      }
      return kExitFailure;
    }
  }
  for (const std::string& root : o.storage_roots) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(fs::absolute(root, ec), ec);
    if (!fs::is_directory(canonical, ec)) {
      std::cerr << "--storage-root " << root << ": folder does not exist\n";
      return kExitUsage;
    }
    parse.storage_roots.push_back(canonical.string());
  }
  parse.check_files = o.check_files;

  nlohmann::json files = nlohmann::json::array();
  for (const std::string& file : o.files) {
    jobs::ParseOptions per_file = parse;
    std::error_code ec;
    per_file.base_dir = fs::absolute(fs::path(file), ec).parent_path().string();
    jobs::ParseResult result = jobs::ParseJobFile(file, per_file);
    errors += result.diagnostics.error_count();
    warnings += result.diagnostics.warning_count();
    if (o.json) {
      nlohmann::json jobs_json = nlohmann::json::array();
      for (const jobs::JobSpec& job : result.jobs) jobs_json.push_back(jobs::JobSpecToJson(job));
      files.push_back({{"file", file},
                       {"ok", result.ok()},
                       {"jobs", jobs_json},
                       {"diagnostics", DiagnosticsToJson(result.diagnostics)}});
      continue;
    }
    PrintDiagnostics(result.diagnostics);
    if (result.ok()) {
      std::cout << file << ": ok (" << result.jobs.size()
                << (result.jobs.size() == 1 ? " job)" : " jobs)") << "\n";
    }
  }
  if (o.json) {
    std::cout << nlohmann::json{{"schema", "fairy.validate/1"}, {"ok", errors == 0},
                                {"error_count", errors}, {"warning_count", warnings},
                                {"config", config_json}, {"files", files}}
                     .dump(2)
              << "\n";
  } else if (errors > 0) {
    std::cerr << errors << (errors == 1 ? " error" : " errors") << " in " << o.files.size()
              << (o.files.size() == 1 ? " file" : " files") << "\n";
  }
  return errors == 0 ? kExitOk : kExitFailure;
}

}  // namespace

void AddValidateCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<ValidateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "validate", "check job files: print every error of every file, exit 1 when any");
  cmd->add_option("files", options->files, "job files (YAML)")->required();
  cmd->add_option("--config", options->config_file,
                  "cluster config (coordinator.yaml): its storage roots and default model apply");
  cmd->add_option("--storage-root", options->storage_roots,
                  "a folder jobs may use (repeatable; added to --config's roots)");
  cmd->add_flag("--check-files", options->check_files,
                "also require the input file and model folder to exist");
  cmd->add_flag("--json", options->json, "print one JSON object (schema fairy.validate/1)");
  cmd->callback([options, exit_code] { *exit_code = RunValidate(*options); });
}

}  // namespace fairy::cli
