// Cluster config: the default files match the built-in defaults, every rule reports file:line:col
// and the field, command-line overrides (--set and named flags) are validated and named.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "config/cluster_config.h"
#include "config/config_flags.h"
#include "tests/support/test_paths.h"

namespace fairy::config {
namespace {
namespace fs = std::filesystem;

std::string Text(const Diagnostics& d) {
  std::string out;
  for (const auto& item : d.items()) out += item.ToString() + "\n";
  return out;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::canonical(testing::MakeTempDir("fairy-config")).string();
    fs::create_directories(dir_ + "/storage");
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  std::string dir_;
};

TEST_F(ConfigTest, DefaultCoordinatorFileMatchesBuiltInDefaults) {
  LoadOptions options;
  options.check_paths = false;
  Diagnostics diags;
  auto file = LoadCoordinatorConfig(testing::SourceDir() + "/config/coordinator.yaml", options, &diags);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(diags.items().size(), 0u) << Text(diags);
  const CoordinatorConfig d;
  const CoordinatorConfig& c = *file;
  EXPECT_EQ(c.worker_bind, d.worker_bind);
  EXPECT_EQ(c.api_host, d.api_host);
  EXPECT_EQ(c.api_port, d.api_port);
  EXPECT_EQ(c.api_token, d.api_token);
  EXPECT_EQ(c.redis.url, d.redis.url);
  EXPECT_EQ(c.redis.key_prefix, d.redis.key_prefix);
  EXPECT_EQ(c.storage_roots, d.storage_roots);
  EXPECT_EQ(c.work_root, d.work_root);
  EXPECT_EQ(c.default_model, d.default_model);
  EXPECT_EQ(c.heartbeat_interval_ms, d.heartbeat_interval_ms);
  EXPECT_EQ(c.heartbeat_liveness, d.heartbeat_liveness);
  EXPECT_EQ(c.max_retries, d.max_retries);
  EXPECT_EQ(c.retry_backoff_ms, d.retry_backoff_ms);
  EXPECT_EQ(c.max_backoff_ms, d.max_backoff_ms);
  EXPECT_EQ(c.task_max_ms, d.task_max_ms);
  EXPECT_EQ(c.progress_timeout_ms, d.progress_timeout_ms);
  EXPECT_EQ(c.stall_floor_ms, d.stall_floor_ms);
  EXPECT_EQ(c.stall_factor, d.stall_factor);
  EXPECT_EQ(c.stall_unmeasured_ms, d.stall_unmeasured_ms);
  EXPECT_EQ(c.stall_threshold, d.stall_threshold);
  EXPECT_EQ(c.max_worker_slots, d.max_worker_slots);
  EXPECT_EQ(c.worker_failure_threshold, d.worker_failure_threshold);
  EXPECT_EQ(c.aging_ms_per_point, d.aging_ms_per_point);
  EXPECT_EQ(c.media_threads, d.media_threads);
  EXPECT_EQ(c.anchor_cache_max_part_bytes, d.anchor_cache_max_part_bytes);
  EXPECT_EQ(c.anchor_cache_ttl_ms, d.anchor_cache_ttl_ms);
  EXPECT_EQ(c.finished_job_ttl_ms, d.finished_job_ttl_ms);
  EXPECT_EQ(c.log_level, d.log_level);
}

TEST_F(ConfigTest, DefaultWorkerFileMatchesBuiltInDefaults) {
  LoadOptions options;
  options.check_paths = false;
  auto file = LoadWorkerConfig(testing::SourceDir() + "/config/worker.yaml", options);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const WorkerConfig d;
  const WorkerConfig& w = *file;
  EXPECT_EQ(w.coordinator, d.coordinator);
  EXPECT_EQ(w.worker_id, d.worker_id);
  EXPECT_EQ(w.device, d.device);
  EXPECT_EQ(w.dtype, d.dtype);
  EXPECT_EQ(w.slots, d.slots);
  EXPECT_EQ(w.tags, d.tags);
  EXPECT_EQ(w.models_dir, d.models_dir);
  EXPECT_EQ(w.model_variant, d.model_variant);
  EXPECT_EQ(w.redis.url, d.redis.url);
  EXPECT_EQ(w.storage_roots, d.storage_roots);
  EXPECT_EQ(w.heartbeat_interval_ms, d.heartbeat_interval_ms);
  EXPECT_EQ(w.heartbeat_liveness, d.heartbeat_liveness);
  EXPECT_EQ(w.reconnect_min_ms, d.reconnect_min_ms);
  EXPECT_EQ(w.reconnect_max_ms, d.reconnect_max_ms);
  EXPECT_EQ(w.drain_grace_ms, d.drain_grace_ms);
  EXPECT_EQ(w.anchor_cache_max_part_bytes, d.anchor_cache_max_part_bytes);
  EXPECT_EQ(w.anchor_cache_fp16, d.anchor_cache_fp16);
  EXPECT_EQ(w.log_level, d.log_level);
}

TEST_F(ConfigTest, CollectsEveryErrorWithPosition) {
  const std::string path = Write("c.yaml",
                                 "worker_bind: localhost:5555\n"     // 1
                                 "api: {port: 70000, hots: x}\n"     // 2
                                 "redis:\n"                          // 3
                                 "  url: http://x\n"                 // 4
                                 "  key_prefix: \"a b\"\n"           // 5
                                 "heartbeat_interval_ms: 5\n"        // 6
                                 "tasks:\n"                          // 7
                                 "  max_retries: many\n"             // 8
                                 "  retry_backoff_ms: 5000\n"        // 9
                                 "  max_backoff_ms: 1000\n"          // 10
                                 "storage_roots: [storage, missing]\n"  // 11
                                 "log_level: verbose\n"              // 12
                                 "heartbeat_livenes: 3\n");          // 13
  Diagnostics diags;
  auto c = LoadCoordinatorConfig(path, {}, &diags);
  ASSERT_FALSE(c.ok());
  diags.SortByPosition();
  EXPECT_EQ(Text(diags),
            path + ":1:14: worker_bind: must be a ZeroMQ endpoint such as tcp://HOST:PORT or ipc:///path, got \"localhost:5555\"\n" +
            path + ":2:13: api.port: must be between 0 and 65535, got 70000\n" +
            path + ":2:20: api.hots: unknown key \"hots\" (did you mean \"host\"?)\n" +
            path + ":4:8: redis.url: must be redis://HOST[:PORT][/DB] or unix:///PATH (or \"\" for none), got \"http://x\"\n" +
            path + ":5:15: redis.key_prefix: must be non-empty and without spaces, got \"a b\"\n" +
            path + ":6:24: heartbeat_interval_ms: must be between 10 and 60000, got 5\n" +
            path + ":8:16: tasks.max_retries: must be an integer, got \"many\"\n" +
            path + ":10:19: tasks.max_backoff_ms: must be >= tasks.retry_backoff_ms (5000), got 1000\n" +
            path + ":11:26: storage_roots[1]: folder " + dir_ + "/missing does not exist\n" +
            path + ":12:12: log_level: must be one of: debug, info, warning, error; got \"verbose\"\n" +
            path + ":13:1: heartbeat_livenes: unknown key \"heartbeat_livenes\" (did you mean \"heartbeat_liveness\"?)\n");
  EXPECT_EQ(c.status().message(), [&] {
    Diagnostics sorted;  // the Status holds the same lines, in the order found
    auto again = LoadCoordinatorConfig(path, {}, &sorted);
    return sorted.ToStatus().message();
  }());
}

TEST_F(ConfigTest, ProgressSupervisionIsOnByDefaultAndItsKeysAreChecked) {
  const CoordinatorConfig d;
  EXPECT_GT(d.stall_floor_ms, 0) << "a stuck task must not hold its slot for ever by default";
  EXPECT_GT(d.max_worker_slots, 0);
  const std::string path = Write("c.yaml",
                                 "storage_roots: [storage]\n"   // 1
                                 "tasks:\n"                     // 2
                                 "  stall_floor_ms: -1\n"       // 3
                                 "  stall_factor: 0.5\n"        // 4
                                 "  stall_threshold: 2\n"       // 5
                                 "workers: {max_slots: 0}\n");  // 6
  Diagnostics diags;
  ASSERT_FALSE(LoadCoordinatorConfig(path, {}, &diags).ok());
  const std::string text = Text(diags);
  EXPECT_NE(text.find(":3:19: tasks.stall_floor_ms: must be between 0 and"), std::string::npos)
      << text;
  EXPECT_NE(text.find(":4:17: tasks.stall_factor: must be between 1 and 1000"), std::string::npos)
      << text;
  EXPECT_NE(text.find(":6:22: workers.max_slots: must be between 1 and 1024, got 0"),
            std::string::npos)
      << text;
  LoadOptions options;
  options.overrides = {*ParseOverride("workers.max_slots=2"),
                       *ParseOverride("tasks.stall_floor_ms=0")};
  auto c = LoadCoordinatorConfig(Write("ok.yaml", "storage_roots: [storage]\n"), options);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->max_worker_slots, 2);
  EXPECT_EQ(c->stall_floor_ms, 0);
}

TEST_F(ConfigTest, RelativeRootsAreResolvedAgainstTheFile) {
  fs::create_directories(dir_ + "/storage/real");
  fs::create_directory_symlink(dir_ + "/storage/real", dir_ + "/storage/link");
  const std::string path = Write("c.yaml", "storage_roots: [storage/link, ./storage/../storage]\n");
  auto c = LoadCoordinatorConfig(path, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->storage_roots, (std::vector<std::string>{dir_ + "/storage/real", dir_ + "/storage"}));
  EXPECT_FALSE(LoadCoordinatorConfig(Write("e.yaml", "storage_roots: []\n"), {}).ok());
}

TEST_F(ConfigTest, OverridesAreValidatedAndNamed) {
  const std::string path = Write("c.yaml", "storage_roots: [storage]\ntasks:\n  max_retries: 2\n");
  LoadOptions options;
  options.overrides = {*ParseOverride("tasks.max_retries=7"), *ParseOverride("redis.url="),
                       *ParseOverride("anchor_cache.ttl_ms=5"),
                       *ParseOverride("finished_job_ttl_ms=0")};
  auto c = LoadCoordinatorConfig(path, options);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->max_retries, 7);
  EXPECT_EQ(c->redis.url, "");
  EXPECT_EQ(c->anchor_cache_ttl_ms, 5);
  EXPECT_EQ(c->finished_job_ttl_ms, 0);

  options.overrides = {*ParseOverride("tasks.max_retries=abc"), *ParseOverride("tasks.max_retires=1"),
                       *ParseOverride("api.port=[1"), *ParseOverride("tasks.max_retries.x=1")};
  Diagnostics diags;
  EXPECT_FALSE(LoadCoordinatorConfig(path, options, &diags).ok());
  const std::string text = Text(diags);
  EXPECT_NE(text.find("--set api.port=[1: api.port: the value is not valid YAML"), std::string::npos) << text;
  EXPECT_NE(text.find("--set tasks.max_retries.x=1: tasks.max_retries.x: \"max_retries\" is not a section"),
            std::string::npos) << text;
  EXPECT_NE(text.find("--set tasks.max_retires=1: tasks.max_retires: unknown key \"max_retires\" (did you mean \"max_retries\"?)"),
            std::string::npos) << text;
  EXPECT_FALSE(ParseOverride("novalue").ok());
  EXPECT_FALSE(ParseOverride("=x").ok());
}

TEST_F(ConfigTest, FlagsThroughCLI11) {
  const std::string path = Write("w.yaml", "storage_roots: [storage]\ndevice: cpu\n");
  fs::create_directories(dir_ + "/b");
  CLI::App app;
  ConfigFlags flags;
  AddConfigFlags(app, ConfigKind::kWorker, &flags);
  std::vector<std::string> args = {"--config", path, "--device", "cuda:1", "--dtype", "float16",
                                   "--tag", "gpu", "--tag", "a100", "--storage-root", dir_ + "/b",
                                   "--slots", "8", "--set", "slots=3", "--model-variant", "fp16"};
  std::reverse(args.begin(), args.end());  // CLI11 parses a reversed vector
  app.parse(args);
  auto w = LoadWorkerConfig(flags);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->device, "cuda:1");
  EXPECT_EQ(w->dtype, "float16");
  EXPECT_EQ(w->tags, (std::vector<std::string>{"gpu", "a100"}));
  EXPECT_EQ(w->storage_roots, (std::vector<std::string>{dir_ + "/b"}));
  EXPECT_EQ(w->slots, 3);  // --set is applied after the named flags
  EXPECT_EQ(w->model_variant, "fp16");

  CLI::App app2;
  ConfigFlags flags2;
  AddConfigFlags(app2, ConfigKind::kWorker, &flags2);
  std::vector<std::string> bad = {"--config", path, "--slots", "0", "--dtype", "bfloat16", "--model-variant", "FP-16"};
  std::reverse(bad.begin(), bad.end());
  app2.parse(bad);
  Diagnostics diags;
  EXPECT_FALSE(LoadWorkerConfig(flags2, &diags).ok());
  EXPECT_EQ(Text(diags),
            "--dtype: dtype: bfloat16 needs a cuda device; the cpu runs float32\n"
            "--slots: slots: must be between 1 and 64, got 0\n"
            "--model-variant: model_variant: must be a diffusers variant name such as fp16 (a-z 0-9 _), got \"FP-16\"\n");

  CLI::App app3;
  ConfigFlags flags3;
  AddConfigFlags(app3, ConfigKind::kCoordinator, &flags3);
  std::vector<std::string> malformed = {"nothing", "--set"};  // reversed
  EXPECT_THROW(app3.parse(malformed), CLI::ValidationError);
}

TEST_F(ConfigTest, SecretsFromFilesAndNeverInMessages) {
  std::ofstream(dir_ + "/token") << "s3cret\n";
  const std::string path = Write("c.yaml", "storage_roots: [storage]\napi: {token_file: token}\n");
  auto c = LoadCoordinatorConfig(path, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->api_token, "s3cret");

  const std::string both = Write("b.yaml", "storage_roots: [storage]\napi: {token: x, token_file: token}\n");
  Diagnostics diags;
  EXPECT_FALSE(LoadCoordinatorConfig(both, {}, &diags).ok());
  EXPECT_EQ(Text(diags), both + ":2:29: api.token_file: set either api.token or api.token_file, not both\n");

  const std::string missing = Write("m.yaml", "storage_roots: [storage]\nredis: {password_file: nope}\n");
  auto m = LoadCoordinatorConfig(missing, {});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Status::Code::kNotFound);
  EXPECT_NE(m.status().message().find("redis.password_file: cannot read " + dir_ + "/nope"), std::string::npos);

  CLI::App app;
  ConfigFlags flags;
  AddConfigFlags(app, ConfigKind::kCoordinator, &flags);
  std::vector<std::string> args = {"api.token=[topsecret", "--set"};  // reversed
  app.parse(args);
  ASSERT_EQ(flags.overrides.size(), 1u);
  EXPECT_EQ(flags.overrides[0].label, "--set api.token=***");
}

TEST_F(ConfigTest, WorkerRules) {
  const std::string path = Write("w.yaml",
                                 "storage_roots: [storage]\n"
                                 "device: gpu\n"
                                 "coordinator: tcp://host\n"
                                 "tags: [ok, \"no spaces\"]\n"
                                 "reconnect_min_ms: 500\n"
                                 "reconnect_max_ms: 100\n"
                                 "anchor_cache: {max_part_bytes: 1000, fp16: perhaps}\n");
  Diagnostics diags;
  EXPECT_FALSE(LoadWorkerConfig(path, {}, &diags).ok());
  diags.SortByPosition();
  EXPECT_EQ(Text(diags),
            path + ":2:9: device: must be cpu, cuda or cuda:N, got \"gpu\"\n" +
            path + ":3:14: coordinator: must be a ZeroMQ endpoint such as tcp://HOST:PORT or ipc:///path, got \"tcp://host\"\n" +
            path + ":4:12: tags[1]: must be 1..64 characters of A-Z a-z 0-9 _ . : -, got \"no spaces\"\n" +
            path + ":6:19: reconnect_max_ms: must be >= reconnect_min_ms (500), got 100\n" +
            path + ":7:32: anchor_cache.max_part_bytes: must be between 1048576 and 536870912, got 1000\n" +
            path + ":7:44: anchor_cache.fp16: must be true or false, got \"perhaps\"\n");
}

TEST_F(ConfigTest, BadFiles) {
  Diagnostics diags;
  auto missing = LoadCoordinatorConfig(dir_ + "/none.yaml", {}, &diags);
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(Text(diags), dir_ + "/none.yaml: cannot open the file\n");
  EXPECT_NE(LoadCoordinatorConfig(Write("l.yaml", "- a\n"), {}).status().message().find(
                "a config file must be a mapping"),
            std::string::npos);
  EXPECT_NE(LoadCoordinatorConfig(Write("s.yaml", "a: [\n"), {}).status().message().find("YAML syntax error"),
            std::string::npos);
  // Built-in defaults point at /srv/fairy: without it, the start is refused with the reason.
  if (!fs::exists("/srv/fairy")) {
    auto d = LoadCoordinatorConfig("", {});
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().message(),
              "storage_roots: folder /srv/fairy (the default) does not exist; set storage_roots");
  }
}

}  // namespace
}  // namespace fairy::config
