// Reading a model part's config.json into a Config struct with precise errors.
//
// Usage (every accessor records the FIRST error and returns a harmless value afterwards, so a
// loader reads all fields and checks status() once):
//
//   FAIRY_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::Load(dir + "/config.json"));
//   cfg.hidden_size = r.Int("hidden_size");          // required
//   cfg.eps = r.Float("layer_norm_eps", 1e-5);        // optional (absent or null -> fallback)
//   r.ExpectOneOf("hidden_act", r.String("hidden_act", "quick_gelu"), {"quick_gelu", "gelu"});
//   FAIRY_RETURN_IF_ERROR(r.status());
//
// Errors name the file and the key: `unet/config.json: "block_out_channels": expected a list of
// integers, got "abc"`; unsupported values give Status::Unsupported naming the file, key, value and
// what is supported.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace fairy::engine {

class ConfigReader {
 public:
  static Result<ConfigReader> Load(const std::string& path);
  ConfigReader(nlohmann::json json, std::string path);

  const nlohmann::json& json() const { return json_; }
  const std::string& path() const { return path_; }
  // The first error recorded (OK when none).
  const Status& status() const { return status_; }

  // Present and not null.
  bool Has(const std::string& key) const;

  int64_t Int(const std::string& key);
  int64_t Int(const std::string& key, int64_t fallback);
  double Float(const std::string& key);
  double Float(const std::string& key, double fallback);
  bool Bool(const std::string& key, bool fallback);
  std::string String(const std::string& key);
  std::string String(const std::string& key, const std::string& fallback);
  std::vector<int64_t> IntList(const std::string& key);
  std::vector<std::string> StringList(const std::string& key);
  // An int (repeated n times) or a list of n ints (diffusers' per-block settings such as
  // attention_head_dim); absent or null -> `fallback` repeated.
  std::vector<int64_t> IntOrIntList(const std::string& key, size_t n, int64_t fallback);

  // Records Unsupported unless `value` is one of `allowed`.
  void ExpectOneOf(const std::string& key, const std::string& value,
                   std::initializer_list<std::string_view> allowed);
  // Records Unsupported unless the key is absent, null, or equal to `neutral` (a feature this
  // engine does not implement, e.g. "class_embed_type").
  void ExpectAbsentOr(const std::string& key, const nlohmann::json& neutral);
  // Records `status` (if none recorded yet).
  void Fail(Status status);
  // "unet/config.json: \"key\": " + message, as an InvalidArgument / Unsupported Status.
  Status Invalid(const std::string& key, const std::string& message) const;
  Status UnsupportedValue(const std::string& key, const std::string& message) const;

 private:
  const nlohmann::json* Get(const std::string& key, const char* expected);

  nlohmann::json json_;
  std::string path_;
  Status status_;
};

}  // namespace fairy::engine
