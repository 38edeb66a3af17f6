#include "worker/engine/verify/check.h"

#include <algorithm>
#include <cmath>

#include "worker/engine/weights.h"

namespace fairy::engine::verify {
namespace {

std::map<std::string, CheckFn>& Registry() {
  static std::map<std::string, CheckFn> registry;
  return registry;
}

nlohmann::json ObjectOrEmpty(const nlohmann::json& check, const char* key) {
  if (check.contains(key) && check[key].is_object()) return check[key];
  return nlohmann::json::object();
}

}  // namespace

void RegisterCheckKind(const std::string& kind, CheckFn fn) { Registry()[kind] = std::move(fn); }

const CheckFn* FindCheckKind(const std::string& kind) {
  auto it = Registry().find(kind);
  return it == Registry().end() ? nullptr : &it->second;
}

std::vector<std::string> RegisteredCheckKinds() {
  std::vector<std::string> kinds;
  for (const auto& [kind, fn] : Registry()) kinds.push_back(kind);
  return kinds;
}

CheckContext::CheckContext(const RunSettings& settings, ModelCache* models,
                           const nlohmann::json& check,
                           std::function<Result<torch::Tensor>(const TensorRef&)> load_tensor,
                           std::function<Result<nlohmann::json>(const TensorRef&)> load_json,
                           double default_atol, double default_rtol)
    : settings_(settings),
      models_(models),
      name_(check.value("name", std::string("?"))),
      kind_(check.value("kind", std::string("?"))),
      params_(ObjectOrEmpty(check, "params")),
      inputs_(ObjectOrEmpty(check, "inputs")),
      outputs_(ObjectOrEmpty(check, "outputs")),
      debug_(ObjectOrEmpty(check, "debug")),
      load_tensor_(std::move(load_tensor)),
      load_json_(std::move(load_json)),
      default_atol_(default_atol),
      default_rtol_(default_rtol) {}

bool CheckContext::HasParam(const std::string& name) const { return params_.contains(name); }
bool CheckContext::HasInput(const std::string& name) const { return inputs_.contains(name); }
bool CheckContext::WantsOutput(const std::string& name) const { return outputs_.contains(name); }
bool CheckContext::WantsDebug(const std::string& name) const { return debug_.contains(name); }

std::string CheckContext::FixturePath(const std::string& relative) const {
  if (!relative.empty() && relative[0] == '/') return relative;
  return settings_.fixture_dir + "/" + relative;
}

Result<TensorRef> CheckContext::RefOf(const nlohmann::json& section,
                                      const std::string& section_name,
                                      const std::string& name) const {
  const std::string where = "check \"" + name_ + "\": " + section_name + " \"" + name + "\"";
  if (!section.contains(name)) return Status::NotFound(where + ": not in the manifest");
  const nlohmann::json& entry = section[name];
  TensorRef ref;
  if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
      !entry.contains("shape") || !entry["shape"].is_array() || !entry.contains("dtype") ||
      !entry["dtype"].is_string()) {
    return Status::InvalidArgument(where + ": a tensor reference needs \"name\" (string), "
                                   "\"shape\" (list of ints) and \"dtype\" (string)");
  }
  ref.name = entry["name"].get<std::string>();
  for (const auto& d : entry["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return Status::InvalidArgument(where + ": \"shape\" must hold non-negative integers");
    }
    ref.shape.push_back(d.get<int64_t>());
  }
  ref.dtype = entry["dtype"].get<std::string>();
  ref.atol = default_atol_;
  ref.rtol = default_rtol_;
  for (const char* key : {"atol", "rtol"}) {
    if (!entry.contains(key)) continue;
    if (!entry[key].is_number() || entry[key].get<double>() < 0) {
      return Status::InvalidArgument(where + ": \"" + key + "\" must be a non-negative number");
    }
    (std::string(key) == "atol" ? ref.atol : ref.rtol) = entry[key].get<double>();
  }
  return ref;
}

Result<torch::Tensor> CheckContext::Input(const std::string& name) {
  FAIRY_ASSIGN_OR_RETURN(TensorRef ref, RefOf(inputs_, "input", name));
  Result<torch::Tensor> tensor = load_tensor_(ref);
  if (!tensor.ok()) return tensor.status().WithContext("check \"" + name_ + "\": input \"" + name + "\"");
  if (tensor->sizes() != c10::IntArrayRef(ref.shape)) {
    return Status::InvalidArgument("check \"" + name_ + "\": input \"" + name + "\" (" + ref.name +
                                   ") has shape " + ShapeString(tensor->sizes()) +
                                   ", the manifest says " + ShapeString(ref.shape));
  }
  return tensor;
}

Result<nlohmann::json> CheckContext::InputJson(const std::string& name) {
  FAIRY_ASSIGN_OR_RETURN(TensorRef ref, RefOf(inputs_, "input", name));
  Result<nlohmann::json> value = load_json_(ref);
  if (!value.ok()) return value.status().WithContext("check \"" + name_ + "\": input \"" + name + "\"");
  return value;
}

Result<int64_t> CheckContext::IntArg(const std::string& name) {
  if (HasParam(name)) {
    const nlohmann::json& v = params_[name];
    if (!v.is_number_integer()) {
      return Status::InvalidArgument("check \"" + name_ + "\": params \"" + name +
                                     "\": expected an integer, got " + v.dump());
    }
    return v.get<int64_t>();
  }
  if (!HasInput(name)) {
    return Status::NotFound("check \"" + name_ + "\": argument \"" + name +
                            "\" is neither in params nor in inputs");
  }
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor t, Input(name));
  if (t.numel() != 1 || t.is_floating_point()) {
    return Status::InvalidArgument("check \"" + name_ + "\": input \"" + name +
                                   "\" must be a (1,)-shaped integer tensor");
  }
  return t.item<int64_t>();
}

Result<double> CheckContext::FloatArg(const std::string& name) {
  if (HasParam(name)) {
    const nlohmann::json& v = params_[name];
    if (!v.is_number()) {
      return Status::InvalidArgument("check \"" + name_ + "\": params \"" + name +
                                     "\": expected a number, got " + v.dump());
    }
    return v.get<double>();
  }
  if (!HasInput(name)) {
    return Status::NotFound("check \"" + name_ + "\": argument \"" + name +
                            "\" is neither in params nor in inputs");
  }
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor t, Input(name));
  if (t.numel() != 1) {
    return Status::InvalidArgument("check \"" + name_ + "\": input \"" + name +
                                   "\" must be a (1,)-shaped tensor");
  }
  return t.to(torch::kFloat64).item<double>();
}

Result<bool> CheckContext::BoolArg(const std::string& name, bool fallback) {
  if (!HasParam(name)) return fallback;
  const nlohmann::json& v = params_[name];
  if (!v.is_boolean()) {
    return Status::InvalidArgument("check \"" + name_ + "\": params \"" + name +
                                   "\": expected true or false, got " + v.dump());
  }
  return v.get<bool>();
}

Result<std::string> CheckContext::StringArg(const std::string& name) {
  if (!HasParam(name) || !params_[name].is_string()) {
    return Status::InvalidArgument("check \"" + name_ + "\": params \"" + name +
                                   "\": expected a string");
  }
  return params_[name].get<std::string>();
}

Result<std::vector<std::string>> CheckContext::StringListArg(const std::string& name) {
  nlohmann::json list;
  if (HasParam(name)) {
    list = params_[name];
  } else {
    FAIRY_ASSIGN_OR_RETURN(list, InputJson(name));
  }
  std::vector<std::string> out;
  if (list.is_array()) {
    for (const auto& item : list) {
      if (!item.is_string()) break;
      out.push_back(item.get<std::string>());
    }
    if (out.size() == list.size()) return out;
  }
  return Status::InvalidArgument("check \"" + name_ + "\": argument \"" + name +
                                 "\": expected a list of strings");
}

Result<std::vector<int64_t>> CheckContext::IntListArg(const std::string& name) {
  if (HasParam(name)) {
    const nlohmann::json& list = params_[name];
    std::vector<int64_t> out;
    if (list.is_array()) {
      for (const auto& item : list) {
        if (!item.is_number_integer()) break;
        out.push_back(item.get<int64_t>());
      }
      if (out.size() == list.size()) return out;
    }
    return Status::InvalidArgument("check \"" + name_ + "\": params \"" + name +
                                   "\": expected a list of integers");
  }
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor t, Input(name));
  if (t.is_floating_point()) {
    return Status::InvalidArgument("check \"" + name_ + "\": input \"" + name +
                                   "\" must be an integer tensor");
  }
  t = t.to(torch::kInt64).contiguous().view(-1);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

void CheckContext::Output(const std::string& name, const torch::Tensor& value) {
  Compare(name, false, value);
}
void CheckContext::Debug(const std::string& name, const torch::Tensor& value) {
  Compare(name, true, value);
}
void CheckContext::OutputStrings(const std::string& name, const nlohmann::json& value) {
  CompareJson(name, false, value);
}
void CheckContext::DebugStrings(const std::string& name, const nlohmann::json& value) {
  CompareJson(name, true, value);
}

void CheckContext::Compare(const std::string& name, bool debug, const torch::Tensor& value) {
  const nlohmann::json& section = debug ? debug_ : outputs_;
  if (!section.contains(name)) return;
  produced_[(debug ? "debug:" : "output:") + name] = true;
  Comparison c;
  c.quantity = name;
  c.debug = debug;
  Result<TensorRef> ref = RefOf(section, debug ? "debug" : "output", name);
  if (!ref.ok()) {
    reference_errors_.push_back(ref.status().message());
    c.note = "bad reference";
    comparisons_.push_back(c);
    return;
  }
  Result<torch::Tensor> golden = load_tensor_(*ref);
  if (!golden.ok()) {
    reference_errors_.push_back("check \"" + name_ + "\": " + (debug ? "debug" : "output") +
                                " \"" + name + "\": " + golden.status().message());
    c.note = "golden tensor unavailable";
    comparisons_.push_back(c);
    return;
  }
  if (golden->sizes() != c10::IntArrayRef(ref->shape)) {
    reference_errors_.push_back("check \"" + name_ + "\": golden \"" + ref->name + "\" has shape " +
                                ShapeString(golden->sizes()) + ", the manifest says " +
                                ShapeString(ref->shape));
    c.note = "golden shape differs from the manifest";
    comparisons_.push_back(c);
    return;
  }
  if (!value.defined() || value.sizes() != golden->sizes()) {
    c.note = "shape " + (value.defined() ? ShapeString(value.sizes()) : std::string("(none)")) +
             ", expected " + ShapeString(golden->sizes());
    comparisons_.push_back(c);
    return;
  }
  c.bound = ref->atol;
  if (value.numel() == 0) {
    c.passed = true;
    comparisons_.push_back(c);
    return;
  }
  torch::Tensor a = value.detach().to(torch::kCPU).to(torch::kFloat64);
  torch::Tensor b = golden->to(torch::kFloat64);
  torch::Tensor diff = (a - b).abs();
  const bool nan = torch::isnan(a).any().item<bool>() || torch::isnan(b).any().item<bool>();
  c.max_abs = diff.max().item<double>();
  c.max_ref = b.abs().max().item<double>();
  c.relative = c.max_ref > 0 ? c.max_abs / c.max_ref : (c.max_abs > 0 ? INFINITY : 0.0);
  c.bound = ref->atol + ref->rtol * c.max_ref;
  c.passed = !nan && c.max_abs <= c.bound;
  if (nan) c.note = "NaN";
  comparisons_.push_back(c);
}

void CheckContext::CompareJson(const std::string& name, bool debug, const nlohmann::json& value) {
  const nlohmann::json& section = debug ? debug_ : outputs_;
  if (!section.contains(name)) return;
  produced_[(debug ? "debug:" : "output:") + name] = true;
  Comparison c;
  c.quantity = name;
  c.debug = debug;
  Result<TensorRef> ref = RefOf(section, debug ? "debug" : "output", name);
  Result<nlohmann::json> golden = ref.ok() ? load_json_(*ref) : Result<nlohmann::json>(ref.status());
  if (!golden.ok()) {
    reference_errors_.push_back("check \"" + name_ + "\": " + golden.status().message());
    c.note = "golden value unavailable";
    comparisons_.push_back(c);
    return;
  }
  c.passed = value == *golden;
  if (!c.passed) {
    if (value.is_array() && golden->is_array()) {
      size_t i = 0;
      while (i < value.size() && i < golden->size() && value[i] == (*golden)[i]) ++i;
      if (value.size() != golden->size() && i == std::min(value.size(), golden->size())) {
        c.note = std::to_string(value.size()) + " elements, expected " +
                 std::to_string(golden->size());
      } else {
        std::string got = value[i].dump(), want = (*golden)[i].dump();
        if (got.size() > 200) got = got.substr(0, 200) + "...";
        if (want.size() > 200) want = want.substr(0, 200) + "...";
        c.note = "element " + std::to_string(i) + ": got " + got + ", expected " + want;
      }
    } else {
      c.note = "values differ";
    }
  }
  comparisons_.push_back(c);
}

std::vector<std::string> CheckContext::MissingOutputs() const {
  std::vector<std::string> missing;
  for (const auto& [name, ref] : outputs_.items()) {
    if (produced_.count("output:" + name) == 0) missing.push_back(name);
  }
  return missing;
}

std::vector<std::string> CheckContext::SkippedDebug() const {
  std::vector<std::string> skipped;
  for (const auto& [name, ref] : debug_.items()) {
    if (produced_.count("debug:" + name) == 0) skipped.push_back(name);
  }
  return skipped;
}

Result<std::shared_ptr<ModelSource>> CheckContext::source() {
  return models_->GetOrLoad<ModelSource>("source", [&]() -> Result<std::shared_ptr<ModelSource>> {
    ModelSourceOptions options;
    options.config_dir = settings_.model_config_dir;
    FAIRY_ASSIGN_OR_RETURN(ModelSource source, ModelSource::Open(settings_.model_dir, options));
    return std::make_shared<ModelSource>(std::move(source));
  });
}

}  // namespace fairy::engine::verify
