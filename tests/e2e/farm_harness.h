// A whole farm on loopback for end-to-end tests: a private redis-server, a fairy-coordinator
// process and fairy-worker processes (the real binaries from build/bin), talking over real ZeroMQ
// and HTTP. Processes log to files in the farm's folder (kept with FAIRY_KEEP_TEST_FILES=1).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "coordinator/api/http_client.h"
#include "tests/support/redis_server.h"

namespace fairy::testing {

// A child process (posix_spawn) with stdout and stderr appended to a log file.
class ChildProcess {
 public:
  static Result<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess();  // SIGKILL + reap if still running
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits up to timeout for the exit; returns the exit status (128+signal when killed), or -1.
  int Wait(std::chrono::milliseconds timeout);
  bool Running();

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// A free TCP port on 127.0.0.1 (bind to 0, read, close).
int FreePort();

struct FarmHarnessOptions {
  int workers = 2;
  int64_t heartbeat_interval_ms = 200;
  int heartbeat_liveness = 5;
  std::vector<std::string> coordinator_args;  // extra flags
  std::vector<std::string> worker_args;       // extra flags for every worker
  std::string worker_redis_url;               // the workers' anchor cache; "" = the farm's Redis
};

class FarmHarness {
 public:
  static Result<std::unique_ptr<FarmHarness>> Start(FarmHarnessOptions options = {});
  ~FarmHarness();

  const std::string& dir() const { return dir_; }  // storage root of the jobs
  const std::string& token() const { return token_; }
  std::string worker_endpoint() const { return "tcp://127.0.0.1:" + std::to_string(worker_port_); }
  RedisServer& redis() { return *redis_; }
  api::HttpClient Client(const std::string& token) const;
  api::HttpClient Client() const { return Client(token_); }

  Status StartCoordinator();
  ChildProcess* coordinator() { return coordinator_.get(); }
  // Starts worker `index` (id "w<index>"), with `extra_args` after the options' worker_args.
  Status StartWorker(int index, const std::vector<std::string>& extra_args = {});
  ChildProcess* worker(int index) { return workers_.count(index) ? workers_[index].get() : nullptr; }
  std::string WorkerLog(int index) const;
  std::string CoordinatorLog() const;

  // Submits YAML text; returns the first job id. Errors carry the API's message.
  Result<std::string> Submit(const std::string& yaml, const std::string& name = "job.yaml");
  Result<nlohmann::json> Job(const std::string& job_id) const;
  // Polls until the job's state is one of `states`; DeadlineExceeded (with the last status) otherwise.
  Result<nlohmann::json> WaitForState(const std::string& job_id, const std::set<std::string>& states,
                                      std::chrono::seconds timeout);
  // Polls until pred(status) holds.
  Result<nlohmann::json> WaitFor(const std::string& job_id, const std::function<bool(const nlohmann::json&)>& pred,
                                 std::chrono::seconds timeout);

 private:
  FarmHarness() = default;
  FarmHarnessOptions options_;
  std::string dir_;
  std::string token_ = "e2e-token";
  int worker_port_ = 0;
  int api_port_ = 0;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::map<int, std::unique_ptr<ChildProcess>> workers_;
};

// Decodes every frame of `path` at its own size and returns them (RGB24, one string per frame).
Result<std::vector<std::string>> DecodeAllFrames(const std::string& path);

}  // namespace fairy::testing
