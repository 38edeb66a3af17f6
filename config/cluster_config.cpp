#include "config/cluster_config.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "config/yaml_reader.h"

namespace fairy::config {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kDayMs = int64_t{24} * 3600 * 1000;
constexpr int64_t kMaxMs = 7 * kDayMs;  // a week: longer is a typo
constexpr uint64_t kMinPartBytes = 1ull << 20;
constexpr uint64_t kMaxPartBytes = 512ull << 20;  // Redis caps a value at 512 MB
const std::vector<std::string_view> kLogLevels = {"debug", "info", "warning", "error"};

// The state of one load: the reader, where relative paths go, which fields the command line set.
struct Context {
  YamlReader* reader;
  std::string base_dir;              // the config file's folder
  std::set<std::string> overridden;  // field paths set from the command line
  bool check_paths;

  bool FromCommandLine(const std::string& field) const {
    for (const std::string& o : overridden) {
      if (field == o || field.rfind(o + ".", 0) == 0 || field.rfind(o + "[", 0) == 0) return true;
      if (o.rfind(field + ".", 0) == 0) return false;
    }
    return false;
  }
  // Absolute, normalised (symlinks resolved where they exist) path of a configured path.
  std::string Resolve(const std::string& field, const std::string& value) const {
    fs::path p(value);
    if (p.is_relative()) {
      std::error_code ec;
      const fs::path base = FromCommandLine(field) ? fs::current_path(ec) : fs::path(base_dir);
      p = base / p;
    }
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(p, ec);
    if (ec) canonical = p.lexically_normal();
    return canonical.string();
  }
};

Status ReadTextFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IOError(path + ": read failed");
  *out = ss.str();
  return Status::OK();
}

// A secret from a file: the first line, trailing whitespace cut.
void ReadSecretFile(Context& c, const YAML::Node& map, const std::string& field,
                    const std::string& file_value, std::string* secret) {
  const std::string path = c.Resolve(field, file_value);
  std::string text;
  if (!ReadTextFile(path, &text).ok()) {
    c.reader->Error(YamlReader::Get(map, field.substr(field.rfind('.') + 1)), field,
                    "cannot read " + path, Status::Code::kNotFound);
    return;
  }
  const size_t nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text.empty()) {
    c.reader->Error(YamlReader::Get(map, field.substr(field.rfind('.') + 1)), field,
                    path + " is empty");
    return;
  }
  *secret = text;
}

void CheckEndpoint(Context& c, const YAML::Node& map, std::string_view path, std::string_view key,
                   const std::string& value) {
  static const std::regex kEndpoint(
      R"((tcp://[^\s:]+:(\*|[0-9]{1,5}))|(ipc://\S+)|(inproc://\S+))");
  if (!std::regex_match(value, kEndpoint)) {
    c.reader->Error(
        YamlReader::Get(map, key), YamlReader::Join(path, key),
        "must be a ZeroMQ endpoint such as tcp://HOST:PORT or ipc:///path, got \"" + value + "\"");
  }
}

void ReadRedis(Context& c, const YAML::Node& root, RedisConfig* redis) {
  YamlReader& r = *c.reader;
  const YAML::Node node = YamlReader::Get(root, "redis");
  if (!node.IsDefined()) return;
  if (!r.CheckMap(node, "redis", {"url", "password", "password_file", "key_prefix"})) return;
  if (r.ReadString(node, "redis", "url", &redis->url) && !redis->url.empty()) {
    static const std::regex kUrl(
        R"((redis://([^@\s]*@)?[^\s:/@]+(:[0-9]{1,5})?(/[0-9]+)?)|(unix://\S+))");
    if (!std::regex_match(redis->url, kUrl)) {
      r.Error(YamlReader::Get(node, "url"), "redis.url",
              "must be redis://HOST[:PORT][/DB] or unix:///PATH (or \"\" for none), got \"" +
                  redis->url + "\"");
    }
  }
  r.ReadString(node, "redis", "password", &redis->password);
  if (r.ReadString(node, "redis", "password_file", &redis->password_file) &&
      !redis->password_file.empty()) {
    if (!redis->password.empty()) {
      r.Error(YamlReader::Get(node, "password_file"), "redis.password_file",
              "set either redis.password or redis.password_file, not both");
    } else if (c.check_paths) {
      ReadSecretFile(c, node, "redis.password_file", redis->password_file, &redis->password);
    }
  }
  if (r.ReadString(node, "redis", "key_prefix", &redis->key_prefix)) {
    if (redis->key_prefix.empty() ||
        redis->key_prefix.find_first_of(" \t\r\n") != std::string::npos) {
      r.Error(YamlReader::Get(node, "key_prefix"), "redis.key_prefix",
              "must be non-empty and without spaces, got \"" + redis->key_prefix + "\"");
    }
  }
}

void ReadStorageRoots(Context& c, const YAML::Node& root, std::vector<std::string>* roots) {
  YamlReader& r = *c.reader;
  std::vector<std::string> raw;
  if (!r.ReadStringList(root, "", "storage_roots", &raw)) {
    if (YamlReader::Get(root, "storage_roots").IsDefined() || !c.check_paths) return;
    for (const std::string& d : *roots) {  // the built-in defaults: absolute already
      std::error_code ec;
      if (!fs::is_directory(d, ec)) {
        r.Error(root, "storage_roots",
                "folder " + d + " (the default) does not exist; set storage_roots",
                Status::Code::kNotFound);
      }
    }
    return;
  }
  const YAML::Node list = YamlReader::Get(root, "storage_roots");
  if (raw.empty()) {
    r.Error(list, "storage_roots",
            "needs at least one folder (jobs may only use paths under them)");
    return;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < raw.size(); ++i) {
    const std::string field = "storage_roots[" + std::to_string(i) + "]";
    const YAML::Node item = list.IsSequence() && i < list.size() ? list[i] : list;
    if (raw[i].empty()) {
      r.Error(item, field, "must not be empty");
      continue;
    }
    const std::string resolved = c.Resolve("storage_roots", raw[i]);
    std::error_code ec;
    if (c.check_paths && !fs::is_directory(resolved, ec)) {
      r.Error(item, field, "folder " + resolved + " does not exist", Status::Code::kNotFound);
      continue;
    }
    out.push_back(resolved);
  }
  *roots = std::move(out);
}

void ReadTags(Context& c, const YAML::Node& root, std::vector<std::string>* tags) {
  if (!c.reader->ReadStringList(root, "", "tags", tags)) return;
  static const std::regex kTag(R"([A-Za-z0-9_.:-]{1,64})");
  for (size_t i = 0; i < tags->size(); ++i) {
    if (!std::regex_match((*tags)[i], kTag)) {
      c.reader->Error(
          YamlReader::Get(root, "tags")[i], "tags[" + std::to_string(i) + "]",
          "must be 1..64 characters of A-Z a-z 0-9 _ . : -, got \"" + (*tags)[i] + "\"");
    }
  }
}

// Parses the text, applies the overrides; nullopt when the document is unusable.
std::optional<YAML::Node> LoadTree(const std::string& text, bool from_file,
                                   const LoadOptions& options, YamlReader& r, Context& c) {
  YAML::Node root(YAML::NodeType::Map);
  if (from_file) {
    auto parsed = r.Parse(text);
    if (!parsed) return std::nullopt;
    if (!parsed->IsMap()) {
      r.Error(*parsed, "",
              "a config file must be a mapping of keys to values, got " +
                  YamlReader::Describe(*parsed));
      return std::nullopt;
    }
    root.reset(*parsed);
  }
  for (const ConfigOverride& o : options.overrides) {
    r.AddOverrideLabel(o.path, o.label);
    c.overridden.insert(o.path);
    std::vector<std::string> parts;
    std::stringstream ss(o.path);
    for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
    bool bad = o.path.empty() || o.path.back() == '.';
    for (const std::string& p : parts) bad = bad || p.empty();
    if (bad) {
      r.Error(YAML::Node(), o.path, "is not a key path (expected names joined by dots)");
      continue;
    }
    YAML::Node value;
    if (o.literal || o.value.empty()) {
      value = YAML::Node(o.value);
    } else {
      try {
        value = YAML::Load(o.value);
      } catch (const YAML::Exception& e) {
        r.Error(YAML::Node(), o.path, "the value is not valid YAML: " + e.msg);
        continue;
      }
    }
    YAML::Node cur(root);
    bool ok = true;
    for (size_t i = 0; i + 1 < parts.size() && ok; ++i) {
      YAML::Node next = cur[parts[i]];
      if (!next.IsDefined() || next.IsNull()) {
        cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
        next.reset(cur[parts[i]]);
      }
      if (!next.IsMap()) {
        r.Error(YAML::Node(), o.path, "\"" + parts[i] + "\" is not a section");
        ok = false;
      }
      cur.reset(next);
    }
    if (ok) cur[parts.back()] = value;
  }
  return root;
}

Status ErrorsSince(const Diagnostics& all, size_t first) {
  Diagnostics errors;
  for (size_t i = first; i < all.items().size(); ++i) errors.Add(all.items()[i]);
  return errors.ToStatus();
}

}  // namespace

Result<ConfigOverride> ParseOverride(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument("--set " + text + ": expected KEY.PATH=VALUE");
  }
  ConfigOverride o;
  o.path = text.substr(0, eq);
  o.value = text.substr(eq + 1);
  o.label = "--set " + text;
  return o;
}

Result<CoordinatorConfig> ParseCoordinatorConfig(const std::string& text,
                                                 const std::string& file_name,
                                                 const std::string& base_dir,
                                                 const LoadOptions& options, Diagnostics* diags) {
  Diagnostics local;
  Diagnostics* d = diags ? diags : &local;
  const int errors_before = d->error_count();
  const size_t items_before = d->items().size();
  YamlReader r(file_name, d);
  Context c{&r, base_dir, {}, options.check_paths};
  CoordinatorConfig cfg;
  auto tree = LoadTree(text, !file_name.empty() || !text.empty(), options, r, c);
  if (tree) {
    const YAML::Node& root = *tree;
    r.CheckMap(root, "",
               {"worker_bind", "api", "redis", "storage_roots", "work_root", "default_model",
                "heartbeat_interval_ms", "heartbeat_liveness", "tasks", "workers", "media_threads",
                "anchor_cache", "finished_job_ttl_ms", "log_level"});
    if (r.ReadString(root, "", "worker_bind", &cfg.worker_bind)) {
      CheckEndpoint(c, root, "", "worker_bind", cfg.worker_bind);
    }
    const YAML::Node api = YamlReader::Get(root, "api");
    if (api.IsDefined() && r.CheckMap(api, "api", {"host", "port", "token", "token_file"})) {
      if (r.ReadString(api, "api", "host", &cfg.api_host) && cfg.api_host.empty()) {
        r.Error(YamlReader::Get(api, "host"), "api.host", "must not be empty");
      }
      r.ReadInt(api, "api", "port", 0, 65535, &cfg.api_port);
      r.ReadString(api, "api", "token", &cfg.api_token);
      if (r.ReadString(api, "api", "token_file", &cfg.api_token_file) &&
          !cfg.api_token_file.empty()) {
        if (!cfg.api_token.empty()) {
          r.Error(YamlReader::Get(api, "token_file"), "api.token_file",
                  "set either api.token or api.token_file, not both");
        } else if (c.check_paths) {
          ReadSecretFile(c, api, "api.token_file", cfg.api_token_file, &cfg.api_token);
        }
      }
    }
    ReadRedis(c, root, &cfg.redis);
    ReadStorageRoots(c, root, &cfg.storage_roots);
    if (r.ReadString(root, "", "work_root", &cfg.work_root) && !cfg.work_root.empty()) {
      cfg.work_root = c.Resolve("work_root", cfg.work_root);
    }
    if (r.ReadString(root, "", "default_model", &cfg.default_model) && cfg.default_model.empty()) {
      r.Error(YamlReader::Get(root, "default_model"), "default_model", "must not be empty");
    }
    r.ReadInt(root, "", "heartbeat_interval_ms", 10, 60000, &cfg.heartbeat_interval_ms);
    r.ReadInt(root, "", "heartbeat_liveness", 1, 100, &cfg.heartbeat_liveness);
    const YAML::Node tasks = YamlReader::Get(root, "tasks");
    if (tasks.IsDefined() &&
        r.CheckMap(tasks, "tasks",
                   {"max_retries", "retry_backoff_ms", "max_backoff_ms", "max_time_ms",
                    "progress_timeout_ms", "stall_floor_ms", "stall_factor", "stall_unmeasured_ms",
                    "stall_threshold", "worker_failure_threshold", "aging_ms_per_point"})) {
      r.ReadInt(tasks, "tasks", "max_retries", 0, 100, &cfg.max_retries);
      r.ReadInt(tasks, "tasks", "retry_backoff_ms", 0, kMaxMs, &cfg.retry_backoff_ms);
      if (r.ReadInt(tasks, "tasks", "max_backoff_ms", 0, kMaxMs, &cfg.max_backoff_ms) ||
          YamlReader::Get(tasks, "retry_backoff_ms").IsDefined()) {
        if (cfg.max_backoff_ms < cfg.retry_backoff_ms) {
          r.Error(YamlReader::Get(tasks, "max_backoff_ms"), "tasks.max_backoff_ms",
                  "must be >= tasks.retry_backoff_ms (" + std::to_string(cfg.retry_backoff_ms) +
                      "), got " + std::to_string(cfg.max_backoff_ms));
        }
      }
      r.ReadInt(tasks, "tasks", "max_time_ms", 0, kMaxMs, &cfg.task_max_ms);
      r.ReadInt(tasks, "tasks", "progress_timeout_ms", 0, kMaxMs, &cfg.progress_timeout_ms);
      r.ReadInt(tasks, "tasks", "stall_floor_ms", 0, kMaxMs, &cfg.stall_floor_ms);
      r.ReadDouble(tasks, "tasks", "stall_factor", 1, 1000, &cfg.stall_factor);
      r.ReadInt(tasks, "tasks", "stall_unmeasured_ms", 0, kMaxMs, &cfg.stall_unmeasured_ms);
      r.ReadInt(tasks, "tasks", "stall_threshold", 0, 1000, &cfg.stall_threshold);
      r.ReadInt(tasks, "tasks", "worker_failure_threshold", 0, 1000, &cfg.worker_failure_threshold);
      r.ReadInt(tasks, "tasks", "aging_ms_per_point", 0, kMaxMs, &cfg.aging_ms_per_point);
    }
    const YAML::Node workers = YamlReader::Get(root, "workers");
    if (workers.IsDefined() && r.CheckMap(workers, "workers", {"max_slots"})) {
      r.ReadInt(workers, "workers", "max_slots", 1, 1024, &cfg.max_worker_slots);
    }
    r.ReadInt(root, "", "media_threads", 1, 64, &cfg.media_threads);
    const YAML::Node cache = YamlReader::Get(root, "anchor_cache");
    if (cache.IsDefined() && r.CheckMap(cache, "anchor_cache", {"max_part_bytes", "ttl_ms"})) {
      r.ReadInt(cache, "anchor_cache", "max_part_bytes", static_cast<int64_t>(kMinPartBytes),
                static_cast<int64_t>(kMaxPartBytes), &cfg.anchor_cache_max_part_bytes);
      r.ReadInt(cache, "anchor_cache", "ttl_ms", 0, kMaxMs, &cfg.anchor_cache_ttl_ms);
    }
    r.ReadInt(root, "", "finished_job_ttl_ms", 0, 365 * kDayMs, &cfg.finished_job_ttl_ms);
    r.ReadEnum(root, "", "log_level", kLogLevels, &cfg.log_level);
  }
  if (d->error_count() > errors_before) return ErrorsSince(*d, items_before);
  return cfg;
}

Result<WorkerConfig> ParseWorkerConfig(const std::string& text, const std::string& file_name,
                                       const std::string& base_dir, const LoadOptions& options,
                                       Diagnostics* diags) {
  Diagnostics local;
  Diagnostics* d = diags ? diags : &local;
  const int errors_before = d->error_count();
  const size_t items_before = d->items().size();
  YamlReader r(file_name, d);
  Context c{&r, base_dir, {}, options.check_paths};
  WorkerConfig cfg;
  auto tree = LoadTree(text, !file_name.empty() || !text.empty(), options, r, c);
  if (tree) {
    const YAML::Node& root = *tree;
    r.CheckMap(
        root, "",
        {"coordinator", "worker_id", "device", "dtype", "slots", "tags", "models_dir",
         "model_variant", "redis", "storage_roots", "heartbeat_interval_ms", "heartbeat_liveness",
         "reconnect_min_ms", "reconnect_max_ms", "drain_grace_ms", "anchor_cache", "log_level"});
    if (r.ReadString(root, "", "coordinator", &cfg.coordinator)) {
      CheckEndpoint(c, root, "", "coordinator", cfg.coordinator);
    }
    if (r.ReadString(root, "", "worker_id", &cfg.worker_id)) {
      static const std::regex kId(R"([A-Za-z0-9_.:-]{0,128})");
      if (!std::regex_match(cfg.worker_id, kId)) {
        r.Error(
            YamlReader::Get(root, "worker_id"), "worker_id",
            "must be up to 128 characters of A-Z a-z 0-9 _ . : -, got \"" + cfg.worker_id + "\"");
      }
    }
    if (r.ReadString(root, "", "device", &cfg.device)) {
      static const std::regex kDevice(R"(cpu|cuda(:[0-9]{1,2})?)");
      if (!std::regex_match(cfg.device, kDevice)) {
        r.Error(YamlReader::Get(root, "device"), "device",
                "must be cpu, cuda or cuda:N, got \"" + cfg.device + "\"");
      }
    }
    if (r.ReadEnum(root, "", "dtype", {"float32", "float16", "bfloat16"}, &cfg.dtype) ||
        YamlReader::Get(root, "device").IsDefined()) {
      if (cfg.dtype != "float32" && cfg.device == "cpu") {
        r.Error(YamlReader::Get(root, "dtype"), "dtype",
                cfg.dtype + " needs a cuda device; the cpu runs float32");
      }
    }
    r.ReadInt(root, "", "slots", 1, 64, &cfg.slots);
    ReadTags(c, root, &cfg.tags);
    if (r.ReadString(root, "", "models_dir", &cfg.models_dir) && !cfg.models_dir.empty()) {
      cfg.models_dir = c.Resolve("models_dir", cfg.models_dir);
    }
    if (r.ReadString(root, "", "model_variant", &cfg.model_variant)) {
      static const std::regex kVariant(R"([a-z0-9_]{0,32})");
      if (!std::regex_match(cfg.model_variant, kVariant)) {
        r.Error(YamlReader::Get(root, "model_variant"), "model_variant",
                "must be a diffusers variant name such as fp16 (a-z 0-9 _), got \"" +
                    cfg.model_variant + "\"");
      }
    }
    ReadRedis(c, root, &cfg.redis);
    ReadStorageRoots(c, root, &cfg.storage_roots);
    r.ReadInt(root, "", "heartbeat_interval_ms", 10, 60000, &cfg.heartbeat_interval_ms);
    r.ReadInt(root, "", "heartbeat_liveness", 1, 100, &cfg.heartbeat_liveness);
    r.ReadInt(root, "", "reconnect_min_ms", 1, 600000, &cfg.reconnect_min_ms);
    if (r.ReadInt(root, "", "reconnect_max_ms", 1, 600000, &cfg.reconnect_max_ms) ||
        YamlReader::Get(root, "reconnect_min_ms").IsDefined()) {
      if (cfg.reconnect_max_ms < cfg.reconnect_min_ms) {
        r.Error(YamlReader::Get(root, "reconnect_max_ms"), "reconnect_max_ms",
                "must be >= reconnect_min_ms (" + std::to_string(cfg.reconnect_min_ms) + "), got " +
                    std::to_string(cfg.reconnect_max_ms));
      }
    }
    r.ReadInt(root, "", "drain_grace_ms", 0, kMaxMs, &cfg.drain_grace_ms);
    const YAML::Node cache = YamlReader::Get(root, "anchor_cache");
    if (cache.IsDefined() && r.CheckMap(cache, "anchor_cache", {"max_part_bytes", "fp16"})) {
      r.ReadInt(cache, "anchor_cache", "max_part_bytes", static_cast<int64_t>(kMinPartBytes),
                static_cast<int64_t>(kMaxPartBytes), &cfg.anchor_cache_max_part_bytes);
      r.ReadBool(cache, "anchor_cache", "fp16", &cfg.anchor_cache_fp16);
    }
    r.ReadEnum(root, "", "log_level", kLogLevels, &cfg.log_level);
  }
  if (d->error_count() > errors_before) return ErrorsSince(*d, items_before);
  return cfg;
}

namespace {

template <typename T, typename Parse>
Result<T> LoadFile(const std::string& path, const LoadOptions& options, Diagnostics* diags,
                   Parse parse) {
  if (path.empty()) return parse(std::string(), std::string(), std::string(), options, diags);
  std::string text;
  Status s = ReadTextFile(path, &text);
  if (!s.ok()) {
    if (diags)
      diags->Add(Diagnostic::FileError(path, s.message().substr(path.size() + 2), s.code()));
    return s;
  }
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(path), ec).parent_path();
  return parse(text, path, dir.string(), options, diags);
}

}  // namespace

Result<CoordinatorConfig> LoadCoordinatorConfig(const std::string& path, const LoadOptions& options,
                                                Diagnostics* diags) {
  return LoadFile<CoordinatorConfig>(path, options, diags, ParseCoordinatorConfig);
}

Result<WorkerConfig> LoadWorkerConfig(const std::string& path, const LoadOptions& options,
                                      Diagnostics* diags) {
  return LoadFile<WorkerConfig>(path, options, diags, ParseWorkerConfig);
}

}  // namespace fairy::config
