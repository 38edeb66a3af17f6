// Farm loopback benchmark: the real coordinator (event loop, scheduler, store, ZeroMQ ROUTER link,
// control API) with N simulated workers (real DealerLinks on loopback) that answer every TASK with
// DONE, at once (saturation: the coordinator is never idle) and after holding each task for
// --task-ms (a fixed offered load of about N / task-ms tasks per second). Measures tasks assigned
// per second and the assignment latency a worker sees (its DONE sent -> its next TASK received),
// with the Redis store and with the in-memory store.
//
//   bench_farm_loopback [--workers 32] [--jobs 40] [--clip PATH] [--task-ms 5] [--aof yes|no]
//
// --aof no runs the private redis-server without its append-only file (the farm runs with it).
//
// Not a test: prints a table; docs/benchmarks.md records the command and the numbers.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "coordinator/api/http_client.h"
#include "coordinator/daemon/coordinator.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_paths.h"
#include "worker/link/dealer_link.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct SimWorker {
  std::unique_ptr<fairy::link::DealerLink> link;
  std::mutex mutex;
  Clock::time_point last_done{};
  bool has_done = false;
};

struct Result {
  double tasks_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t tasks = 0;
};

Result RunOnce(bool use_redis, bool aof, int workers, int jobs, const std::string& clip, int task_ms) {
  std::unique_ptr<fairy::testing::RedisServer> redis;
  fairy::coordinator::CoordinatorOptions o;
  if (use_redis) {
    fairy::testing::RedisServerOptions ro;
    if (!aof) ro.extra_args = {"--appendonly", "no"};
    redis = std::move(fairy::testing::RedisServer::Start(ro).value());
    o.redis_url = redis->url();
  }
  std::string dir = fairy::testing::MakeTempDir("fairy-bench-farm");
  o.worker_bind = "tcp://127.0.0.1:*";
  o.api.port = 0;
  o.api.token = "bench";
  o.submit.storage_roots = {dir, fairy::testing::SharedDir(), "/"};
  o.submit.default_model = fairy::testing::SharedDir() + "/fixtures/pix2pix-tiny";
  o.scheduler.heartbeat_interval_ms = 1000;
  o.scheduler.max_retries = 0;
  auto c = fairy::coordinator::Coordinator::Start(o);
  if (!c.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", c.status().ToString().c_str());
    std::exit(1);
  }
  auto coordinator = std::move(c).value();
  std::thread loop([&] { coordinator->Run(); });
  fairy::api::HttpClient api({"127.0.0.1", coordinator->api_port()}, "bench");

  std::vector<std::string> ids;
  for (int j = 0; j < jobs; ++j) {
    std::string yaml = "input: " + clip + "\noutput: " + dir + "/out" + std::to_string(j) +
                       ".mp4\ninstruction: bench\nchunk_frames: 1\nedit: {batch: 1}\n";
    auto r = api.Json("POST", "/v1/jobs", yaml);
    if (!r.ok()) {
      std::fprintf(stderr, "submit: %s\n", r.status().ToString().c_str());
      std::exit(1);
    }
    ids.push_back((*r)["jobs"][0]);
  }
  int64_t total_tasks = 0;
  for (const auto& id : ids) {
    while (true) {
      auto s = api.Json("GET", "/v1/jobs/" + id);
      if (s.ok() && (*s)["tasks_total"].get<int64_t>() > 0) {
        total_tasks += (*s)["tasks_total"].get<int64_t>();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::mutex lat_mutex;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(static_cast<size_t>(total_tasks));
  std::atomic<int64_t> done{0};
  std::vector<std::unique_ptr<SimWorker>> sims;
  auto start = Clock::now();
  for (int w = 0; w < workers; ++w) {
    auto sim = std::make_unique<SimWorker>();
    SimWorker* raw = sim.get();
    fairy::link::DealerOptions d;
    d.endpoint = coordinator->worker_endpoint();
    d.worker_id = "sim-" + std::to_string(w);
    auto link = fairy::link::DealerLink::Start(
        d,
        [id = d.worker_id] {
          fairy::protocol::Ready r;
          r.worker_id = id;
          r.device = "cpu";
          return r;
        },
        [raw, &lat_mutex, &latencies_ms, &done, task_ms](fairy::protocol::Message m) {
          auto* task = std::get_if<fairy::protocol::Task>(&m);
          if (task == nullptr) return;
          auto now = Clock::now();
          {
            std::lock_guard<std::mutex> lock(raw->mutex);
            if (raw->has_done) {
              std::lock_guard<std::mutex> l2(lat_mutex);
              latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - raw->last_done).count());
            }
          }
          // The simulated work (on this worker's link thread; its heartbeats wait, as a busy GPU's
          // would not, but task_ms is far below the heartbeat interval).
          if (task_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(task_ms));
          {
            std::lock_guard<std::mutex> lock(raw->mutex);
            raw->last_done = Clock::now();
            raw->has_done = true;
          }
          raw->link->Send(fairy::protocol::Done{task->ref, "/dev/null", task->frame_end - task->frame_begin, 0, 0});
          done.fetch_add(1);
        });
    sim->link = std::move(link).value();
    sims.push_back(std::move(sim));
  }
  while (done.load() < total_tasks) {
    if (Clock::now() - start > std::chrono::minutes(5)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& s : sims) s->link->Stop(nullptr, 0);
  coordinator->Shutdown();
  loop.join();

  Result r;
  r.tasks = done.load();
  r.tasks_per_s = static_cast<double>(r.tasks) / seconds;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  if (!latencies_ms.empty()) {
    r.p50_ms = latencies_ms[latencies_ms.size() / 2];
    r.p99_ms = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
    r.max_ms = latencies_ms.back();
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 32;
  int jobs = 40;
  std::string clip = fairy::testing::MediaPath("carphone_pristine.mp4");
  int task_ms = 5;
  bool aof = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--task-ms")) task_ms = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--aof")) aof = std::strcmp(argv[i + 1], "no") != 0;
    if (!std::strcmp(argv[i], "--workers")) workers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--jobs")) jobs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--clip")) clip = argv[i + 1];
  }
  fairy::SetLogLevel(fairy::LogLevel::kError);
  std::printf("farm loopback: %d simulated workers, %d jobs of %s, chunk_frames 1, edit.batch 1, redis AOF %s\n",
              workers, jobs, clip.c_str(), aof ? "everysec" : "off");
  std::printf("%-8s %8s %8s %12s %10s %10s %10s\n", "store", "task ms", "tasks", "tasks/s", "p50 ms", "p99 ms",
              "max ms");
  for (int hold : {0, task_ms}) {
    for (bool redis : {true, false}) {
      Result r = RunOnce(redis, aof, workers, jobs, clip, hold);
      std::printf("%-8s %8d %8lld %12.0f %10.3f %10.3f %10.3f\n", redis ? "redis" : "memory", hold,
                  static_cast<long long>(r.tasks), r.tasks_per_s, r.p50_ms, r.p99_ms, r.max_ms);
    }
    if (task_ms == 0) break;
  }
  return 0;
}
