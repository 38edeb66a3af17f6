#include "worker/engine/model_config.h"

#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

std::string Brief(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

}  // namespace

Result<ConfigReader> ConfigReader::Load(const std::string& path) {
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(path));
  if (!json.is_object()) return Status::InvalidArgument(path + ": expected a JSON object");
  return ConfigReader(std::move(json), path);
}

ConfigReader::ConfigReader(nlohmann::json json, std::string path)
    : json_(std::move(json)), path_(std::move(path)) {}

bool ConfigReader::Has(const std::string& key) const {
  return json_.is_object() && json_.contains(key) && !json_[key].is_null();
}

Status ConfigReader::Invalid(const std::string& key, const std::string& message) const {
  return Status::InvalidArgument(path_ + ": \"" + key + "\": " + message);
}

Status ConfigReader::UnsupportedValue(const std::string& key, const std::string& message) const {
  return Status::Unsupported(path_ + ": \"" + key + "\": " + message);
}

void ConfigReader::Fail(Status status) {
  if (status_.ok() && !status.ok()) status_ = std::move(status);
}

const nlohmann::json* ConfigReader::Get(const std::string& key, const char* expected) {
  if (!Has(key)) {
    Fail(Invalid(key, std::string("required key is missing (expected ") + expected + ")"));
    return nullptr;
  }
  return &json_[key];
}

int64_t ConfigReader::Int(const std::string& key) {
  const nlohmann::json* v = Get(key, "an integer");
  if (v == nullptr) return 0;
  if (!v->is_number_integer()) {
    Fail(Invalid(key, "expected an integer, got " + Brief(*v)));
    return 0;
  }
  return v->get<int64_t>();
}

int64_t ConfigReader::Int(const std::string& key, int64_t fallback) {
  return Has(key) ? Int(key) : fallback;
}

double ConfigReader::Float(const std::string& key) {
  const nlohmann::json* v = Get(key, "a number");
  if (v == nullptr) return 0;
  if (!v->is_number()) {
    Fail(Invalid(key, "expected a number, got " + Brief(*v)));
    return 0;
  }
  return v->get<double>();
}

double ConfigReader::Float(const std::string& key, double fallback) {
  return Has(key) ? Float(key) : fallback;
}

bool ConfigReader::Bool(const std::string& key, bool fallback) {
  if (!Has(key)) return fallback;
  const nlohmann::json& v = json_[key];
  if (!v.is_boolean()) {
    Fail(Invalid(key, "expected true or false, got " + Brief(v)));
    return fallback;
  }
  return v.get<bool>();
}

std::string ConfigReader::String(const std::string& key) {
  const nlohmann::json* v = Get(key, "a string");
  if (v == nullptr) return "";
  if (!v->is_string()) {
    Fail(Invalid(key, "expected a string, got " + Brief(*v)));
    return "";
  }
  return v->get<std::string>();
}

std::string ConfigReader::String(const std::string& key, const std::string& fallback) {
  return Has(key) ? String(key) : fallback;
}

std::vector<int64_t> ConfigReader::IntList(const std::string& key) {
  const nlohmann::json* v = Get(key, "a list of integers");
  if (v == nullptr) return {};
  std::vector<int64_t> out;
  if (v->is_array()) {
    for (const auto& item : *v) {
      if (!item.is_number_integer()) break;
      out.push_back(item.get<int64_t>());
    }
    if (out.size() == v->size()) return out;
  }
  Fail(Invalid(key, "expected a list of integers, got " + Brief(*v)));
  return {};
}

std::vector<std::string> ConfigReader::StringList(const std::string& key) {
  const nlohmann::json* v = Get(key, "a list of strings");
  if (v == nullptr) return {};
  std::vector<std::string> out;
  if (v->is_array()) {
    for (const auto& item : *v) {
      if (!item.is_string()) break;
      out.push_back(item.get<std::string>());
    }
    if (out.size() == v->size()) return out;
  }
  Fail(Invalid(key, "expected a list of strings, got " + Brief(*v)));
  return {};
}

std::vector<int64_t> ConfigReader::IntOrIntList(const std::string& key, size_t n, int64_t fallback) {
  if (!Has(key)) return std::vector<int64_t>(n, fallback);
  const nlohmann::json& v = json_[key];
  if (v.is_number_integer()) return std::vector<int64_t>(n, v.get<int64_t>());
  std::vector<int64_t> out = IntList(key);
  if (status_.ok() && out.size() != n) {
    Fail(Invalid(key, "expected an integer or a list of " + std::to_string(n) + " integers, got " +
                          std::to_string(out.size()) + " values"));
    return std::vector<int64_t>(n, fallback);
  }
  if (!status_.ok()) return std::vector<int64_t>(n, fallback);
  return out;
}

void ConfigReader::ExpectOneOf(const std::string& key, const std::string& value,
                               std::initializer_list<std::string_view> allowed) {
  std::string list;
  for (std::string_view a : allowed) {
    if (a == value) return;
    if (!list.empty()) list += ", ";
    list += a;
  }
  Fail(UnsupportedValue(key, "value \"" + value + "\" is not supported (supported: " + list + ")"));
}

void ConfigReader::ExpectAbsentOr(const std::string& key, const nlohmann::json& neutral) {
  if (!Has(key) || json_[key] == neutral) return;
  Fail(UnsupportedValue(key, "value " + Brief(json_[key]) + " is not supported (only " +
                                 (neutral.is_null() ? std::string("null") : Brief(neutral)) + ")"));
}

}  // namespace fairy::engine
