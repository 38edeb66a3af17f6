#include "tests/e2e/farm_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/media/frame_reader.h"
#include "tests/support/test_paths.h"

extern char** environ;

namespace fairy::testing {

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                          const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  int rc = posix_spawn(&child->pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Status::IOError("cannot start " + argv[0] + ": " + std::strerror(rc));
  return child;
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    Signal(SIGKILL);
    Wait(std::chrono::milliseconds(5000));
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

bool ChildProcess::Running() {
  if (pid_ <= 0 || status_ >= 0) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

int ChildProcess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Running()) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

Result<std::unique_ptr<FarmHarness>> FarmHarness::Start(FarmHarnessOptions options) {
  std::unique_ptr<FarmHarness> f(new FarmHarness());
  f->options_ = std::move(options);
  f->dir_ = MakeTempDir("fairy-farm-e2e");
  FAIRY_ASSIGN_OR_RETURN(f->redis_, RedisServer::Start());
  f->worker_port_ = FreePort();
  f->api_port_ = FreePort();
  FAIRY_RETURN_IF_ERROR(f->StartCoordinator());
  for (int i = 0; i < f->options_.workers; ++i) FAIRY_RETURN_IF_ERROR(f->StartWorker(i));
  return f;
}

FarmHarness::~FarmHarness() {
  workers_.clear();
  coordinator_.reset();
}

api::HttpClient FarmHarness::Client(const std::string& token) const {
  return api::HttpClient(api::ApiEndpoint{"127.0.0.1", static_cast<uint16_t>(api_port_)}, token,
                         30000);
}

std::string FarmHarness::CoordinatorLog() const { return dir_ + "/coordinator.log"; }
std::string FarmHarness::WorkerLog(int index) const {
  return dir_ + "/worker" + std::to_string(index) + ".log";
}

Status FarmHarness::StartCoordinator() {
  std::vector<std::string> argv = {BinDir() + "/fairy-coordinator",
                                   "--redis-url",
                                   redis_->url(),
                                   "--worker-bind",
                                   worker_endpoint(),
                                   "--api-port",
                                   std::to_string(api_port_),
                                   "--api-token",
                                   token_,
                                   "--storage-root",
                                   dir_,
                                   "--storage-root",
                                   SharedDir(),
                                   "--storage-root",
                                   SourceDir() + "/models",
                                   "--default-model",
                                   SourceDir() + "/models/fairy-tiny",
                                   "--heartbeat-interval-ms",
                                   std::to_string(options_.heartbeat_interval_ms),
                                   "--heartbeat-liveness",
                                   std::to_string(options_.heartbeat_liveness),
                                   "--retry-backoff-ms",
                                   "100"};
  argv.insert(argv.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
  FAIRY_ASSIGN_OR_RETURN(coordinator_, ChildProcess::Spawn(argv, CoordinatorLog()));
  // Ready when the API answers.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = Client().Request("GET", "/v1/health");
    if (r.ok() && r->status == 200) return Status::OK();
    if (!coordinator_->Running())
      return Status::Internal("fairy-coordinator exited; see " + CoordinatorLog());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::DeadlineExceeded("fairy-coordinator did not answer; see " + CoordinatorLog());
}

Status FarmHarness::StartWorker(int index, const std::vector<std::string>& extra_args) {
  std::string worker_id = "w";  // built with += (GCC 12 -Wrestrict false positive on "w" + string)
  worker_id += std::to_string(index);
  std::vector<std::string> argv = {
      BinDir() + "/fairy-worker",
      "--coordinator",
      worker_endpoint(),
      "--worker-id",
      worker_id,
      "--redis-url",
      options_.worker_redis_url.empty() ? redis_->url() : options_.worker_redis_url,
      "--heartbeat-interval-ms",
      std::to_string(options_.heartbeat_interval_ms),
      "--heartbeat-liveness",
      std::to_string(options_.heartbeat_liveness),
      "--drain-grace-ms",
      "5000",
      "--storage-root",
      dir_,
      "--storage-root",
      SharedDir(),
      "--storage-root",
      SourceDir() + "/models"};
  argv.insert(argv.end(), options_.worker_args.begin(), options_.worker_args.end());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  FAIRY_ASSIGN_OR_RETURN(workers_[index], ChildProcess::Spawn(argv, WorkerLog(index)));
  return Status::OK();
}

Result<std::string> FarmHarness::Submit(const std::string& yaml, const std::string& name) {
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json r,
                         Client().Json("POST", "/v1/jobs?name=" + api::UrlEncode(name), yaml));
  if (!r.contains("jobs") || r["jobs"].empty())
    return Status::Internal("submit returned no job id");
  return r["jobs"][0].get<std::string>();
}

Result<nlohmann::json> FarmHarness::Job(const std::string& job_id) const {
  return Client().Json("GET", "/v1/jobs/" + api::UrlEncode(job_id));
}

Result<nlohmann::json> FarmHarness::WaitFor(const std::string& job_id,
                                            const std::function<bool(const nlohmann::json&)>& pred,
                                            std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = Job(job_id);
    if (r.ok()) {
      last = *r;
      if (pred(last)) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::DeadlineExceeded(
      "job " + job_id +
      " did not reach the expected state; last status: " + last.dump().substr(0, 2000));
}

Result<nlohmann::json> FarmHarness::WaitForState(const std::string& job_id,
                                                 const std::set<std::string>& states,
                                                 std::chrono::seconds timeout) {
  return WaitFor(
      job_id, [&](const nlohmann::json& j) { return states.count(j.value("state", "")) > 0; },
      timeout);
}

Result<std::vector<std::string>> DecodeAllFrames(const std::string& path) {
  FAIRY_ASSIGN_OR_RETURN(auto reader, media::FrameReader::Open(path));
  std::vector<std::string> frames;
  media::RgbFrame frame;
  while (true) {
    FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame));
    if (!got) break;
    frames.emplace_back(frame.pixels.begin(), frame.pixels.end());
  }
  return frames;
}

}  // namespace fairy::testing
