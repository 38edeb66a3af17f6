// A small blocking HTTP/1.1 client for the control API (the `fairy` CLI and tests).
//
// Threading: one HttpClient per thread; each Request() opens its own connection.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace fairy::api {

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct ApiEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 8765;
};

// Parses "http://host:port" (path ignored). InvalidArgument names the URL.
Result<ApiEndpoint> ParseApiUrl(const std::string& url);

class HttpClient {
 public:
  HttpClient(ApiEndpoint endpoint, std::string token, int64_t timeout_ms = 60000)
      : endpoint_(std::move(endpoint)), token_(std::move(token)), timeout_ms_(timeout_ms) {}

  // Sends one request. Unavailable when the coordinator cannot be reached; any HTTP status
  // (including 4xx/5xx) is a successful Result carrying that status.
  Result<HttpResponse> Request(const std::string& method, const std::string& target,
                               const std::string& body = "", const std::string& content_type = "") const;

  // Request + JSON: a non-2xx answer becomes a failed Status with the server's error message (and
  // a code from the HTTP status: 400 InvalidArgument, 401/403 PermissionDenied, 404 NotFound, 409
  // FailedPrecondition, 503 Unavailable).
  Result<nlohmann::json> Json(const std::string& method, const std::string& target,
                              const std::string& body = "", const std::string& content_type = "") const;

 private:
  ApiEndpoint endpoint_;
  std::string token_;
  int64_t timeout_ms_;
};

// Percent-encodes a query or path component.
std::string UrlEncode(const std::string& text);

}  // namespace fairy::api
