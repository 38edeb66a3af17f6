// fairy_redis against a real redis-server (tests/support/redis_server.h).
#include "common/redis/redis_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/support/redis_server.h"

namespace fairy::redis {
namespace {

using fairy::testing::RedisServer;
using fairy::testing::RedisServerOptions;

TEST(RedisUrlTest, ParsesAllParts) {
  auto o = ParseRedisUrl("redis://:s3cret@redis.farm:6380/2");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->host, "redis.farm");
  EXPECT_EQ(o->port, 6380);
  EXPECT_EQ(o->password, "s3cret");
  EXPECT_EQ(o->db, 2);
  auto d = ParseRedisUrl("redis://localhost");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 6379);
  EXPECT_EQ(d->db, 0);
  EXPECT_EQ(d->password, "");
  auto v6 = ParseRedisUrl("redis://[::1]:7000");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7000);
  auto user = ParseRedisUrl("redis://default:pw@h:1/0");
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->password, "pw");
}

TEST(RedisUrlTest, RejectsBadUrlsWithoutLeakingThePassword) {
  for (const char* bad : {"http://h:1", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x",
                          "redis://h/x", "redis://[::1:5"}) {
    auto o = ParseRedisUrl(bad);
    EXPECT_FALSE(o.ok()) << bad;
    if (!o.ok()) {
      EXPECT_EQ(o.status().code(), Status::Code::kInvalidArgument) << bad;
    }
  }
  auto o = ParseRedisUrl("redis://:topsecret@h:notaport");
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message().find("topsecret"), std::string::npos) << o.status().message();
  EXPECT_NE(o.status().message().find("notaport"), std::string::npos);
}

TEST(Sha1Test, KnownVectors) {
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(Sha1Hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(InfoFieldTest, FindsWholeFieldNamesOnly) {
  const std::string info =
      "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:0\r\n"
      "maxmemory_human:0B\r\nmaxmemory_policy:volatile-ttl\r\nlast:x";
  EXPECT_EQ(InfoField(info, "used_memory"), "1048576");
  EXPECT_EQ(InfoField(info, "maxmemory"), "0");
  EXPECT_EQ(InfoField(info, "maxmemory_policy"), "volatile-ttl");
  EXPECT_EQ(InfoField(info, "last"), "x");
  EXPECT_EQ(InfoField(info, "memory"), std::nullopt);
  EXPECT_EQ(InfoField(info, "used"), std::nullopt);
  EXPECT_EQ(InfoField("", "maxmemory"), std::nullopt);
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = RedisServer::Start();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    auto c = RedisClient::Connect(server_->url());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisClient> client_;
};

TEST_F(RedisClientTest, BinarySafeRoundTripAndReplyTypes) {
  std::string blob("a\0b\r\n\xff", 6);
  auto set = client_->Command({"SET", "k", blob});
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->type, Reply::Type::kStatus);
  EXPECT_EQ(set->str, "OK");
  auto get = client_->Command({"GET", "k"});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->type, Reply::Type::kString);
  EXPECT_EQ(get->str, blob);
  auto missing = client_->Command({"GET", "nope"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil());
  auto incr = client_->Command({"INCRBY", "n", "41"});
  ASSERT_TRUE(incr.ok());
  EXPECT_EQ(incr->type, Reply::Type::kInteger);
  EXPECT_EQ(incr->integer, 41);
  ASSERT_TRUE(client_->Command({"RPUSH", "l", "x", "y"}).ok());
  auto range = client_->Command({"LRANGE", "l", "0", "-1"});
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->type, Reply::Type::kArray);
  ASSERT_EQ(range->elements.size(), 2u);
  EXPECT_EQ(range->elements[1].str, "y");
}

TEST_F(RedisClientTest, ErrorReplyIsFailedPreconditionNamingTheCommand) {
  ASSERT_TRUE(client_->Command({"SET", "s", "v"}).ok());
  auto r = client_->Command({"HGET", "s", "f"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("HGET"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("WRONGTYPE"), std::string::npos) << r.status().message();
  // The connection is still usable.
  EXPECT_TRUE(client_->Ping().ok());
}

TEST_F(RedisClientTest, PipelineKeepsOrderAndInPlaceErrors) {
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    std::string k = "p";
    k += std::to_string(i);
    keys.push_back(k);
  }
  std::vector<std::vector<std::string_view>> cmds;
  for (const auto& k : keys) cmds.push_back({"SET", k, k});
  cmds.push_back({"HGET", "p0", "x"});  // WRONGTYPE
  for (const auto& k : keys) cmds.push_back({"GET", k});
  auto r = client_->Pipeline(cmds);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 201u);
  EXPECT_TRUE((*r)[100].is_error());
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*r)[101 + i].str, keys[i]);
}

TEST_F(RedisClientTest, SentCommandsRunBeforeLaterCallsAndKeepTheirFirstError) {
  ASSERT_TRUE(client_->Send({{"SET", "s", "v"}, {"RPUSH", "l", "a"}}).ok());
  ASSERT_TRUE(client_->Send({{"HGET", "s", "f"}, {"RPUSH", "l", "b"}, {"INCR", "s"}}).ok());
  EXPECT_TRUE(client_->TakeSendError().ok()) << "no reply read yet";
  // A later call sees their effect, and its own replies are not mixed up with theirs.
  auto pipe = client_->Pipeline({{"LRANGE", "l", "0", "-1"}, {"GET", "s"}});
  ASSERT_TRUE(pipe.ok()) << pipe.status().ToString();
  ASSERT_EQ((*pipe)[0].elements.size(), 2u);
  EXPECT_EQ((*pipe)[0].elements[1].str, "b");
  EXPECT_EQ((*pipe)[1].str, "v");
  Status first = client_->TakeSendError();
  EXPECT_EQ(first.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(first.message().find("WRONGTYPE"), std::string::npos)
      << "the first of two errors: " << first.message();
  EXPECT_TRUE(client_->TakeSendError().ok()) << "taken once";
  // Every kind of call reads the sent replies first.
  ASSERT_TRUE(client_->Send({{"RPUSH", "l", "c"}}).ok());
  auto len = client_->Command({"LLEN", "l"});
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(len->integer, 3);
  ASSERT_TRUE(client_->Send({{"SET", "big", "x"}}).ok());
  std::vector<uint8_t> buf(1);
  std::vector<RedisClient::BulkTarget> targets(1);
  targets[0].dest = buf;
  ASSERT_TRUE(client_->GetInto({"big"}, &targets).ok());
  EXPECT_EQ(buf[0], 'x');
  // A connection lost before the replies were read: the call that finds it fails, the sent
  // commands' error says so, and the next call reconnects.
  ASSERT_TRUE(client_->Send({{"BLPOP", "never", "5"}}).ok());
  auto other = RedisClient::Connect(server_->url());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Command({"CLIENT", "KILL", "TYPE", "normal"}).ok());  // all but itself
  EXPECT_EQ(client_->Ping().code(), Status::Code::kUnavailable);
  Status lost = client_->TakeSendError();
  EXPECT_EQ(lost.code(), Status::Code::kUnavailable);
  EXPECT_NE(lost.message().find("1 sent command"), std::string::npos) << lost.message();
  EXPECT_TRUE(client_->Ping().ok()) << "reconnects";
}

TEST_F(RedisClientTest, EvalLoadsScriptOnNoscriptAndThenUsesSha) {
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto a = client_->Eval(script, {"counter"}, {"5"});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->integer, 5);
  auto exists = client_->Command({"SCRIPT", "EXISTS", script.sha1()});
  ASSERT_TRUE(exists.ok());
  ASSERT_EQ(exists->elements.size(), 1u);
  EXPECT_EQ(exists->elements[0].integer, 1)
      << "EVAL fallback must have loaded the script under its SHA1";
  ASSERT_TRUE(client_->Command({"SCRIPT", "FLUSH"}).ok());
  auto b = client_->Eval(script, {"counter"}, {"2"});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->integer, 7);
  Script broken("return redis.call('NOPE')");
  auto c = client_->Eval(broken, {}, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kFailedPrecondition);
}

TEST_F(RedisClientTest, ReconnectsAfterServerRestartAndReportsUnavailableWhileDown) {
  ASSERT_TRUE(client_->Command({"SET", "durable", "1"}).ok());
  // appendfsync everysec: give the AOF a moment, then crash.
  ASSERT_TRUE(client_->Command({"BGREWRITEAOF"}).ok());
  for (int i = 0; i < 100; ++i) {
    auto info = client_->Command({"INFO", "persistence"});
    ASSERT_TRUE(info.ok());
    if (info->str.find("aof_rewrite_in_progress:0") != std::string::npos &&
        info->str.find("aof_rewrite_scheduled:0") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  server_->Kill();
  auto down = client_->Command({"GET", "durable"});
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(down.status().message().find("127.0.0.1:" + std::to_string(server_->port())),
            std::string::npos)
      << down.status().message();
  ASSERT_TRUE(server_->Restart().ok());
  auto up = client_->Command({"GET", "durable"});
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(up->str, "1");
  EXPECT_EQ(client_->reconnects(), 1);
}

// A connection the server closed while the client was idle (Redis restarted between two calls)
// is replaced before the next call is sent: that call succeeds instead of failing on the dead
// socket (the coordinator's first write after a Redis restart used to fail this way).
TEST_F(RedisClientTest, ConnectionClosedWhileIdleIsReplacedBeforeTheNextCall) {
  ASSERT_TRUE(client_->Command({"SET", "idle", "1"}).ok());
  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the close reaches the socket
  auto first = client_->Command({"PING"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->str, "PONG");
  EXPECT_EQ(client_->reconnects(), 1);
  auto pipelined = client_->Pipeline({{"PING"}, {"PING"}});
  ASSERT_TRUE(pipelined.ok()) << pipelined.status().ToString();
  EXPECT_EQ(client_->reconnects(), 1) << "a live idle connection is kept";
}

TEST_F(RedisClientTest, LargeValuesGoStraightFromAndIntoCallerBuffers) {
  std::string big(5 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::string small = "tiny\r\n$3\r\nfake";  // looks like RESP: must be sent as data
  auto put =
      client_->PipelineLarge({{"SET", "big", big}, {"SET", "small", small}, {"SET", "empty", ""}});
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  ASSERT_EQ(put->size(), 3u);
  EXPECT_EQ((*put)[0].str, "OK");
  ASSERT_TRUE(client_->Command({"HSET", "hash", "f", "v"}).ok());

  std::vector<uint8_t> big_out(big.size()), small_out(small.size()), wrong(10), none(4), empty_out;
  std::vector<RedisClient::BulkTarget> t = {{big_out, -2, ""}, {small_out, -2, ""},
                                            {wrong, -2, ""},   {none, -2, ""},
                                            {none, -2, ""},    {empty_out, -2, ""}};
  Status st = client_->GetInto({"big", "small", "big", "missing", "hash", "empty"}, &t);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(t[0].size, static_cast<int64_t>(big.size()));
  EXPECT_EQ(std::string(big_out.begin(), big_out.end()), big);
  EXPECT_EQ(std::string(small_out.begin(), small_out.end()), small);
  EXPECT_EQ(t[2].size, static_cast<int64_t>(big.size())) << "size reported, value skipped";
  EXPECT_EQ(wrong, std::vector<uint8_t>(10, 0)) << "a value of the wrong size must not be written";
  EXPECT_EQ(t[3].size, -1);
  EXPECT_NE(t[4].error.find("WRONGTYPE"), std::string::npos) << t[4].error;
  EXPECT_EQ(t[5].size, 0);
  // The connection is still in step for ordinary commands.
  auto get = client_->Command({"GET", "small"});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->str, small);
  std::vector<RedisClient::BulkTarget> mismatch(1);
  EXPECT_EQ(client_->GetInto({"a", "b"}, &mismatch).code(), Status::Code::kInvalidArgument);
}

TEST(RedisAuthTest, PasswordFromUrlAndWrongPasswordIsUnavailable) {
  RedisServerOptions options;
  options.password = "pw-123";
  auto s = RedisServer::Start(options);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto good = RedisClient::Connect((*s)->url());
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_TRUE((*good)->Ping().ok());
  RedisOptions bad;
  bad.port = (*s)->port();
  bad.password = "pw-wrong-xyz";
  bad.reconnect_attempts = 1;
  auto refused = RedisClient::Connect(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("AUTH"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(refused.status().message().find("pw-wrong-xyz"), std::string::npos)
      << "password leaked";
}

TEST(RedisConnectTest, NothingListeningIsUnavailableWithEndpoint) {
  RedisOptions o;
  o.port = 1;  // nothing listens on port 1
  o.reconnect_attempts = 2;
  o.reconnect_backoff_ms = 1;
  auto c = RedisClient::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(c.status().message().find("127.0.0.1:1"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace fairy::redis
