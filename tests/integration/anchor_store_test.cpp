// fairy_anchor_store against a real redis-server: round trips over several parts, checksums,
// corruption and missing parts, fenced publish, expiry and deletion per job.
#include "common/anchor_store/anchor_store.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/redis/farm_keys.h"
#include "tests/support/redis_server.h"

namespace fairy::anchor {
namespace {

using fairy::redis::RedisClient;
using fairy::testing::RedisServer;

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(XxHash64Test, KnownVectors) {
  EXPECT_EQ(XxHash64("", 0, 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(XxHash64("a", 1, 0), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(XxHash64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
  const std::string s = "Nobody inspects the spammish repetition";
  EXPECT_EQ(XxHash64(s.data(), s.size(), 0), 0xFBCEA83C8A378BF1ULL);
}

TEST(XxHash64Test, IncrementalEqualsOneShotForEverySplit) {
  auto data = RandomBytes(1000, 3);
  const uint64_t want = XxHash64(data.data(), data.size(), 42);
  for (size_t split : {0, 1, 7, 31, 32, 33, 64, 500, 999, 1000}) {
    XxHash64State st(42);
    st.Update(data.data(), split);
    st.Update(data.data() + split, data.size() - split);
    EXPECT_EQ(st.Digest(), want) << "split " << split;
  }
  XxHash64State bytewise(42);
  for (uint8_t b : data) bytewise.Update(&b, 1);
  EXPECT_EQ(bytewise.Digest(), want);
  EXPECT_NE(XxHash64(data.data(), data.size(), 43), want);
}

TEST(AnchorCacheKeyTest, StableHexAndSensitiveToEveryField) {
  AnchorKeyFields f;
  f.model_id = "pix2pix-tiny";
  f.instruction = "turn the cat into a lion";
  f.width = 512;
  f.height = 384;
  f.steps = 10;
  f.guidance_text = 7.5;
  f.guidance_image = 1.5;
  f.seed = 1234;
  f.anchor_frames = {0, 40, 80};
  f.source_identity = "/media/a.mp4:1000:17";
  f.dtype = "F32";
  f.engine_version = "1";
  const std::string k = AnchorCacheKey(f);
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(k.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(AnchorCacheKey(f), k);
  std::vector<AnchorKeyFields> variants(15, f);
  variants[0].model_id = "other";
  variants[1].model_digest = "d";
  variants[2].instruction += "!";
  variants[3].width = 513;
  variants[4].height = 385;
  variants[5].steps = 11;
  variants[6].guidance_text = 7.25;
  variants[7].guidance_image = 1.25;
  variants[8].seed = 1235;
  variants[9].anchor_frames = {0, 40, 81};
  variants[10].source_identity += "x";
  variants[11].dtype = "F16";
  variants[12].engine_version = "2";
  variants[13].noise = "shared";
  variants[14].scheduler = "euler";
  for (size_t i = 0; i < variants.size(); ++i)
    EXPECT_NE(AnchorCacheKey(variants[i]), k) << "field " << i;
  // No concatenation ambiguity between adjacent fields.
  AnchorKeyFields a = f, b = f;
  a.model_id = "ab";
  a.model_digest = "c";
  b.model_id = "a";
  b.model_digest = "bc";
  EXPECT_NE(AnchorCacheKey(a), AnchorCacheKey(b));
}

class AnchorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = RedisServer::Start();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    auto c = RedisClient::Connect(server_->url());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
    AnchorStoreOptions o;
    o.max_part_bytes = 1000;
    o.pipeline_parts = 3;
    store_ = std::make_unique<AnchorStore>(client_.get(), o);
  }
  AnchorManifest Manifest() {
    AnchorManifest m;
    m.model_id = "pix2pix-tiny";
    m.dtype = "F32";
    m.shapes = {{3, 2, 4, 64, 32}, {3, 2, 4, 64, 32}};
    m.steps = 10;
    m.layers = 16;
    m.extra = {{"guidance", "3way"}};
    return m;
  }
  std::vector<std::string> Keys(const std::string& pattern) {
    auto r = client_->Command({"KEYS", pattern});
    std::vector<std::string> out;
    if (r.ok()) {
      for (auto& e : r->elements) out.push_back(e.str);
    }
    return out;
  }
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<AnchorStore> store_;
  redis::FarmKeys keys_;
};

TEST_F(AnchorStoreTest, PublishFetchRoundTripOverManyParts) {
  auto data = RandomBytes(10500, 1);
  auto pub = store_->Publish("k1", "job-a", Manifest(), data);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->part_count, 11);
  EXPECT_EQ(pub->byte_size, 10500u);
  EXPECT_EQ(pub->part_bytes, 1000u);
  EXPECT_EQ(pub->job_id, "job-a");
  EXPECT_EQ(Keys("fairy:anchor:k1:part:*").size(), 11u);
  EXPECT_TRUE(Keys("*staging*").empty());
  auto exists = store_->Exists("k1");
  ASSERT_TRUE(exists.ok());
  EXPECT_TRUE(*exists);
  AnchorManifest m;
  auto got = store_->Fetch("k1", &m);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, data);
  EXPECT_EQ(m.checksum, pub->checksum);
  EXPECT_EQ(m.shapes, Manifest().shapes);
  EXPECT_EQ(m.layers, 16);
  EXPECT_EQ(m.extra["guidance"], "3way");
  // The part size bounds every stored value.
  auto len = client_->Command({"STRLEN", keys_.AnchorPart("k1", 10)});
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(len->integer, 500);
}

TEST_F(AnchorStoreTest, EmptyBlobAndMissingEntry) {
  auto pub = store_->Publish("empty", "job-a", Manifest(), {});
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->part_count, 0);
  auto got = store_->Fetch("empty");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->empty());
  auto none = store_->Fetch("nope");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
  EXPECT_NE(none.status().message().find("nope"), std::string::npos);
  auto bad = store_->Publish("bad key", "job", Manifest(), {});
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(AnchorStoreTest, CorruptTruncatedAndMissingPartsAreNamed) {
  auto data = RandomBytes(3500, 2);
  ASSERT_TRUE(store_->Publish("k2", "job-a", Manifest(), data).ok());
  std::string flipped(reinterpret_cast<const char*>(data.data()) + 2000, 1000);
  flipped[17] ^= 0x40;
  ASSERT_TRUE(client_->Command({"SET", keys_.AnchorPart("k2", 2), flipped}).ok());
  auto corrupt = store_->Fetch("k2");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), Status::Code::kCorruption);
  EXPECT_NE(corrupt.status().message().find("part 2 checksum"), std::string::npos)
      << corrupt.status().message();

  ASSERT_TRUE(client_->Command({"SET", keys_.AnchorPart("k2", 2), flipped.substr(0, 999)}).ok());
  auto truncated = store_->Fetch("k2");
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), Status::Code::kCorruption);
  EXPECT_NE(truncated.status().message().find("part 2 has 999 bytes"), std::string::npos)
      << truncated.status().message();

  ASSERT_TRUE(client_->Command({"DEL", keys_.AnchorPart("k2", 3)}).ok());
  ASSERT_TRUE(client_->Command({"SET", keys_.AnchorPart("k2", 2), flipped}).ok());
  flipped[17] ^= 0x40;  // restore part 2
  ASSERT_TRUE(client_->Command({"SET", keys_.AnchorPart("k2", 2), flipped}).ok());
  auto missing = store_->Fetch("k2");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("part 3 of 4"), std::string::npos)
      << missing.status().message();

  ASSERT_TRUE(client_->Command({"SET", keys_.AnchorManifest("k2"), "{not json"}).ok());
  auto garbage = store_->Fetch("k2");
  EXPECT_EQ(garbage.status().code(), Status::Code::kCorruption);
  ASSERT_TRUE(client_->Command({"SET", keys_.AnchorManifest("k2"), R"({"model_id":"m"})"}).ok());
  auto partial = store_->FetchManifest("k2");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("'dtype' is missing"), std::string::npos)
      << partial.status().message();
}

TEST_F(AnchorStoreTest, RepublishReplacesAndDropsSurplusParts) {
  ASSERT_TRUE(store_->Publish("k3", "job-a", Manifest(), RandomBytes(5000, 3)).ok());
  auto small = RandomBytes(1500, 4);
  ASSERT_TRUE(store_->Publish("k3", "job-a", Manifest(), small).ok());
  EXPECT_EQ(Keys("fairy:anchor:k3:part:*").size(), 2u);
  auto got = store_->Fetch("k3");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, small);
}

TEST_F(AnchorStoreTest, FencedPublishFromStaleAttemptChangesNothing) {
  ASSERT_TRUE(client_->Command({"HSET", keys_.Attempts("job-f"), "s000-anchor", "2"}).ok());
  auto data = RandomBytes(2500, 5);
  auto stale =
      store_->Publish("k4", "job-f", Manifest(), data, PublishFence{"job-f", "s000-anchor", 1});
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(stale.status().message().rfind("stale attempt", 0), 0u) << stale.status().message();
  EXPECT_NE(stale.status().message().find("live attempt is 2"), std::string::npos)
      << stale.status().message();
  EXPECT_TRUE(Keys("fairy:anchor:k4*").empty())
      << "staging parts must be removed, nothing published";
  auto live =
      store_->Publish("k4", "job-f", Manifest(), data, PublishFence{"job-f", "s000-anchor", 2});
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  auto got = store_->Fetch("k4");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, data);
  // A revoked attempt (0 = none live) refuses every publisher.
  ASSERT_TRUE(client_->Command({"HSET", keys_.Attempts("job-f"), "s000-anchor", "0"}).ok());
  auto revoked =
      store_->Publish("k4", "job-f", Manifest(), data, PublishFence{"job-f", "s000-anchor", 2});
  EXPECT_EQ(revoked.status().code(), Status::Code::kFailedPrecondition);
}

TEST_F(AnchorStoreTest, ExpireAttachAndDeletePerJob) {
  ASSERT_TRUE(store_->Publish("ka", "job-x", Manifest(), RandomBytes(2100, 6)).ok());
  ASSERT_TRUE(store_->Publish("kb", "job-x", Manifest(), RandomBytes(900, 7)).ok());
  ASSERT_TRUE(store_->Publish("kc", "job-y", Manifest(), RandomBytes(900, 8)).ok());
  auto n = store_->ExpireJob("job-x", 60000);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2);
  for (const auto& k :
       {keys_.AnchorManifest("ka"), keys_.AnchorPart("ka", 2), keys_.AnchorPart("kb", 0)}) {
    auto ttl = client_->Command({"PTTL", k});
    ASSERT_TRUE(ttl.ok());
    EXPECT_GT(ttl->integer, 0) << k;
    EXPECT_LE(ttl->integer, 60000) << k;
  }
  EXPECT_TRUE(Keys(keys_.AnchorJob("job-x")).empty()) << "the job let go of its entries";
  auto untouched = client_->Command({"PTTL", keys_.AnchorManifest("kc")});
  EXPECT_EQ(untouched->integer, -1);
  // A re-submitted job reuses "ka": attaching removes the expiry.
  ASSERT_TRUE(store_->Attach("ka", "job-z").ok());
  EXPECT_EQ(client_->Command({"PTTL", keys_.AnchorPart("ka", 1)})->integer, -1);
  auto del = store_->DeleteJob("job-z");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(*del, 1);
  EXPECT_TRUE(Keys("fairy:anchor:ka*").empty());
  EXPECT_FALSE(Keys("fairy:anchor:kb*").empty());
  ASSERT_TRUE(store_->Delete("kc").ok());
  EXPECT_TRUE(Keys("fairy:anchor:kc*").empty());
  auto gone = store_->Exists("kc");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(*gone);
}

TEST_F(AnchorStoreTest, SharedEntryStaysUntilTheLastJobLetsGo) {
  auto data = RandomBytes(2500, 9);
  ASSERT_TRUE(store_->Publish("ks", "job-p", Manifest(), data).ok());
  ASSERT_TRUE(store_->Attach("ks", "job-q").ok());  // a re-submitted job reuses the entry
  auto first = store_->DeleteJob("job-p");          // job-p is cancelled
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, 0) << "job-q still holds it";
  auto got = store_->Fetch("ks");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, data);
  EXPECT_EQ(client_->Command({"PTTL", keys_.AnchorPart("ks", 2)})->integer, -1);
  auto last = store_->ExpireJob("job-q", 30000);  // job-q ends
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 1);
  for (const auto& k :
       {keys_.AnchorManifest("ks"), keys_.AnchorPart("ks", 0), keys_.AnchorPart("ks", 2)}) {
    EXPECT_GT(client_->Command({"PTTL", k})->integer, 0) << k;
  }
}

TEST_F(AnchorStoreTest, ReleaseExpiresOneEntryOnceNoJobHoldsIt) {
  ASSERT_TRUE(store_->Publish("kr", "job-r", Manifest(), RandomBytes(2100, 10)).ok());
  ASSERT_TRUE(store_->Publish("kt", "job-r", Manifest(), RandomBytes(900, 11)).ok());
  ASSERT_TRUE(store_->Attach("kr", "job-s").ok());
  auto held = store_->Release("kr", "job-r", 20000);  // job-r's shot is edited; job-s holds it
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_FALSE(*held);
  EXPECT_EQ(client_->Command({"PTTL", keys_.AnchorPart("kr", 1)})->integer, -1);
  auto last = store_->Release("kr", "job-s", 20000);
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(*last);
  EXPECT_TRUE(Keys(keys_.AnchorJobs("kr")).empty()) << "no job holds it";
  for (const auto& k :
       {keys_.AnchorManifest("kr"), keys_.AnchorPart("kr", 0), keys_.AnchorPart("kr", 2)}) {
    auto ttl = client_->Command({"PTTL", k})->integer;
    EXPECT_GT(ttl, 0) << k;
    EXPECT_LE(ttl, 20000) << k;
  }
  EXPECT_EQ(client_->Command({"PTTL", keys_.AnchorManifest("kt")})->integer, -1)
      << "the job's other entry stays";
  // The job no longer holds "kr": its end expires only "kt".
  auto end = store_->ExpireJob("job-r", 60000);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, 1);
  EXPECT_LE(client_->Command({"PTTL", keys_.AnchorManifest("kr")})->integer, 20000);
  // Nothing published under a key (anchor_mode: recompute): nothing to expire.
  auto none = store_->Release("never-published", "job-r", 20000);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
  EXPECT_TRUE(Keys("fairy:anchor:never-published*").empty());
}

// An entry that would fill Redis past 90% of its maxmemory is refused before anything is written:
// the last of Redis's memory is the farm's state (the worker then recomputes the anchors instead).
TEST(AnchorStoreRoomTest, AnEntryThatWouldFillRedisIsRefusedBeforeItIsWritten) {
  testing::RedisServerOptions so;
  so.extra_args = {"--maxmemory", "64mb"};
  auto server = testing::RedisServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto client = redis::RedisClient::Connect((*server)->url());
  ASSERT_TRUE(client.ok());
  AnchorStoreOptions o;
  o.max_part_bytes = 4 << 20;
  AnchorStore store(client->get(), o);
  AnchorManifest m;
  m.model_id = "m";
  ASSERT_TRUE(store.Publish("small", "job", m, std::vector<uint8_t>(24 << 20, 1)).ok());
  auto big = store.Publish("big", "job", m, std::vector<uint8_t>(40 << 20, 2));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(big.status().message().find("would fill Redis past 90% of its maxmemory"),
            std::string::npos)
      << big.status().message();
  auto keys = (*client)->Command({"KEYS", "fairy:anchor:big*"});
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->elements.empty()) << "nothing of the refused entry is written";
  o.max_memory_fill = 0;  // the check off: Redis itself refuses the write when it is full
  AnchorStore unchecked(client->get(), o);
  auto refused = unchecked.Publish("big", "job", m, std::vector<uint8_t>(40 << 20, 2));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("OOM"), std::string::npos)
      << refused.status().ToString();
}

}  // namespace
}  // namespace fairy::anchor
