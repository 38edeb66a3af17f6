// UNet, Fairy anchor attention and AnchorCache against the pix2pix-tiny goldens, plus bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <map>
#include <string>

#include "common/safetensors.h"
#include "tests/support/test_paths.h"
#include "worker/engine/anchor_attention.h"
#include "worker/engine/unet.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

using fairy::testing::TinyFixture;

class Golden {
 public:
  explicit Golden(const std::string& name) {
    auto file = SafetensorsFile::Open(TinyFixture() + "/golden/" + name);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    if (file.ok()) file_ = *file;
  }
  torch::Tensor operator[](const std::string& name) const {
    const TensorInfo* info = file_ ? file_->Find(name) : nullptr;
    EXPECT_NE(info, nullptr) << name;
    return info ? TensorFromSafetensors(*file_, *info) : torch::Tensor();
  }

 private:
  std::shared_ptr<const SafetensorsFile> file_;
};

// max|a-b| <= atol + rtol*max|b| (the manifest's default rule).
void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const std::string& what, double atol = 1e-5,
                 double rtol = 3e-5) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  auto a64 = a.to(torch::kCPU, torch::kFloat64), b64 = b.to(torch::kCPU, torch::kFloat64);
  const double err = (a64 - b64).abs().max().item<double>();
  const double ref = b64.abs().max().item<double>();
  EXPECT_LE(err, atol + rtol * ref) << what << ": max|a-b| " << err << " max|b| " << ref;
}

class TinyUNetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Without the reference data, SetUp() skips every test.
    if (!fairy::testing::MissingShared({"fixtures/pix2pix-tiny/unet"}).empty()) return;
    auto unet = LoadUNet(TinyFixture() + "/unet", torch::kCPU, torch::kFloat32);
    ASSERT_TRUE(unet.ok()) << unet.status().ToString();
    unet_ = new UNet(*unet);
  }
  static void TearDownTestSuite() {
    delete unet_;
    unet_ = nullptr;
  }
  void SetUp() override {
    FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/unet",
                         "fixtures/pix2pix-tiny/golden/unet.safetensors",
                         "fixtures/pix2pix-tiny/golden/fairy.safetensors");
  }
  UNetImpl& unet() { return **unet_; }
  static UNet* unet_;
  c10::InferenceMode inference_;
};
UNet* TinyUNetTest::unet_ = nullptr;

TEST_F(TinyUNetTest, ForwardMatchesGoldenWithDebugTensors) {
  Golden g("unet.safetensors");
  std::map<std::string, torch::Tensor> debug;
  auto out = unet().Forward(g["unet.sample"], g["unet.timesteps"], g["unet.encoder_hidden_states"], nullptr, &debug);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectClose(*out, g["unet.out"], "unet.out");
  for (const char* name : {"time_proj", "time_embedding", "conv_in", "down_blocks.0", "down_blocks.3", "mid_block",
                           "up_blocks.0", "up_blocks.3", "conv_norm_out"}) {
    ASSERT_TRUE(debug.count(name)) << name;
    ExpectClose(debug[name], g[std::string("unet.debug.") + name], name);
  }
}

TEST_F(TinyUNetTest, SelfAttentionLayersAreTheAttn1ModulesInForwardOrder) {
  const auto& layers = unet().SelfAttentionLayers();
  ASSERT_EQ(layers.size(), 10u);
  EXPECT_EQ(layers.front(), "down_blocks.0.attentions.0.transformer_blocks.0.attn1");
  EXPECT_EQ(layers[3], "mid_block.attentions.0.transformer_blocks.0.attn1");
  EXPECT_EQ(layers.back(), "up_blocks.3.attentions.1.transformer_blocks.0.attn1");
}

TEST_F(TinyUNetTest, AnchorPassMatchesGoldenAndCachesNorm1Tokens) {
  Golden g("fairy.safetensors");
  auto idx = g["fairy.anchor_indices"];
  AnchorCache cache(unet().SelfAttentionLayers(), 1, false);
  SelfAttentionContext ctx{SelfAttentionMode::kAnchor, &cache, 0, 1};
  auto out = unet().Forward(g["fairy.sample"].index_select(0, idx), g["fairy.timestep"],
                            g["fairy.encoder_hidden_states"].index_select(0, idx), &ctx);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectClose(*out, g["fairy.anchor_out"], "anchor_out");
  EXPECT_TRUE(cache.Complete());
  auto down0 = cache.Get(0, 0);
  ASSERT_TRUE(down0.ok());
  ExpectClose((*down0)[0], g["fairy.cache.down_blocks.0.attentions.0.transformer_blocks.0.attn1"], "cache down0");
  auto mid = cache.Get(3, 0);
  ASSERT_TRUE(mid.ok());
  ExpectClose((*mid)[0], g["fairy.cache.mid_block.attentions.0.transformer_blocks.0.attn1"], "cache mid");
}

TEST_F(TinyUNetTest, FramePassMatchesGoldenThroughSerialisedCache) {
  Golden g("fairy.safetensors");
  auto idx = g["fairy.anchor_indices"];
  auto frames = g["fairy.frame_indices"];
  auto sample = g["fairy.sample"], text = g["fairy.encoder_hidden_states"], t = g["fairy.timestep"];
  AnchorCache cache(unet().SelfAttentionLayers(), 1, false);
  SelfAttentionContext anchor{SelfAttentionMode::kAnchor, &cache, 0, 1};
  ASSERT_TRUE(unet().Forward(sample.index_select(0, idx), t, text.index_select(0, idx), &anchor).ok());
  std::vector<uint8_t> bytes = cache.Serialize();
  EXPECT_GE(static_cast<int64_t>(bytes.size()), cache.ByteSize());
  auto restored = AnchorCache::Deserialize(bytes);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(restored->ByteSize(), cache.ByteSize());
  SelfAttentionContext frame{SelfAttentionMode::kFrame, &*restored, 0, 1};
  auto both = unet().Forward(sample.index_select(0, frames), t, text.index_select(0, frames), &frame);
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  ExpectClose(*both, g["fairy.frames_out"], "frames_out");
  // One at a time: the golden of single frames, and bit-identical to the same call on the
  // original (unserialised) cache.
  for (int64_t i = 0; i < frames.size(0); ++i) {
    auto f = frames.narrow(0, i, 1);
    auto one = unet().Forward(sample.index_select(0, f), t, text.index_select(0, f), &frame);
    ASSERT_TRUE(one.ok());
    ExpectClose(*one, g["fairy.frames_out_single"].narrow(0, i, 1), "frames_out_single");
    SelfAttentionContext original{SelfAttentionMode::kFrame, &cache, 0, 1};
    auto again = unet().Forward(sample.index_select(0, f), t, text.index_select(0, f), &original);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(torch::equal(*one, *again));
  }
}

TEST_F(TinyUNetTest, SingleAnchorReducesToPlainSelfAttention) {
  Golden g("fairy.safetensors");
  auto sample = g["fairy.sample"], text = g["fairy.encoder_hidden_states"], t = g["fairy.timestep"];
  for (int64_t i = 0; i < sample.size(0); ++i) {
    AnchorCache cache(unet().SelfAttentionLayers(), 1, false);
    SelfAttentionContext ctx{SelfAttentionMode::kAnchor, &cache, 0, 1};
    auto out = unet().Forward(sample.narrow(0, i, 1), t, text.narrow(0, i, 1), &ctx);
    ASSERT_TRUE(out.ok());
    ExpectClose(*out, g["fairy.plain_unet_out"].narrow(0, i, 1), "frame " + std::to_string(i));
  }
}

TEST_F(TinyUNetTest, GuidanceBranchesUseOnlyTheirOwnAnchors) {
  Golden g("fairy.safetensors");
  auto sample = g["fairy.sample"], text = g["fairy.encoder_hidden_states"], t = g["fairy.timestep"];
  // Two branches of 2 anchors each (rows 0,1 | 2,3): each branch must equal its own 1-branch pass.
  AnchorCache two(unet().SelfAttentionLayers(), 1, false);
  SelfAttentionContext ctx2{SelfAttentionMode::kAnchor, &two, 0, 2};
  auto joint = unet().Forward(sample.narrow(0, 0, 4), t, text.narrow(0, 0, 4), &ctx2);
  ASSERT_TRUE(joint.ok());
  for (int64_t b = 0; b < 2; ++b) {
    AnchorCache one(unet().SelfAttentionLayers(), 1, false);
    SelfAttentionContext ctx1{SelfAttentionMode::kAnchor, &one, 0, 1};
    auto single = unet().Forward(sample.narrow(0, 2 * b, 2), t, text.narrow(0, 2 * b, 2), &ctx1);
    ASSERT_TRUE(single.ok());
    ExpectClose(joint->narrow(0, 2 * b, 2), *single, "branch " + std::to_string(b));
  }
  EXPECT_EQ(two.num_branches(), 2);
  EXPECT_EQ(two.num_anchors(), 2);
}

TEST_F(TinyUNetTest, Fp16CacheHalvesTheBytesAndStaysClose) {
  Golden g("fairy.safetensors");
  auto idx = g["fairy.anchor_indices"];
  auto frames = g["fairy.frame_indices"];
  auto sample = g["fairy.sample"], text = g["fairy.encoder_hidden_states"], t = g["fairy.timestep"];
  AnchorCache f32(unet().SelfAttentionLayers(), 1, false), f16(unet().SelfAttentionLayers(), 1, true);
  for (AnchorCache* c : {&f32, &f16}) {
    SelfAttentionContext ctx{SelfAttentionMode::kAnchor, c, 0, 1};
    ASSERT_TRUE(unet().Forward(sample.index_select(0, idx), t, text.index_select(0, idx), &ctx).ok());
  }
  EXPECT_EQ(f16.ByteSize() * 2, f32.ByteSize());
  auto restored = AnchorCache::Deserialize(f16.Serialize());
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_TRUE(restored->fp16_storage());
  SelfAttentionContext ctx{SelfAttentionMode::kFrame, &*restored, 0, 1};
  auto out = unet().Forward(sample.index_select(0, frames), t, text.index_select(0, frames), &ctx);
  ASSERT_TRUE(out.ok());
  ExpectClose(*out, g["fairy.frames_out"], "fp16 cache", 2e-3, 2e-3);
}

TEST_F(TinyUNetTest, BadShapesAndIncompleteCacheAreErrors) {
  auto text = torch::zeros({1, 77, 32});
  auto t = torch::tensor({10.0f});
  auto bad_channels = unet().Forward(torch::zeros({1, 4, 16, 16}), t, text);
  ASSERT_FALSE(bad_channels.ok());
  EXPECT_NE(bad_channels.status().message().find("[1, 4, 16, 16]"), std::string::npos)
      << bad_channels.status().ToString();
  EXPECT_FALSE(unet().Forward(torch::zeros({2, 8, 16, 16}), t, text).ok());          // batch mismatch
  EXPECT_FALSE(unet().Forward(torch::zeros({1, 8, 16, 16}), t, torch::zeros({1, 77, 16})).ok());
  EXPECT_FALSE(unet().Forward(torch::zeros({1, 8, 16, 16}), torch::zeros({3}), text).ok());
  AnchorCache empty(unet().SelfAttentionLayers(), 2, false);
  SelfAttentionContext frame{SelfAttentionMode::kFrame, &empty, 1, 1};
  auto no_anchors = unet().Forward(torch::zeros({1, 8, 16, 16}), t, text, &frame);
  ASSERT_FALSE(no_anchors.ok());
  EXPECT_NE(no_anchors.status().message().find("step 1"), std::string::npos) << no_anchors.status().ToString();
  SelfAttentionContext three{SelfAttentionMode::kAnchor, &empty, 0, 3};
  EXPECT_FALSE(unet().Forward(torch::zeros({2, 8, 16, 16}), t, torch::zeros({2, 77, 32}), &three).ok());
}

TEST_F(TinyUNetTest, LatentSizesThatDoNotHalveEvenlyComeBackAtTheirSize) {
  // 13x9 latents: the down path gives 7x5, 4x3, 2x2; the up path restores each skip's size.
  auto text = torch::randn({2, 77, 32});
  for (auto [h, w] : {std::pair<int64_t, int64_t>{13, 9}, {16, 10}, {5, 3}}) {
    auto out = unet().Forward(torch::randn({2, 8, h, w}), torch::tensor({500.0f}), text);
    ASSERT_TRUE(out.ok()) << h << "x" << w << ": " << out.status().ToString();
    EXPECT_EQ(out->sizes(), (std::vector<int64_t>{2, 4, h, w}));
    EXPECT_TRUE(torch::isfinite(*out).all().item<bool>());
  }
}

// ---------------------------------------------------------------------------------------------
TEST(UNetConfigTest, LegacyAttentionHeadDimIsTheHeadCount) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/unet/config.json",
                       "fixtures/ip2p-sd15-config/unet/config.json");
  auto config = UNetConfig::Load(TinyFixture() + "/unet/config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->num_heads, (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_EQ(config->layers_per_block, (std::vector<int64_t>{1, 1, 1, 1}));
  auto sd15 = UNetConfig::Load(fairy::testing::SharedDir() + "/fixtures/ip2p-sd15-config/unet/config.json");
  ASSERT_TRUE(sd15.ok()) << sd15.status().ToString();
  EXPECT_EQ(sd15->in_channels, 8);
  EXPECT_EQ(sd15->cross_attention_dim, 768);
}

TEST(UNetConfigTest, UnsupportedAndInconsistentConfigsNameTheField) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/unet/config.json");
  auto json = ReadJsonFile(TinyFixture() + "/unet/config.json");
  ASSERT_TRUE(json.ok());
  auto with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = *json;
    j[key] = value;
    return UNetConfig::FromJson(j, "x/config.json");
  };
  auto cls = with("class_embed_type", "timestep");
  ASSERT_FALSE(cls.ok());
  EXPECT_EQ(cls.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(cls.status().message().find("class_embed_type"), std::string::npos);
  auto block = with("down_block_types", nlohmann::json{"CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                                                       "CrossAttnDownBlock2D", "DownBlock2D"});
  ASSERT_FALSE(block.ok());
  EXPECT_NE(block.status().message().find("SimpleCrossAttnDownBlock2D"), std::string::npos);
  auto heads = with("attention_head_dim", 5);
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.status().message().find("attention_head_dim"), std::string::npos);
  EXPECT_FALSE(with("up_block_types", nlohmann::json{"UpBlock2D"}).ok());
  EXPECT_FALSE(with("block_out_channels", "abc").ok());
  EXPECT_FALSE(UNetConfig::Load(TinyFixture() + "/no-such/config.json").ok());
}

TEST(UNetLoadTest, MissingWeightsAndWrongShapesAreReported) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/unet");
  auto missing = LoadUNet(TinyFixture() + "/text_encoder", torch::kCPU, torch::kFloat32);
  EXPECT_FALSE(missing.ok());
  // A config whose channel counts disagree with the weights.
  std::string dir = fairy::testing::MakeTempDir("unet_shape");
  auto json = ReadJsonFile(TinyFixture() + "/unet/config.json");
  ASSERT_TRUE(json.ok());
  (*json)["cross_attention_dim"] = 64;
  std::ofstream(dir + "/config.json") << json->dump();
  std::filesystem::copy_file(TinyFixture() + "/unet/diffusion_pytorch_model.safetensors",
                             dir + "/diffusion_pytorch_model.safetensors");
  auto shaped = LoadUNet(dir, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(shaped.ok());
  EXPECT_NE(shaped.status().message().find("attn2.to_k.weight"), std::string::npos) << shaped.status().ToString();
}

// ---------------------------------------------------------------------------------------------
TEST(AnchorCacheTest, SerialisedBytesRoundTripAndRejectDamage) {
  AnchorCache cache({"a.attn1", "b.attn1"}, 2, false);
  cache.metadata()["model"] = "tiny";
  for (int s = 0; s < 2; ++s) {
    for (int l = 0; l < 2; ++l) ASSERT_TRUE(cache.Put(l, s, torch::randn({3, 2, 4 + l, 8})).ok());
  }
  EXPECT_EQ(cache.ByteSize(), 4 * (3 * 2 * 8) * (4 + 5) * 2);
  auto bytes = cache.Serialize();
  auto back = AnchorCache::Deserialize(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->metadata().at("model"), "tiny");
  EXPECT_EQ(back->layer_names(), cache.layer_names());
  for (int s = 0; s < 2; ++s) {
    for (int l = 0; l < 2; ++l) EXPECT_TRUE(torch::equal(*back->Get(l, s), *cache.Get(l, s)));
  }
  // Truncated anywhere: an error, never a crash.
  for (size_t cut : {size_t{0}, size_t{7}, size_t{20}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = AnchorCache::Deserialize(std::span<const uint8_t>(bytes.data(), cut));
    EXPECT_FALSE(r.ok()) << cut;
  }
  // A header that lies about a tensor's offsets.
  std::string serialised(bytes.begin() + 8, bytes.end());
  auto pos = serialised.find("\"data_offsets\":[0,");
  ASSERT_NE(pos, std::string::npos);
  auto lying = bytes;
  lying[8 + pos + 16] = '1';  // begin 0 -> 1: size no longer matches the shape
  auto r = AnchorCache::Deserialize(lying);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  // A header whose shape multiplies past 2^64 (and past the data) is refused, not allocated.
  nlohmann::json header = {{"__metadata__", {{"format", "fairy-anchor-cache"}, {"version", "1"}, {"steps", "1"},
                                             {"layers", "[\"a\"]"}}},
                           {"step0/a", {{"dtype", "F32"}, {"shape", {1 << 20, 1 << 20, 1 << 20, 1 << 20}},
                                        {"data_offsets", {0, 16}}}}};
  std::string text = header.dump();
  std::vector<uint8_t> huge(8 + text.size() + 16, 0);
  huge[0] = static_cast<uint8_t>(text.size());
  huge[1] = static_cast<uint8_t>(text.size() >> 8);
  std::memcpy(huge.data() + 8, text.data(), text.size());
  auto refused = AnchorCache::Deserialize(huge);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("step0/a"), std::string::npos) << refused.status().ToString();
  // Put with inconsistent geometry, Get of a missing entry.
  EXPECT_FALSE(cache.Put(0, 0, torch::randn({2, 2, 4, 8})).ok());
  EXPECT_FALSE(cache.Put(5, 0, torch::randn({3, 2, 4, 8})).ok());
  AnchorCache partial({"a.attn1"}, 3, false);
  EXPECT_FALSE(partial.Get(0, 2).ok());
  EXPECT_FALSE(partial.CheckUsableFor({"a.attn1"}, 3).ok());
}

}  // namespace
}  // namespace fairy::engine
