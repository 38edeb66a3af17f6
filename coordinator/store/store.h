// The coordinator's durable state: jobs, tasks, live attempts (fencing), workers, the events
// stream and task logs. Two implementations with the same contract (tests/unit/store_contract*,
// run against both): RedisStore (DESIGN.md section 4 layout, docs/redis-layout.md) and MemoryStore
// (tests, single-process runs without Redis).
//
// Threading: a Store is NOT thread-safe; the coordinator's event loop owns it (RedisStore owns one
// Redis connection). Make one per thread if another thread needs to read.
//
// Contract:
// - Apply() is atomic: all of the Mutation or nothing. With a fence, it applies only while
//   fence.attempt is the live attempt of (fence.job_id, fence.task_id); otherwise it returns
//   FailedPrecondition whose message starts with "stale attempt" and changes nothing. After it,
//   the live attempt of every task written is its `attempt` when ASSIGNED/RUNNING, else 0.
// - ApplyAll() applies mutations in order, each exactly as Apply() would (RedisStore: in one round
//   trip). Unlike a loop of Apply() that stops at the first error, every mutation is tried: a
//   caller that gets an error must reload its state from the store.
// - A job record written with state QUEUED/RUNNING/PAUSED is in the queue (scored by priority,
//   submit time); DONE/FAILED/CANCELLED removes it from the queue.
// - LoadAll() returns every job (or only unfinished ones) with all its tasks, enough for
//   Scheduler::Recover(). The spec (shots) come back as written by the last Apply with
//   include_spec (include_plan).
// - Workers expire ttl_ms after the last PutWorker (heartbeat refresh).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/redis/farm_keys.h"
#include "common/redis/redis_client.h"
#include "common/status.h"
#include "coordinator/scheduler/clock.h"
#include "coordinator/scheduler/records.h"

namespace fairy::store {

using scheduler::Event;
using scheduler::JobRecord;
using scheduler::JobSnapshot;
using scheduler::LogLine;
using scheduler::Mutation;
using scheduler::TaskRecord;
using scheduler::WorkerRecord;

class Store {
 public:
  virtual ~Store() = default;

  virtual Status Apply(const Mutation& mutation) = 0;
  // One Status per mutation, in order.
  virtual std::vector<Status> ApplyAll(const std::vector<const Mutation*>& mutations) {
    std::vector<Status> out;
    out.reserve(mutations.size());
    for (const Mutation* m : mutations) out.push_back(Apply(*m));
    return out;
  }
  // NotFound when the job is unknown.
  virtual Result<JobSnapshot> LoadJob(const std::string& job_id) = 0;
  virtual Result<std::vector<JobSnapshot>> LoadAll(bool unfinished_only) = 0;
  // Job ids in queue order (unfinished jobs only).
  virtual Result<std::vector<std::string>> QueueOrder() = 0;
  // Removes the job, its tasks, attempts and log. OK when already absent.
  virtual Status DeleteJob(const std::string& job_id) = 0;
  // The live attempt of a task (0 when none is live or the task is unknown).
  virtual Result<int64_t> LiveAttempt(const std::string& job_id, const std::string& task_id) = 0;

  virtual Status PutWorker(const WorkerRecord& worker, int64_t ttl_ms) = 0;
  // PutWorker() of each (worker, ttl_ms) that may return before they are written (RedisStore:
  // sent without waiting for the replies). Returns the first error known by now of writes made
  // this way or by AppendLogsLater(), else whether these could be sent.
  virtual Status PutWorkersLater(
      const std::vector<std::pair<const WorkerRecord*, int64_t>>& workers) {
    Status first;
    for (const auto& [worker, ttl_ms] : workers) {
      Status s = PutWorker(*worker, ttl_ms);
      if (first.ok()) first = s;
    }
    return first;
  }
  virtual Status DeleteWorker(const std::string& worker_id) = 0;
  // Workers whose TTL has not run out, by id.
  virtual Result<std::vector<WorkerRecord>> LoadWorkers() = 0;

  // Events appended after `after_id` ("" or "0" = from the start), at most `max_count`.
  virtual Result<std::vector<Event>> ReadEvents(const std::string& after_id, int max_count) = 0;
  virtual Status AppendLog(const std::string& job_id, const LogLine& line) = 0;
  // (job id, line) pairs in order (RedisStore: one round trip). The first error, after trying all.
  virtual Status AppendLogs(const std::vector<std::pair<std::string, LogLine>>& lines) {
    Status first;
    for (const auto& [job_id, line] : lines) {
      Status s = AppendLog(job_id, line);
      if (first.ok()) first = s;
    }
    return first;
  }
  // AppendLogs() that may return before the lines are written (RedisStore: sent without waiting
  // for the replies; later calls of this store see the lines). Returns the first error known by
  // now of writes made this way or by PutWorkersLater(), else whether these could be sent.
  virtual Status AppendLogsLater(const std::vector<std::pair<std::string, LogLine>>& lines) {
    return AppendLogs(lines);
  }
  virtual Result<std::vector<LogLine>> ReadLog(const std::string& job_id,
                                               const std::string& after_id, int max_count) = 0;
};

struct RedisStoreOptions {
  std::string key_prefix = std::string(redis::kDefaultKeyPrefix);  // namespace of every key
  int64_t events_max_len = 100000;  // events stream trimmed (approximately) to this many entries
  int64_t log_max_len = 20000;      // per-job log stream trimmed to this many lines
};

// REQUIRES: clock outlives the store (MemoryStore uses it for worker TTLs and stream ids).
std::unique_ptr<Store> NewMemoryStore(const scheduler::Clock* clock);
// Takes ownership of the client. Loads nothing at construction.
std::unique_ptr<Store> NewRedisStore(std::unique_ptr<redis::RedisClient> client,
                                     RedisStoreOptions options = {});

}  // namespace fairy::store
