#include "coordinator/api/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <functional>
#include <map>
#include <sstream>

#include "common/log.h"

namespace fairy::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;

std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < in.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
      if (ec == std::errc() && p == in.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += c;
      }
    } else {
      out += c;
    }
  }
  return out;
}

struct Target {
  std::vector<std::string> segments;  // "/v1/jobs/x" -> {"v1","jobs","x"}
  std::map<std::string, std::string> query;
};

Target ParseTarget(std::string_view target) {
  Target t;
  std::string_view path = target;
  std::string_view query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) t.segments.push_back(PercentDecode(path.substr(start, end - start)));
    start = end + 1;
  }
  start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view kv = query.substr(start, end - start);
    size_t eq = kv.find('=');
    if (!kv.empty()) {
      t.query[PercentDecode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1));
    }
    start = end + 1;
  }
  return t;
}

Result<int64_t> QueryInt(const Target& t, const std::string& name, int64_t def, int64_t min, int64_t max) {
  auto it = t.query.find(name);
  if (it == t.query.end() || it->second.empty()) return def;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < min || v > max) {
    return Status::InvalidArgument("query parameter '" + name + "': expected an integer in [" +
                                   std::to_string(min) + ", " + std::to_string(max) + "], got '" + s + "'");
  }
  return v;
}

std::string QueryString(const Target& t, const std::string& name) {
  auto it = t.query.find(name);
  return it == t.query.end() ? std::string() : it->second;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

json ErrorBody(const Status& s) {
  return json{{"error", s.message()}, {"code", Status::CodeName(s.code())}};
}

}  // namespace

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case Status::Code::kOk: return 200;
    case Status::Code::kInvalidArgument: return 400;
    case Status::Code::kNotFound: return 404;
    case Status::Code::kFailedPrecondition: return 409;
    case Status::Code::kPermissionDenied: return 403;
    case Status::Code::kUnavailable: return 503;
    case Status::Code::kUnsupported: return 400;
    default: return 500;
  }
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  net::io_context& io;
  HttpServerOptions options;
  ControlHandler* handler;  // nullptr after Stop()
  tcp::acceptor acceptor;

  Impl(net::io_context& io_in, HttpServerOptions opts, ControlHandler* h)
      : io(io_in), options(std::move(opts)), handler(h), acceptor(io_in) {}

  void Accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)), timer_(stream_.get_executor()) {}

  void Start() { Read(); }

 private:
  using Fetch = std::function<Result<json>()>;
  using IsEmpty = std::function<bool(const json&)>;

  void Read() {
    parser_.emplace();
    parser_->body_limit(server_->options.max_body_bytes);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(120));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return Respond(413, ErrorBody(Status::InvalidArgument(
                              "request body exceeds " + std::to_string(server_->options.max_body_bytes) +
                              " bytes")));
    }
    if (ec) {
      keep_alive_ = false;
      return Respond(400, ErrorBody(Status::InvalidArgument("malformed HTTP request: " + ec.message())));
    }
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    Handle();
  }

  void Handle() {
    ControlHandler* h = server_->handler;
    if (h == nullptr) return Respond(503, ErrorBody(Status::Unavailable("the coordinator is stopping")));
    // Authentication first, on every route.
    auto auth_field = request_[http::field::authorization];
    std::string_view auth(auth_field.data(), auth_field.size());
    constexpr std::string_view kBearer = "Bearer ";
    bool authorized = auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer &&
                      ConstantTimeEquals(auth.substr(kBearer.size()), server_->options.token);
    if (!authorized) {
      Status s = Status::PermissionDenied(auth.empty() ? "missing bearer token (Authorization: Bearer ...)"
                                                       : "wrong bearer token");
      extra_header_ = "Bearer realm=\"fairy\"";
      return Respond(401, ErrorBody(s));
    }
    Target t = ParseTarget(std::string_view(request_.target().data(), request_.target().size()));
    const auto method = request_.method();
    const auto& seg = t.segments;
    auto reply = [this](const Result<json>& r, int ok_status = 200) {
      if (r.ok()) return Respond(ok_status, *r);
      Respond(HttpStatusFor(r.status()), ErrorBody(r.status()));
    };
    auto bad_method = [this] {
      Respond(405, ErrorBody(Status::InvalidArgument("method not allowed on this route")));
    };

    if (seg.size() == 1 && seg[0] == "metrics") {
      if (method != http::verb::get) return bad_method();
      return RespondText(200, h->Metrics(), "text/plain; version=0.0.4; charset=utf-8");
    }
    if (seg.empty() || seg[0] != "v1") {
      return Respond(404, ErrorBody(Status::NotFound("no route " + std::string(request_.target()))));
    }
    if (seg.size() == 2 && seg[1] == "health") {
      return Respond(200, json{{"ok", true}});
    }
    if (seg.size() == 2 && seg[1] == "workers") {
      if (method != http::verb::get) return bad_method();
      return reply(h->Workers());
    }
    if (seg.size() == 2 && seg[1] == "events") {
      if (method != http::verb::get) return bad_method();
      auto limit = QueryInt(t, "limit", 1000, 1, 100000);
      auto wait = QueryInt(t, "wait_ms", 0, 0, server_->options.max_wait_ms);
      if (!limit.ok()) return reply(limit.status());
      if (!wait.ok()) return reply(wait.status());
      std::string after = QueryString(t, "after");
      int n = static_cast<int>(*limit);
      return LongPoll([h, after, n] { return h->Events(after, n); },
                      [](const json& j) { return !j.contains("events") || j["events"].empty(); }, *wait);
    }
    if (seg.size() >= 2 && seg[1] == "jobs") {
      if (seg.size() == 2) {
        if (method == http::verb::get) {
          std::vector<std::string> states;  // ?state=RUNNING,QUEUED
          std::stringstream list(QueryString(t, "state"));
          for (std::string s; std::getline(list, s, ',');) {
            if (!s.empty()) states.push_back(s);
          }
          return reply(h->ListJobs(states));
        }
        if (method != http::verb::post) return bad_method();
        std::optional<int> priority;
        if (t.query.count("priority")) {
          auto p = QueryInt(t, "priority", 50, 0, 100);
          if (!p.ok()) return reply(p.status());
          priority = static_cast<int>(*p);
        }
        std::string name = QueryString(t, "name");
        if (name.empty()) name = "<submitted>";
        return reply(h->Submit(request_.body(), name, priority), 201);
      }
      const std::string& job = seg[2];
      if (seg.size() == 3) {
        if (method != http::verb::get) return bad_method();
        return reply(h->JobStatus(job));
      }
      if (seg.size() == 4) {
        const std::string& op = seg[3];
        if (op == "logs") {
          if (method != http::verb::get) return bad_method();
          auto limit = QueryInt(t, "limit", 1000, 1, 100000);
          auto wait = QueryInt(t, "wait_ms", 0, 0, server_->options.max_wait_ms);
          if (!limit.ok()) return reply(limit.status());
          if (!wait.ok()) return reply(wait.status());
          std::string after = QueryString(t, "after");
          std::string task = QueryString(t, "task");
          int n = static_cast<int>(*limit);
          return LongPoll([h, job, task, after, n] { return h->Logs(job, task, after, n); },
                          [](const json& j) {
                            return (!j.contains("lines") || j["lines"].empty()) &&
                                   !j.value("finished", false);
                          },
                          *wait);
        }
        if (method != http::verb::post) return bad_method();
        if (op == "cancel" || op == "pause" || op == "resume") return reply(h->Control(job, op, 0));
        if (op == "retry") {
          std::string scope = QueryString(t, "scope");
          if (scope.empty()) scope = "failed";
          if (scope != "failed" && scope != "job") {
            return reply(Status::InvalidArgument("query parameter 'scope': expected 'failed' or 'job', got '" +
                                                 scope + "'"));
          }
          return reply(h->Control(job, "retry-" + scope, 0));
        }
        if (op == "priority") {
          int64_t value = -1;
          if (t.query.count("value")) {
            auto p = QueryInt(t, "value", 0, 0, 100);
            if (!p.ok()) return reply(p.status());
            value = *p;
          } else {
            json body = json::parse(request_.body(), nullptr, false);
            if (!body.is_object() || !body.contains("priority") || !body["priority"].is_number_integer() ||
                body["priority"].get<int64_t>() < 0 || body["priority"].get<int64_t>() > 100) {
              return reply(Status::InvalidArgument(
                  "priority: expected ?value=N or a JSON body {\"priority\": N} with N in [0, 100]"));
            }
            value = body["priority"].get<int64_t>();
          }
          return reply(h->Control(job, "priority", static_cast<int>(value)));
        }
      }
    }
    Respond(404, ErrorBody(Status::NotFound("no route " + std::string(request_.target()))));
  }

  // Answers at once when the fetch has something (or wait_ms is 0); else re-asks every
  // poll_interval_ms until it has, or until wait_ms passed (then answers the empty result).
  void LongPoll(Fetch fetch, IsEmpty is_empty, int64_t wait_ms) {
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    fetch_ = std::move(fetch);
    is_empty_ = std::move(is_empty);
    Poll();
  }

  void Poll() {
    if (server_->handler == nullptr) {
      return Respond(503, ErrorBody(Status::Unavailable("the coordinator is stopping")));
    }
    Result<json> r = fetch_();
    if (!r.ok()) return Respond(HttpStatusFor(r.status()), ErrorBody(r.status()));
    if (!is_empty_(*r) || std::chrono::steady_clock::now() >= deadline_) return Respond(200, *r);
    timer_.expires_after(std::chrono::milliseconds(server_->options.poll_interval_ms));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Poll();
    });
  }

  void Respond(int status, const json& body) { RespondText(status, body.dump() + "\n", "application/json"); }

  void RespondText(int status, std::string body, const char* content_type) {
    response_ = {};
    response_.version(request_.version() ? request_.version() : 11);
    response_.result(static_cast<http::status>(status));
    response_.set(http::field::server, "fairy-coordinator");
    response_.set(http::field::content_type, content_type);
    if (!extra_header_.empty()) response_.set(http::field::www_authenticate, extra_header_);
    extra_header_.clear();
    response_.keep_alive(keep_alive_);
    response_.body() = std::move(body);
    response_.prepare_payload();
    stream_.expires_after(std::chrono::seconds(60));
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || !self->keep_alive_) return self->Close();
      self->Read();
    });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<HttpServer::Impl> server_;
  net::steady_timer timer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  bool keep_alive_ = false;
  std::string extra_header_;
  Fetch fetch_;
  IsEmpty is_empty_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace

void HttpServer::Impl::Accept() {
  // Sessions share the server's (single-threaded) executor: the handler is never called concurrently.
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (!self->acceptor.is_open()) return;
    if (!ec) std::make_shared<Session>(std::move(socket), self)->Start();
    self->Accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(net::io_context& io, HttpServerOptions options,
                                                      ControlHandler* handler) {
  if (options.token.empty()) {
    return Status::InvalidArgument("control API: an API token is required (api.token in the config)");
  }
  if (handler == nullptr) return Status::InvalidArgument("control API: no handler");
  auto impl = std::make_shared<Impl>(io, options, handler);
  beast::error_code ec;
  auto address = net::ip::make_address(options.bind_address, ec);
  if (ec) return Status::InvalidArgument("control API: bad bind address '" + options.bind_address + "'");
  tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("control API: cannot listen on " + options.bind_address + ":" +
                               std::to_string(options.port) + ": " + ec.message());
  }
  impl->Accept();
  FAIRY_LOG(kInfo, "api") << "control API on http://" << options.bind_address << ":"
                          << impl->acceptor.local_endpoint().port();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!impl_) return;
  impl_->handler = nullptr;
  beast::error_code ec;
  impl_->acceptor.close(ec);
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace fairy::api
