#include "common/protocol/protocol.h"

#include <charconv>
#include <sstream>

namespace fairy::protocol {
namespace {

using nlohmann::json;

constexpr const char* kCommandNames[] = {"READY",  "TASK",      "PROGRESS", "DONE",
                                         "FAILED", "HEARTBEAT", "CANCEL",   "DISCONNECT"};

// Reads typed fields from a body object, remembering the first error. Every accessor names the
// command and field in its error so a dropped message is easy to diagnose from the log.
class FieldReader {
 public:
  FieldReader(Command command, const json& body) : command_(command), body_(body) {
    if (!body_.is_object()) Fail("", "body is not an object");
  }

  std::string String(const char* field, bool required = true) {
    const json* v = Find(field, required);
    if (v == nullptr) return {};
    if (!v->is_string()) return Fail(field, "expected a string"), std::string();
    return v->get<std::string>();
  }

  int64_t Int(const char* field, int64_t min, int64_t max, bool required = true, int64_t def = 0) {
    const json* v = Find(field, required);
    if (v == nullptr) return def;
    if (!v->is_number_integer()) return Fail(field, "expected an integer"), 0;
    int64_t x = v->get<int64_t>();
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return Fail(field, "out of range"), 0;
    }
    if (x < min || x > max) {
      return Fail(field, "value " + std::to_string(x) + " outside [" + std::to_string(min) + ", " +
                             std::to_string(max) + "]"),
             0;
    }
    return x;
  }

  bool Bool(const char* field, bool required, bool def) {
    const json* v = Find(field, required);
    if (v == nullptr) return def;
    if (!v->is_boolean()) return Fail(field, "expected a boolean"), def;
    return v->get<bool>();
  }

  std::vector<std::string> Strings(const char* field) {
    std::vector<std::string> out;
    const json* v = Find(field, false);
    if (v == nullptr) return out;
    if (!v->is_array()) return Fail(field, "expected an array of strings"), out;
    for (const auto& e : *v) {
      if (!e.is_string()) return Fail(field, "expected an array of strings"), out;
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  // Absent (or null): nullopt, so a peer older than the field is told apart from an empty list.
  std::optional<std::vector<std::string>> OptionalStrings(const char* field) {
    if (Find(field, false) == nullptr) return std::nullopt;
    return Strings(field);
  }

  TaskRef Ref(const json& obj, const std::string& where) {
    TaskRef ref;
    if (!obj.is_object()) return Fail(where, "expected an object"), ref;
    FieldReader sub(command_, obj);
    sub.prefix_ = where.empty() ? "" : where + ".";
    ref.job_id = sub.String("job");
    ref.task_id = sub.String("task");
    ref.attempt = sub.Int("attempt", 1, INT32_MAX);
    if (!sub.status_.ok() && status_.ok()) status_ = sub.status_;
    if (status_.ok() && (ref.job_id.empty() || ref.task_id.empty())) {
      Fail(where, "job and task must not be empty");
    }
    return ref;
  }

  TaskRef RefFields() {
    TaskRef ref = Ref(body_, "");
    return ref;
  }

  std::vector<TaskRef> Refs(const char* field) {
    std::vector<TaskRef> out;
    const json* v = Find(field, false);
    if (v == nullptr) return out;
    if (!v->is_array()) return Fail(field, "expected an array"), out;
    for (size_t i = 0; i < v->size(); ++i) {
      out.push_back(Ref((*v)[i], std::string(field) + "[" + std::to_string(i) + "]"));
    }
    return out;
  }

  const json* Object(const char* field) {
    const json* v = Find(field, false);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) return Fail(field, "expected an object"), nullptr;
    return v;
  }

  void Fail(const std::string& field, const std::string& what) {
    if (!status_.ok()) return;
    std::string name = prefix_ + field;
    if (!name.empty() && name.back() == '.') name.pop_back();
    status_ = Status::InvalidArgument(std::string(CommandName(command_)) +
                                      (name.empty() ? "" : " field '" + name + "'") + ": " + what);
  }

  const Status& status() const { return status_; }

 private:
  const json* Find(const char* field, bool required) {
    if (!body_.is_object()) return nullptr;
    auto it = body_.find(field);
    if (it == body_.end() || it->is_null()) {
      if (required) Fail(field, "missing");
      return nullptr;
    }
    return &*it;
  }

  Command command_;
  const json& body_;
  std::string prefix_;
  Status status_;
};

json RefJson(const TaskRef& r) {
  return json{{"job", r.job_id}, {"task", r.task_id}, {"attempt", r.attempt}};
}

void PutRef(json& j, const TaskRef& r) {
  j["job"] = r.job_id;
  j["task"] = r.task_id;
  j["attempt"] = r.attempt;
}

json RefsJson(const std::vector<TaskRef>& refs) {
  json a = json::array();
  for (const auto& r : refs) a.push_back(RefJson(r));
  return a;
}

constexpr int64_t kMaxFrame = int64_t{1} << 40;
constexpr size_t kMaxDepth = 32;

// nlohmann's MessagePack reader recurses once per nesting level, so a hostile body of nested
// one-element arrays could exhaust the stack before any check runs. This iterative pre-scan walks
// the item headers and rejects input nested deeper than `limit` or truncated.
bool MsgPackDepthAtMost(const std::string& data, size_t limit) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  size_t pos = 0;
  std::vector<uint64_t> remaining;  // items still expected in each open container
  auto read_be = [&](size_t bytes, uint64_t* out) {
    if (pos + bytes > n) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) v = (v << 8) | p[pos + i];
    pos += bytes;
    *out = v;
    return true;
  };
  auto skip = [&](uint64_t bytes) {
    if (bytes > n - pos) return false;
    pos += static_cast<size_t>(bytes);
    return true;
  };
  remaining.push_back(1);  // the root item
  while (!remaining.empty()) {
    if (remaining.back() == 0) {
      remaining.pop_back();
      continue;
    }
    --remaining.back();
    if (pos >= n) return false;
    uint8_t b = p[pos++];
    uint64_t len = 0;
    uint64_t children = 0;
    bool container = false;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      // single byte
    } else if (b >= 0x80 && b <= 0x8f) {
      container = true, children = 2 * uint64_t{b & 0x0fu};
    } else if (b >= 0x90 && b <= 0x9f) {
      container = true, children = b & 0x0fu;
    } else if (b >= 0xa0 && b <= 0xbf) {
      if (!skip(b & 0x1fu)) return false;
    } else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          if (!read_be(1, &len) || !skip(len)) return false;
          break;
        case 0xc5:
        case 0xda:
          if (!read_be(2, &len) || !skip(len)) return false;
          break;
        case 0xc6:
        case 0xdb:
          if (!read_be(4, &len) || !skip(len)) return false;
          break;
        case 0xc7:
          if (!read_be(1, &len) || !skip(len + 1)) return false;
          break;
        case 0xc8:
          if (!read_be(2, &len) || !skip(len + 1)) return false;
          break;
        case 0xc9:
          if (!read_be(4, &len) || !skip(len + 1)) return false;
          break;
        case 0xca:
        case 0xd2:
        case 0xce:
          if (!skip(4)) return false;
          break;
        case 0xcb:
        case 0xd3:
        case 0xcf:
          if (!skip(8)) return false;
          break;
        case 0xcc:
        case 0xd0:
          if (!skip(1)) return false;
          break;
        case 0xcd:
        case 0xd1:
          if (!skip(2)) return false;
          break;
        case 0xd4:
          if (!skip(2)) return false;
          break;
        case 0xd5:
          if (!skip(3)) return false;
          break;
        case 0xd6:
          if (!skip(5)) return false;
          break;
        case 0xd7:
          if (!skip(9)) return false;
          break;
        case 0xd8:
          if (!skip(17)) return false;
          break;
        case 0xdc:
          container = true;
          if (!read_be(2, &children)) return false;
          break;
        case 0xdd:
          container = true;
          if (!read_be(4, &children)) return false;
          break;
        case 0xde:
          container = true;
          if (!read_be(2, &children)) return false;
          children *= 2;
          break;
        case 0xdf:
          container = true;
          if (!read_be(4, &children)) return false;
          children *= 2;
          break;
        default:
          return false;  // 0xc1 is never used
      }
    }
    if (container) {
      if (remaining.size() + 1 > limit) return false;
      if (children > n - pos) return false;  // every item takes at least one byte
      remaining.push_back(children);
    }
  }
  return pos == n;
}

// Nesting depth without recursion: copying or printing a hostile, deeply nested body later would
// recurse once per level and could exhaust the stack.
bool DepthAtMost(const json& root, size_t limit) {
  std::vector<std::pair<const json*, size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (depth > limit) return false;
    if (node->is_structured()) {
      for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
    }
  }
  return true;
}

}  // namespace

const char* CommandName(Command command) { return kCommandNames[static_cast<int>(command)]; }

const char* TaskKindName(TaskKind kind) { return kind == TaskKind::kAnchor ? "anchor" : "frames"; }

Command CommandOf(const Message& message) { return static_cast<Command>(message.index()); }

json ToJson(const Message& message) {
  json j = json::object();
  std::visit(
      [&j](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Ready>) {
          j = json{{"worker_id", m.worker_id}, {"hostname", m.hostname},
                   {"device", m.device},       {"memory_bytes", m.memory_bytes},
                   {"tags", m.tags},           {"loaded_models", m.loaded_models},
                   {"capacity", m.capacity},   {"running", RefsJson(m.running)}};
          if (m.installed_models) j["installed_models"] = *m.installed_models;
        } else if constexpr (std::is_same_v<T, Task>) {
          PutRef(j, m.ref);
          j["kind"] = TaskKindName(m.kind);
          j["shot"] = m.shot;
          j["frame_begin"] = m.frame_begin;
          j["frame_end"] = m.frame_end;
          j["settings"] = m.settings;
        } else if constexpr (std::is_same_v<T, Progress>) {
          PutRef(j, m.ref);
          j["frames_done"] = m.frames_done;
          j["frames_total"] = m.frames_total;
          j["message"] = m.message;
          if (m.steps_done >= 0) j["steps_done"] = m.steps_done;
          if (m.load_bytes_total > 0) {
            j["load_bytes_read"] = m.load_bytes_read;
            j["load_bytes_total"] = m.load_bytes_total;
          }
        } else if constexpr (std::is_same_v<T, Done>) {
          PutRef(j, m.ref);
          j["output"] = m.output;
          j["frames"] = m.frames;
          j["duration_ms"] = m.duration_ms;
          j["cache_bytes"] = m.cache_bytes;
        } else if constexpr (std::is_same_v<T, Failed>) {
          PutRef(j, m.ref);
          j["error"] = m.error;
          j["retryable"] = m.retryable;
        } else if constexpr (std::is_same_v<T, Heartbeat>) {
          j["running"] = m.running;
          if (m.installed_models) j["installed_models"] = *m.installed_models;
        } else if constexpr (std::is_same_v<T, Cancel>) {
          PutRef(j, m.ref);
          j["reason"] = m.reason;
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          j["reason"] = m.reason;
          j["handed_back"] = RefsJson(m.handed_back);
        }
      },
      message);
  return j;
}

Result<Message> FromJson(Command command, const json& body) {
  FieldReader r(command, body);
  Message out;
  switch (command) {
    case Command::kReady: {
      Ready m;
      m.worker_id = r.String("worker_id");
      m.hostname = r.String("hostname", false);
      m.device = r.String("device");
      m.memory_bytes = r.Int("memory_bytes", 0, INT64_MAX, false);
      m.tags = r.Strings("tags");
      m.loaded_models = r.Strings("loaded_models");
      m.installed_models = r.OptionalStrings("installed_models");
      m.capacity = r.Int("capacity", 1, 1024, false, 1);
      m.running = r.Refs("running");
      if (r.status().ok() && m.worker_id.empty()) r.Fail("worker_id", "must not be empty");
      out = std::move(m);
      break;
    }
    case Command::kTask: {
      Task m;
      m.ref = r.RefFields();
      std::string kind = r.String("kind");
      if (kind == "anchor") {
        m.kind = TaskKind::kAnchor;
      } else if (kind == "frames") {
        m.kind = TaskKind::kFrames;
      } else if (r.status().ok()) {
        r.Fail("kind", "expected 'anchor' or 'frames', got '" + kind + "'");
      }
      m.shot = r.Int("shot", 0, INT32_MAX);
      m.frame_begin = r.Int("frame_begin", 0, kMaxFrame);
      m.frame_end = r.Int("frame_end", 0, kMaxFrame);
      if (r.status().ok() && m.frame_end <= m.frame_begin) {
        r.Fail("frame_end",
               "must be greater than frame_begin (" + std::to_string(m.frame_begin) + ")");
      }
      if (const json* s = r.Object("settings")) m.settings = *s;
      out = std::move(m);
      break;
    }
    case Command::kProgress: {
      Progress m;
      m.ref = r.RefFields();
      m.frames_done = r.Int("frames_done", 0, kMaxFrame);
      m.frames_total = r.Int("frames_total", 0, kMaxFrame);
      m.message = r.String("message", false);
      m.steps_done = r.Int("steps_done", 0, INT64_MAX, false, -1);
      m.load_bytes_total = r.Int("load_bytes_total", 0, INT64_MAX, false);
      m.load_bytes_read = r.Int("load_bytes_read", 0, INT64_MAX, false);
      if (r.status().ok() && m.frames_done > m.frames_total) {
        r.Fail("frames_done", "exceeds frames_total");
      }
      if (r.status().ok() && m.load_bytes_read > m.load_bytes_total) {
        r.Fail("load_bytes_read", "exceeds load_bytes_total");
      }
      out = std::move(m);
      break;
    }
    case Command::kDone: {
      Done m;
      m.ref = r.RefFields();
      m.output = r.String("output", false);
      m.frames = r.Int("frames", 0, kMaxFrame);
      m.duration_ms = r.Int("duration_ms", 0, INT64_MAX, false);
      m.cache_bytes = r.Int("cache_bytes", 0, INT64_MAX, false);
      out = std::move(m);
      break;
    }
    case Command::kFailed: {
      Failed m;
      m.ref = r.RefFields();
      m.error = r.String("error");
      m.retryable = r.Bool("retryable", false, true);
      out = std::move(m);
      break;
    }
    case Command::kHeartbeat: {
      Heartbeat m;
      m.running = r.Int("running", 0, 1 << 20, false);
      m.installed_models = r.OptionalStrings("installed_models");
      out = std::move(m);
      break;
    }
    case Command::kCancel: {
      Cancel m;
      m.ref = r.RefFields();
      m.reason = r.String("reason", false);
      out = std::move(m);
      break;
    }
    case Command::kDisconnect: {
      Disconnect m;
      m.reason = r.String("reason", false);
      m.handed_back = r.Refs("handed_back");
      out = std::move(m);
      break;
    }
  }
  if (!r.status().ok()) return r.status();
  return out;
}

std::vector<std::string> Encode(const Message& message, Encoding encoding) {
  json body = ToJson(message);
  std::vector<std::string> frames;
  frames.reserve(5);
  frames.emplace_back(kSignature);
  frames.push_back(std::to_string(kProtocolVersion));
  frames.emplace_back(CommandName(CommandOf(message)));
  if (encoding == Encoding::kJson) {
    frames.emplace_back("json");
    frames.push_back(body.dump());
  } else {
    frames.emplace_back("msgpack");
    std::vector<uint8_t> bytes = json::to_msgpack(body);
    frames.emplace_back(bytes.begin(), bytes.end());
  }
  return frames;
}

Result<Message> Decode(const std::vector<std::string>& frames) {
  if (frames.size() != 5) {
    return Status::InvalidArgument("malformed message: expected 5 frames, got " +
                                   std::to_string(frames.size()));
  }
  if (frames[0] != kSignature) {
    return Status::InvalidArgument("malformed message: frame 0 is not the protocol signature '" +
                                   std::string(kSignature) + "'");
  }
  int version = 0;
  const std::string& v = frames[1];
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), version);
  if (ec != std::errc() || ptr != v.data() + v.size() || v.empty()) {
    return Status::InvalidArgument("malformed message: frame 1 is not a protocol version number");
  }
  if (version != kProtocolVersion) {
    return Status::Unsupported("protocol version " + std::to_string(version) +
                               " is not supported (this build speaks version " +
                               std::to_string(kProtocolVersion) + ")");
  }
  int index = -1;
  for (int i = 0; i < static_cast<int>(std::size(kCommandNames)); ++i) {
    if (frames[2] == kCommandNames[i]) index = i;
  }
  if (index < 0) {
    std::string shown = frames[2].substr(0, 32);
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    }
    return Status::InvalidArgument("malformed message: unknown command '" + shown + "'");
  }
  Command command = static_cast<Command>(index);
  const std::string& body_bytes = frames[4];
  if (body_bytes.size() > kMaxBodyBytes) {
    return Status::InvalidArgument(std::string(CommandName(command)) + ": body of " +
                                   std::to_string(body_bytes.size()) + " bytes exceeds the limit");
  }
  json body;
  if (frames[3] == "json") {
    body = json::parse(body_bytes, nullptr, /*allow_exceptions=*/false);
  } else if (frames[3] == "msgpack") {
    if (!MsgPackDepthAtMost(body_bytes, kMaxDepth)) {
      return Status::InvalidArgument(std::string(CommandName(command)) +
                                     ": body is not valid msgpack (truncated, trailing bytes or "
                                     "nested too deep)");
    }
    body = json::from_msgpack(body_bytes, /*strict=*/true, /*allow_exceptions=*/false);
  } else {
    return Status::InvalidArgument(std::string(CommandName(command)) +
                                   ": unknown body encoding (expected json or msgpack)");
  }
  if (body.is_discarded()) {
    return Status::InvalidArgument(std::string(CommandName(command)) + ": body is not valid " +
                                   frames[3]);
  }
  if (!DepthAtMost(body, kMaxDepth)) {
    return Status::InvalidArgument(std::string(CommandName(command)) +
                                   ": body nested deeper than " + std::to_string(kMaxDepth) +
                                   " levels");
  }
  return FromJson(command, body);
}

std::string Describe(const Message& message) {
  std::ostringstream out;
  out << CommandName(CommandOf(message));
  std::visit(
      [&out](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (requires { m.ref; }) {
          out << " job=" << m.ref.job_id << " task=" << m.ref.task_id
              << " attempt=" << m.ref.attempt;
        }
        if constexpr (std::is_same_v<T, Ready>) {
          out << " worker=" << m.worker_id << " device=" << m.device << " capacity=" << m.capacity
              << " running=" << m.running.size();
        }
        if constexpr (std::is_same_v<T, Failed>) out << " error=" << m.error;
        if constexpr (std::is_same_v<T, Disconnect>) out << " reason=" << m.reason;
      },
      message);
  return out.str();
}

}  // namespace fairy::protocol
