#include "worker/engine/verify/verifier.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "common/safetensors.h"
#include "worker/engine/verify/check.h"
#include "worker/engine/weights.h"

namespace fairy::engine::verify {
namespace {

constexpr const char* kFormat = "fairy-golden-manifest";
constexpr int kVersion = 1;

// Golden files of one verify run, opened once.
class GoldenStore {
 public:
  explicit GoldenStore(std::string fixture_dir) : fixture_dir_(std::move(fixture_dir)) {}

  Result<torch::Tensor> LoadTensor(const std::string& file, const TensorRef& ref) {
    if (IsJson(file)) return TensorFromJson(file, ref);
    FAIRY_ASSIGN_OR_RETURN(auto st, OpenSafetensors(file));
    const TensorInfo* info = st->Find(ref.name);
    if (info == nullptr) return Status::NotFound(file + ": no tensor \"" + ref.name + "\"");
    if (ref.dtype != DTypeName(info->dtype)) {
      return Status::InvalidArgument(file + ": tensor \"" + ref.name + "\" is " +
                                     DTypeName(info->dtype) + ", the manifest says " + ref.dtype);
    }
    return TensorFromSafetensors(*st, *info);
  }

  Result<nlohmann::json> LoadJson(const std::string& file, const TensorRef& ref) {
    if (!IsJson(file)) {
      return Status::InvalidArgument(file + ": \"" + ref.name + "\" (" + ref.dtype +
                                     ") must come from a JSON golden file");
    }
    FAIRY_ASSIGN_OR_RETURN(const nlohmann::json* root, OpenJson(file));
    // "prompts[].FIELD": FIELD of every element of the top-level array "prompts".
    const size_t bracket = ref.name.find("[].");
    if (bracket == std::string::npos) {
      if (!root->contains(ref.name)) return Status::NotFound(file + ": no key \"" + ref.name + "\"");
      return (*root)[ref.name];
    }
    const std::string array_key = ref.name.substr(0, bracket);
    const std::string field = ref.name.substr(bracket + 3);
    if (!root->contains(array_key) || !(*root)[array_key].is_array()) {
      return Status::NotFound(file + ": no top-level array \"" + array_key + "\"");
    }
    nlohmann::json out = nlohmann::json::array();
    size_t index = 0;
    for (const auto& element : (*root)[array_key]) {
      if (!element.is_object() || !element.contains(field)) {
        return Status::NotFound(file + ": " + array_key + "[" + std::to_string(index) +
                                "] has no field \"" + field + "\"");
      }
      out.push_back(element[field]);
      ++index;
    }
    if (!ref.shape.empty() && static_cast<int64_t>(out.size()) != ref.shape[0]) {
      return Status::InvalidArgument(file + ": \"" + ref.name + "\" has " +
                                     std::to_string(out.size()) + " elements, the manifest says " +
                                     std::to_string(ref.shape[0]));
    }
    return out;
  }

  Status CheckExists(const std::string& file) const {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(fixture_dir_ + "/" + file, ec)) {
      return Status::NotFound(fixture_dir_ + "/" + file + ": no such golden file");
    }
    return Status::OK();
  }

 private:
  static bool IsJson(const std::string& file) {
    return file.size() >= 5 && file.compare(file.size() - 5, 5, ".json") == 0;
  }

  Result<std::shared_ptr<const SafetensorsFile>> OpenSafetensors(const std::string& file) {
    auto it = safetensors_.find(file);
    if (it != safetensors_.end()) return it->second;
    FAIRY_ASSIGN_OR_RETURN(auto st, SafetensorsFile::Open(fixture_dir_ + "/" + file));
    safetensors_[file] = st;
    return st;
  }

  Result<const nlohmann::json*> OpenJson(const std::string& file) {
    auto it = json_.find(file);
    if (it != json_.end()) return &it->second;
    FAIRY_ASSIGN_OR_RETURN(nlohmann::json root, ReadJsonFile(fixture_dir_ + "/" + file));
    return &(json_[file] = std::move(root));
  }

  Result<torch::Tensor> TensorFromJson(const std::string& file, const TensorRef& ref) {
    if (ref.dtype != "I64") {
      return Status::InvalidArgument(file + ": \"" + ref.name + "\" is " + ref.dtype +
                                     ", not a tensor (I64)");
    }
    FAIRY_ASSIGN_OR_RETURN(nlohmann::json values, LoadJson(file, ref));
    std::vector<int64_t> flat;
    std::vector<int64_t> shape{static_cast<int64_t>(values.size())};
    for (size_t i = 0; i < values.size(); ++i) {
      const nlohmann::json& v = values[i];
      if (v.is_number_integer()) {
        if (shape.size() != 1) return Status::InvalidArgument(file + ": \"" + ref.name + "\": ragged");
        flat.push_back(v.get<int64_t>());
      } else if (v.is_array()) {
        if (i == 0) shape.push_back(static_cast<int64_t>(v.size()));
        if (shape.size() != 2 || static_cast<int64_t>(v.size()) != shape[1]) {
          return Status::InvalidArgument(file + ": \"" + ref.name + "\": element " +
                                         std::to_string(i) + " has another length");
        }
        for (const auto& x : v) {
          if (!x.is_number_integer()) {
            return Status::InvalidArgument(file + ": \"" + ref.name + "\": element " +
                                           std::to_string(i) + " holds a non-integer");
          }
          flat.push_back(x.get<int64_t>());
        }
      } else {
        return Status::InvalidArgument(file + ": \"" + ref.name + "\": element " +
                                       std::to_string(i) + " is not an integer or a list");
      }
    }
    return torch::tensor(flat, torch::kInt64).view(shape).clone();
  }

  std::string fixture_dir_;
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> safetensors_;
  std::map<std::string, nlohmann::json> json_;
};

void PrintComparison(std::ostream& out, const Comparison& c) {
  char line[512];
  std::snprintf(line, sizeof(line), "    %-6s %-32s max_abs %.3e  rel %.3e  bound %.3e  %s",
                c.debug ? "debug" : "output", c.quantity.c_str(), c.max_abs, c.relative, c.bound,
                c.passed ? "ok" : "MISMATCH");
  out << line;
  if (!c.note.empty()) out << " (" << c.note << ")";
  out << "\n";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

Result<VerifySummary> RunVerify(const VerifyOptions& options, std::ostream& out) {
  RegisterAllCheckKinds();
  std::error_code ec;
  if (!std::filesystem::is_directory(options.fixture_dir, ec)) {
    return Status::NotFound(options.fixture_dir + ": no such fixture folder");
  }
  const std::string manifest_path = options.fixture_dir + "/golden/manifest.json";
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json manifest, ReadJsonFile(manifest_path));
  if (!manifest.is_object() || manifest.value("format", std::string()) != kFormat) {
    return Status::Unsupported(manifest_path + ": \"format\" must be \"" + kFormat + "\"");
  }
  if (!manifest.contains("version") || manifest["version"] != kVersion) {
    return Status::Unsupported(manifest_path + ": \"version\" " +
                               (manifest.contains("version") ? manifest["version"].dump() : "(absent)") +
                               " is not supported (supported: 1)");
  }
  if (!manifest.contains("checks") || !manifest["checks"].is_array()) {
    return Status::InvalidArgument(manifest_path + ": \"checks\": expected a list");
  }
  double default_atol = 1e-5, default_rtol = 3e-5;
  if (manifest.contains("tolerance")) {
    const nlohmann::json& tol = manifest["tolerance"];
    if (!tol.is_object() || !tol.value("atol", nlohmann::json()).is_number() ||
        !tol.value("rtol", nlohmann::json()).is_number()) {
      return Status::InvalidArgument(manifest_path + ": \"tolerance\": expected {\"atol\": x, \"rtol\": y}");
    }
    default_atol = tol["atol"].get<double>();
    default_rtol = tol["rtol"].get<double>();
  }

  RunSettings settings;
  settings.fixture_dir = options.fixture_dir;
  settings.model_dir = options.model.empty()
                           ? options.fixture_dir + "/" + manifest.value("model_dir", std::string("."))
                           : options.model;
  settings.model_config_dir = options.model_config_dir;
  settings.device = options.device;
  settings.dtype = options.dtype;

  // Validate the filters against the manifest so a typo does not pass silently.
  std::set<std::string> names, kinds;
  for (const auto& check : manifest["checks"]) {
    if (!check.is_object() || !check.value("name", nlohmann::json()).is_string() ||
        !check.value("kind", nlohmann::json()).is_string()) {
      return Status::InvalidArgument(manifest_path + ": every check needs \"name\" and \"kind\" strings");
    }
    if (!names.insert(check["name"].get<std::string>()).second) {
      return Status::InvalidArgument(manifest_path + ": duplicate check name \"" +
                                     check["name"].get<std::string>() + "\"");
    }
    kinds.insert(check["kind"].get<std::string>());
  }
  for (const auto& n : options.only_checks) {
    if (names.count(n) == 0) return Status::NotFound(manifest_path + ": no check named \"" + n + "\"");
  }
  for (const auto& k : options.only_kinds) {
    if (kinds.count(k) == 0) return Status::NotFound(manifest_path + ": no check of kind \"" + k + "\"");
  }

  out << "fixture " << manifest.value("fixture", std::string("?")) << " (" << options.fixture_dir
      << "), " << manifest["checks"].size() << " checks\n";
  GoldenStore golden(options.fixture_dir);
  ModelCache models;
  VerifySummary summary;
  for (const auto& check : manifest["checks"]) {
    const std::string name = check["name"].get<std::string>();
    const std::string kind = check["kind"].get<std::string>();
    const bool optional = check.value("optional", false);
    auto selected = [](const std::vector<std::string>& filter, const std::string& x) {
      return filter.empty() || std::find(filter.begin(), filter.end(), x) != filter.end();
    };
    if (!selected(options.only_checks, name) || !selected(options.only_kinds, kind)) {
      ++summary.filtered_out;
      continue;
    }
    out << "check " << name << " (" << kind << (optional ? ", optional" : "") << ")\n";
    const std::string file = check.value("file", std::string());
    auto fail = [&](const std::string& why) {
      out << "FAIL " << name << ": " << why << "\n";
      ++summary.failed;
      summary.failed_checks.push_back(name);
    };
    const CheckFn* fn = FindCheckKind(kind);
    if (fn == nullptr) {
      if (optional) {
        out << "SKIP " << name << ": no procedure for kind \"" << kind << "\" in this build\n";
        ++summary.skipped;
      } else {
        fail("no procedure for kind \"" + kind + "\" in this build");
      }
      continue;
    }
    if (Status exists = golden.CheckExists(file); !exists.ok()) {
      fail(exists.message());
      continue;
    }
    CheckContext ctx(
        settings, &models, check,
        [&golden, file](const TensorRef& ref) { return golden.LoadTensor(file, ref); },
        [&golden, file](const TensorRef& ref) { return golden.LoadJson(file, ref); },
        default_atol, default_rtol);
    const auto start = std::chrono::steady_clock::now();
    Status status;
    try {
      status = (*fn)(ctx);
    } catch (const std::exception& e) {
      status = Status::Internal(std::string("exception: ") + e.what());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const Comparison& c : ctx.comparisons()) PrintComparison(out, c);
    if (status.code() == Status::Code::kUnsupported && optional) {
      out << "SKIP " << name << ": " << status.message() << "\n";
      ++summary.skipped;
      continue;
    }
    std::vector<std::string> problems;
    if (!status.ok()) problems.push_back(status.ToString());
    for (const auto& e : ctx.reference_errors()) problems.push_back(e);
    if (auto missing = ctx.MissingOutputs(); status.ok() && !missing.empty()) {
      problems.push_back("outputs not produced: " + JoinNames(missing));
    }
    int mismatches = 0;
    for (const Comparison& c : ctx.comparisons()) mismatches += c.passed ? 0 : 1;
    if (mismatches > 0) problems.push_back(std::to_string(mismatches) + " quantities out of tolerance");
    if (auto skipped = ctx.SkippedDebug(); !skipped.empty() && status.ok()) {
      out << "    debug not produced (skipped): " << JoinNames(skipped) << "\n";
    }
    char timing[64];
    std::snprintf(timing, sizeof(timing), " (%.2f s)", seconds);
    if (problems.empty()) {
      out << "PASS " << name << ": " << ctx.comparisons().size() << " quantities" << timing << "\n";
      ++summary.passed;
    } else {
      std::string why;
      for (const auto& p : problems) why += (why.empty() ? "" : "; ") + p;
      fail(why + timing);
    }
  }
  out << "summary: " << summary.passed << " passed, " << summary.failed << " failed, "
      << summary.skipped << " skipped";
  if (summary.filtered_out > 0) out << ", " << summary.filtered_out << " filtered out";
  out << "\n";
  return summary;
}

}  // namespace fairy::engine::verify
