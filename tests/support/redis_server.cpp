#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "tests/support/test_paths.h"

namespace fairy::testing {
namespace {

// Binds port 0 on loopback to learn a free port. Another process may take it before
// redis-server binds; Start() retries with a new port then.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  if (ok) {
    // Redis answers "+PONG" (or "-NOAUTH" with a password: still alive). During AOF load it
    // answers "-LOADING": not ready yet.
    const char kPing[] = "PING\r\n";
    ok = write(fd, kPing, sizeof(kPing) - 1) == static_cast<ssize_t>(sizeof(kPing) - 1);
    char buf[64] = {};
    ssize_t n = ok ? read(fd, buf, sizeof(buf) - 1) : -1;
    ok = n > 0 &&
         (std::string(buf).rfind("+PONG", 0) == 0 || std::string(buf).rfind("-NOAUTH", 0) == 0);
  }
  close(fd);
  return ok;
}

}  // namespace

Result<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->options_ = std::move(options);
  server->dir_ = MakeTempDir("fairy-redis");
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = FreePort();
    if (server->port_ == 0) return Status::IOError("RedisServer: cannot find a free loopback port");
    last = server->Launch();
    if (last.ok()) last = server->WaitReady();
    if (last.ok()) return server;
    server->Kill();
  }
  return last;
}

Status RedisServer::Launch() {
  std::vector<std::string> args = {options_.binary,
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   host_,
                                   "--dir",
                                   dir_,
                                   "--appendonly",
                                   "yes",
                                   "--appendfsync",
                                   "everysec",
                                   "--save",
                                   "",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir_ + "/redis.log",
                                   "--protected-mode",
                                   "no"};
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  pid_ = fork();
  if (pid_ < 0) return Status::IOError("RedisServer: fork failed");
  if (pid_ == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return Status::OK();
}

Status RedisServer::WaitReady() {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.start_timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(dir_ + "/redis.log");
      std::string tail, line;
      while (std::getline(log, line)) tail = line;
      return Status::Unavailable("RedisServer: " + options_.binary + " on port " +
                                 std::to_string(port_) + " exited (status " +
                                 std::to_string(wstatus) + "): " + tail);
    }
    if (CanConnect(port_)) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::DeadlineExceeded("RedisServer: no PONG on port " + std::to_string(port_) +
                                  " within " + std::to_string(options_.start_timeout_ms) +
                                  " ms (log: " + dir_ + "/redis.log)");
}

std::string RedisServer::url() const {
  std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
  return "redis://" + auth + host_ + ":" + std::to_string(port_) + "/0";
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

Status RedisServer::Restart() {
  if (pid_ > 0) return Status::FailedPrecondition("RedisServer: Restart() while still running");
  FAIRY_RETURN_IF_ERROR(Launch());
  return WaitReady();
}

RedisServer::~RedisServer() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
}

}  // namespace fairy::testing
