// A private redis-server for integration tests: a free loopback port, its own temp folder,
// AOF on (appendfsync everysec), no RDB snapshots. Start() waits until it answers PING; the
// destructor kills it (SIGTERM, then SIGKILL) and reaps it.
//
//   auto server = fairy::testing::RedisServer::Start();
//   ASSERT_TRUE(server.ok()) << server.status().ToString();
//   auto client = fairy::redis::RedisClient::Connect((*server)->url());
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::testing {

struct RedisServerOptions {
  std::string password;                 // requirepass when non-empty
  std::string binary = "redis-server";  // looked up on PATH
  std::vector<std::string> extra_args;  // e.g. {"--maxmemory", "100mb"}
  int start_timeout_ms = 10000;
};

class RedisServer {
 public:
  static Result<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  const std::string& host() const { return host_; }
  // redis://[:password@]127.0.0.1:PORT/0
  std::string url() const;
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }

  // Kills the server with SIGKILL (a crash) and waits for it. For recovery tests.
  void Kill();
  // Starts it again on the same port and folder (the AOF is replayed). REQUIRES: Kill() first.
  Status Restart();

 private:
  RedisServer() = default;
  Status Launch();
  Status WaitReady();

  RedisServerOptions options_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace fairy::testing
