// The check-kind registry of `fairy-engine verify` and the context a check procedure runs in.
//
// A golden fixture's manifest (golden/manifest.json, schema in the fixture's golden/README.md)
// lists checks; each has a `kind` naming a procedure. A procedure is a CheckFn registered under
// that kind. It reads its arguments from the CheckContext (params, golden input tensors),
// computes, and hands every quantity it produced to Output() / Debug(), which compare it with
// the golden reference and record one report line each. The verifier then fails the check if an
// output listed in the manifest was never produced.
//
// A CheckFn returns:
//   OK                     - it ran (the verdict comes from the comparisons),
//   Status::Unsupported    - the check needs a feature this engine lacks: SKIP for an optional
//                            check, FAIL otherwise,
//   any other error        - FAIL, with the message printed.
//
// Registration is explicit (no static initialisers in the static library): each file that defines
// kinds has a Register...CheckKinds() function and RegisterAllCheckKinds() (verify/all_kinds.cpp)
// calls them all. To add kinds: define `void RegisterXCheckKinds()` in your own file, declare it
// below, and add one line to all_kinds.cpp.
//
// Thread safety: the registry is filled before verification starts and read-only afterwards;
// a CheckContext belongs to one check on one thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/status.h"
#include "worker/engine/model_source.h"

namespace fairy::engine::verify {

// Loaded model parts shared by all checks of one verify run (weights are immutable; per-run
// state such as schedulers and anchor caches is never cached). Keyed by a free-form string,
// e.g. "unet", "vae", "text_encoder", "tokenizer".
class ModelCache {
 public:
  // Returns the cached object of `key`, or calls `load` once and caches its value (a failed
  // load is not cached). REQUIRES: every call for one key uses the same T.
  template <typename T>
  Result<std::shared_ptr<T>> GetOrLoad(const std::string& key,
                                       const std::function<Result<std::shared_ptr<T>>()>& load) {
    auto it = entries_.find(key);
    if (it != entries_.end()) return std::static_pointer_cast<T>(it->second);
    Result<std::shared_ptr<T>> loaded = load();
    if (loaded.ok()) entries_[key] = loaded.value();
    return loaded;
  }

 private:
  std::map<std::string, std::shared_ptr<void>> entries_;
};

// One golden tensor reference of the manifest: {"name", "shape", "dtype", "atol"?, "rtol"?}.
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "F32", "I64", "STR", "STR_LIST"
  double atol = 0;    // resolved: the reference's own value or the manifest default
  double rtol = 0;
};

// Options of one verify run, seen by every check.
struct RunSettings {
  std::string fixture_dir;  // the folder that contains golden/
  std::string model_dir;    // the model checked: fixture_dir + manifest "model_dir", or --model
  std::string model_config_dir;  // a single-file model's configs (ModelSourceOptions::config_dir)
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
};

class CheckContext;
using CheckFn = std::function<Status(CheckContext&)>;

// Registers `fn` as the procedure of `kind` (a later registration of the same kind replaces it).
void RegisterCheckKind(const std::string& kind, CheckFn fn);
// nullptr when no procedure is registered for `kind`.
const CheckFn* FindCheckKind(const std::string& kind);
std::vector<std::string> RegisteredCheckKinds();

// Kinds by file.
void RegisterCoreCheckKinds();       // randn (verify/core_kinds.cpp)
void RegisterTokenizeCheckKinds();   // tokenize (verify/tokenize_kinds.cpp)
void RegisterModelCheckKinds();      // text_encoder, vae_encode, vae_decode (verify/model_kinds.cpp)
void RegisterSchedulerCheckKinds();  // scheduler_schedule, scheduler_step (verify/scheduler_kinds.cpp)
void RegisterUNetCheckKinds();       // unet, anchor_pass, frame_pass, pipeline (verify/unet_kinds.cpp)
// Every kind this build has (verify/all_kinds.cpp). Idempotent.
void RegisterAllCheckKinds();

// One line of the report: a compared quantity.
struct Comparison {
  std::string quantity;  // "output noise_pred", "debug down_blocks.0"
  bool debug = false;
  bool passed = false;
  double max_abs = 0;    // max|a-b|
  double max_ref = 0;    // max|b|
  double relative = 0;   // max|a-b| / max|b| (0 when both are 0)
  double bound = 0;      // atol + rtol*max|b|
  std::string note;      // why it failed when not numeric ("shape [3] vs [4]", "NaN", ...)
};

class CheckContext {
 public:
  // Built by the verifier. `check` is the manifest entry; `golden` resolves tensor references
  // of the check's file; `defaults` is the manifest's default tolerance.
  CheckContext(const RunSettings& settings, ModelCache* models, const nlohmann::json& check,
               std::function<Result<torch::Tensor>(const TensorRef&)> load_tensor,
               std::function<Result<nlohmann::json>(const TensorRef&)> load_json,
               double default_atol, double default_rtol);

  const std::string& name() const { return name_; }
  const std::string& kind() const { return kind_; }
  const RunSettings& settings() const { return settings_; }
  const std::string& model_dir() const { return settings_.model_dir; }
  const std::string& fixture_dir() const { return settings_.fixture_dir; }
  torch::Device device() const { return settings_.device; }
  torch::ScalarType dtype() const { return settings_.dtype; }
  ModelCache& models() { return *models_; }
  // The model checked (model_dir() opened once per run).
  Result<std::shared_ptr<ModelSource>> source();

  // ---- Arguments. Each argument comes from exactly one of params and inputs.
  const nlohmann::json& params() const { return params_; }
  bool HasParam(const std::string& name) const;
  bool HasInput(const std::string& name) const;
  // The golden input tensor `name` as a CPU tensor of its stored dtype (float32 / int64), its
  // shape checked against the manifest. Errors name the check, the argument and the file.
  Result<torch::Tensor> Input(const std::string& name);
  // A JSON-valued input (tokens.json columns: a list of strings / lists / ints).
  Result<nlohmann::json> InputJson(const std::string& name);
  // A scalar argument: params[name] or a (1,)-shaped input tensor.
  Result<int64_t> IntArg(const std::string& name);
  Result<double> FloatArg(const std::string& name);
  Result<bool> BoolArg(const std::string& name, bool fallback);
  Result<std::string> StringArg(const std::string& name);
  // A list of strings: params[name] or an input of dtype STR.
  Result<std::vector<std::string>> StringListArg(const std::string& name);
  // A list of ints: params[name] or an I64 input.
  Result<std::vector<int64_t>> IntListArg(const std::string& name);
  // An absolute path for a path parameter (relative to the fixture root).
  std::string FixturePath(const std::string& relative) const;

  // ---- Results.
  // Whether the manifest lists `name` as an output / debug quantity (skip work when not).
  bool WantsOutput(const std::string& name) const;
  bool WantsDebug(const std::string& name) const;
  // Compare `value` (any device/dtype; compared in float64 on the CPU) with the reference of
  // output / debug quantity `name` and record a report line. Quantities the manifest does not
  // list are ignored. A failed comparison is recorded, not returned: the procedure goes on.
  void Output(const std::string& name, const torch::Tensor& value);
  void Debug(const std::string& name, const torch::Tensor& value);
  // The same for STR / STR_LIST quantities (exact equality).
  void OutputStrings(const std::string& name, const nlohmann::json& value);
  void DebugStrings(const std::string& name, const nlohmann::json& value);

  // ---- For the verifier.
  const std::vector<Comparison>& comparisons() const { return comparisons_; }
  std::vector<std::string> MissingOutputs() const;  // listed outputs never produced
  std::vector<std::string> SkippedDebug() const;    // listed debug quantities never produced
  // Problems with references (missing or mis-shaped golden tensors): each fails the check.
  const std::vector<std::string>& reference_errors() const { return reference_errors_; }

 private:
  void Compare(const std::string& name, bool debug, const torch::Tensor& value);
  void CompareJson(const std::string& name, bool debug, const nlohmann::json& value);
  Result<TensorRef> RefOf(const nlohmann::json& section, const std::string& section_name,
                          const std::string& name) const;

  const RunSettings& settings_;
  ModelCache* models_;
  std::string name_;
  std::string kind_;
  nlohmann::json params_;
  nlohmann::json inputs_;
  nlohmann::json outputs_;
  nlohmann::json debug_;
  std::function<Result<torch::Tensor>(const TensorRef&)> load_tensor_;
  std::function<Result<nlohmann::json>(const TensorRef&)> load_json_;
  double default_atol_;
  double default_rtol_;
  std::vector<Comparison> comparisons_;
  std::map<std::string, bool> produced_;  // "output:x" / "debug:x"
  std::vector<std::string> reference_errors_;
};

}  // namespace fairy::engine::verify
