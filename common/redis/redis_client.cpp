#include "common/redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <thread>

namespace fairy::redis {
namespace {

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

// hiredis owns the reply; convert and free it.
Reply TakeReply(void* raw) {
  auto* r = static_cast<redisReply*>(raw);
  Reply out = Convert(r);
  freeReplyObject(r);
  return out;
}

struct Argv {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  explicit Argv(const std::vector<std::string_view>& args) {
    ptrs.reserve(args.size());
    lens.reserve(args.size());
    for (auto a : args) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
  }
};

timeval ToTimeval(int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

std::string CommandName(const std::vector<std::string_view>& args) {
  return args.empty() ? std::string("(empty)") : std::string(args[0]);
}

// ---- SHA-1 (FIPS 180-4), only to name Lua scripts. ----
uint32_t Rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void Sha1Block(uint32_t h[5], const unsigned char* p) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) |
           (uint32_t(p[4 * i + 2]) << 8) | uint32_t(p[4 * i + 3]);
  }
  for (int i = 16; i < 80; ++i) w[i] = Rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = Rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = Rol(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

}  // namespace

std::optional<std::string> InfoField(std::string_view info, std::string_view name) {
  for (size_t begin = 0; begin < info.size();) {
    size_t end = info.find('\n', begin);
    if (end == std::string_view::npos) end = info.size();
    std::string_view line = info.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > name.size() && line.substr(0, name.size()) == name &&
        line[name.size()] == ':') {
      return std::string(line.substr(name.size() + 1));
    }
    begin = end + 1;
  }
  return std::nullopt;
}

std::string Sha1Hex(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) Sha1Block(h, p + i);
  unsigned char tail[128] = {};
  size_t rest = n - i;
  std::memcpy(tail, p + i, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = uint64_t(n) * 8;
  for (int b = 0; b < 8; ++b) tail[tail_len - 1 - b] = static_cast<unsigned char>(bits >> (8 * b));
  Sha1Block(h, tail);
  if (tail_len == 128) Sha1Block(h, tail + 64);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(40);
  for (uint32_t word : h) {
    for (int s = 28; s >= 0; s -= 4) out.push_back(kHex[(word >> s) & 0xF]);
  }
  return out;
}

Script::Script(std::string source) : source_(std::move(source)), sha1_(Sha1Hex(source_)) {}

std::string Reply::DebugString() const {
  switch (type) {
    case Type::kNil:
      return "nil";
    case Type::kString:
    case Type::kStatus:
      return "\"" + (str.size() > 64 ? str.substr(0, 64) + "..." : str) + "\"";
    case Type::kError:
      return "(error) " + str;
    case Type::kInteger:
      return "(integer) " + std::to_string(integer);
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i) out += ", ";
        out += elements[i].DebugString();
      }
      return out + "]";
    }
  }
  return "?";
}

Result<RedisOptions> ParseRedisUrl(std::string_view url, RedisOptions base) {
  const std::string shown(url.substr(0, url.find('@') == std::string_view::npos ? url.size() : 0));
  auto bad = [&](const std::string& why) {
    // Never echo a password: show the URL only when it has no credentials.
    return Status::InvalidArgument(
        "redis URL " + (shown.empty() ? std::string("(with credentials)") : "'" + shown + "'") +
        ": " + why + " (expected redis://[:password@]host[:port][/db])");
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("scheme must be redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisOptions out = std::move(base);
  out.port = 6379;
  out.db = 0;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    out.password = std::string(colon == std::string_view::npos ? cred : cred.substr(colon + 1));
  }
  std::string_view hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      int v = -1;
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), v);
      if (ec != std::errc() || p != db.data() + db.size() || v < 0)
        return bad("database '" + std::string(db) + "' is not a number >= 0");
      out.db = v;
    }
  }
  if (hostport.empty()) return bad("host is missing");
  std::string_view host = hostport;
  if (hostport.front() == '[') {  // [::1]:6379
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in host");
    host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':') return bad("junk after ']'");
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    hostport = hostport.substr(colon);
  } else {
    hostport = {};
  }
  if (host.empty()) return bad("host is missing");
  if (!hostport.empty()) {
    std::string_view port = hostport.substr(1);
    int v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v <= 0 || v > 65535) {
      return bad("port '" + std::string(port) + "' is not in 1..65535");
    }
    out.port = v;
  }
  out.host = std::string(host);
  return out;
}

RedisClient::RedisClient(RedisOptions options)
    : options_(std::move(options)),
      endpoint_(options_.host + ":" + std::to_string(options_.port)) {}

RedisClient::~RedisClient() { Disconnect(); }

Result<std::unique_ptr<RedisClient>> RedisClient::Connect(const RedisOptions& options) {
  std::unique_ptr<RedisClient> client(new RedisClient(options));
  FAIRY_RETURN_IF_ERROR(client->EnsureConnected());
  return client;
}

Result<std::unique_ptr<RedisClient>> RedisClient::Connect(std::string_view url) {
  FAIRY_ASSIGN_OR_RETURN(RedisOptions options, ParseRedisUrl(url));
  return Connect(options);
}

void RedisClient::Disconnect() {
  if (sent_unread_ > 0 && send_error_.ok()) {
    send_error_ =
        Status::Unavailable("redis " + endpoint_ + ": connection lost before the replies of " +
                            std::to_string(sent_unread_) + " sent command(s) were read");
  }
  sent_unread_ = 0;
  if (context_ != nullptr) {
    redisFree(context_);
    context_ = nullptr;
  }
}

Status RedisClient::Fail(std::string_view what) {
  std::string detail;
  if (context_ != nullptr && context_->err != 0) detail = std::string(": ") + context_->errstr;
  Disconnect();
  return Status::Unavailable("redis " + endpoint_ + ": " + std::string(what) + detail);
}

Status RedisClient::ConnectOnce() {
  Disconnect();
  context_ = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                     ToTimeval(options_.connect_timeout_ms));
  if (context_ == nullptr)
    return Status::Unavailable("redis " + endpoint_ + ": cannot allocate a connection");
  if (context_->err != 0) return Fail("connect failed");
  if (options_.command_timeout_ms > 0 &&
      redisSetTimeout(context_, ToTimeval(options_.command_timeout_ms)) != REDIS_OK) {
    return Fail("cannot set the command timeout");
  }
  auto run = [&](std::vector<std::string_view> args, const char* step) -> Status {
    Argv argv(args);
    void* raw = redisCommandArgv(context_, static_cast<int>(args.size()), argv.ptrs.data(),
                                 argv.lens.data());
    if (raw == nullptr) return Fail(step);
    Reply r = TakeReply(raw);
    if (r.is_error()) {
      Disconnect();
      return Status::Unavailable("redis " + endpoint_ + ": " + step + " refused: " + r.str);
    }
    return Status::OK();
  };
  if (!options_.password.empty()) FAIRY_RETURN_IF_ERROR(run({"AUTH", options_.password}, "AUTH"));
  if (options_.db != 0) {
    std::string db = std::to_string(options_.db);
    FAIRY_RETURN_IF_ERROR(run({"SELECT", db}, "SELECT"));
  }
  if (ever_connected_) ++reconnects_;
  ever_connected_ = true;
  return Status::OK();
}

// True when the server closed an idle connection (a Redis restart, a client timeout): with no
// reply outstanding, anything readable on the socket is the close (RESP2 pushes nothing
// unasked). Checked before each call, so the call goes to a fresh connection instead of failing
// on the dead one.
bool RedisClient::ClosedByServer() const {
  if (context_ == nullptr || sent_unread_ > 0) return false;
  pollfd p{context_->fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

Status RedisClient::EnsureConnected() {
  if (ClosedByServer()) Disconnect();
  if (context_ != nullptr) return Status::OK();
  int backoff = options_.reconnect_backoff_ms;
  Status last;
  const int attempts = options_.reconnect_attempts < 1 ? 1 : options_.reconnect_attempts;
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff *= 2;
    }
    last = ConnectOnce();
    if (last.ok()) return last;
  }
  return last;
}

Result<Reply> RedisClient::Command(std::initializer_list<std::string_view> args) {
  return Command(std::vector<std::string_view>(args));
}

Status RedisClient::AppendCommands(const std::vector<std::vector<std::string_view>>& commands,
                                   const char* what) {
  // The whole batch as RESP in one buffer, handed to hiredis in one piece (its per-argument
  // formatting cost the coordinator's loop ~10 % of its time).
  size_t bytes = 0;
  for (const auto& args : commands) {
    bytes += 16;
    for (auto a : args) bytes += a.size() + 16;
  }
  std::string& resp = format_buffer_;
  resp.clear();
  resp.reserve(bytes);
  char digits[24];
  const auto number = [&](char kind, size_t n) {
    const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
    (void)ec;
    resp.push_back(kind);
    resp.append(digits, end);
    resp.append("\r\n");
  };
  for (const auto& args : commands) {
    number('*', args.size());
    for (auto a : args) {
      number('$', a.size());
      resp.append(a);
      resp.append("\r\n");
    }
  }
  if (redisAppendFormattedCommand(context_, resp.data(), resp.size()) != REDIS_OK) {
    return Fail(std::string(what) + ": cannot queue " + std::to_string(commands.size()) +
                " command(s)");
  }
  if (resp.capacity() > (size_t{1} << 20)) std::string().swap(resp);  // keep no large buffer
  return Status::OK();
}

Status RedisClient::ReadSentReplies() {
  while (sent_unread_ > 0) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      return Fail("reading the replies of sent commands");
    }
    --sent_unread_;
    Reply r = TakeReply(raw);
    if (r.is_error() && send_error_.ok()) {
      send_error_ =
          Status::FailedPrecondition("redis " + endpoint_ + ": a sent command failed: " + r.str);
    }
  }
  return Status::OK();
}

Status RedisClient::Send(const std::vector<std::vector<std::string_view>>& commands) {
  FAIRY_RETURN_IF_ERROR(EnsureConnected());
  FAIRY_RETURN_IF_ERROR(AppendCommands(commands, "send"));
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(context_, &done) != REDIS_OK) return Fail("send");
  }
  sent_unread_ += static_cast<int64_t>(commands.size());
  return Status::OK();
}

Status RedisClient::TakeSendError() {
  Status s = send_error_;
  send_error_ = Status::OK();
  return s;
}

Result<Reply> RedisClient::Command(const std::vector<std::string_view>& args) {
  FAIRY_RETURN_IF_ERROR(EnsureConnected());
  FAIRY_RETURN_IF_ERROR(ReadSentReplies());
  Argv argv(args);
  void* raw =
      redisCommandArgv(context_, static_cast<int>(args.size()), argv.ptrs.data(), argv.lens.data());
  if (raw == nullptr) return Fail(CommandName(args) + " failed");
  Reply r = TakeReply(raw);
  if (r.is_error()) {
    return Status::FailedPrecondition("redis " + endpoint_ + ": " + CommandName(args) + ": " +
                                      r.str);
  }
  return r;
}

Result<std::vector<Reply>> RedisClient::Pipeline(
    const std::vector<std::vector<std::string_view>>& commands) {
  FAIRY_RETURN_IF_ERROR(EnsureConnected());
  FAIRY_RETURN_IF_ERROR(AppendCommands(commands, "pipeline"));
  // The first read below writes this batch; the replies of earlier Send()s come before its own.
  FAIRY_RETURN_IF_ERROR(ReadSentReplies());
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      return Fail("pipeline: reply " + std::to_string(i) + " of " +
                  std::to_string(commands.size()) + " (" + CommandName(commands[i]) + ") failed");
    }
    replies.push_back(TakeReply(raw));
  }
  return replies;
}

Result<Reply> RedisClient::Eval(const Script& script, const std::vector<std::string_view>& keys,
                                const std::vector<std::string_view>& args) {
  const std::string nkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(nkeys);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  FAIRY_RETURN_IF_ERROR(EnsureConnected());
  FAIRY_RETURN_IF_ERROR(ReadSentReplies());
  Argv a(argv);
  void* raw =
      redisCommandArgv(context_, static_cast<int>(argv.size()), a.ptrs.data(), a.lens.data());
  if (raw == nullptr) return Fail("EVALSHA failed");
  Reply r = TakeReply(raw);
  if (r.is_error() && r.str.rfind("NOSCRIPT", 0) == 0) {
    argv[0] = "EVAL";
    argv[1] = script.source();
    Argv b(argv);
    raw = redisCommandArgv(context_, static_cast<int>(argv.size()), b.ptrs.data(), b.lens.data());
    if (raw == nullptr) return Fail("EVAL failed");
    r = TakeReply(raw);
  }
  if (r.is_error())
    return Status::FailedPrecondition("redis " + endpoint_ + ": script " +
                                      script.sha1().substr(0, 8) + ": " + r.str);
  return r;
}

Result<std::vector<Reply>> RedisClient::EvalPipeline(const Script& script,
                                                     const std::vector<EvalCall>& calls) {
  std::vector<std::string> nkeys;
  nkeys.reserve(calls.size());
  for (const EvalCall& c : calls) nkeys.push_back(std::to_string(c.keys.size()));
  auto commands = [&](std::string_view verb, std::string_view body) {
    std::vector<std::vector<std::string_view>> out;
    out.reserve(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      std::vector<std::string_view> argv = {verb, body, nkeys[i]};
      argv.insert(argv.end(), calls[i].keys.begin(), calls[i].keys.end());
      argv.insert(argv.end(), calls[i].args.begin(), calls[i].args.end());
      out.push_back(std::move(argv));
    }
    return out;
  };
  FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, Pipeline(commands("EVALSHA", script.sha1())));
  auto noscript = [](const Reply& r) { return r.is_error() && r.str.rfind("NOSCRIPT", 0) == 0; };
  const size_t missing = static_cast<size_t>(std::count_if(replies.begin(), replies.end(), noscript));
  if (missing == 0) return replies;
  if (missing != replies.size()) {
    // Some calls ran and some did not: the script was flushed mid-batch. Report, do not retry.
    return Status::Internal("redis " + endpoint_ + ": script " + script.sha1().substr(0, 8) +
                            " vanished during a pipeline of " + std::to_string(calls.size()) + " calls");
  }
  return Pipeline(commands("EVAL", script.source()));
}

Status RedisClient::Ping() {
  FAIRY_ASSIGN_OR_RETURN(Reply r, Command({"PING"}));
  if (r.type != Reply::Type::kStatus || r.str != "PONG") {
    return Status::Unavailable("redis " + endpoint_ + ": PING answered " + r.DebugString());
  }
  return Status::OK();
}

}  // namespace fairy::redis

// ---- Raw paths for large values ----

namespace fairy::redis {

bool RedisClient::HiredisBuffersEmpty() const {
  // obuf is an sds string: empty means its first byte is the terminator (RESP never starts with
  // \0).
  const bool out_empty = context_->obuf == nullptr || context_->obuf[0] == '\0';
  const bool in_empty =
      context_->reader == nullptr || context_->reader->pos >= context_->reader->len;
  return out_empty && in_empty;
}

Status RedisClient::WriteRaw(const std::vector<std::vector<std::string_view>>& commands) {
  FAIRY_RETURN_IF_ERROR(EnsureConnected());
  FAIRY_RETURN_IF_ERROR(ReadSentReplies());
  if (!HiredisBuffersEmpty()) return Fail("raw write with unconsumed hiredis buffers");
  std::deque<std::string> headers;  // stable addresses for the iovecs
  std::vector<iovec> iov;
  static const char kCrlf[] = "\r\n";
  for (const auto& args : commands) {
    headers.emplace_back(1, '*');
    headers.back() += std::to_string(args.size());
    headers.back() += "\r\n";
    iov.push_back({headers.back().data(), headers.back().size()});
    for (auto a : args) {
      headers.emplace_back(1, '$');
      headers.back() += std::to_string(a.size());
      headers.back() += "\r\n";
      iov.push_back({headers.back().data(), headers.back().size()});
      if (!a.empty()) iov.push_back({const_cast<char*>(a.data()), a.size()});
      iov.push_back({const_cast<char*>(kCrlf), 2});
    }
  }
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = writev(context_->fd, iov.data() + first, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why =
          errno == EAGAIN || errno == EWOULDBLOCK ? "write timed out" : std::strerror(errno);
      return Fail("raw write: " + why);
    }
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return Status::OK();
}

Result<std::vector<Reply>> RedisClient::PipelineLarge(
    const std::vector<std::vector<std::string_view>>& commands) {
  FAIRY_RETURN_IF_ERROR(WriteRaw(commands));
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      return Fail("large pipeline: reply " + std::to_string(i) + " (" + CommandName(commands[i]) +
                  ") failed");
    }
    replies.push_back(TakeReply(raw));
  }
  return replies;
}

Status RedisClient::ReadRaw(void* dest, size_t n) {
  auto* out = static_cast<char*>(dest);
  const size_t buffered = std::min(n, raw_buffer_.size() - raw_pos_);
  if (buffered > 0) {
    if (out != nullptr) std::memcpy(out, raw_buffer_.data() + raw_pos_, buffered);
    raw_pos_ += buffered;
    n -= buffered;
    if (out != nullptr) out += buffered;
  }
  char scratch[65536];
  while (n > 0) {
    char* target = out != nullptr ? out : scratch;
    const size_t want = out != nullptr ? n : std::min(n, sizeof(scratch));
    ssize_t got = read(context_->fd, target, want);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const std::string why = got == 0                                    ? "connection closed"
                              : (errno == EAGAIN || errno == EWOULDBLOCK) ? "read timed out"
                                                                          : std::strerror(errno);
      return Fail("raw read: " + why);
    }
    n -= static_cast<size_t>(got);
    if (out != nullptr) out += got;
  }
  return Status::OK();
}

Result<std::string> RedisClient::ReadRawLine() {
  for (;;) {
    const size_t end = raw_buffer_.find("\r\n", raw_pos_);
    if (end != std::string::npos) {
      std::string line = raw_buffer_.substr(raw_pos_, end - raw_pos_);
      raw_pos_ = end + 2;
      return line;
    }
    if (raw_buffer_.size() - raw_pos_ > 4096)
      return Fail("raw read: reply header longer than 4 KiB");
    raw_buffer_.erase(0, raw_pos_);
    raw_pos_ = 0;
    // Read only a little: whatever follows the header is the value, which should go straight
    // to its destination.
    char buf[64];
    ssize_t got = read(context_->fd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const std::string why = got == 0                                    ? "connection closed"
                              : (errno == EAGAIN || errno == EWOULDBLOCK) ? "read timed out"
                                                                          : std::strerror(errno);
      return Fail("raw read: " + why);
    }
    raw_buffer_.append(buf, static_cast<size_t>(got));
  }
}

Status RedisClient::GetInto(const std::vector<std::string_view>& keys,
                            std::vector<BulkTarget>* targets) {
  if (targets == nullptr || targets->size() != keys.size()) {
    return Status::InvalidArgument("GetInto: " + std::to_string(keys.size()) +
                                   " keys but a different number of targets");
  }
  std::vector<std::vector<std::string_view>> cmds;
  cmds.reserve(keys.size());
  for (auto k : keys) cmds.push_back({"GET", k});
  FAIRY_RETURN_IF_ERROR(WriteRaw(cmds));
  raw_buffer_.clear();
  raw_pos_ = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    BulkTarget& t = (*targets)[i];
    Result<std::string> header = ReadRawLine();
    if (!header.ok()) return header.status();
    const std::string& line = *header;
    if (line.empty()) return Fail("GetInto: empty reply header");
    if (line.front() == '-') {
      t.size = -2;
      t.error = line.substr(1);
      continue;
    }
    long long len = -3;
    if (line[0] == '$') {
      auto [p, ec] = std::from_chars(line.data() + 1, line.data() + line.size(), len);
      if (ec != std::errc() || p != line.data() + line.size()) len = -3;
    }
    if (len < -1)
      return Fail("GetInto: unexpected reply header '" + line.substr(0, 32) + "' for GET");
    t.size = len;
    if (len < 0) continue;
    const bool fits = static_cast<uint64_t>(len) == t.dest.size();
    FAIRY_RETURN_IF_ERROR(ReadRaw(fits ? t.dest.data() : nullptr, static_cast<size_t>(len)));
    char crlf[2];
    FAIRY_RETURN_IF_ERROR(ReadRaw(crlf, 2));
    if (crlf[0] != '\r' || crlf[1] != '\n') return Fail("GetInto: value not followed by CRLF");
  }
  if (raw_pos_ != raw_buffer_.size()) return Fail("GetInto: unexpected bytes after the last reply");
  raw_buffer_.clear();
  raw_pos_ = 0;
  return Status::OK();
}

}  // namespace fairy::redis
