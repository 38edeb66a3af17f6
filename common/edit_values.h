// The accepted values of a job's enumerated edit settings (edit.noise, edit.scheduler,
// edit.anchor_mode), in one place for every layer that checks them: job files (jobs/job_parser),
// job JSON (jobs/job_json), TASK settings on the wire (common/protocol/task_settings), the
// coordinator's job plan and the engine's parsers. The first value of each list is the default.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace fairy::edit_values {

inline const std::vector<std::string_view> kNoise = {"per_frame", "shared"};
inline const std::vector<std::string_view> kScheduler = {"euler_ancestral", "euler"};
inline const std::vector<std::string_view> kAnchorMode = {"cache", "recompute"};

inline bool Accepts(const std::vector<std::string_view>& values, std::string_view value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// The values for a message, each between `quote`s: "a or b", "a, b or c"; "a, b" when
// `last_separator` is ", ".
inline std::string Listed(const std::vector<std::string_view>& values, std::string_view quote = "",
                          std::string_view last_separator = " or ") {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += i + 1 == values.size() ? last_separator : std::string_view(", ");
    out.append(quote).append(values[i]).append(quote);
  }
  return out;
}

}  // namespace fairy::edit_values
