// Farm loopback benchmark: the real coordinator (event loop, scheduler, store, ZeroMQ ROUTER link,
// control API) with N simulated workers that answer every TASK with DONE, at once (saturation: the
// coordinator is never idle) and after holding each task for --task-ms (a fixed offered load of
// about N / task-ms tasks per second). Measures tasks assigned per second and the assignment
// latency a worker sees (its DONE sent -> its next TASK received), with the Redis store and with
// the in-memory store.
//
// The simulated workers are N real DEALER sockets speaking the worker protocol on loopback (READY,
// HEARTBEAT, DONE), all driven by one thread: real workers run on other machines, so the bench
// keeps them from taking the coordinator's and Redis's CPU (N DealerLinks would be 2N threads).
// `--sim links` runs one DealerLink per worker instead (the workers' own link code, 2N threads).
//
//   bench_farm_loopback [--workers 32] [--jobs 40] [--clip PATH] [--task-ms 5] [--jitter 0]
//                       [--aof yes|no] [--sim poller|links] [--store both|redis|memory]
//                       [--load both|0|held] [--samples PATH]
//
// --jitter PCT draws each hold uniformly within +- PCT % of --task-ms (fixed seed): real edits
// vary, while identical holds let the workers fall into step after any stall (see docs).
// --aof no runs the private redis-server without its append-only file (the farm runs with it).
// --store and --load pick one row (e.g. for `perf record`: the jobs are submitted and analyzed
// before the load starts, and the bench says on stderr when it starts).
//
// "p99 after" leaves out the latencies of DONEs sent in the first 250 ms of the load (kOpening).
// "p99 steady (to)" also leaves out those sent once the first job has had its last TASK (printed
// in parentheses, ms since the load started): from then on the jobs end (stitch, anchor cache
// expiry) while the others run; this bench's 40 equal jobs share the workers in turn (aging
// counts from a job's last assignment), so they all end within the last ~15 % of the load.
// --samples appends every latency to PATH as tab-separated text: store, task ms, DONE sent (ms
// since the load started), latency ms, job id of the TASK.
//
// Not a test: prints a table; docs/benchmarks.md records the command and the numbers.
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <tuple>
#include <zmq.hpp>
#include <zmq_addon.hpp>

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

// One assignment latency: a worker's DONE sent -> its next TASK received.
struct Sample {
  Clock::time_point done_sent;
  double ms = 0;
  std::string job;  // the job of the TASK received
};

// The opening of a run: every job's anchor task finishes within a few ms, each releasing its
// shot's 117 frames tasks (until 11-29 those 4,680 task records were written in the anchors'
// DONE calls, and the first DONEs waited 25-50 ms); p99 after it is reported apart.
constexpr auto kOpening = std::chrono::milliseconds(250);

struct Result {
  double loop_cpu_us_per_task = 0;  // the coordinator's event loop thread on the CPU, per task
  double tasks_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double p99_after_opening_ms = 0;
  double p99_steady_ms = 0;     // after the opening, before the first job's last TASK
  double first_job_end_ms = 0;  // since the load started
  int64_t tasks = 0;
};

fairy::protocol::Ready SimReady(const std::string& id) {
  fairy::protocol::Ready r;
  r.worker_id = id;
  r.device = "cpu";
  return r;
}

fairy::protocol::Done SimDone(const fairy::protocol::Task& task) {
  return fairy::protocol::Done{task.ref, "/dev/null", task.frame_end - task.frame_begin, 0, 0};
}

// How long a simulated worker holds a task: task_ms, or uniformly within +- jitter_pct % of it
// (real edits vary; identical holds let the workers fall into step after any stall).
Clock::duration Hold(int task_ms, int jitter_pct, std::mt19937* rng) {
  const double ms = static_cast<double>(task_ms);
  if (jitter_pct <= 0) return std::chrono::milliseconds(task_ms);
  std::uniform_real_distribution<double> d(ms * (1 - jitter_pct / 100.0),
                                           ms * (1 + jitter_pct / 100.0));
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(d(*rng)));
}

void SendMessage(zmq::socket_t& socket, const fairy::protocol::Message& message) {
  auto frames = fairy::protocol::Encode(message);
  for (size_t i = 0; i < frames.size(); ++i) {
    socket.send(zmq::buffer(frames[i]),
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

// `workers` DEALER sockets on one thread: READY at connect, a HEARTBEAT a second, and for each
// TASK a DONE after `task_ms` (+- jitter_pct %). Records DONE sent -> next TASK received per
// worker.
void SimulatePolled(const std::string& endpoint, int workers, int task_ms, int jitter_pct,
                    const std::atomic<bool>* stop, std::atomic<int64_t>* done,
                    std::vector<Sample>* latencies_ms) {
  zmq::context_t context(1);
  std::mt19937 rng(12345);  // the same holds in every run
  std::vector<zmq::socket_t> sockets;
  std::vector<zmq::pollitem_t> items;
  std::vector<Clock::time_point> last_done(static_cast<size_t>(workers));
  std::vector<bool> has_done(static_cast<size_t>(workers), false);
  for (int w = 0; w < workers; ++w) {
    zmq::socket_t s(context, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::routing_id, "sim-" + std::to_string(w));
    s.connect(endpoint);
    SendMessage(s, SimReady("sim-" + std::to_string(w)));
    sockets.push_back(std::move(s));
  }
  for (auto& s : sockets) items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
  using Due = std::pair<Clock::time_point, std::pair<int, fairy::protocol::Done>>;
  auto later = [](const Due& a, const Due& b) { return a.first > b.first; };
  std::priority_queue<Due, std::vector<Due>, decltype(later)> pending(later);
  auto next_heartbeat = Clock::now() + std::chrono::seconds(1);
  auto send_done = [&](int w, const fairy::protocol::Done& d) {
    SendMessage(sockets[static_cast<size_t>(w)], d);
    last_done[static_cast<size_t>(w)] = Clock::now();
    has_done[static_cast<size_t>(w)] = true;
    done->fetch_add(1);
  };
  while (!stop->load()) {
    auto now = Clock::now();
    while (!pending.empty() && pending.top().first <= now) {
      send_done(pending.top().second.first, pending.top().second.second);
      pending.pop();
    }
    if (now >= next_heartbeat) {
      for (auto& s : sockets) SendMessage(s, fairy::protocol::Heartbeat{1, std::nullopt});
      next_heartbeat = now + std::chrono::seconds(1);
    }
    auto until = std::min(
        next_heartbeat, pending.empty() ? now + std::chrono::milliseconds(5) : pending.top().first);
    auto wait_us = std::chrono::duration_cast<std::chrono::microseconds>(until - now).count();
    // zmq_poll's timeout is in milliseconds, rounded up (no spinning): a DONE may leave up to 1 ms
    // after its hold ends, which lowers the offered load a little but not the measured latency
    // (measured from when the DONE was sent).
    zmq::poll(items.data(), items.size(),
              std::chrono::milliseconds(std::max<int64_t>(0, (wait_us + 999) / 1000)));
    // Take every waiting message off its socket first, stamping it as it comes, then decode
    // them: a TASK's receive time must not include the decoding of the TASKs ahead of it.
    std::vector<std::tuple<int, Clock::time_point, std::vector<zmq::message_t>>> arrived;
    for (int w = 0; w < workers; ++w) {
      auto& s = sockets[static_cast<size_t>(w)];
      while (s.get(zmq::sockopt::events) & ZMQ_POLLIN) {
        std::vector<zmq::message_t> parts;
        if (!zmq::recv_multipart(s, std::back_inserter(parts), zmq::recv_flags::dontwait)) break;
        arrived.emplace_back(w, Clock::now(), std::move(parts));
      }
    }
    for (auto& [w, received, parts] : arrived) {
      std::vector<std::string> frames;
      for (auto& p : parts) frames.push_back(p.to_string());
      auto m = fairy::protocol::Decode(frames);
      auto* task = m.ok() ? std::get_if<fairy::protocol::Task>(&*m) : nullptr;
      if (task == nullptr) continue;
      if (has_done[static_cast<size_t>(w)]) {
        const Clock::time_point sent = last_done[static_cast<size_t>(w)];
        latencies_ms->push_back({sent,
                                 std::chrono::duration<double, std::milli>(received - sent).count(),
                                 task->ref.job_id});
      }
      if (task_ms == 0) {
        send_done(w, SimDone(*task));
      } else {
        pending.push({received + Hold(task_ms, jitter_pct, &rng), {w, SimDone(*task)}});
      }
    }
  }
}

Result RunOnce(bool use_redis, bool aof, int workers, int jobs, const std::string& clip,
               int task_ms, int jitter_pct, bool poller, const std::string& samples_path) {
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
  pthread_setname_np(loop.native_handle(), "coord-loop");  // for perf/top -H
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

  std::vector<Sample> latencies_ms;
  latencies_ms.reserve(static_cast<size_t>(total_tasks));
  std::atomic<int64_t> done{0};
  std::fprintf(stderr, "load starts: %lld tasks ready\n", static_cast<long long>(total_tasks));
  clockid_t loop_cpu_clock;
  pthread_getcpuclockid(loop.native_handle(), &loop_cpu_clock);
  auto loop_cpu_s = [&] {
    timespec ts{};
    clock_gettime(loop_cpu_clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  };
  const double loop_cpu_start = loop_cpu_s();
  auto start = Clock::now();
  auto wait_for_all = [&] {
    while (done.load() < total_tasks) {
      if (Clock::now() - start > std::chrono::minutes(5)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  if (poller) {
    std::atomic<bool> stop{false};
    std::thread sim([&] {
      SimulatePolled(coordinator->worker_endpoint(), workers, task_ms, jitter_pct, &stop, &done,
                     &latencies_ms);
    });
    wait_for_all();
    stop.store(true);
    sim.join();
  } else {
    std::mutex lat_mutex;
    std::vector<std::unique_ptr<SimWorker>> sims;
    for (int w = 0; w < workers; ++w) {
      auto sim = std::make_unique<SimWorker>();
      SimWorker* raw = sim.get();
      fairy::link::DealerOptions d;
      d.endpoint = coordinator->worker_endpoint();
      d.worker_id = "sim-" + std::to_string(w);
      auto link = fairy::link::DealerLink::Start(
          d, [id = d.worker_id] { return SimReady(id); },
          [raw, &lat_mutex, &latencies_ms, &done, task_ms, jitter_pct,
           rng = std::make_shared<std::mt19937>(12345 + w)](fairy::protocol::Message m) {
            auto* task = std::get_if<fairy::protocol::Task>(&m);
            if (task == nullptr) return;
            auto now = Clock::now();
            {
              std::lock_guard<std::mutex> lock(raw->mutex);
              if (raw->has_done) {
                std::lock_guard<std::mutex> l2(lat_mutex);
                latencies_ms.push_back(
                    {raw->last_done,
                     std::chrono::duration<double, std::milli>(now - raw->last_done).count(),
                     task->ref.job_id});
              }
            }
            // The simulated work (on this worker's link thread; its heartbeats wait, as a busy
            // GPU's would not, but task_ms is far below the heartbeat interval).
            if (task_ms > 0) std::this_thread::sleep_for(Hold(task_ms, jitter_pct, rng.get()));
            {
              std::lock_guard<std::mutex> lock(raw->mutex);
              raw->last_done = Clock::now();
              raw->has_done = true;
            }
            raw->link->Send(SimDone(*task));
            done.fetch_add(1);
          });
      sim->link = std::move(link).value();
      sims.push_back(std::move(sim));
    }
    wait_for_all();
    for (auto& s : sims) s->link->Stop(nullptr, 0);
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double loop_cpu = loop_cpu_s() - loop_cpu_start;
  coordinator->Shutdown();
  loop.join();

  Result r;
  r.tasks = done.load();
  if (r.tasks > 0) r.loop_cpu_us_per_task = loop_cpu * 1e6 / static_cast<double>(r.tasks);
  r.tasks_per_s = static_cast<double>(r.tasks) / seconds;
  const auto p99 = [](std::vector<double>& v) {
    return v.empty() ? 0.0 : v[std::min(v.size() - 1, v.size() * 99 / 100)];
  };
  // A job ends when its last TASK has gone out; from the first such end on, jobs finishing
  // (stitch, anchor cache expiry) share the loop and the CPU with the assignments.
  std::map<std::string, Clock::time_point> last_task;  // by job
  for (const Sample& x : latencies_ms) {
    const auto received = x.done_sent + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double, std::milli>(x.ms));
    auto& t = last_task[x.job];
    t = std::max(t, received);
  }
  Clock::time_point first_end = Clock::time_point::max();
  for (const auto& [job, t] : last_task) first_end = std::min(first_end, t);
  if (!last_task.empty()) {
    r.first_job_end_ms = std::chrono::duration<double, std::milli>(first_end - start).count();
  }
  std::vector<double> all, after_opening, steady;
  for (const Sample& x : latencies_ms) {
    all.push_back(x.ms);
    if (x.done_sent >= start + kOpening) after_opening.push_back(x.ms);
    if (x.done_sent >= start + kOpening && x.done_sent < first_end) steady.push_back(x.ms);
  }
  std::sort(all.begin(), all.end());
  std::sort(after_opening.begin(), after_opening.end());
  std::sort(steady.begin(), steady.end());
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = p99(all);
    r.max_ms = all.back();
  }
  r.p99_after_opening_ms = p99(after_opening);
  r.p99_steady_ms = p99(steady);
  if (!samples_path.empty()) {
    std::FILE* f = std::fopen(samples_path.c_str(), "a");
    if (f != nullptr) {
      for (const Sample& x : latencies_ms) {
        std::fprintf(f, "%s\t%d\t%.3f\t%.3f\t%s\n", use_redis ? "redis" : "memory", task_ms,
                     std::chrono::duration<double, std::milli>(x.done_sent - start).count(), x.ms,
                     x.job.c_str());
      }
      std::fclose(f);
    }
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 32;
  int jobs = 40;
  std::string clip = fairy::testing::MediaPath("carphone_pristine.mp4");
  int task_ms = 5;
  int jitter_pct = 0;
  bool aof = true;
  bool poller = true;
  std::string stores = "both";
  std::string loads = "both";
  std::string samples;
  const char* usage =
      "usage: bench_farm_loopback [--workers 32] [--jobs 40] [--clip PATH] [--task-ms 5] "
      "[--jitter 0] [--aof yes|no] [--sim poller|links] [--store both|redis|memory] "
      "[--load both|0|held] [--samples PATH]\n";
  for (int i = 1; i < argc; i += 2) {
    const bool known = !std::strcmp(argv[i], "--task-ms") || !std::strcmp(argv[i], "--aof") ||
                       !std::strcmp(argv[i], "--workers") || !std::strcmp(argv[i], "--jobs") ||
                       !std::strcmp(argv[i], "--clip") || !std::strcmp(argv[i], "--sim") ||
                       !std::strcmp(argv[i], "--store") || !std::strcmp(argv[i], "--load") ||
                       !std::strcmp(argv[i], "--samples") || !std::strcmp(argv[i], "--jitter");
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("%s", usage);
      return 0;
    }
    if (!known || i + 1 >= argc) {
      std::fprintf(stderr, "bench_farm_loopback: %s %s\n%s", argv[i],
                   known ? "needs a value" : "is not an option", usage);
      return 2;
    }
    if (!std::strcmp(argv[i], "--task-ms")) task_ms = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--jitter")) jitter_pct = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--aof")) aof = std::strcmp(argv[i + 1], "no") != 0;
    if (!std::strcmp(argv[i], "--workers")) workers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--jobs")) jobs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--clip")) clip = argv[i + 1];
    if (!std::strcmp(argv[i], "--sim")) poller = std::strcmp(argv[i + 1], "links") != 0;
    if (!std::strcmp(argv[i], "--store")) stores = argv[i + 1];
    if (!std::strcmp(argv[i], "--load")) loads = argv[i + 1];
    if (!std::strcmp(argv[i], "--samples")) samples = argv[i + 1];
  }
  if ((stores != "both" && stores != "redis" && stores != "memory") ||
      (loads != "both" && loads != "0" && loads != "held") || jitter_pct < 0 || jitter_pct > 100) {
    std::fprintf(stderr,
                 "bench_farm_loopback: --store takes both|redis|memory, --load both|0|held, "
                 "--jitter 0..100\n%s",
                 usage);
    return 2;
  }
  fairy::SetLogLevel(fairy::LogLevel::kError);
  std::printf(
      "farm loopback: %d simulated workers (%s), %d jobs of %s, chunk_frames 1, edit.batch 1, "
      "redis AOF %s, holds +-%d %%\n",
      workers, poller ? "one poller thread" : "one DealerLink each", jobs, clip.c_str(),
      aof ? "everysec" : "off", jitter_pct);
  std::printf("%-8s %8s %8s %9s %8s %8s %8s %13s %14s %13s\n", "store", "task ms", "tasks",
              "tasks/s", "p50 ms", "p99 ms", "max ms", "p99 after ms", "p99 steady (to)",
              "loop us/task");
  for (int hold : {0, task_ms}) {
    if ((hold == 0 && loads == "held") || (hold != 0 && loads == "0")) continue;
    for (bool redis : {true, false}) {
      if ((redis && stores == "memory") || (!redis && stores == "redis")) continue;
      Result r = RunOnce(redis, aof, workers, jobs, clip, hold, jitter_pct, poller, samples);
      std::printf("%-8s %8d %8lld %9.0f %8.2f %8.2f %8.2f %13.2f %7.2f (%4.0f) %13.1f\n",
                  redis ? "redis" : "memory", hold, static_cast<long long>(r.tasks), r.tasks_per_s,
                  r.p50_ms, r.p99_ms, r.max_ms, r.p99_after_opening_ms, r.p99_steady_ms,
                  r.first_job_end_ms, r.loop_cpu_us_per_task);
    }
    if (task_ms == 0) break;
  }
  return 0;
}
