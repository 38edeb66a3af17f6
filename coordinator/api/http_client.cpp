#include "coordinator/api/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>

namespace fairy::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

Result<ApiEndpoint> ParseApiUrl(const std::string& url) {
  std::string_view rest = url;
  constexpr std::string_view kScheme = "http://";
  if (rest.substr(0, kScheme.size()) == kScheme) {
    rest.remove_prefix(kScheme.size());
  } else if (rest.find("://") != std::string_view::npos) {
    return Status::InvalidArgument("API URL '" + url + "': only http:// is supported");
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  ApiEndpoint ep;
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    ep.host = std::string(rest);
    ep.port = 80;
  } else {
    ep.host = std::string(rest.substr(0, colon));
    std::string_view port = rest.substr(colon + 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
      return Status::InvalidArgument("API URL '" + url + "': bad port '" + std::string(port) + "'");
    }
    ep.port = static_cast<uint16_t>(v);
  }
  if (ep.host.empty()) return Status::InvalidArgument("API URL '" + url + "': no host");
  return ep;
}

std::string UrlEncode(const std::string& text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<HttpResponse> HttpClient::Request(const std::string& method, const std::string& target,
                                         const std::string& body, const std::string& content_type) const {
  std::string where = "http://" + endpoint_.host + ":" + std::to_string(endpoint_.port);
  try {
    net::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    beast::error_code ec;
    auto results = resolver.resolve(endpoint_.host, std::to_string(endpoint_.port), ec);
    if (ec) return Status::Unavailable("cannot resolve the coordinator at " + where + ": " + ec.message());
    stream.expires_after(std::chrono::milliseconds(timeout_ms_));
    stream.connect(results, ec);
    if (ec) return Status::Unavailable("cannot reach the coordinator at " + where + ": " + ec.message());
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, endpoint_.host);
    req.set(http::field::user_agent, "fairy-cli");
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req, ec);
    if (ec) return Status::Unavailable("sending to the coordinator at " + where + " failed: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256u << 20);
    http::read(stream, buffer, parser, ec);
    if (ec) {
      return Status::Unavailable("no answer from the coordinator at " + where + target + ": " + ec.message());
    }
    auto res = parser.release();
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    HttpResponse out;
    out.status = res.result_int();
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    return out;
  } catch (const std::exception& e) {
    return Status::Unavailable("request to the coordinator at " + where + " failed: " + e.what());
  }
}

Result<nlohmann::json> HttpClient::Json(const std::string& method, const std::string& target,
                                        const std::string& body, const std::string& content_type) const {
  FAIRY_ASSIGN_OR_RETURN(HttpResponse res, Request(method, target, body, content_type));
  nlohmann::json j = nlohmann::json::parse(res.body, nullptr, false);
  if (res.status >= 200 && res.status < 300) {
    if (j.is_discarded()) {
      return Status::Internal("the coordinator answered " + target + " with invalid JSON");
    }
    return j;
  }
  std::string message = j.is_object() && j.contains("error") && j["error"].is_string()
                            ? j["error"].get<std::string>()
                            : "HTTP " + std::to_string(res.status) + " from " + target;
  switch (res.status) {
    case 400: case 405: case 413: return Status::InvalidArgument(message);
    case 401: case 403: return Status::PermissionDenied(message);
    case 404: return Status::NotFound(message);
    case 409: return Status::FailedPrecondition(message);
    case 503: return Status::Unavailable(message);
    default: return Status::Internal(message);
  }
}

}  // namespace fairy::api
