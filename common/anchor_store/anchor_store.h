// The anchor cache in Redis: an opaque byte blob (the engine's serialized anchor K/V for every
// layer, step and guidance branch) published by the worker that ran a shot's ANCHOR task and
// fetched by every worker that edits frames of that shot.
//
// Lives in common/ because both the worker (publish, fetch) and the coordinator (expire or delete
// a job's entries) use it; it needs only hiredis, never LibTorch.
//
// Layout (common/redis/farm_keys.h, docs/redis-layout.md):
//   anchor:{key}:manifest  JSON AnchorManifest (written last; its presence means "complete")
//   anchor:{key}:part:{n}  n = 0..part_count-1, each at most max_part_bytes
//   anchor:{key}:jobs      set of the jobs holding the entry (published or attached it)
//   anchorjob:{job}        set of the keys a job published or attached (expiry/deletion per job)
// Publish uploads the parts to staging keys (pipelined), then ONE Lua script checks the fence,
// renames the staging parts into place and writes the manifest, so readers never see a mix of
// two uploads and a publish from a stale attempt changes nothing.
//
// Threading: an AnchorStore uses the caller's RedisClient and is not thread-safe (one per thread).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/farm_keys.h"
#include "common/redis/redis_client.h"
#include "common/status.h"

namespace fairy::anchor {

// Everything the anchor features depend on. Two jobs with equal fields share one cache entry.
struct AnchorKeyFields {
  std::string model_id;      // the model as the job names it (folder name or path)
  std::string model_digest;  // what identifies its files (the worker's ModelDigest); "" if unknown
  std::string instruction;
  int64_t width = 0;  // edit resolution
  int64_t height = 0;
  int64_t steps = 0;
  double guidance_text = 0;
  double guidance_image = 0;
  uint64_t seed = 0;
  std::string noise = "per_frame";     // the job's edit.noise: per_frame | shared
  std::string scheduler = "euler_ancestral";  // the job's edit.scheduler: euler_ancestral | euler
  std::vector<int64_t> anchor_frames;  // absolute indices in the source
  std::string source_identity;  // what identifies the source video: path + size + mtime, or a hash
  std::string dtype;            // "F32", "F16", ...
  std::string engine_version;   // bump when the cache format changes
};

// 32 lowercase hex digits: a 128-bit hash (two XXH64 with different seeds) of a canonical,
// length-prefixed serialization of every field, so no two different field sets collide by
// concatenation.
std::string AnchorCacheKey(const AnchorKeyFields& fields);

// XXH64 (the xxHash specification, https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md).
uint64_t XxHash64(const void* data, size_t size, uint64_t seed = 0);
// Incremental XXH64 over several pieces (same result as one call over their concatenation).
class XxHash64State {
 public:
  explicit XxHash64State(uint64_t seed = 0);
  void Update(const void* data, size_t size);
  uint64_t Digest() const;

 private:
  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buffer_[32];
  size_t buffered_ = 0;
};

struct AnchorManifest {
  // Filled by the publisher:
  std::string model_id;
  std::string dtype;
  std::vector<std::vector<int64_t>> shapes;  // shapes of the tensors in the blob, in order
  int64_t steps = 0;
  int64_t layers = 0;
  std::string job_id;    // publisher's job (informational)
  nlohmann::json extra;  // anything else the engine wants to keep (null if none)
  // Filled by Publish:
  uint64_t byte_size = 0;
  std::string checksum;     // "xxh64:<16 hex>" of the whole blob
  uint64_t part_bytes = 0;  // size of every part but the last
  int64_t part_count = 0;
  std::vector<std::string> part_checksums;  // "xxh64:<16 hex>" per part (names the bad part)
  int64_t created_ms = 0;

  nlohmann::json ToJson() const;
  static Result<AnchorManifest> FromJson(const nlohmann::json& j);  // errors name the field
};

struct AnchorStoreOptions {
  std::string key_prefix = std::string(redis::kDefaultKeyPrefix);
  uint64_t max_part_bytes =
      64ull << 20;         // bytes per part (default 64 MiB; Redis caps values at 512 MB)
  int pipeline_parts = 4;  // parts in flight per round trip
  // Publish only while Redis's used memory plus the entry stays under this fraction of its
  // maxmemory (no maxmemory: no limit); the rest is kept for the farm's state. 0 = no check.
  double max_memory_fill = 0.9;
};

// Write fencing for Publish: the live attempt table hash key and field (farm_keys Attempts(job),
// task id) must hold `attempt` (decimal) at commit time.
struct PublishFence {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;
};

class AnchorStore {
 public:
  // REQUIRES: client outlives the store.
  AnchorStore(redis::RedisClient* client, AnchorStoreOptions options = {});

  // Uploads `data` under `key` and records `key` in the job's set. Replaces an existing entry.
  // With a fence: FailedPrecondition "stale attempt ..." when the attempt is no longer live (the
  // staging parts are removed; nothing visible changes). Unavailable, before anything is written,
  // when the entry would fill Redis past max_memory_fill. Returns the manifest as stored.
  Result<AnchorManifest> Publish(const std::string& key, const std::string& job_id,
                                 AnchorManifest manifest, std::span<const uint8_t> data,
                                 const std::optional<PublishFence>& fence = std::nullopt);
  // NotFound when no complete entry exists.
  Result<AnchorManifest> FetchManifest(const std::string& key);
  // Reads every part and verifies part count, sizes and checksums: Corruption names the key and
  // part. NotFound when absent (or a part expired). `manifest` (optional) receives the manifest.
  Result<std::vector<uint8_t>> Fetch(const std::string& key, AnchorManifest* manifest = nullptr);
  // Whether a complete entry exists.
  Result<bool> Exists(const std::string& key);
  // Adds `key` to the job's set and removes any expiry (a re-submitted job reuses an entry).
  Status Attach(const std::string& key, const std::string& job_id);
  // The job lets go of one entry (a shot whose frames are all edited): if no other job holds it,
  // it expires after ttl_ms. Returns whether a complete entry was set to expire.
  Result<bool> Release(const std::string& key, const std::string& job_id, int64_t ttl_ms);
  // Deletes one entry, whoever holds it.
  Status Delete(const std::string& key);
  // The job lets go of every entry it published or attached; an entry that no other job holds
  // any more expires after ttl_ms (job ended) or is deleted now (job cancelled, whole-job retry).
  // Entries another running job still holds stay. Returns the number of entries expired/deleted.
  Result<int64_t> ExpireJob(const std::string& job_id, int64_t ttl_ms);
  Result<int64_t> DeleteJob(const std::string& job_id);

  const AnchorStoreOptions& options() const { return options_; }

 private:
  redis::RedisClient* client_;
  AnchorStoreOptions options_;
  redis::FarmKeys keys_;
};

}  // namespace fairy::anchor
