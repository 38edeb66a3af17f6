#include "common/protocol/task_settings.h"

#include "common/edit_values.h"

namespace fairy::protocol {
namespace {

using nlohmann::json;

class Reader {
 public:
  explicit Reader(const json& j) : j_(j) {
    if (!j_.is_object()) Fail("", "expected an object");
  }
  const json* Get(const char* field) {
    if (!status_.ok() || !j_.is_object()) return nullptr;
    auto it = j_.find(field);
    if (it == j_.end() || it->is_null()) {
      Fail(field, "missing");
      return nullptr;
    }
    return &*it;
  }
  std::string Str(const char* field, bool non_empty = true) {
    const json* v = Get(field);
    if (v == nullptr) return {};
    if (!v->is_string()) return Fail(field, "expected a string"), std::string();
    std::string s = v->get<std::string>();
    if (non_empty && s.empty()) Fail(field, "must not be empty");
    return s;
  }
  int64_t Int(const char* field, int64_t min, int64_t max) {
    const json* v = Get(field);
    if (v == nullptr) return 0;
    if (!v->is_number_integer()) return Fail(field, "expected an integer"), 0;
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return Fail(field, "out of range"), 0;
    }
    int64_t x = v->get<int64_t>();
    if (x < min || x > max) {
      Fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                      std::to_string(x));
    }
    return x;
  }
  uint64_t UInt(const char* field) {
    const json* v = Get(field);
    if (v == nullptr) return 0;
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0)) {
      return Fail(field, "expected a non-negative integer"), 0;
    }
    return v->get<uint64_t>();
  }
  double Num(const char* field, double min, double max) {
    const json* v = Get(field);
    if (v == nullptr) return 0;
    if (!v->is_number()) return Fail(field, "expected a number"), 0;
    double x = v->get<double>();
    if (!(x >= min && x <= max)) Fail(field, "out of range");
    return x;
  }
  std::vector<int64_t> Ints(const char* field) {
    std::vector<int64_t> out;
    const json* v = Get(field);
    if (v == nullptr) return out;
    if (!v->is_array()) return Fail(field, "expected an array of integers"), out;
    for (const auto& e : *v) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0) return Fail(field, "expected an array of non-negative integers"), out;
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  // An enumerated setting: one of `values` (checked only when reading it went well).
  void OneOf(const char* field, const std::vector<std::string_view>& values,
             const std::string& value) {
    if (status_.ok() && !edit_values::Accepts(values, value)) {
      Fail(field, "expected " + edit_values::Listed(values, "'") + ", got '" + value + "'");
    }
  }
  void Fail(const std::string& field, const std::string& what) {
    if (status_.ok()) {
      status_ = Status::InvalidArgument("settings" + (field.empty() ? "" : "." + field) + ": " + what);
    }
  }
  const Status& status() const { return status_; }

 private:
  const json& j_;
  Status status_;
};

}  // namespace

json ToJson(const TaskSettings& s) {
  return json{{"input", s.input},
              {"work_dir", s.work_dir},
              {"model", s.model},
              {"instruction", s.instruction},
              {"steps", s.steps},
              {"guidance_text", s.guidance_text},
              {"guidance_image", s.guidance_image},
              {"seed", s.seed},
              {"noise", s.noise},
              {"scheduler", s.scheduler},
              {"long_side", s.long_side},
              {"anchor_mode", s.anchor_mode},
              {"batch", s.batch},
              {"shot_first", s.shot_first},
              {"shot_count", s.shot_count},
              {"anchor_frames", s.anchor_frames}};
}

Result<TaskSettings> TaskSettingsFromJson(const json& j) {
  Reader r(j);
  TaskSettings s;
  s.input = r.Str("input");
  s.work_dir = r.Str("work_dir");
  s.model = r.Str("model");
  s.instruction = r.Str("instruction");
  s.steps = r.Int("steps", 1, 1000);
  s.guidance_text = r.Num("guidance_text", 0.0, 100.0);
  s.guidance_image = r.Num("guidance_image", 0.0, 100.0);
  s.seed = r.UInt("seed");
  // noise and scheduler are absent in TASKs from coordinators older than them: the defaults then.
  s.noise =
      j.is_object() && !j.contains("noise") ? std::string(edit_values::kNoise[0]) : r.Str("noise");
  r.OneOf("noise", edit_values::kNoise, s.noise);
  s.scheduler = j.is_object() && !j.contains("scheduler") ? std::string(edit_values::kScheduler[0])
                                                          : r.Str("scheduler");
  r.OneOf("scheduler", edit_values::kScheduler, s.scheduler);
  s.long_side = r.Int("long_side", 8, 8192);
  s.anchor_mode = r.Str("anchor_mode");
  r.OneOf("anchor_mode", edit_values::kAnchorMode, s.anchor_mode);
  // Absent in TASKs from coordinators older than the field: every worker used 4 then.
  s.batch = j.is_object() && !j.contains("batch") ? 4 : r.Int("batch", 1, 256);
  s.shot_first = r.Int("shot_first", 0, int64_t{1} << 40);
  s.shot_count = r.Int("shot_count", 1, int64_t{1} << 40);
  s.anchor_frames = r.Ints("anchor_frames");
  if (r.status().ok()) {
    if (s.anchor_frames.empty()) r.Fail("anchor_frames", "must not be empty");
    for (size_t i = 0; i < s.anchor_frames.size() && r.status().ok(); ++i) {
      int64_t a = s.anchor_frames[i];
      if (a < s.shot_first || a >= s.shot_first + s.shot_count || (i > 0 && a <= s.anchor_frames[i - 1])) {
        r.Fail("anchor_frames", "must be sorted, distinct and inside the shot [" + std::to_string(s.shot_first) +
                                    ", " + std::to_string(s.shot_first + s.shot_count) + ")");
      }
    }
  }
  if (!r.status().ok()) return r.status();
  return s;
}

std::string AnchorOutputPath(const std::string& work_dir, int64_t frame) {
  return work_dir + "/anchor-" + std::to_string(frame) + ".mkv";
}

std::string ChunkPath(const std::string& work_dir, const std::string& task_id) {
  return work_dir + "/" + task_id + ".mkv";
}

}  // namespace fairy::protocol
