#include "config/yaml_reader.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

namespace fairy::config {
namespace {

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  if (out.size() > 60) out = out.substr(0, 57) + "...";
  return out + "\"";
}

std::string JoinAllowed(const std::vector<std::string_view>& allowed) {
  std::string out;
  for (std::string_view a : allowed) {
    if (!out.empty()) out += ", ";
    out += a;
  }
  return out;
}

bool IsNullScalar(const YAML::Node& node) { return node.IsNull(); }

}  // namespace

std::optional<YAML::Node> YamlReader::Parse(std::string_view text) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    Diagnostic d;
    d.file = file_;
    if (!e.mark.is_null()) {
      d.line = e.mark.line + 1;
      d.column = e.mark.column + 1;
    }
    d.message = "YAML syntax error: " + e.msg;
    diags_->Add(std::move(d));
    return std::nullopt;
  }
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    diags_->Add(Diagnostic::FileError(file_, "the file is empty"));
    return std::nullopt;
  }
  if (docs.size() > 1) {
    Error(docs[1], "", "a file holds one YAML document; put several jobs in one list instead");
    return std::nullopt;
  }
  return docs[0];
}

void YamlReader::AddOverrideLabel(std::string path, std::string label) {
  override_labels_[std::move(path)] = std::move(label);
}

void YamlReader::Report(const YAML::Node& at, std::string_view field, std::string message,
                        Severity severity, Status::Code code) {
  Diagnostic d;
  d.file = file_;
  d.field = std::string(field);
  d.message = std::move(message);
  d.severity = severity;
  d.code = code;
  // A command-line value: the flag is the location. Longest matching prefix wins.
  const std::string* label = nullptr;
  size_t label_len = 0;
  for (const auto& [path, l] : override_labels_) {
    const bool match = d.field == path ||
                       (d.field.size() > path.size() && d.field.compare(0, path.size(), path) == 0 &&
                        (d.field[path.size()] == '.' || d.field[path.size()] == '['));
    if (match && path.size() >= label_len) {
      label = &l;
      label_len = path.size();
    }
  }
  if (label != nullptr) {
    d.file = *label;
  } else if (at.IsDefined()) {
    const YAML::Mark mark = at.Mark();
    if (!mark.is_null()) {
      d.line = mark.line + 1;
      d.column = mark.column + 1;
    }
  }
  diags_->Add(std::move(d));
}

void YamlReader::Error(const YAML::Node& at, std::string_view field, std::string message,
                       Status::Code code) {
  Report(at, field, std::move(message), Severity::kError, code);
}

void YamlReader::Warning(const YAML::Node& at, std::string_view field, std::string message) {
  Report(at, field, std::move(message), Severity::kWarning, Status::Code::kInvalidArgument);
}

bool YamlReader::CheckMap(const YAML::Node& node, std::string_view path,
                          const std::vector<std::string_view>& known) {
  if (!node.IsMap()) {
    Error(node, path, "must be a mapping of keys to values, got " + Describe(node));
    return false;
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const YAML::Node& key = kv.first;
    if (!key.IsScalar()) {
      Error(key, path, "keys must be plain names, got " + Describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    const std::string field = Join(path, name);
    if (!seen.insert(name).second) {
      Error(key, field, "duplicate key " + Quote(name) + " (each key may appear once)");
      continue;
    }
    bool is_known = false;
    for (std::string_view k : known) is_known = is_known || k == name;
    if (is_known) continue;
    std::string message = "unknown key " + Quote(name);
    const std::string hint = DidYouMean(name, known);
    if (!hint.empty()) {
      message += " (did you mean \"" + hint + "\"?)";
    } else {
      message += "; expected one of: " + JoinAllowed(known);
    }
    Error(key, field, std::move(message));
  }
  return true;
}

YAML::Node YamlReader::Get(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

YAML::Node YamlReader::KeyOf(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return map;
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.first;
  }
  return map;
}

std::string YamlReader::Join(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

std::string YamlReader::Describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return Quote(node.Scalar());
}

std::optional<std::string> YamlReader::Scalar(const YAML::Node& map, std::string_view path,
                                              std::string_view key, std::string_view what,
                                              YAML::Node* value) {
  *value = Get(map, key);
  if (!value->IsDefined()) return std::nullopt;
  if (!value->IsScalar() || IsNullScalar(*value)) {
    Error(value->IsNull() ? KeyOf(map, key) : *value, Join(path, key),
          "must be " + std::string(what) + ", got " + Describe(*value));
    return std::nullopt;
  }
  return value->Scalar();
}

bool YamlReader::ReadString(const YAML::Node& map, std::string_view path, std::string_view key,
                            std::string* out) {
  YAML::Node value;
  auto s = Scalar(map, path, key, "a string", &value);
  if (!s) return false;
  *out = *s;
  return true;
}

bool YamlReader::ReadInt(const YAML::Node& map, std::string_view path, std::string_view key,
                         int64_t min, int64_t max, int64_t* out) {
  YAML::Node value;
  auto s = Scalar(map, path, key, "an integer", &value);
  if (!s) return false;
  int64_t v = 0;
  std::string_view text = *s;
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const bool all_used = end == text.data() + text.size();
  if (!text.empty() && ec == std::errc::result_out_of_range && all_used) {
    Error(value, Join(path, key),
          "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + *s);
    return false;
  }
  if (text.empty() || ec != std::errc() || !all_used) {
    Error(value, Join(path, key), "must be an integer, got " + Describe(value));
    return false;
  }
  if (v < min || v > max) {
    Error(value, Join(path, key),
          "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + *s);
    return false;
  }
  *out = v;
  return true;
}

bool YamlReader::ReadUint64(const YAML::Node& map, std::string_view path, std::string_view key,
                            uint64_t* out) {
  YAML::Node value;
  auto s = Scalar(map, path, key, "an unsigned integer", &value);
  if (!s) return false;
  uint64_t v = 0;
  const std::string& text = *s;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    Error(value, Join(path, key),
          "must be an integer between 0 and 18446744073709551615, got " + Describe(value));
    return false;
  }
  *out = v;
  return true;
}

bool YamlReader::ReadDouble(const YAML::Node& map, std::string_view path, std::string_view key,
                            double min, double max, double* out) {
  YAML::Node value;
  auto s = Scalar(map, path, key, "a number", &value);
  if (!s) return false;
  double v = 0;
  std::string_view text = *s;
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
    Error(value, Join(path, key), "must be a number, got " + Describe(value));
    return false;
  }
  if (v < min || v > max) {
    auto fmt = [](double x) {
      std::string t = std::to_string(x);
      while (t.size() > 1 && t.back() == '0') t.pop_back();
      if (!t.empty() && t.back() == '.') t.pop_back();
      return t;
    };
    Error(value, Join(path, key),
          "must be between " + fmt(min) + " and " + fmt(max) + ", got " + *s);
    return false;
  }
  *out = v;
  return true;
}

bool YamlReader::ReadBool(const YAML::Node& map, std::string_view path, std::string_view key,
                          bool* out) {
  YAML::Node value;
  auto s = Scalar(map, path, key, "true or false", &value);
  if (!s) return false;
  std::string lower = *s;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "yes" || lower == "on") {
    *out = true;
    return true;
  }
  if (lower == "false" || lower == "no" || lower == "off") {
    *out = false;
    return true;
  }
  Error(value, Join(path, key), "must be true or false, got " + Describe(value));
  return false;
}

bool YamlReader::ReadEnum(const YAML::Node& map, std::string_view path, std::string_view key,
                          const std::vector<std::string_view>& allowed, std::string* out) {
  YAML::Node value;
  auto s = Scalar(map, path, key, "one of: " + JoinAllowed(allowed), &value);
  if (!s) return false;
  for (std::string_view a : allowed) {
    if (a == *s) {
      *out = *s;
      return true;
    }
  }
  std::string message = "must be one of: " + JoinAllowed(allowed) + "; got " + Quote(*s);
  const std::string hint = DidYouMean(*s, allowed);
  if (!hint.empty()) message += " (did you mean \"" + hint + "\"?)";
  Error(value, Join(path, key), std::move(message));
  return false;
}

bool YamlReader::ReadStringList(const YAML::Node& map, std::string_view path, std::string_view key,
                                std::vector<std::string>* out) {
  const YAML::Node value = Get(map, key);
  if (!value.IsDefined()) return false;
  const std::string field = Join(path, key);
  if (!value.IsSequence()) {
    Error(value.IsNull() ? KeyOf(map, key) : value, field, "must be a list of strings, got " + Describe(value));
    return false;
  }
  std::vector<std::string> items;
  bool ok = true;
  for (size_t i = 0; i < value.size(); ++i) {
    const YAML::Node item = value[i];
    if (!item.IsScalar() || item.IsNull()) {
      Error(item, field + "[" + std::to_string(i) + "]", "must be a string, got " + Describe(item));
      ok = false;
      continue;
    }
    items.push_back(item.Scalar());
  }
  if (!ok) return false;
  *out = std::move(items);
  return true;
}

}  // namespace fairy::config
