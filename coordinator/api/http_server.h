// The coordinator's control API: HTTP/1.1 + JSON on Boost.Beast over Boost.Asio.
//
// Every route requires "Authorization: Bearer <token>" (401 with a JSON error otherwise, compared
// in constant time). Routes (docs/cli.md lists the JSON shapes):
//   POST /v1/jobs[?priority=N&name=FILE]      body: job YAML -> 201 {"jobs":[...]} | 400 file:line
//   GET  /v1/jobs                             -> {"jobs":[...]}
//   GET  /v1/jobs/{id}                        -> job record + "tasks" table + "shots"
//   POST /v1/jobs/{id}/{cancel|pause|resume}  -> the job record
//   POST /v1/jobs/{id}/retry[?scope=failed|job]
//   POST /v1/jobs/{id}/priority?value=N       (or body {"priority": N})
//   GET  /v1/jobs/{id}/logs?after=ID&task=T&limit=N&wait_ms=MS   long-poll when wait_ms > 0
//   GET  /v1/events?after=ID&limit=N&wait_ms=MS                  long-poll when wait_ms > 0
//   GET  /v1/workers                          -> {"workers":[...]}
//   GET  /v1/health                           -> {"ok":true,...}
//   GET  /metrics                             Prometheus text format 0.0.4
// Errors are JSON {"error": "...", "code": "InvalidArgument"} with a status mapped from the Status
// code (400 InvalidArgument, 404 NotFound, 409 FailedPrecondition, 403 PermissionDenied,
// 503 Unavailable, 500 otherwise).
//
// Threading: the server runs on the io_context it is given and calls the ControlHandler only from
// that io_context's thread(s); with a single-threaded io_context (the coordinator's event loop) the
// handler needs no locks.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/status.h"

namespace fairy::api {

// What the API serves. Implemented by the coordinator daemon (and by fakes in tests).
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  // `source_name` is the file name the client submitted (for file:line errors).
  virtual Result<nlohmann::json> Submit(const std::string& yaml, const std::string& source_name,
                                        std::optional<int> priority) = 0;
  // `states`: only jobs in these states (names as listed, e.g. "RUNNING"); empty = every job.
  virtual Result<nlohmann::json> ListJobs(const std::vector<std::string>& states) = 0;
  virtual Result<nlohmann::json> JobStatus(const std::string& job_id) = 0;
  // op: "cancel", "pause", "resume", "retry-failed", "retry-job", "priority".
  virtual Result<nlohmann::json> Control(const std::string& job_id, const std::string& op,
                                         int priority) = 0;
  virtual Result<nlohmann::json> Workers() = 0;
  // {"lines":[...], "next": "<id to pass as after>", "finished": bool (job in a final state)}
  virtual Result<nlohmann::json> Logs(const std::string& job_id, const std::string& task_filter,
                                      const std::string& after_id, int limit) = 0;
  // {"events":[...], "next": "<id>"}
  virtual Result<nlohmann::json> Events(const std::string& after_id, int limit) = 0;
  virtual std::string Metrics() = 0;
};

struct HttpServerOptions {
  std::string bind_address = "127.0.0.1";  // listen address
  uint16_t port = 8765;                     // 0 = any free port (see HttpServer::port())
  std::string token;                        // bearer token; REQUIRED non-empty
  size_t max_body_bytes = 1 << 20;          // larger requests get 413
  int64_t max_wait_ms = 30000;              // cap of a long-poll's wait_ms
  int64_t poll_interval_ms = 100;           // how often a long-poll re-asks the handler
};

class HttpServer {
 public:
  // Binds and starts accepting on `io`. REQUIRES: handler and io outlive the server.
  static Result<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io, HttpServerOptions options,
                                                   ControlHandler* handler);
  ~HttpServer();  // Stop()
  // Stops accepting; open connections finish their current request. Call on the io thread.
  void Stop();
  uint16_t port() const;

  struct Impl;  // opaque; public only so the connection sessions in the .cpp can name it

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// "InvalidArgument" -> 400 etc. (exposed for tests).
int HttpStatusFor(const Status& status);

}  // namespace fairy::api
