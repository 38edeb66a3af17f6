// The coordinator component in-process against a real redis-server, with in-process workers whose
// executor copies source frames unchanged (an identity "edit" through the real media layer and the
// real anchor cache): the farm mechanics (analyze, anchor -> frames, chunks, stitch, cancel, restart)
// without LibTorch, fast enough for every test run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/anchor_store/anchor_store.h"
#include "common/media/chunk.h"
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "coordinator/api/http_client.h"
#include "coordinator/daemon/coordinator.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_paths.h"
#include "worker/link/dealer_link.h"
#include "worker/runner/worker.h"

namespace fairy {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class IdentityExecutor : public worker::TaskExecutor {
 public:
  explicit IdentityExecutor(std::string redis_url) : redis_url_(std::move(redis_url)) {}
  std::vector<std::string> LoadedModels() const override { return {}; }
  Result<worker::TaskOutcome> Run(const worker::TaskContext& ctx) override {
    const auto& s = *ctx.settings;
    const auto& t = *ctx.task;
    media::DecodeOptions d;
    d.long_side = static_cast<int>(s.long_side);
    if (t.kind == protocol::TaskKind::kAnchor) {
      FAIRY_ASSIGN_OR_RETURN(auto client, redis::RedisClient::Connect(redis_url_));
      anchor::AnchorStore store(client.get());
      std::string key = "identity-" + t.ref.job_id + "-" + std::to_string(t.shot);
      std::vector<uint8_t> blob(4096, static_cast<uint8_t>(t.shot));
      anchor::AnchorManifest m;
      m.model_id = "identity";
      FAIRY_ASSIGN_OR_RETURN(auto stored, store.Publish(key, t.ref.job_id, m, blob,
                                                        anchor::PublishFence{t.ref.job_id, t.ref.task_id, t.ref.attempt}));
      return worker::TaskOutcome{key, static_cast<int64_t>(s.anchor_frames.size()), static_cast<int64_t>(stored.byte_size)};
    }
    std::error_code ec;
    std::filesystem::create_directories(s.work_dir, ec);
    FAIRY_ASSIGN_OR_RETURN(auto reader, media::FrameReader::Open(s.input, d));
    FAIRY_RETURN_IF_ERROR(reader->Seek(t.frame_begin));
    media::ChunkWriterOptions co;
    co.width = reader->output_width();
    co.height = reader->output_height();
    co.first_index = t.frame_begin;
    std::string path = protocol::ChunkPath(s.work_dir, t.ref.task_id);
    FAIRY_ASSIGN_OR_RETURN(auto writer, media::ChunkWriter::Create(path, co));
    media::RgbFrame frame;
    for (int64_t i = t.frame_begin; i < t.frame_end; ++i) {
      if (ctx.cancel->load()) return Status::Cancelled("cancelled");
      FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame));
      if (!got) return Status::Corruption("short read");
      FAIRY_RETURN_IF_ERROR(writer->Append(frame));
      ctx.progress(i + 1 - t.frame_begin, t.frame_end - t.frame_begin, "");
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    FAIRY_RETURN_IF_ERROR(writer->Finish());
    return worker::TaskOutcome{path, t.frame_end - t.frame_begin, 0};
  }
  int delay_ms = 0;

 private:
  std::string redis_url_;
};

class FarmCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FAIRY_REQUIRE_SHARED("media/bigbuckbunny.mp4");  // every job here edits it
    auto redis = testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status().ToString();
    redis_ = std::move(redis).value();
    dir_ = testing::MakeTempDir("fairy-coord");
    StartCoordinator("tcp://127.0.0.1:*", 0);
  }
  void TearDown() override {
    workers_.clear();
    StopCoordinator();
  }
  void StartCoordinator(const std::string& bind, uint16_t api_port) {
    coordinator::CoordinatorOptions o;
    o.worker_bind = bind;
    o.api.port = api_port;
    o.api.token = "t";
    o.redis_url = redis_->url();
    o.submit.storage_roots = {dir_, testing::SharedDir()};
    o.submit.default_model = testing::SharedDir() + "/fixtures/pix2pix-tiny";
    o.scheduler.heartbeat_interval_ms = 100;
    o.scheduler.heartbeat_liveness = 5;
    o.scheduler.retry_backoff_ms = 50;
    o.tick_ms = 50;
    o.finished_job_ttl_ms = finished_job_ttl_ms_;
    if (stall_ms_ > 0) o.scheduler.stall_floor_ms = o.scheduler.stall_unmeasured_ms = stall_ms_;
    auto c = coordinator::Coordinator::Start(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    coordinator_ = std::move(c).value();
    thread_ = std::thread([c = coordinator_.get()] { c->Run(); });
  }
  void StopCoordinator() {
    if (!coordinator_) return;
    coordinator_->Shutdown();
    thread_.join();
    coordinator_.reset();
  }
  // models_dir: the worker reports the models in it (listed again every 50 ms); "" = none reported.
  void AddWorker(const std::string& id, int delay_ms = 0, const std::string& models_dir = "") {
    executors_.push_back(std::make_unique<IdentityExecutor>(redis_->url()));
    executors_.back()->delay_ms = delay_ms;
    worker::WorkerOptions w;
    w.link.endpoint = coordinator_->worker_endpoint();
    w.link.worker_id = id;
    w.link.heartbeat_interval_ms = 100;
    w.link.reconnect_initial_ms = 20;
    w.link.reconnect_max_ms = 200;
    w.models_dir = models_dir;
    w.models_scan_interval_ms = 50;
    auto started = worker::Worker::Start(w, executors_.back().get());
    ASSERT_TRUE(started.ok());
    workers_.push_back(std::move(started).value());
  }
  api::HttpClient Api() { return api::HttpClient({"127.0.0.1", coordinator_->api_port()}, "t"); }
  Result<json> SubmitYaml(const std::string& output, const std::string& clip, const std::string& extra) {
    std::string yaml = "input: " + testing::MediaPath(clip) + "\noutput: " + output +
                       "\ninstruction: identity\nchunk_frames: 20\nedit: {resolution: 128}\nshots: {max_length: 50}\n" +
                       extra;
    return Api().Json("POST", "/v1/jobs?name=t.yaml", yaml);
  }
  std::string Submit(const std::string& output, const std::string& clip = "bigbuckbunny.mp4") {
    auto r = SubmitYaml(output, clip, "");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? (*r)["jobs"][0].get<std::string>() : "";
  }
  json WaitFor(const std::string& job, const std::function<bool(const json&)>& pred, std::chrono::seconds timeout = 120s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    json last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = Api().Json("GET", "/v1/jobs/" + job);
      if (r.ok()) {
        last = *r;
        if (pred(last)) return last;
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "timed out; last status " << last.dump();
    return last;
  }
  size_t AnchorKeys() {
    auto c = redis::RedisClient::Connect(redis_->url());
    auto r = (*c)->Command({"KEYS", "fairy:anchor*"});
    return r.ok() ? r->elements.size() : 0;
  }

  std::unique_ptr<testing::RedisServer> redis_;
  int64_t finished_job_ttl_ms_ = 0;
  int64_t stall_ms_ = 0;  // > 0: stall_floor_ms and stall_unmeasured_ms
  std::string dir_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  std::thread thread_;
  std::vector<std::unique_ptr<IdentityExecutor>> executors_;
  std::vector<std::unique_ptr<worker::Worker>> workers_;
};

TEST_F(FarmCoordinatorTest, JobRunsThroughAnalyzeAnchorsFramesAndStitch) {
  AddWorker("a");
  AddWorker("b");
  std::string out = dir_ + "/out/identity.mp4";
  std::string job = Submit(out);
  json done = WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  EXPECT_EQ(done["shots"].size(), 3u);
  EXPECT_EQ(done["frames_done"], 132);
  // A task counts the frames it edits (an anchor task its shot's anchors, not the shot it reads)
  // and runs from when its attempt was sent.
  for (const json& t : done["tasks"]) {
    const json& shot = done["shots"][t["shot"].get<size_t>()];
    const size_t edits =
        t["kind"] == "ANCHOR" ? shot["anchors"].size() : t["frame_count"].get<size_t>();
    EXPECT_EQ(t["frames_total"], edits) << t.dump();
    EXPECT_EQ(t["frames_done"], edits) << t.dump();
    EXPECT_GT(t["assigned_ms"].get<int64_t>(), 0) << t.dump();
    EXPECT_LE(t["assigned_ms"].get<int64_t>(), t["finished_ms"].get<int64_t>()) << t.dump();
    EXPECT_LE(shot["started_ms"].get<int64_t>(), t["assigned_ms"].get<int64_t>()) << t.dump();
  }
  auto src = media::Probe(testing::MediaPath("bigbuckbunny.mp4"));
  auto got = media::Probe(out);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->frame_count, src->frame_count);
  EXPECT_EQ(got->audio.size(), 1u);
  // The coordinator removes the chunks on its media pool once DONE is written: wait for it.
  const std::string work = dir_ + "/out/.fairy-work/" + job;
  for (int i = 0; i < 1000 && std::filesystem::exists(work); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(std::filesystem::exists(work)) << "chunks must be cleaned up";
  auto metrics = Api().Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("fairy_frames_edited_total 132"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("fairy_jobs{state=\"DONE\"} 1"), std::string::npos);
  auto logs = Api().Json("GET", "/v1/jobs/" + job + "/logs");
  ASSERT_TRUE(logs.ok());
  EXPECT_GE((*logs)["lines"].size(), 5u);
}

// The job log gives the size frames are edited at: the aspect ratio kept (16:9, and 4:3 stored as
// 720x480 with 8:9 pixels), sides rounded to multiples of 8.
TEST_F(FarmCoordinatorTest, TheJobLogGivesTheWorkingSizeWithTheAspectKept) {
  FAIRY_REQUIRE_SHARED("media/counter.mp4", "media/sony_good_quality.dv");
  AddWorker("a");
  for (const auto& [clip, size] : {std::pair{"counter.mp4", "working size 128x72"},
                                   std::pair{"sony_good_quality.dv", "working size 128x96"}}) {
    const std::string job = Submit(dir_ + "/out/" + clip + ".mp4", clip);
    json done = WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
    ASSERT_EQ(done["state"], "DONE") << done.dump(1);
    auto logs = Api().Json("GET", "/v1/jobs/" + job + "/logs");
    ASSERT_TRUE(logs.ok());
    bool found = false;
    for (const json& l : (*logs)["lines"]) found = found || l.dump().find(size) != std::string::npos;
    EXPECT_TRUE(found) << clip << ": no \"" << size << "\" in\n" << logs->dump(1);
  }
}

TEST_F(FarmCoordinatorTest, CancelDropsTheAnchorCacheAndStopsTheWorkers) {
  AddWorker("a", 30);
  std::string job = Submit(dir_ + "/out/cancel.mp4");
  WaitFor(job, [](const json& j) {
    for (const auto& t : j["tasks"]) {
      if (t["kind"] == "FRAMES" && t["state"] == "RUNNING") return true;
    }
    return false;
  });
  EXPECT_GT(AnchorKeys(), 0u);
  auto r = Api().Json("POST", "/v1/jobs/" + job + "/cancel");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["state"], "CANCELLED");
  EXPECT_EQ(AnchorKeys(), 0u);
  std::this_thread::sleep_for(300ms);
  auto w = Api().Json("GET", "/v1/workers");
  ASSERT_TRUE(w.ok());
  for (const auto& x : (*w)["workers"]) EXPECT_TRUE(x["running"].empty()) << x.dump();
  EXPECT_EQ(Api().Json("POST", "/v1/jobs/" + job + "/resume").status().code(), Status::Code::kFailedPrecondition);
}

// Job state has no expiry: a coordinator refuses a Redis whose policy may evict any key when
// memory is full, and takes one that evicts only keys with an expiry.
TEST(FarmCoordinatorStartTest, RefusesARedisThatMayEvictJobState) {
  for (const std::string policy : {"allkeys-lru", "volatile-ttl"}) {
    testing::RedisServerOptions so;
    so.extra_args = {"--maxmemory-policy", policy};
    auto redis = testing::RedisServer::Start(so);
    ASSERT_TRUE(redis.ok()) << redis.status().ToString();
    coordinator::CoordinatorOptions o;
    o.worker_bind = "tcp://127.0.0.1:*";
    o.api.port = 0;
    o.api.token = "t";
    o.redis_url = (*redis)->url();
    auto c = coordinator::Coordinator::Start(o);
    if (policy == "volatile-ttl") {
      EXPECT_TRUE(c.ok()) << c.status().ToString();
      continue;
    }
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), Status::Code::kFailedPrecondition);
    EXPECT_NE(c.status().message().find("has maxmemory-policy allkeys-lru"), std::string::npos)
        << c.status().message();
    EXPECT_NE(c.status().message().find("volatile-ttl"), std::string::npos);
  }
}

// A shot's anchor cache entry expires once every frame of the shot is edited, while the job still
// runs: Redis holds the entries of the shots being edited, not of the whole job.
TEST_F(FarmCoordinatorTest, AShotsAnchorCacheExpiresOnceItsFramesAreEdited) {
  AddWorker("a", 20);
  const std::string job = Submit(dir_ + "/out/release.mp4");
  int edited = -1, waiting = -1;
  json seen = WaitFor(job, [&](const json& j) {
    std::map<int, int> total, done, unstarted;
    for (const json& t : j["tasks"]) {
      if (t["kind"] != "FRAMES") continue;
      const int shot = t["shot"].get<int>();
      ++total[shot];
      if (t["state"] == "DONE") ++done[shot];
      if (t["state"] == "READY" || t["state"] == "PENDING") ++unstarted[shot];
    }
    edited = waiting = -1;
    for (const auto& [shot, n] : total) {
      if (done[shot] == n) edited = shot;
      if (unstarted[shot] > 0) waiting = shot;
    }
    return edited >= 0 && waiting >= 0;
  });
  ASSERT_GE(edited, 0) << seen.dump(1);
  auto client = redis::RedisClient::Connect(redis_->url());
  ASSERT_TRUE(client.ok());
  auto pttl = [&](int shot) {
    auto r = (*client)->Command(
        {"PTTL", "fairy:anchor:identity-" + job + "-" + std::to_string(shot) + ":manifest"});
    return r.ok() ? r->integer : -100;
  };
  EXPECT_GT(pttl(edited), 0) << "shot " << edited << " is edited";
  EXPECT_LE(pttl(edited), 600000);
  EXPECT_LT(pttl(waiting), 0) << "shot " << waiting << " still has frames to edit";
  json done =
      WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  auto logs = Api().Json("GET", "/v1/jobs/" + job + "/logs");
  ASSERT_TRUE(logs.ok());
  int released = 0;
  for (const json& l : (*logs)["lines"]) {
    if (l.dump().find("expires in 600 s: its shot is edited") != std::string::npos) ++released;
  }
  EXPECT_EQ(released, 3) << logs->dump(1);
}

// An unfinished job's output is refused as another job's output (the later stitch would
// overwrite the earlier result) or input (it would destroy a source being read); once the job is
// finished, its output may be rendered again.
TEST_F(FarmCoordinatorTest, AnUnfinishedJobsOutputAndInputAreNotAnotherJobsOutput) {
  FAIRY_REQUIRE_SHARED("media/counter.mp4");
  const std::string out = dir_ + "/out/shared.mp4";
  const std::string first = Submit(out);  // no workers: it stays queued
  ASSERT_FALSE(first.empty());
  auto same = Api().Json(
      "POST", "/v1/jobs?name=second.yaml",
      "input: " + testing::MediaPath("counter.mp4") + "\noutput: " + out + "\ninstruction: x\n");
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(same.status().message().find("second.yaml: job 'shared': output " + out +
                                         " is the output of job " + first),
            std::string::npos)
      << same.status().message();
  auto source = Api().Json("POST", "/v1/jobs?name=third.yaml",
                           "input: " + testing::MediaPath("counter.mp4") + "\noutput: " +
                               testing::MediaPath("bigbuckbunny.mp4") + "\ninstruction: x\n");
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.status().message().find("is the input of job " + first), std::string::npos)
      << source.status().message();
  auto jobs = Api().Json("GET", "/v1/jobs");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ((*jobs)["jobs"].size(), 1u) << "a refused file submits nothing";

  ASSERT_TRUE(Api().Json("POST", "/v1/jobs/" + first + "/cancel").ok());
  const std::string again = Submit(out);
  EXPECT_FALSE(again.empty()) << "the cancelled job's output is free again";

  // The list filtered by state (as `fairy jobs --state` asks for it).
  auto cancelled = Api().Json("GET", "/v1/jobs?state=CANCELLED");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  ASSERT_EQ((*cancelled)["jobs"].size(), 1u);
  EXPECT_EQ((*cancelled)["jobs"][0]["id"], first);
  auto live = Api().Json("GET", "/v1/jobs?state=QUEUED,RUNNING,PAUSED");
  ASSERT_TRUE(live.ok());
  ASSERT_EQ((*live)["jobs"].size(), 1u);
  EXPECT_EQ((*live)["jobs"][0]["id"], again);
  auto bad = Api().Json("GET", "/v1/jobs?state=SLEEPING");
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown job state 'SLEEPING'"), std::string::npos)
      << bad.status().message();
}

// Finished jobs outlive a coordinator restart (listed, with their logs, retryable) until
// finished_job_ttl_ms has passed; then the coordinator deletes them from Redis and from its lists.
TEST_F(FarmCoordinatorTest, FinishedJobsOutliveARestartUntilTheirTtl) {
  const std::string job = Submit(dir_ + "/out/history.mp4");
  WaitFor(job, [](const json& j) { return j["phase"] == "RENDER"; });
  ASSERT_TRUE(Api().Json("POST", "/v1/jobs/" + job + "/cancel").ok());
  StopCoordinator();
  StartCoordinator("tcp://127.0.0.1:*", 0);
  auto kept = Api().Json("GET", "/v1/jobs/" + job);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ((*kept)["state"], "CANCELLED");
  EXPECT_FALSE((*kept)["tasks"].empty());
  auto logs = Api().Json("GET", "/v1/jobs/" + job + "/logs");
  ASSERT_TRUE(logs.ok());
  EXPECT_FALSE((*logs)["lines"].empty());
  auto retried = Api().Json("POST", "/v1/jobs/" + job + "/retry?scope=job");
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ((*retried)["state"], "QUEUED");
  ASSERT_TRUE(Api().Json("POST", "/v1/jobs/" + job + "/cancel").ok());

  StopCoordinator();
  finished_job_ttl_ms_ = 1500;
  StartCoordinator("tcp://127.0.0.1:*", 0);
  auto client = redis::RedisClient::Connect(redis_->url());
  ASSERT_TRUE(client.ok());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (Api().Json("GET", "/v1/jobs/" + job).ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(Api().Json("GET", "/v1/jobs/" + job).status().code(), Status::Code::kNotFound);
  for (const std::string& key : {"fairy:job:" + job, "fairy:job:" + job + ":tasks",
                                "fairy:job:" + job + ":attempts", "fairy:log:" + job}) {
    EXPECT_EQ((*client)->Command({"EXISTS", key})->integer, 0) << key;
  }
  EXPECT_EQ((*client)->Command({"SISMEMBER", "fairy:jobs", job})->integer, 0);
}

TEST_F(FarmCoordinatorTest, RestartedCoordinatorResumesTheJob) {
  std::string bind = "tcp://127.0.0.1:" + std::to_string(31000 + (getpid() % 2000));
  uint16_t port = coordinator_->api_port();
  StopCoordinator();
  StartCoordinator(bind, port);
  AddWorker("a", 20);
  std::string out = dir_ + "/out/restart.mp4";
  std::string job = Submit(out);
  WaitFor(job, [](const json& j) { return j["tasks_done"].get<int>() >= 3; });
  StopCoordinator();  // the worker keeps running its task and reconnects
  StartCoordinator(bind, port);
  json done = WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  auto got = media::Probe(out);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->frame_count, 132);
}


// A worker that takes a task and dies silently: the coordinator declares it dead after
// interval x liveness, requeues the attempt to a live worker, and a late DONE of the dead attempt
// is fenced off (counted as stale) without disturbing the result.
TEST_F(FarmCoordinatorTest, DeadWorkersTasksAreRequeuedAndLateReportsAreFenced) {
  std::mutex mutex;
  std::optional<protocol::Task> taken;
  link::DealerOptions d;
  d.endpoint = coordinator_->worker_endpoint();
  d.worker_id = "doomed";
  d.heartbeat_interval_ms = 100;
  auto doomed = link::DealerLink::Start(
      d,
      [] {
        protocol::Ready r;
        r.worker_id = "doomed";
        r.device = "cpu";
        return r;
      },
      [&](protocol::Message m) {
        if (auto* t = std::get_if<protocol::Task>(&m)) {
          std::lock_guard<std::mutex> lock(mutex);
          if (!taken) taken = *t;
        }
      });
  ASSERT_TRUE(doomed.ok());
  std::string out = dir_ + "/out/dead.mp4";
  std::string job = Submit(out);
  AddWorker("alive", 5);
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (taken) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(taken.has_value()) << "the doomed worker never got a task";
  (*doomed)->Stop(nullptr, 0);  // silent death: no DISCONNECT, no more heartbeats
  json done = WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  for (const auto& t : done["tasks"]) {
    if (t["id"] == taken->ref.task_id) {
      EXPECT_GE(t["attempt"].get<int64_t>(), 2);
      EXPECT_EQ(t["worker"], "alive");
    }
  }
  // The dead attempt reports DONE late (e.g. it was only partitioned away): fenced, not counted.
  d.worker_id = "doomed";
  auto late = link::DealerLink::Start(
      d, [] { protocol::Ready r; r.worker_id = "doomed"; r.device = "cpu"; return r; }, [](protocol::Message) {});
  ASSERT_TRUE(late.ok());
  (*late)->Send(protocol::Done{taken->ref, "/nonexistent/stale-chunk.mkv", 1, 1, 0});
  bool fenced = false;
  for (int i = 0; i < 200 && !fenced; ++i) {
    auto m = Api().Request("GET", "/metrics");
    fenced = m.ok() && m->body.find("fairy_stale_reports_total 0") == std::string::npos;
    if (!fenced) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(fenced) << "the late DONE should be counted as stale";
  auto after = Api().Json("GET", "/v1/jobs/" + job);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)["state"], "DONE");
  for (const auto& t : (*after)["tasks"]) {
    if (t["id"] == taken->ref.task_id) {
      EXPECT_NE(t["result"], "/nonexistent/stale-chunk.mkv");
    }
  }
  auto got = media::Probe(out);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->frame_count, 132);
}

// A peer that claims 1,024 slots and heartbeats but never makes progress (never runs what it
// gets): it holds one task at a time (slots count once a worker has shown progress), each is
// declared stalled, requeued to a real worker and cancelled on the peer; after two stalls it is
// kept off the job and suspect. Its late DONE is refused.
TEST_F(FarmCoordinatorTest, APeerThatHeartbeatsButNeverProgressesHoldsOneTaskAndIsSuperseded) {
  StopCoordinator();
  stall_ms_ = 3000;
  StartCoordinator("tcp://127.0.0.1:*", 0);
  std::mutex mutex;
  std::vector<protocol::Task> tasks;
  std::vector<protocol::Cancel> cancels;
  int most_held = 0;
  link::DealerOptions d;
  d.endpoint = coordinator_->worker_endpoint();
  d.worker_id = "greedy";
  d.heartbeat_interval_ms = 100;
  auto ready = [] {
    protocol::Ready r;
    r.worker_id = "greedy";
    r.device = "cpu";
    r.capacity = 1024;
    return r;
  };
  auto greedy = link::DealerLink::Start(d, ready, [&](protocol::Message m) {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto* t = std::get_if<protocol::Task>(&m)) tasks.push_back(*t);
    if (auto* c = std::get_if<protocol::Cancel>(&m)) cancels.push_back(*c);
    most_held = std::max(most_held, static_cast<int>(tasks.size() - cancels.size()));
  });
  ASSERT_TRUE(greedy.ok());
  for (int i = 0; i < 500; ++i) {  // registered before the job exists, so it is offered tasks
    auto w = Api().Json("GET", "/v1/workers");
    if (w.ok() && !(*w)["workers"].empty()) break;
    std::this_thread::sleep_for(10ms);
  }
  std::string out = dir_ + "/out/greedy.mp4";
  std::string job = Submit(out);
  AddWorker("honest", 5);
  json done =
      WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(most_held, 1) << "a worker that has shown no progress holds one task";
    ASSERT_EQ(tasks.size(), 2u) << "two stalls keep it off the job";
    ASSERT_EQ(cancels.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(cancels[i].ref, tasks[i].ref);
      EXPECT_EQ(cancels[i].reason.rfind("stalled: no progress for ", 0), 0u) << cancels[i].reason;
    }
  }
  for (const auto& t : done["tasks"]) EXPECT_EQ(t["worker"], "honest") << t.dump();
  auto workers = Api().Json("GET", "/v1/workers");
  ASSERT_TRUE(workers.ok());
  bool suspect = false;
  for (const auto& w : (*workers)["workers"]) {
    if (w["id"] == "greedy") {
      suspect = w["suspect"].get<bool>();
      EXPECT_EQ(w["slots"], 4) << "claimed 1024, workers.max_slots is 4";
      EXPECT_EQ(w["usable_slots"], 1);
      EXPECT_EQ(w["stalls"], 2);
    }
  }
  EXPECT_TRUE(suspect) << workers->dump(1);
  // A late DONE of its first task is refused: the result stays the honest worker's.
  (*greedy)->Send(protocol::Done{tasks[0].ref, "/nonexistent/late.mkv", 1, 1, 0});
  bool fenced = false;
  for (int i = 0; i < 200 && !fenced; ++i) {
    auto m = Api().Request("GET", "/metrics");
    fenced = m.ok() && m->body.find("fairy_stale_reports_total 0\n") == std::string::npos;
    if (!fenced) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(fenced) << "the late DONE should be counted as stale";
  auto metrics = Api().Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("fairy_tasks_stalled_total 2\n"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("fairy_worker_suspect{worker=\"greedy\"} 1\n"), std::string::npos)
      << metrics->body;
  auto after = Api().Json("GET", "/v1/jobs/" + job);
  ASSERT_TRUE(after.ok());
  for (const auto& t : (*after)["tasks"]) EXPECT_NE(t["result"], "/nonexistent/late.mkv");
  (*greedy)->Stop(nullptr, 0);
}


// Models by id: workers report the models in their models folder; the coordinator refuses a job
// whose model no connected worker has, and gives a job's tasks only to workers that have its model.
class FarmModelsTest : public FarmCoordinatorTest {
 protected:
  // A folder with a diffusers folder per id in `folders` and the files in `files`.
  std::string ModelsDir(const std::string& name, const std::vector<std::string>& folders,
                        const std::vector<std::string>& files) {
    const std::string d = dir_ + "/" + name;
    std::filesystem::create_directories(d);
    for (const std::string& f : folders) {
      std::filesystem::create_directories(d + "/" + f);
      std::ofstream(d + "/" + f + "/model_index.json") << "{}";
    }
    for (const std::string& f : files) std::ofstream(d + "/" + f) << "not read";
    return d;
  }
  // The /v1/workers entry of each worker, once every one in `ids` is listed and reports models.
  std::map<std::string, json> WaitForWorkers(const std::vector<std::string>& ids,
                                             const std::function<bool(const std::map<std::string, json>&)>& pred =
                                                 nullptr) {
    std::map<std::string, json> by_id;
    for (int i = 0; i < 6000; ++i) {
      auto r = Api().Json("GET", "/v1/workers");
      by_id.clear();
      if (r.ok()) {
        for (const json& w : (*r)["workers"]) by_id[w["id"].get<std::string>()] = w;
      }
      bool all = true;
      for (const std::string& id : ids) all = all && by_id.count(id) && by_id[id]["installed_models"].is_array();
      if (all && (!pred || pred(by_id))) return by_id;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "workers not listed as expected";
    return by_id;
  }
  std::string LogText(const std::string& job) {
    auto logs = Api().Json("GET", "/v1/jobs/" + job + "/logs");
    EXPECT_TRUE(logs.ok()) << logs.status().ToString();
    return logs.ok() ? logs->dump(1) : "";
  }
  std::set<std::string> TaskWorkers(const json& job) {
    std::set<std::string> out;
    for (const json& t : job["tasks"]) out.insert(t["worker"].get<std::string>());
    return out;
  }
};

TEST_F(FarmModelsTest, AJobGoesOnlyToWorkersWithItsModelAndAnUnknownModelIsRefused) {
  AddWorker("w1", 0, ModelsDir("models-w1", {"ip2p"}, {"notes.txt"}));
  const std::string dir2 = ModelsDir("models-w2", {}, {"other.safetensors"});
  std::filesystem::create_directories(dir2 + "/half-copied");  // no model_index.json: no model
  AddWorker("w2", 0, dir2);
  auto workers = WaitForWorkers({"w1", "w2"});
  EXPECT_EQ(workers["w1"]["installed_models"], json({"ip2p"}));
  EXPECT_EQ(workers["w2"]["installed_models"], json({"other.safetensors"}));

  auto refused = SubmitYaml(dir_ + "/out/missing.mp4", "bigbuckbunny.mp4", "model: missing\n");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument) << "HTTP 400";
  const std::string& why = refused.status().message();
  EXPECT_NE(why.find("model 'missing' is installed on no connected worker"), std::string::npos) << why;
  EXPECT_NE(why.find("w1: ip2p; w2: other.safetensors"), std::string::npos) << why;
  auto jobs = Api().Json("GET", "/v1/jobs");
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE((*jobs)["jobs"].empty()) << "nothing was submitted: " << jobs->dump();

  auto ok = SubmitYaml(dir_ + "/out/ip2p.mp4", "bigbuckbunny.mp4", "model: ip2p\n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  const std::string job = (*ok)["jobs"][0].get<std::string>();
  json done = WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  EXPECT_EQ(TaskWorkers(done), std::set<std::string>{"w1"}) << done.dump(1);
  EXPECT_NE(LogText(job).find("model ip2p: on workers w1"), std::string::npos) << LogText(job);

  // A studio copies a model into w2's folder while it runs: its next listing reports it.
  std::ofstream(dir2 + "/late.safetensors") << "not read";
  WaitForWorkers({"w2"}, [](const auto& w) {
    return w.at("w2")["installed_models"] == json({"late.safetensors", "other.safetensors"});
  });
  auto late = SubmitYaml(dir_ + "/out/late.mp4", "bigbuckbunny.mp4", "model: late.safetensors\n");
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  const std::string late_job = (*late)["jobs"][0].get<std::string>();
  done = WaitFor(late_job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  EXPECT_EQ(TaskWorkers(done), std::set<std::string>{"w2"}) << done.dump(1);
  EXPECT_NE(LogText(late_job).find("model late.safetensors: on workers w2"), std::string::npos);
}

TEST_F(FarmModelsTest, WithNoWorkerConnectedTheJobIsAcceptedAndWaitsForOneWithTheModel) {
  auto r = SubmitYaml(dir_ + "/out/wait.mp4", "bigbuckbunny.mp4", "model: ip2p\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string job = (*r)["jobs"][0].get<std::string>();
  EXPECT_NE(LogText(job).find("model ip2p: could not be checked: no worker is connected"), std::string::npos)
      << LogText(job);
  // Analysis done (tasks planned) before a worker without the model connects: its READY is
  // answered on the coordinator's loop before /v1/workers can list it, so had it been given a
  // task, the job would show it once the worker is listed.
  WaitFor(job, [](const json& j) { return j["tasks"].size() > 0; });
  AddWorker("w2", 0, ModelsDir("models-w2", {"fairy-tiny"}, {}));
  WaitForWorkers({"w2"});
  json waiting = WaitFor(job, [](const json&) { return true; });
  EXPECT_EQ(waiting["state"], "QUEUED") << waiting.dump(1);
  EXPECT_EQ(TaskWorkers(waiting), std::set<std::string>{""}) << "no task assigned: " << waiting.dump(1);

  AddWorker("w1", 0, ModelsDir("models-w1", {"ip2p"}, {}));
  json done = WaitFor(job, [](const json& j) { return j["state"] == "DONE" || j["state"] == "FAILED"; });
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  EXPECT_EQ(TaskWorkers(done), std::set<std::string>{"w1"}) << done.dump(1);
}

}  // namespace
}  // namespace fairy
