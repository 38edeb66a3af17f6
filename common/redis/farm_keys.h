// The farm's Redis key layout (DESIGN.md section 4, docs/redis-layout.md): the ONE place that
// spells key names, shared by the coordinator's store, the anchor cache and the workers.
// Every key starts with a configurable prefix (default "fairy:"), so several farms can share one
// Redis. The functions only build strings; they do no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fairy::redis {

inline constexpr std::string_view kDefaultKeyPrefix = "fairy:";

class FarmKeys {
 public:
  explicit FarmKeys(std::string prefix = std::string(kDefaultKeyPrefix))
      : prefix_(std::move(prefix)) {}
  const std::string& prefix() const { return prefix_; }

  // job:{id} hash: spec, state, priority, counters, timestamps (one field each).
  std::string Job(std::string_view job_id) const { return Cat("job:", job_id); }
  // job:{id}:tasks hash: task id -> task record (JSON).
  std::string Tasks(std::string_view job_id) const { return Cat("job:", job_id, ":tasks"); }
  // job:{id}:attempts hash: task id -> current attempt number (decimal). The fencing truth:
  // a result of (task, attempt) is accepted only while this field equals attempt.
  std::string Attempts(std::string_view job_id) const { return Cat("job:", job_id, ":attempts"); }
  // jobs set: every job id known to the store (finished ones too, until deleted).
  std::string Jobs() const { return Cat("jobs"); }
  // queue sorted set: unfinished job ids by (priority, submit time); see QueueScore().
  std::string Queue() const { return Cat("queue"); }
  // events stream: every state change and progress report.
  std::string Events() const { return Cat("events"); }
  // worker:{id} hash with a TTL refreshed by heartbeats.
  std::string Worker(std::string_view worker_id) const { return Cat("worker:", worker_id); }
  // log:{job} stream of task log lines.
  std::string Log(std::string_view job_id) const { return Cat("log:", job_id); }
  // anchor:{key}:manifest string (JSON) and anchor:{key}:part:{n} binary parts.
  std::string AnchorManifest(std::string_view key) const {
    return Cat("anchor:", key, ":manifest");
  }
  std::string AnchorPart(std::string_view key, int64_t n) const {
    return Cat("anchor:", key, ":part:", std::to_string(n));
  }
  // anchor:{key}:staging:{token}:part:{n}: parts being uploaded, renamed into place on commit.
  std::string AnchorStagingPart(std::string_view key, std::string_view token, int64_t n) const {
    return Cat("anchor:", key, ":staging:", token, ":part:", std::to_string(n));
  }
  // anchor:{key}:jobs set: the jobs holding an anchor cache entry (it goes when the last lets go).
  std::string AnchorJobs(std::string_view key) const { return Cat("anchor:", key, ":jobs"); }
  // anchorjob:{job} set: the anchor keys a job published or used (for expiry/deletion per job).
  std::string AnchorJob(std::string_view job_id) const { return Cat("anchorjob:", job_id); }

 private:
  template <typename... Parts>
  std::string Cat(const Parts&... parts) const {
    std::string out = prefix_;
    (out.append(parts), ...);
    return out;
  }
  std::string prefix_;
};

// Score of a job in the queue sorted set: ascending score = scheduled first. Higher priority
// first, then earlier submit time. REQUIRES: 0 <= priority <= 100, submit_ms >= 0 (the score
// stays an exact integer in a double while submit_ms < 1e13, i.e. until the year 2286).
inline double QueueScore(int priority, int64_t submit_ms) {
  const int64_t p = priority < 0 ? 0 : (priority > 100 ? 100 : priority);
  return static_cast<double>((100 - p) * 10'000'000'000'000LL + submit_ms);
}

}  // namespace fairy::redis
