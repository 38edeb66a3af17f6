// A small synchronous Redis client on hiredis: URL parsing, timeouts, AUTH/SELECT, binary-safe
// commands, pipelining, Lua scripts (EVALSHA with EVAL fallback) and reconnect on failure.
//
// Threading: a RedisClient owns ONE connection and is NOT thread-safe. Use one client per thread
// (they are cheap: one TCP connection each). Nothing here is global.
//
// Errors: a connection, timeout or protocol failure returns Status::Unavailable naming the
// endpoint ("redis 127.0.0.1:6379: ..."); the broken connection is dropped and the NEXT call
// reconnects (with `reconnect_attempts` tries and a short exponential backoff); so does a call
// that finds its idle connection closed by the server (a Redis restart), before it sends anything.
// A command is never re-sent automatically after a failure, because it may have executed (XADD,
// INCR are not idempotent); the caller decides whether to retry. A Redis error reply (WRONGTYPE,
// NOSCRIPT, a Lua error) from Command()/Eval() returns Status::FailedPrecondition with the command
// name and the server's message.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct redisContext;

namespace fairy::redis {

struct RedisOptions {
  std::string host = "127.0.0.1";  // name or address
  int port = 6379;
  std::string password;            // AUTH after connecting when non-empty
  int db = 0;                      // SELECT after connecting when non-zero
  int connect_timeout_ms = 2000;   // TCP connect limit
  int command_timeout_ms = 10000;  // socket read/write limit per command (0: none)
  int reconnect_attempts = 3;      // connect tries before a call reports Unavailable
  int reconnect_backoff_ms = 50;   // first backoff between tries; doubles each try
};

// Parses `redis://[:password@]host[:port][/db]` (also `redis://user:password@...`, user ignored
// since Redis 5 has no ACL users; port defaults to 6379, db to 0). Keeps other fields of `base`.
// Errors name the URL and the part that is wrong. The password is never echoed in errors.
Result<RedisOptions> ParseRedisUrl(std::string_view url, RedisOptions base = {});

// One reply, fully owned (no hiredis memory escapes this library).
struct Reply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;              // kString (binary-safe), kStatus ("OK"), kError (message)
  long long integer = 0;        // kInteger
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // "nil", "\"OK\"", "(integer) 3", "[...]": for error messages and tests.
  std::string DebugString() const;
};

// A Lua script with its SHA1 computed once; Eval() uses EVALSHA and falls back to EVAL (which
// loads it) when the server answers NOSCRIPT (first use, or after SCRIPT FLUSH / a restart).
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }  // lowercase hex

 private:
  std::string source_;
  std::string sha1_;
};

// SHA-1 of `data` as 40 lowercase hex digits (what Redis uses to name scripts).
std::string Sha1Hex(std::string_view data);

// One field of an INFO reply's text ("name:value\r\n" lines): its value, or nullopt if absent.
std::optional<std::string> InfoField(std::string_view info, std::string_view name);

class RedisClient {
 public:
  // Connects (with retries per options). Unavailable when the server cannot be reached or AUTH
  // or SELECT fails (the error names the endpoint and the step).
  static Result<std::unique_ptr<RedisClient>> Connect(const RedisOptions& options);
  static Result<std::unique_ptr<RedisClient>> Connect(std::string_view url);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command; every argument is sent binary-safe. A Redis error reply is a failed Status
  // (FailedPrecondition); nil, strings, integers and arrays are returned as a Reply.
  Result<Reply> Command(const std::vector<std::string_view>& args);
  Result<Reply> Command(std::initializer_list<std::string_view> args);

  // Sends every command, then reads every reply (one round trip for the batch). Error replies of
  // single commands are returned in place as Reply::Type::kError; only a connection failure fails
  // the whole call (then it is unknown which commands ran).
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string_view>>& commands);

  // Sends every command now and returns without waiting for the replies: they are read before
  // the replies of the next call on this client, by when they have usually arrived (no round
  // trip spent waiting). For writes whose outcome is needed only eventually (log lines). Commands
  // sent later on this client run after these, so reads see their effect. The first error among
  // the replies (an error reply, or the connection lost before they were read) is kept for
  // TakeSendError(). Unavailable when the commands could not be written.
  Status Send(const std::vector<std::vector<std::string_view>>& commands);
  // The first error among the replies of earlier Send()s read so far, then forgotten; OK if none.
  Status TakeSendError();

  // EVALSHA script keys... args..., EVAL on NOSCRIPT. A Lua error is FailedPrecondition.
  Result<Reply> Eval(const Script& script, const std::vector<std::string_view>& keys,
                     const std::vector<std::string_view>& args);

  // Several calls of one script in one round trip, run in order (each atomic on its own). A call's
  // Lua error is returned in place as a Reply::Type::kError; when the server lacks the script the
  // whole batch is sent again with EVAL. Only a connection failure fails the whole call.
  struct EvalCall {
    std::vector<std::string_view> keys;
    std::vector<std::string_view> args;
  };
  Result<std::vector<Reply>> EvalPipeline(const Script& script, const std::vector<EvalCall>& calls);

  // ---- Large values (anchor cache parts): no copies through hiredis's buffers. ----
  // Like Pipeline(), but the RESP encoding is written with writev straight from the caller's
  // argument buffers, so a 64 MiB argument is never copied in user space. Replies are small
  // (e.g. +OK) and read as usual.
  Result<std::vector<Reply>> PipelineLarge(
      const std::vector<std::vector<std::string_view>>& commands);

  // One GET's outcome for GetInto().
  struct BulkTarget {
    std::span<uint8_t> dest;  // where the value goes; its size is the size expected
    int64_t size = -2;        // out: the value's size; -1 = nil (missing key)
    std::string error;        // out: the server's error reply, if any
  };
  // GETs keys[i] into targets[i].dest in one round trip, reading each value straight from the
  // socket into dest (no intermediate copy). A value whose size is not dest.size() is read and
  // discarded (dest untouched) and its size reported; the caller decides what that means.
  // REQUIRES: keys.size() == targets->size().
  Status GetInto(const std::vector<std::string_view>& keys, std::vector<BulkTarget>* targets);

  // PING; OK when the server answers PONG.
  Status Ping();

  // "host:port" for messages.
  const std::string& endpoint() const { return endpoint_; }
  const RedisOptions& options() const { return options_; }
  // How many times a dropped connection was re-established (for tests and metrics).
  int reconnects() const { return reconnects_; }

 private:
  explicit RedisClient(RedisOptions options);
  Status EnsureConnected();  // replaces a missing or server-closed connection
  bool ClosedByServer() const;
  Status ConnectOnce();
  Status Fail(std::string_view what);  // drops the connection, returns Unavailable
  Status WriteRaw(const std::vector<std::vector<std::string_view>>& commands);
  Status ReadRaw(void* dest, size_t n);  // exactly n bytes (raw_buffer_ first, then the socket)
  Result<std::string> ReadRawLine();     // up to and without "\r\n"
  bool HiredisBuffersEmpty() const;
  void Disconnect();
  Status AppendCommands(const std::vector<std::vector<std::string_view>>& commands,
                        const char* what);
  Status ReadSentReplies();  // the replies of earlier Send()s, before any other reply is read

  RedisOptions options_;
  std::string endpoint_;
  redisContext* context_ = nullptr;
  bool ever_connected_ = false;
  int reconnects_ = 0;
  int64_t sent_unread_ = 0;  // replies of Send() not read yet
  std::string format_buffer_;  // AppendCommands' RESP, reused
  Status send_error_;
  std::string raw_buffer_;  // bytes read ahead by ReadRawLine(), consumed by the next raw read
  size_t raw_pos_ = 0;
};

}  // namespace fairy::redis
