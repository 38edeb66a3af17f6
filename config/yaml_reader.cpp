#include "config/yaml_reader.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
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

// yaml-cpp 0.7 loops forever, allocating without bound, when a ',' stands where a token may start
// in block context (found by the fuzzer: ", a: b", "&a, b", "'x' ,b", "[a],b", "- 3\n, x").
// Such input is invalid YAML, so it is refused before yaml-cpp sees it. This scanner follows
// yaml-cpp's view of block context: token starts (line start, after "- ", "? ", ": ", after a
// property, a quoted scalar or a flow collection), plain scalars (where ',' is content), quoted
// scalars, flow collections (where ',' separates) and block scalars. Returns the 1-based line
// and column of the ',' or {0, 0}.
std::pair<int, int> FindStrayComma(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  int flow_depth = 0;
  char quote = 0;          // the open quote character, or 0
  int block_indent = -1;   // >= 0 while inside a block scalar whose header line had this indent
  int line = 0;
  size_t pos = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  while (pos <= text.size()) {
    ++line;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    size_t i = 0;
    while (i < l.size() && blank(l[i])) ++i;
    const size_t indent = i;
    if (block_indent >= 0) {
      if (i == l.size() || static_cast<int>(i) > block_indent) continue;
      block_indent = -1;
    }
    if (l.substr(0, 3) == "---" || l.substr(0, 3) == "...") {
      quote = 0;  // a document marker ends every quote and flow collection
      flow_depth = 0;
      i = 3;
    }
    bool token_start = quote == 0 && flow_depth == 0;
    for (; i < l.size(); ++i) {
      const char c = l[i];
      const bool next_blank = i + 1 == l.size() || blank(l[i + 1]);
      if (quote != 0) {
        if (quote == '"' && c == '\\') {
          ++i;
        } else if (quote == '\'' && c == '\'' && i + 1 < l.size() && l[i + 1] == '\'') {
          ++i;
        } else if (c == quote) {
          quote = 0;
          token_start = flow_depth == 0;
        }
        continue;
      }
      if (flow_depth > 0) {
        if (c == '"' || c == '\'') quote = c;
        else if (c == '[' || c == '{') ++flow_depth;
        else if (c == ']' || c == '}') token_start = --flow_depth == 0;
        else if (c == '#' && (i == 0 || blank(l[i - 1]))) break;
        continue;
      }
      if (blank(c)) continue;
      if (token_start) {
        if (c == ',') return {line, static_cast<int>(i) + 1};
        if (c == '#') break;
        if ((c == '-' || c == '?' || c == ':') && next_blank) continue;
        if (c == '&' || c == '!' || c == '*') {  // a property or alias: still between tokens
          while (i + 1 < l.size() && !blank(l[i + 1]) &&
                 std::string_view(",\"'[]{}").find(l[i + 1]) == std::string_view::npos) {
            ++i;
          }
          continue;
        }
        if (c == '"' || c == '\'') {
          quote = c;
          continue;
        }
        if (c == '[' || c == '{') {
          flow_depth = 1;
          continue;
        }
        if (c == '|' || c == '>') {  // a block scalar header: `|`, `>-`, `|2+`
          size_t j = i + 1;
          while (j < l.size() && (l[j] == '-' || l[j] == '+' || (l[j] >= '0' && l[j] <= '9'))) ++j;
          while (j < l.size() && blank(l[j])) ++j;
          if (j == l.size() || l[j] == '#') {
            block_indent = static_cast<int>(indent);
            break;
          }
        }
        token_start = false;  // a plain scalar: ',' is content from here
        continue;
      }
      // Inside a plain scalar: ": " starts a value, " #" a comment.
      if (c == ':' && next_blank) token_start = true;
      else if (c == '#' && (i == 0 || blank(l[i - 1]))) break;
    }
  }
  return {0, 0};
}

enum class ChildParse { kFinished, kHung, kFailed, kNotRun };

// Lets yaml-cpp read `text` in a forked child. The child only parses and exits (no locks of the
// parent are taken: yaml-cpp allocates, and glibc's malloc is fork-safe).
ChildParse ParseInChild(const std::string& text, int limit_ms) {
  const pid_t pid = fork();
  if (pid < 0) return ChildParse::kNotRun;
  if (pid == 0) {
    const rlimit limit{1ull << 30, 1ull << 30};
    setrlimit(RLIMIT_AS, &limit);
    try {
      (void)YAML::LoadAll(text);
    } catch (const YAML::Exception&) {
      _exit(0);  // a syntax error: the parent reports it with its position
    } catch (...) {
      _exit(3);  // out of memory (the address-space cap) or worse
    }
    _exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? ChildParse::kFinished : ChildParse::kFailed;
    }
    if (r < 0) return ChildParse::kNotRun;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return ChildParse::kHung;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

std::optional<YAML::Node> YamlReader::Parse(std::string_view text) {
  std::vector<YAML::Node> docs;
  if (text.size() > kMaxBytes) {
    diags_->Add(Diagnostic::FileError(file_, "the file is larger than " +
                                                 std::to_string(kMaxBytes >> 20) + " MiB"));
    return std::nullopt;
  }
  // YAML is text: control characters are invalid, and yaml-cpp mishandles some (NUL hangs it).
  for (size_t i = 0, line = 1, column = 1; i < text.size(); ++i, ++column) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 0;
    } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
      Diagnostic d;
      d.file = file_;
      d.line = static_cast<int>(line);
      d.column = static_cast<int>(column);
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", c);
      d.message = std::string("control character ") + hex + " in the file (YAML is text)";
      diags_->Add(std::move(d));
      return std::nullopt;
    }
  }
  if (auto [line, column] = FindStrayComma(text); line > 0) {
    Diagnostic d;
    d.file = file_;
    d.line = line;
    d.column = column;
    d.message = "YAML syntax error: unexpected ',' outside a [list] or {mapping}";
    diags_->Add(std::move(d));
    return std::nullopt;
  }
  if (isolated_parse_limit_ms_ > 0) {
    const ChildParse child = ParseInChild(std::string(text), isolated_parse_limit_ms_);
    if (child == ChildParse::kHung || child == ChildParse::kFailed) {
      diags_->Add(Diagnostic::FileError(
          file_, child == ChildParse::kHung
                     ? "YAML syntax error: the YAML parser did not finish (malformed input)"
                     : "YAML syntax error: the YAML parser failed on this input"));
      return std::nullopt;
    }
  }
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
