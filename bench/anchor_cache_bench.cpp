// Anchor cache publish + fetch throughput through a local Redis (fairy_anchor_store), next to
// redis-benchmark's SET/GET figure for large values measured against the same server in the same
// run. Starts a private redis-server on a free loopback port.
//
//   bench_anchor_cache [--sizes-mib 256,1024] [--part-mib 64] [--repeat 3] [--aof]
//                      [--redis-benchmark redis-benchmark]
// --aof keeps the farm's persistence (appendonly yes, everysec); the default turns AOF off so the
// figure is the network/copy path, not the disk.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/anchor_store/anchor_store.h"
#include "tests/support/redis_server.h"

namespace {

using namespace fairy;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void Fill(std::vector<uint8_t>* v, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  size_t n = v->size() / 8 * 8;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(v->data() + i, &x, 8);
  }
}

// Runs redis-benchmark with one client and `size`-byte values; returns MiB/s for SET and GET.
std::pair<double, double> RedisBenchmark(const std::string& binary, int port, uint64_t size,
                                         int requests) {
  std::string cmd = binary + " -p " + std::to_string(port) + " -c 1 -n " +
                    std::to_string(requests) + " -d " + std::to_string(size) +
                    " -t set,get -q 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {0, 0};
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  pclose(p);
  auto rate = [&](const std::string& name) {
    // "SET: 12.34 requests per second" (progress lines end with \r; take the last match).
    size_t at = out.rfind(name + ": ");
    if (at == std::string::npos) return 0.0;
    return std::atof(out.c_str() + at + name.size() + 2) * double(size) / (1 << 20);
  };
  return {rate("SET"), rate("GET")};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes_mib = {256, 1024};
  uint64_t part_mib = 64;
  int repeat = 3;
  bool aof = false;
  std::string rb = "redis-benchmark";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sizes-mib") {
      sizes_mib.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) sizes_mib.push_back(std::stoull(item));
    } else if (a == "--part-mib") {
      part_mib = std::stoull(next());
    } else if (a == "--repeat") {
      repeat = std::max(1, std::stoi(next()));
    } else if (a == "--aof") {
      aof = true;
    } else if (a == "--redis-benchmark") {
      rb = next();
    } else {
      std::fprintf(stderr, "unknown argument %s (see the header of bench/anchor_cache_bench.cpp)\n",
                   a.c_str());
      return 2;
    }
  }
  testing::RedisServerOptions so;
  if (!aof) so.extra_args = {"--appendonly", "no"};
  auto server = testing::RedisServer::Start(so);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  auto client = redis::RedisClient::Connect((*server)->url());
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  anchor::AnchorStoreOptions ao;
  ao.max_part_bytes = part_mib << 20;
  anchor::AnchorStore store(client->get(), ao);
  std::printf("redis-server on port %d, AOF %s, part %llu MiB\n", (*server)->port(),
              aof ? "on (everysec)" : "off", (unsigned long long)part_mib);

  for (uint64_t mib : sizes_mib) {
    std::vector<uint8_t> data(mib << 20);
    Fill(&data, mib);
    auto h0 = Clock::now();
    volatile uint64_t h = anchor::XxHash64(data.data(), data.size());
    (void)h;
    const double hash_s = Seconds(h0);
    std::vector<double> pub, fetch;
    for (int r = 0; r < repeat; ++r) {
      anchor::AnchorManifest m;
      m.model_id = "bench";
      m.dtype = "F16";
      auto t0 = Clock::now();
      auto p = store.Publish("bench" + std::to_string(mib), "bench-job", m, data);
      pub.push_back(Seconds(t0));
      if (!p.ok()) {
        std::fprintf(stderr, "publish: %s\n", p.status().ToString().c_str());
        return 1;
      }
      t0 = Clock::now();
      auto f = store.Fetch("bench" + std::to_string(mib));
      fetch.push_back(Seconds(t0));
      if (!f.ok() || *f != data) {
        std::fprintf(stderr, "fetch: %s\n",
                     f.ok() ? "data differs" : f.status().ToString().c_str());
        return 1;
      }
    }
    (void)store.DeleteJob("bench-job");
    std::sort(pub.begin(), pub.end());
    std::sort(fetch.begin(), fetch.end());
    const double med_pub = pub[pub.size() / 2], med_fetch = fetch[fetch.size() / 2];
    std::printf(
        "%5llu MiB: publish %.0f MiB/s, fetch %.0f MiB/s, publish+fetch %.0f MiB/s "
        "(median of %d; XXH64 alone %.0f MiB/s)\n",
        (unsigned long long)mib, mib / med_pub, mib / med_fetch, 2.0 * mib / (med_pub + med_fetch),
        repeat, mib / hash_s);
  }
  auto [set_mibs, get_mibs] = RedisBenchmark(rb, (*server)->port(), part_mib << 20, 16);
  std::printf(
      "redis-benchmark -c 1 -d %llu (one %llu MiB value per request): SET %.0f MiB/s, GET %.0f "
      "MiB/s\n",
      (unsigned long long)(part_mib << 20), (unsigned long long)part_mib, set_mibs, get_mibs);
  return 0;
}
