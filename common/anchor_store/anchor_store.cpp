#include "common/anchor_store/anchor_store.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace fairy::anchor {
namespace {

using redis::Reply;
using redis::Script;

constexpr uint64_t kMaxFetchBytes = 64ull << 30;   // a manifest claiming more is damaged
constexpr int64_t kStagingTtlMs = 15 * 60 * 1000;  // abandoned uploads vanish after 15 min

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomToken() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd() ^ uint64_t(NowMs());
  return Hex64(v);
}

// Length-prefixed fields: "name=len:value;" so no two field sets serialize alike.
void Put(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->push_back('=');
  out->append(std::to_string(value.size()));
  out->push_back(':');
  out->append(value);
  out->push_back(';');
}

std::string FormatDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// Shared Lua: the part count recorded in a manifest (0 if absent or unreadable).
constexpr const char* kLuaPartCount = R"lua(
local function part_count(manifest_key)
  local raw = redis.call('GET', manifest_key)
  if not raw then return 0 end
  local ok, m = pcall(cjson.decode, raw)
  if ok and type(m) == 'table' and tonumber(m.part_count) then return tonumber(m.part_count) end
  return 0
end
)lua";

// KEYS: manifest, attempts hash (or any key when unfenced), job set, holders set.
// ARGV: fence field, fence attempt ('' = unfenced), manifest JSON, part count, staging prefix,
//       final prefix, cache key, job id.
// Returns 'ok' or 'stale:<live attempt>'.
const Script& PublishScript() {
  static const Script script(std::string(kLuaPartCount) + R"lua(
local n = tonumber(ARGV[4])
local staging, final = ARGV[5], ARGV[6]
if ARGV[2] ~= '' then
  local live = redis.call('HGET', KEYS[2], ARGV[1])
  if live ~= ARGV[2] then
    for i = 0, n - 1 do redis.call('DEL', staging .. i) end
    return 'stale:' .. tostring(live)
  end
end
for i = 0, n - 1 do
  if redis.call('EXISTS', staging .. i) == 0 then
    return redis.error_reply('anchor publish: staging part ' .. i .. ' of ' .. n .. ' is missing (expired?)')
  end
end
local old = part_count(KEYS[1])
for i = n, old - 1 do redis.call('DEL', final .. i) end
for i = 0, n - 1 do
  redis.call('RENAME', staging .. i, final .. i)
  redis.call('PERSIST', final .. i)
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[7])
redis.call('PERSIST', KEYS[3])
redis.call('SADD', KEYS[4], ARGV[8])
redis.call('PERSIST', KEYS[4])
return 'ok'
)lua");
  return script;
}

// KEYS: the job's set (anchorjob:{job}). ARGV: mode, ttl ms, anchor prefix ("<prefix>anchor:"),
// job id, cache key (modes 'attach', 'release' and 'delete-one').
//   attach:      the job holds the entry: job set and holders set gain it, expiry removed.
//   release:     the job lets go of the entry; if no other job holds it, it expires after ttl.
//                Returns 1 when a complete entry was set to expire.
//   delete-one:  the entry goes, whoever holds it.
//   expire / delete: the job lets go of every entry in its set; an entry no other job holds any
//                more expires after ttl (or is deleted now). Returns the number of such entries.
const Script& JobScript() {
  static const Script script(std::string(kLuaPartCount) + R"lua(
local mode, ttl, prefix, job = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function apply(k, m)
  local manifest = prefix .. k .. ':manifest'
  local n = part_count(manifest)
  local keys = {manifest, prefix .. k .. ':jobs'}
  for i = 0, n - 1 do keys[#keys + 1] = prefix .. k .. ':part:' .. i end
  for _, key in ipairs(keys) do
    if m == 'delete' then redis.call('DEL', key)
    elseif m == 'expire' then redis.call('PEXPIRE', key, ttl)
    else redis.call('PERSIST', key) end
  end
end
if mode == 'attach' then
  redis.call('SADD', KEYS[1], ARGV[5])
  redis.call('PERSIST', KEYS[1])
  redis.call('SADD', prefix .. ARGV[5] .. ':jobs', job)
  apply(ARGV[5], 'persist')
  return 1
end
if mode == 'release' then
  local holders = prefix .. ARGV[5] .. ':jobs'
  redis.call('SREM', KEYS[1], ARGV[5])
  redis.call('SREM', holders, job)
  if redis.call('SCARD', holders) > 0 then return 0 end
  local complete = redis.call('EXISTS', prefix .. ARGV[5] .. ':manifest')
  apply(ARGV[5], 'expire')
  return complete
end
if mode == 'delete-one' then
  apply(ARGV[5], 'delete')
  return 1
end
local touched = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local holders = prefix .. k .. ':jobs'
  redis.call('SREM', holders, job)
  if redis.call('SCARD', holders) == 0 then
    apply(k, mode)
    touched = touched + 1
  end
end
redis.call('DEL', KEYS[1])
return touched
)lua");
  return script;
}

Status CheckKey(const std::string& key) {
  if (key.empty() || key.find_first_of(" \r\n:") != std::string::npos) {
    return Status::InvalidArgument("anchor cache key '" + key +
                                   "' is empty or contains ' ', ':' or a newline");
  }
  return Status::OK();
}

// Unavailable when an entry of `bytes` would fill Redis past `fill` of its maxmemory. A Redis
// that does not answer INFO (a restricted managed one) is not checked.
Status CheckRoom(redis::RedisClient& client, const std::string& key, uint64_t bytes, double fill) {
  if (fill <= 0 || bytes == 0) return Status::OK();
  auto info = client.Command({"INFO", "memory"});
  if (!info.ok() || info->is_error()) return Status::OK();
  const auto used_text = redis::InfoField(info->str, "used_memory");
  const auto max_text = redis::InfoField(info->str, "maxmemory");
  if (!used_text || !max_text) return Status::OK();
  const uint64_t used = std::strtoull(used_text->c_str(), nullptr, 10);
  const uint64_t max = std::strtoull(max_text->c_str(), nullptr, 10);
  if (max == 0 || static_cast<double>(used + bytes) <= fill * static_cast<double>(max)) {
    return Status::OK();
  }
  return Status::Unavailable(
      "anchor cache " + key + ": " + std::to_string(bytes) + " bytes would fill Redis past " +
      std::to_string(static_cast<int>(fill * 100)) + "% of its maxmemory (" + std::to_string(used) +
      " of " + std::to_string(max) + " bytes in use); the rest is kept for the farm's state");
}

}  // namespace

std::string AnchorCacheKey(const AnchorKeyFields& f) {
  std::string s = "fairy-anchor-key-v1;";
  Put(&s, "model_id", f.model_id);
  Put(&s, "model_digest", f.model_digest);
  Put(&s, "instruction", f.instruction);
  Put(&s, "width", std::to_string(f.width));
  Put(&s, "height", std::to_string(f.height));
  Put(&s, "steps", std::to_string(f.steps));
  Put(&s, "guidance_text", FormatDouble(f.guidance_text));
  Put(&s, "guidance_image", FormatDouble(f.guidance_image));
  Put(&s, "seed", std::to_string(f.seed));
  Put(&s, "noise", f.noise);
  Put(&s, "scheduler", f.scheduler);
  std::string anchors;
  for (int64_t a : f.anchor_frames) anchors += std::to_string(a) + ",";
  Put(&s, "anchor_frames", anchors);
  Put(&s, "source_identity", f.source_identity);
  Put(&s, "dtype", f.dtype);
  Put(&s, "engine_version", f.engine_version);
  return Hex64(XxHash64(s.data(), s.size(), 0)) +
         Hex64(XxHash64(s.data(), s.size(), 0x9E3779B97F4A7C15ULL));
}

nlohmann::json AnchorManifest::ToJson() const {
  return nlohmann::json{{"format", "fairy-anchor-cache-v1"},
                        {"model_id", model_id},
                        {"dtype", dtype},
                        {"shapes", shapes},
                        {"steps", steps},
                        {"layers", layers},
                        {"job_id", job_id},
                        {"extra", extra},
                        {"byte_size", byte_size},
                        {"checksum", checksum},
                        {"part_bytes", part_bytes},
                        {"part_count", part_count},
                        {"part_checksums", part_checksums},
                        {"created_ms", created_ms}};
}

Result<AnchorManifest> AnchorManifest::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::Corruption("anchor manifest: not a JSON object");
  AnchorManifest m;
  auto field = [&](const char* name, auto* out) -> Status {
    auto it = j.find(name);
    if (it == j.end())
      return Status::Corruption(std::string("anchor manifest: field '") + name + "' is missing");
    try {
      it->get_to(*out);
    } catch (const nlohmann::json::exception& e) {
      return Status::Corruption(std::string("anchor manifest: field '") + name +
                                "' has the wrong type: " + e.what());
    }
    return Status::OK();
  };
  FAIRY_RETURN_IF_ERROR(field("model_id", &m.model_id));
  FAIRY_RETURN_IF_ERROR(field("dtype", &m.dtype));
  FAIRY_RETURN_IF_ERROR(field("shapes", &m.shapes));
  FAIRY_RETURN_IF_ERROR(field("steps", &m.steps));
  FAIRY_RETURN_IF_ERROR(field("layers", &m.layers));
  FAIRY_RETURN_IF_ERROR(field("job_id", &m.job_id));
  FAIRY_RETURN_IF_ERROR(field("byte_size", &m.byte_size));
  FAIRY_RETURN_IF_ERROR(field("checksum", &m.checksum));
  FAIRY_RETURN_IF_ERROR(field("part_bytes", &m.part_bytes));
  FAIRY_RETURN_IF_ERROR(field("part_count", &m.part_count));
  FAIRY_RETURN_IF_ERROR(field("part_checksums", &m.part_checksums));
  FAIRY_RETURN_IF_ERROR(field("created_ms", &m.created_ms));
  if (auto it = j.find("extra"); it != j.end()) m.extra = *it;
  if (m.part_count < 0 || static_cast<int64_t>(m.part_checksums.size()) != m.part_count) {
    return Status::Corruption("anchor manifest: part_count " + std::to_string(m.part_count) +
                              " but " + std::to_string(m.part_checksums.size()) +
                              " part_checksums");
  }
  if (m.part_count > 0 && (m.part_bytes == 0 || (m.byte_size + m.part_bytes - 1) / m.part_bytes !=
                                                    uint64_t(m.part_count))) {
    return Status::Corruption("anchor manifest: byte_size " + std::to_string(m.byte_size) +
                              " does not split into " + std::to_string(m.part_count) +
                              " parts of " + std::to_string(m.part_bytes));
  }
  if (m.part_count == 0 && m.byte_size != 0)
    return Status::Corruption("anchor manifest: byte_size > 0 with no parts");
  return m;
}

AnchorStore::AnchorStore(redis::RedisClient* client, AnchorStoreOptions options)
    : client_(client), options_(std::move(options)), keys_(options_.key_prefix) {
  if (options_.max_part_bytes == 0) options_.max_part_bytes = 64ull << 20;
  if (options_.max_part_bytes > (512ull << 20)) options_.max_part_bytes = 512ull << 20;
  if (options_.pipeline_parts < 1) options_.pipeline_parts = 1;
}

Result<AnchorManifest> AnchorStore::Publish(const std::string& key, const std::string& job_id,
                                            AnchorManifest manifest, std::span<const uint8_t> data,
                                            const std::optional<PublishFence>& fence) {
  FAIRY_RETURN_IF_ERROR(CheckKey(key));
  FAIRY_RETURN_IF_ERROR(CheckRoom(*client_, key, data.size(), options_.max_memory_fill));
  const uint64_t part_bytes = options_.max_part_bytes;
  const int64_t part_count =
      data.empty() ? 0 : static_cast<int64_t>((data.size() + part_bytes - 1) / part_bytes);
  manifest.byte_size = data.size();
  manifest.part_bytes = part_bytes;
  manifest.part_count = part_count;
  manifest.part_checksums.clear();
  manifest.created_ms = NowMs();
  if (manifest.job_id.empty()) manifest.job_id = job_id;

  const std::string token = RandomToken();
  const std::string staging_prefix = keys_.AnchorStagingPart(key, token, 0);  // "...:part:0"
  const std::string staging = staging_prefix.substr(0, staging_prefix.size() - 1);
  const std::string final_prefix0 = keys_.AnchorPart(key, 0);
  const std::string final_prefix = final_prefix0.substr(0, final_prefix0.size() - 1);
  const std::string ttl = std::to_string(kStagingTtlMs);

  // Checksums: XXH64 per part; the whole-blob checksum is XXH64 over the part digests
  // (little-endian) so the data is read once.
  XxHash64State whole(0);
  std::vector<std::string> names(part_count);
  for (int64_t begin = 0; begin < part_count; begin += options_.pipeline_parts) {
    const int64_t end = std::min<int64_t>(part_count, begin + options_.pipeline_parts);
    std::vector<std::vector<std::string_view>> cmds;
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t off = uint64_t(i) * part_bytes;
      const uint64_t len = std::min<uint64_t>(part_bytes, data.size() - off);
      uint64_t h = XxHash64(data.data() + off, len, 0);
      unsigned char le[8];
      for (int b = 0; b < 8; ++b) le[b] = static_cast<unsigned char>(h >> (8 * b));
      whole.Update(le, 8);
      manifest.part_checksums.push_back("xxh64:" + Hex64(h));
      names[i] = staging + std::to_string(i);
      cmds.push_back({"SET", names[i],
                      std::string_view(reinterpret_cast<const char*>(data.data() + off), len), "PX",
                      ttl});
    }
    FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, client_->PipelineLarge(cmds));
    for (size_t r = 0; r < replies.size(); ++r) {
      if (replies[r].is_error()) {
        return Status::Unavailable("anchor cache " + key + ": upload of part " +
                                   std::to_string(begin + int64_t(r)) + " refused by redis " +
                                   client_->endpoint() + ": " + replies[r].str);
      }
    }
  }
  manifest.checksum = "xxh64-parts:" + Hex64(whole.Digest());
  const std::string manifest_json = manifest.ToJson().dump();
  const std::string attempts_key = fence ? keys_.Attempts(fence->job_id) : keys_.AnchorJob(job_id);
  const std::string fence_field = fence ? fence->task_id : "";
  const std::string fence_attempt = fence ? std::to_string(fence->attempt) : "";
  const std::string count = std::to_string(part_count);
  FAIRY_ASSIGN_OR_RETURN(
      Reply reply,
      client_->Eval(
          PublishScript(),
          {keys_.AnchorManifest(key), attempts_key, keys_.AnchorJob(job_id), keys_.AnchorJobs(key)},
          {fence_field, fence_attempt, manifest_json, count, staging, final_prefix, key, job_id}));
  if (reply.str.rfind("stale:", 0) == 0) {
    return Status::FailedPrecondition(
        "stale attempt: anchor cache " + key + " from " + fence->job_id + "/" + fence->task_id +
        " attempt " + fence_attempt + " refused; live attempt is " + reply.str.substr(6));
  }
  if (reply.str != "ok")
    return Status::Internal("anchor cache " + key + ": publish script answered " +
                            reply.DebugString());
  return manifest;
}

Result<AnchorManifest> AnchorStore::FetchManifest(const std::string& key) {
  FAIRY_RETURN_IF_ERROR(CheckKey(key));
  FAIRY_ASSIGN_OR_RETURN(Reply r, client_->Command({"GET", keys_.AnchorManifest(key)}));
  if (r.is_nil())
    return Status::NotFound("anchor cache " + key + ": no manifest at " +
                            keys_.AnchorManifest(key));
  nlohmann::json j = nlohmann::json::parse(r.str, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status::Corruption("anchor cache " + key + ": manifest is not valid JSON");
  auto m = AnchorManifest::FromJson(j);
  if (!m.ok()) return m.status().WithContext("anchor cache " + key);
  return m;
}

Result<std::vector<uint8_t>> AnchorStore::Fetch(const std::string& key,
                                                AnchorManifest* manifest_out) {
  Status last;
  // A concurrent re-publish of the same key can swap parts under a reader; the checksums catch it
  // and one re-read of the (new) manifest settles it.
  for (int round = 0; round < 2; ++round) {
    FAIRY_ASSIGN_OR_RETURN(AnchorManifest m, FetchManifest(key));
    if (m.byte_size > kMaxFetchBytes) {
      return Status::Corruption("anchor cache " + key + ": manifest byte_size " +
                                std::to_string(m.byte_size) + " is over the 64 GiB sanity limit");
    }
    std::vector<uint8_t> out(m.byte_size);
    XxHash64State whole(0);
    last = Status::OK();
    for (int64_t begin = 0; begin < m.part_count && last.ok(); begin += options_.pipeline_parts) {
      const int64_t end = std::min<int64_t>(m.part_count, begin + options_.pipeline_parts);
      std::vector<std::string> names;
      std::vector<std::string_view> name_views;
      std::vector<redis::RedisClient::BulkTarget> targets;
      for (int64_t i = begin; i < end; ++i) {
        names.push_back(keys_.AnchorPart(key, i));
        const uint64_t off = uint64_t(i) * m.part_bytes;
        const uint64_t want = std::min<uint64_t>(m.part_bytes, m.byte_size - off);
        targets.push_back({std::span<uint8_t>(out.data() + off, want), -2, ""});
      }
      for (const auto& n : names) name_views.push_back(n);
      // Values land straight in `out`; a part of the wrong size is skipped and reported below.
      FAIRY_RETURN_IF_ERROR(client_->GetInto(name_views, &targets));
      for (int64_t i = begin; i < end && last.ok(); ++i) {
        const auto& t = targets[i - begin];
        if (!t.error.empty()) {
          last = Status::Unavailable("anchor cache " + key + ": GET " + names[i - begin] + ": " +
                                     t.error);
        } else if (t.size == -1) {
          last = Status::NotFound("anchor cache " + key + ": part " + std::to_string(i) + " of " +
                                  std::to_string(m.part_count) + " is missing (" +
                                  names[i - begin] + ")");
        } else if (static_cast<uint64_t>(t.size) != t.dest.size()) {
          last = Status::Corruption("anchor cache " + key + ": part " + std::to_string(i) +
                                    " has " + std::to_string(t.size) + " bytes, manifest says " +
                                    std::to_string(t.dest.size()));
        } else {
          uint64_t h = XxHash64(t.dest.data(), t.dest.size(), 0);
          if ("xxh64:" + Hex64(h) != m.part_checksums[i]) {
            last = Status::Corruption("anchor cache " + key + ": part " + std::to_string(i) +
                                      " checksum xxh64:" + Hex64(h) + " != manifest " +
                                      m.part_checksums[i]);
          } else {
            unsigned char le[8];
            for (int b = 0; b < 8; ++b) le[b] = static_cast<unsigned char>(h >> (8 * b));
            whole.Update(le, 8);
          }
        }
      }
    }
    if (last.ok()) {
      const std::string sum = "xxh64-parts:" + Hex64(whole.Digest());
      if (sum != m.checksum) {
        last = Status::Corruption("anchor cache " + key + ": checksum " + sum + " != manifest " +
                                  m.checksum);
      }
    }
    if (last.ok()) {
      if (manifest_out != nullptr) *manifest_out = std::move(m);
      return out;
    }
    // Retry only if the entry changed meanwhile.
    auto again = FetchManifest(key);
    if (!again.ok() || again->created_ms == m.created_ms) break;
  }
  return last;
}

Result<bool> AnchorStore::Exists(const std::string& key) {
  FAIRY_RETURN_IF_ERROR(CheckKey(key));
  FAIRY_ASSIGN_OR_RETURN(Reply r, client_->Command({"EXISTS", keys_.AnchorManifest(key)}));
  return r.integer == 1;
}

Status AnchorStore::Attach(const std::string& key, const std::string& job_id) {
  FAIRY_RETURN_IF_ERROR(CheckKey(key));
  return client_
      ->Eval(JobScript(), {keys_.AnchorJob(job_id)},
             {"attach", "0", keys_.prefix() + "anchor:", job_id, key})
      .status();
}

Status AnchorStore::Delete(const std::string& key) {
  FAIRY_RETURN_IF_ERROR(CheckKey(key));
  return client_
      ->Eval(JobScript(), {keys_.AnchorJob("")},
             {"delete-one", "0", keys_.prefix() + "anchor:", "", key})
      .status();
}

Result<bool> AnchorStore::Release(const std::string& key, const std::string& job_id,
                                  int64_t ttl_ms) {
  FAIRY_RETURN_IF_ERROR(CheckKey(key));
  if (ttl_ms < 1) ttl_ms = 1;
  FAIRY_ASSIGN_OR_RETURN(Reply r, client_->Eval(JobScript(), {keys_.AnchorJob(job_id)},
                                                {"release", std::to_string(ttl_ms),
                                                 keys_.prefix() + "anchor:", job_id, key}));
  return r.integer == 1;
}

Result<int64_t> AnchorStore::ExpireJob(const std::string& job_id, int64_t ttl_ms) {
  if (ttl_ms < 1) ttl_ms = 1;
  FAIRY_ASSIGN_OR_RETURN(Reply r, client_->Eval(JobScript(), {keys_.AnchorJob(job_id)},
                                                {"expire", std::to_string(ttl_ms),
                                                 keys_.prefix() + "anchor:", job_id}));
  return static_cast<int64_t>(r.integer);
}

Result<int64_t> AnchorStore::DeleteJob(const std::string& job_id) {
  FAIRY_ASSIGN_OR_RETURN(Reply r,
                         client_->Eval(JobScript(), {keys_.AnchorJob(job_id)},
                                       {"delete", "0", keys_.prefix() + "anchor:", job_id}));
  return static_cast<int64_t>(r.integer);
}

}  // namespace fairy::anchor
