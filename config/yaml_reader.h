// YamlReader: typed, located reads of YAML fields for job files and cluster configs.
//
// Every Read* call looks up one key of a mapping and records any problem (wrong type, out of
// range, not one of the allowed values) in the Diagnostics with the value's file:line:column and
// the field's dotted path, then carries on, so one pass reports every problem of a document.
// Contract of the Read* calls: key absent -> *out keeps its default, returns false; present and
// valid -> *out is set, returns true; present and invalid -> a diagnostic, *out unchanged, false.
// A present key with no value (`steps:`) is an error, never "use the default".
// Not thread-safe; one reader per document.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/diagnostics.h"

namespace fairy::config {

class YamlReader {
 public:
  // `file` is the name diagnostics carry. REQUIRES: diags outlives the reader.
  YamlReader(std::string file, Diagnostics* diags) : file_(std::move(file)), diags_(diags) {}

  // Parses a whole document. A syntax error becomes a diagnostic at its position and the result
  // is nullopt. An empty document is an error ("the file is empty"), so is one over kMaxBytes.
  std::optional<YAML::Node> Parse(std::string_view text);

  static constexpr size_t kMaxBytes = 4 << 20;

  // yaml-cpp 0.7 never returns on some malformed input. With a limit > 0, Parse first lets
  // yaml-cpp read the text in a forked child process (address space capped at 1 GiB) and reports
  // a syntax error when the child does not finish within `ms`; 0 (the default) parses in this
  // process only. Use it where untrusted files are parsed in a long-lived process.
  void set_isolated_parse_limit_ms(int ms) { isolated_parse_limit_ms_ = ms; }

  // Marks `path` and everything under it as given on the command line: diagnostics there carry
  // `label` (e.g. "--set redis.url=x") as their location instead of a file position.
  void AddOverrideLabel(std::string path, std::string label);

  void Error(const YAML::Node& at, std::string_view field, std::string message,
             Status::Code code = Status::Code::kInvalidArgument);
  void Warning(const YAML::Node& at, std::string_view field, std::string message);

  // Reports `path: must be a mapping` when `node` is not one (and returns false). Otherwise reports
  // every key not in `known` (with a did-you-mean hint), duplicate keys and non-scalar keys.
  bool CheckMap(const YAML::Node& node, std::string_view path,
                const std::vector<std::string_view>& known);

  bool ReadString(const YAML::Node& map, std::string_view path, std::string_view key,
                  std::string* out);
  // Integers in decimal; the range is inclusive.
  bool ReadInt(const YAML::Node& map, std::string_view path, std::string_view key, int64_t min,
               int64_t max, int64_t* out);
  template <typename T>
  bool ReadInt(const YAML::Node& map, std::string_view path, std::string_view key, int64_t min,
               int64_t max, T* out) {
    int64_t v = 0;
    if (!ReadInt(map, path, key, min, max, &v)) return false;
    *out = static_cast<T>(v);
    return true;
  }
  bool ReadUint64(const YAML::Node& map, std::string_view path, std::string_view key,
                  uint64_t* out);
  // Finite numbers (integers accepted); the range is inclusive.
  bool ReadDouble(const YAML::Node& map, std::string_view path, std::string_view key, double min,
                  double max, double* out);
  // true/false (also yes/no, on/off), any case.
  bool ReadBool(const YAML::Node& map, std::string_view path, std::string_view key, bool* out);
  // One of `allowed`, exactly; a near miss gets a did-you-mean hint.
  bool ReadEnum(const YAML::Node& map, std::string_view path, std::string_view key,
                const std::vector<std::string_view>& allowed, std::string* out);
  // A list of strings (`[a, b]` or a block list). Each bad item is reported at its own position.
  bool ReadStringList(const YAML::Node& map, std::string_view path, std::string_view key,
                      std::vector<std::string>* out);

  // The value of `key` in `map`, or an undefined node; never inserts.
  static YAML::Node Get(const YAML::Node& map, std::string_view key);
  // The key node of `key` in `map` (for positions of keys without a value); `map` when absent.
  static YAML::Node KeyOf(const YAML::Node& map, std::string_view key);
  // "a.b" from ("a", "b"); "b" from ("", "b").
  static std::string Join(std::string_view path, std::string_view key);
  // How a value is named in messages: `"abc"`, `null`, `a list`, `a mapping`.
  static std::string Describe(const YAML::Node& node);

  const std::string& file() const { return file_; }
  Diagnostics* diagnostics() const { return diags_; }

 private:
  void Report(const YAML::Node& at, std::string_view field, std::string message, Severity severity,
              Status::Code code);
  // The scalar text of map[key] or a diagnostic "must be WHAT, got ..."; nullopt when absent/bad.
  std::optional<std::string> Scalar(const YAML::Node& map, std::string_view path,
                                    std::string_view key, std::string_view what, YAML::Node* value);

  std::string file_;
  Diagnostics* diags_;
  std::map<std::string, std::string> override_labels_;  // field path -> command-line label
  int isolated_parse_limit_ms_ = 0;
};

}  // namespace fairy::config
