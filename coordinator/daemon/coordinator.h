// Coordinator: the farm's coordinator process as a component (fairy-coordinator's main is a thin
// wrapper; tests may embed one).
//
// One boost::asio::io_context, run by ONE thread (Run()), owns all scheduling state: the Scheduler,
// the Store, the job plans. Other threads only post() to it:
//   - the RouterLink's thread posts every decoded worker message;
//   - the control API's HTTP sessions run on the same io_context;
//   - the media pool (analyze, stitch) posts its results back.
// Every Scheduler action list is executed in order; Persist actions (Redis first) come before the
// actions that depend on them, so a coordinator killed at any point resumes from Redis: Start()
// recovers every unfinished job and re-adopts the tasks that reconnecting workers report; finished
// jobs are loaded too (listed, retryable) until finished_job_ttl_ms deletes them.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/anchor_store/anchor_store.h"
#include "common/protocol/protocol.h"
#include "coordinator/api/http_server.h"
#include "coordinator/daemon/job_plan.h"
#include "coordinator/link/router_link.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/store.h"

namespace fairy::coordinator {

struct CoordinatorOptions {
  std::string worker_bind = "tcp://0.0.0.0:5555";  // ZeroMQ ROUTER endpoint for workers
  api::HttpServerOptions api;                      // control API (token required)
  scheduler::SchedulerOptions scheduler;
  std::string redis_url;        // "" = in-memory store: nothing survives a restart (tests, demos)
  std::string redis_password;   // AUTH password ("" = none or given in the URL)
  std::string key_prefix = "fairy:";
  SubmitContext submit;         // storage roots, work root, default model
  int media_threads = 2;        // analyze/stitch pool size
  int64_t anchor_cache_ttl_ms = 600 * 1000;  // an entry no task needs any more lives this long
  int64_t finished_job_ttl_ms = 0;  // a finished job is deleted this long after it ended; 0 = never
  int64_t tick_ms = 200;        // scheduler Tick period
};

class Coordinator final : public api::ControlHandler {
 public:
  // Connects the store (Redis or memory), recovers unfinished jobs, binds the worker endpoint
  // and the API. Unavailable when Redis or a port cannot be reached.
  static Result<std::unique_ptr<Coordinator>> Start(CoordinatorOptions options);
  ~Coordinator() override;

  // Runs the event loop on the calling thread until Shutdown().
  void Run();
  // Thread-safe; makes Run() return after closing the API and the link.
  void Shutdown();

  const std::string& worker_endpoint() const { return worker_endpoint_; }
  uint16_t api_port() const { return api_ ? api_->port() : 0; }

  // ---- api::ControlHandler (called on the loop thread) ----
  Result<nlohmann::json> Submit(const std::string& yaml, const std::string& source_name,
                                std::optional<int> priority) override;
  Result<nlohmann::json> ListJobs(const std::vector<std::string>& states) override;
  Result<nlohmann::json> JobStatus(const std::string& job_id) override;
  Result<nlohmann::json> Control(const std::string& job_id, const std::string& op, int priority) override;
  Result<nlohmann::json> Workers() override;
  Result<nlohmann::json> Logs(const std::string& job_id, const std::string& task_filter,
                              const std::string& after_id, int limit) override;
  Result<nlohmann::json> Events(const std::string& after_id, int limit) override;
  std::string Metrics() override;

 private:
  explicit Coordinator(CoordinatorOptions options);
  Status Init();

  // Loop-thread only below.
  // Handles every message waiting in inbox_ (a burst from many workers is one batch), then
  // executes all their actions and the assignments that follow with one batch of store writes.
  void OnWorkerMessages();
  void HandleWorkerMessage(const std::string& peer, protocol::Message message, scheduler::Actions* actions,
                           std::vector<std::pair<std::string, scheduler::LogLine>>* logs);
  void Execute(scheduler::Actions actions);
  // Offers the free worker slots to the scheduler, appending its assignments to `actions`, then
  // executes the list: an event's writes and the assignments that follow it share one store
  // round trip (a DONE and the next TASK cost one Redis round trip, not two).
  void ExecuteAndDispatch(scheduler::Actions actions);
  void ScheduleTick();
  Status Reload();  // rebuilds the scheduler from the store (at start, after a persist failure)
  // Deletes jobs finished more than finished_job_ttl_ms ago from the store and from memory.
  void PurgeFinishedJobs();
  const JobPlan* Plan(const std::string& job_id);
  void StartAnalyze(const std::string& job_id);
  void StartStitch(const std::string& job_id);
  void DropAnchorCache(const std::string& job_id, bool delete_now);
  // The job lets go of one entry (its shot is edited): it expires after anchor_cache.ttl_ms
  // unless another job holds it.
  void ReleaseAnchorCacheEntry(const std::string& job_id, const std::string& key);
  void RecordRate();
  nlohmann::json JobSummary(const scheduler::JobRecord& job) const;
  Status CheckOutputsAreFree(const std::vector<JobPlan>& plans, const std::string& source_name);
  void Log(const std::string& job_id, const std::string& task_id, const std::string& worker_id,
           const std::string& line);

  CoordinatorOptions options_;
  boost::asio::io_context io_;
  boost::asio::steady_timer tick_timer_{io_};
  boost::asio::thread_pool media_pool_;
  scheduler::SystemClock clock_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<redis::RedisClient> anchor_redis_;  // loop thread's own connection (cache drop)
  std::unique_ptr<anchor::AnchorStore> anchors_;
  std::unique_ptr<link::RouterLink> link_;
  std::mutex inbox_mutex_;  // the link's thread appends, the loop drains
  std::deque<std::pair<std::string, protocol::Message>> inbox_;
  std::unique_ptr<api::HttpServer> api_;
  std::string worker_endpoint_;
  std::atomic<bool> shutting_down_{false};
  int64_t next_purge_ms_ = 0;  // PurgeFinishedJobs' next run

  std::map<std::string, JobPlan> plans_;             // job id -> plan (parsed spec)
  std::map<std::string, std::string> worker_peers_;  // worker id -> routing id
  // A TASK's settings depend only on the job's plan and the shot: built once per shot, not per
  // task. Valid while the shot is the one they were built for; cleared on Reload and when large.
  struct ShotSettings {
    scheduler::ShotPlan shot;
    nlohmann::json settings;
  };
  std::map<std::pair<std::string, int>, ShotSettings> shot_settings_;  // (job id, shot index)
  const nlohmann::json& TaskSettings(const JobPlan& plan, const std::string& job_id,
                                     const scheduler::ShotPlan& shot);
  // Metrics.
  std::deque<std::pair<int64_t, int64_t>> rate_samples_;  // (ms, frames done) for frames/s
  static constexpr double kDurationBuckets[] = {1, 5, 15, 60, 300, 900, 3600};  // seconds
  int64_t duration_counts_[std::size(kDurationBuckets)] = {};  // attempts <= bucket bound
  int64_t duration_count_ = 0;
  double duration_sum_s_ = 0;
  int64_t cache_bytes_published_ = 0;
  int64_t anchor_caches_unpublished_ = 0;
  int64_t messages_rejected_base_ = 0;
};

}  // namespace fairy::coordinator
