// Scheduler core + store throughput: tasks assigned per second and assignment latency with N
// simulated workers (default 32), each with one slot. A cycle is: every idle worker says READY
// (the scheduler picks a task and the Persist of the assignment is written to the store before
// the Assign would be sent), then every busy worker reports DONE (fenced commit in the store).
// Assignment latency = OnWorkerReady + writing its Persist actions, per assigned task.
//
//   bench_scheduler [--workers 32] [--jobs 4] [--shots 20] [--frames-per-shot 240] [--chunk 8]
//                   [--store memory|redis|none] [--redis-url redis://127.0.0.1:6379/0]
// With --store redis and no --redis-url it starts a private redis-server (AOF everysec, like the
// farm's) on a free loopback port.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/store.h"
#include "tests/support/redis_server.h"

namespace {

using namespace fairy;
using Clock = std::chrono::steady_clock;

struct Args {
  int workers = 32;
  int jobs = 4;
  int shots = 20;
  int64_t frames_per_shot = 240;
  int64_t chunk = 8;
  std::string store = "redis";
  std::string redis_url;
};

// "w" + number without GCC 12's -Wrestrict false positive on operator+(const char*, string&&).
std::string Name(const char* prefix, int n) {
  std::string out = prefix;
  out += std::to_string(n);
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1));
  return v[i];
}

int Run(const Args& args) {
  scheduler::SystemClock clock;
  std::unique_ptr<testing::RedisServer> server;
  std::unique_ptr<store::Store> st;
  std::unique_ptr<redis::RedisClient>
      ping_client;  // reference: one bare round trip to the same Redis
  if (args.store == "memory") {
    st = store::NewMemoryStore(&clock);
  } else if (args.store == "redis") {
    std::string url = args.redis_url;
    if (url.empty()) {
      auto s = testing::RedisServer::Start();
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
        return 1;
      }
      server = std::move(*s);
      url = server->url();
    }
    auto c = redis::RedisClient::Connect(url);
    auto pc = redis::RedisClient::Connect(url);
    if (pc.ok()) ping_client = std::move(*pc);
    if (!c.ok()) {
      std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
      return 1;
    }
    store::RedisStoreOptions o;
    o.key_prefix = "bench:";
    st = store::NewRedisStore(std::move(*c), o);
  } else if (args.store != "none") {
    std::fprintf(stderr, "--store must be memory, redis or none\n");
    return 2;
  }

  scheduler::SchedulerOptions opts;
  opts.heartbeat_interval_ms = 60000;
  scheduler::Scheduler sched(opts, &clock);
  auto execute = [&](const scheduler::Actions& actions,
                     std::vector<scheduler::AssignAction>* assigns) -> bool {
    for (const auto& a : actions) {
      if (auto* p = std::get_if<scheduler::PersistAction>(&a)) {
        if (st) {
          Status s = st->Apply(p->mutation);
          if (!s.ok()) {
            std::fprintf(stderr, "store: %s\n", s.ToString().c_str());
            return false;
          }
        }
      } else if (auto* w = std::get_if<scheduler::PersistWorkerAction>(&a)) {
        if (st && !st->PutWorker(w->worker, w->ttl_ms).ok()) return false;
      } else if (auto* as = std::get_if<scheduler::AssignAction>(&a)) {
        if (assigns) assigns->push_back(*as);
      }
    }
    return true;
  };

  // Plan: every job fully analyzed up front (frames wait for anchors, as in production).
  int64_t total_tasks = 0;
  for (int j = 0; j < args.jobs; ++j) {
    scheduler::Actions out;
    scheduler::JobSubmission sub;
    sub.job_id = Name("job", j);
    sub.spec = std::string(2000, 'x');  // a realistic YAML size
    sub.priority = 40 + 10 * (j % 3);
    sub.chunk_frames = args.chunk;
    if (!sched.Submit(sub, &out).ok()) return 1;
    std::vector<scheduler::ShotPlan> shots;
    for (int s = 0; s < args.shots; ++s) {
      const int64_t first = s * args.frames_per_shot;
      shots.push_back(
          {s,
           first,
           args.frames_per_shot,
           {first, first + args.frames_per_shot / 2, first + args.frames_per_shot - 1}});
    }
    if (!sched.OnAnalyzeDone(sub.job_id, shots, &out).ok()) return 1;
    if (!execute(out, nullptr)) return 1;
    total_tasks += static_cast<int64_t>(sched.Tasks(sub.job_id).size());
  }
  for (int w = 0; w < args.workers; ++w) {
    scheduler::Actions out;
    scheduler::WorkerInfo info{Name("w", w), "host", "cuda:0", 24000, {}, {}, 1};
    if (!sched.OnWorkerHello(info, {}, &out).ok() || !execute(out, nullptr)) return 1;
  }

  std::vector<double> assign_us, done_us;
  assign_us.reserve(total_tasks);
  done_us.reserve(total_tasks);
  int64_t assigned = 0, done = 0;
  const auto start = Clock::now();
  std::vector<scheduler::AssignAction> busy;
  while (done < total_tasks) {
    busy.clear();
    for (int w = 0; w < args.workers; ++w) {
      scheduler::Actions out;
      const auto t0 = Clock::now();
      if (!sched.OnWorkerReady(Name("w", w), 1, &out).ok()) return 1;
      const size_t before = busy.size();
      if (!execute(out, &busy)) return 1;
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      for (size_t k = before; k < busy.size(); ++k)
        assign_us.push_back(us / double(busy.size() - before));
      assigned += static_cast<int64_t>(busy.size() - before);
    }
    if (busy.empty()) {
      std::fprintf(stderr, "stalled with %lld of %lld tasks done\n", (long long)done,
                   (long long)total_tasks);
      return 1;
    }
    for (const auto& a : busy) {
      scheduler::Actions out;
      const auto t0 = Clock::now();
      if (!sched.OnTaskDone({a.task.job_id, a.task.task_id, a.task.attempt}, a.worker_id, "r", &out)
               .ok())
        return 1;
      if (!execute(out, nullptr)) return 1;
      done_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      ++done;
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("store=%s workers=%d jobs=%d tasks=%lld\n", args.store.c_str(), args.workers,
              args.jobs, (long long)total_tasks);
  std::printf("  tasks assigned+completed per second: %.0f (%.3f s)\n", double(assigned) / secs,
              secs);
  std::printf("  assignment latency us: p50 %.1f  p99 %.1f  max %.1f\n", Percentile(assign_us, 0.5),
              Percentile(assign_us, 0.99), Percentile(assign_us, 1.0));
  std::printf("  fenced DONE commit latency us: p50 %.1f  p99 %.1f\n", Percentile(done_us, 0.5),
              Percentile(done_us, 0.99));
  if (ping_client) {
    std::vector<double> ping_us;
    for (int i = 0; i < 2000; ++i) {
      const auto t0 = Clock::now();
      if (!ping_client->Ping().ok()) break;
      ping_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::printf("  reference, bare PING round trip to the same Redis us: p50 %.1f  p99 %.1f\n",
                Percentile(ping_us, 0.5), Percentile(ping_us, 0.99));
    // Redis's own time inside the store's scripts (the rest is the round trip and the client).
    if (auto info = ping_client->Command({"INFO", "commandstats"}); info.ok()) {
      const std::string& text = info->str;
      const size_t at = text.find("cmdstat_evalsha:");
      const size_t per = text.find("usec_per_call=", at);
      if (at != std::string::npos && per != std::string::npos) {
        std::printf("  Redis's time per store script (EVALSHA) us: %.1f\n",
                    std::atof(text.c_str() + per + 14));
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--workers"))
      args.workers = std::atoi(next("--workers"));
    else if (!std::strcmp(argv[i], "--jobs"))
      args.jobs = std::atoi(next("--jobs"));
    else if (!std::strcmp(argv[i], "--shots"))
      args.shots = std::atoi(next("--shots"));
    else if (!std::strcmp(argv[i], "--frames-per-shot"))
      args.frames_per_shot = std::atoll(next("--frames-per-shot"));
    else if (!std::strcmp(argv[i], "--chunk"))
      args.chunk = std::atoll(next("--chunk"));
    else if (!std::strcmp(argv[i], "--store"))
      args.store = next("--store");
    else if (!std::strcmp(argv[i], "--redis-url"))
      args.redis_url = next("--redis-url");
    else {
      std::fprintf(stderr, "unknown argument %s (see the header of bench/scheduler_bench.cpp)\n",
                   argv[i]);
      return 2;
    }
  }
  if (args.workers < 1 || args.jobs < 1 || args.shots < 1 || args.frames_per_shot < 1 ||
      args.chunk < 1) {
    std::fprintf(stderr, "all counts must be >= 1\n");
    return 2;
  }
  return Run(args);
}
