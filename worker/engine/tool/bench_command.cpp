// fairy-engine bench: engine throughput (frames/s, UNet forwards/s, GFLOP/s next to the plain
// matrix-multiply rate of the same run, peak memory, anchor cache size).
//
//   fairy-engine bench --config unet/config.json --random-weights [--resolution 512x384]
//                      [--frames 120] [--anchors 3] [--steps 10] [--batch 4] [--device cuda]
//                      [--dtype float16] [--fp16-cache]
//   fairy-engine bench --model DIR ...     (the folder's UNet weights; same loop)
//
// The loop is the Fairy video path of the UNet with three-way guidance: the anchor pass (K anchors
// x 3 branches, every step, filling the anchor cache), then the other frames in calls of --batch
// frames (x 3 branches) attending to the cache. Latents and text embeddings are random: the VAE and
// the text encoder are not timed (they run once per frame / once per job and cost a few percent of
// the UNet at SD 1.5 size). --frames 0 times only the matmul reference and plain UNet forwards.
#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#if defined(FAIRY_WITH_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define FAIRY_CUDA_MEMORY_STATS 1
#endif

#include "worker/engine/anchor_attention.h"
#include "worker/engine/engine_info.h"
#include "worker/engine/tool/args.h"
#include "worker/engine/tool/commands.h"
#include "worker/engine/unet.h"
#include "worker/engine/vae.h"
#include "worker/engine/weights.h"

namespace fairy::engine::tool {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model_dir;
  std::string config_path;
  bool random_weights = false;
  int64_t width = 512, height = 384;
  int64_t frames = 120, anchors = 3, steps = 10, batch = 4;
  int64_t plain_batch = 1;  // batch of the plain-forward GFLOP/s measurement
  int warmup = 1;
  bool fp16_cache = false;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
};

void Sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void ResetPeakMemory(const torch::Device& device) {
#ifdef FAIRY_CUDA_MEMORY_STATS
  if (device.is_cuda())
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#else
  (void)device;
#endif
}

// Peak device memory allocated since the last reset (CUDA), or the process's peak resident set.
std::string PeakMemory(const torch::Device& device) {
  char text[96];
#ifdef FAIRY_CUDA_MEMORY_STATS
  if (device.is_cuda()) {
    auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    std::snprintf(text, sizeof(text), "%.2f GiB (CUDA allocator peak)",
                  static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30));
    return text;
  }
#endif
  (void)device;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::snprintf(text, sizeof(text), "%.2f GiB (process peak RSS)",
                static_cast<double>(usage.ru_maxrss) / (1 << 20));
  return text;
}

std::string Bytes(int64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// The plain matrix-multiply rate of this device and dtype (the reference the UNet is compared to),
// on the CPU with OpenBLAS on as many threads as LibTorch has (ConfigureTorchThreads gives OpenBLAS
// one thread for the model, where LibTorch spreads the work; one big GEMM needs OpenBLAS's own).
double MatmulGflops(const BenchOptions& o) {
  const int blas_threads = BlasThreads();
  if (!o.device.is_cuda() && blas_threads > 0) SetBlasThreads(at::get_num_threads());
  const int64_t n = o.device.is_cuda() ? 8192 : 2048;
  auto opts = torch::TensorOptions().device(o.device).dtype(o.dtype);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  auto c = torch::matmul(a, b);
  Sync(o.device);
  int reps = 0;
  auto start = Clock::now();
  do {
    c = torch::matmul(a, b);
    ++reps;
    Sync(o.device);
  } while (Seconds(start) < 1.0 || reps < 3);
  const double gflops = 2.0 * n * n * n * reps / Seconds(start) / 1e9;
  if (!o.device.is_cuda() && blas_threads > 0) SetBlasThreads(blas_threads);
  return gflops;
}

struct LoopResult {
  double anchor_seconds = 0;
  double frame_seconds = 0;
  int64_t calls = 0;
  int64_t samples = 0;  // UNet batch rows processed
  int64_t cache_bytes = 0;
};

// One guided step of a batch of F frames: [3F] UNet call, guidance, a simple Euler update.
Result<torch::Tensor> GuidedStep(UNetImpl& unet, const torch::Tensor& x,
                                 const torch::Tensor& image_latents, const torch::Tensor& text3,
                                 float t, const SelfAttentionContext& ctx, LoopResult* result) {
  const int64_t f = x.size(0);
  auto x3 = torch::cat({x, x, x}, 0);  // [3F, 4, h, w]
  auto m3 = torch::cat({image_latents, image_latents, torch::zeros_like(image_latents)}, 0);
  auto u = torch::cat({x3, m3}, 1);           // [3F, 8, h, w]
  auto text = text3.repeat_interleave(f, 0);  // [3F, 77, C]
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor e, unet.Forward(u, torch::tensor({t}), text, &ctx));
  auto parts = e.chunk(3, 0);
  auto eps = parts[2] + 7.5 * (parts[0] - parts[1]) + 1.5 * (parts[1] - parts[2]);
  result->calls += 1;
  result->samples += 3 * f;
  return x - 0.05 * eps;
}

Result<LoopResult> RunFairyLoop(UNetImpl& unet, const BenchOptions& o, int64_t lh, int64_t lw) {
  LoopResult r;
  auto opts = torch::TensorOptions().device(o.device).dtype(o.dtype);
  auto gen = at::detail::createCPUGenerator(1234);
  auto randn = [&](std::vector<int64_t> shape) { return torch::randn(shape, gen).to(opts); };
  const int64_t cross = unet.config().cross_attention_dim;
  auto text3 = torch::cat({randn({1, 77, cross}), randn({1, 77, cross}), randn({1, 77, cross})}, 0);
  const int64_t k = std::min(o.anchors, o.frames);
  AnchorCache cache(unet.SelfAttentionLayers(), static_cast<int>(o.steps), o.fp16_cache);
  auto timestep = [&](int64_t s) {
    return static_cast<float>(999.0 * (1.0 - static_cast<double>(s) / o.steps));
  };

  Sync(o.device);
  auto start = Clock::now();
  {
    auto x = randn({k, 4, lh, lw}), m = randn({k, 4, lh, lw});
    for (int64_t s = 0; s < o.steps; ++s) {
      SelfAttentionContext ctx{SelfAttentionMode::kAnchor, &cache, static_cast<int>(s), 3};
      FAIRY_ASSIGN_OR_RETURN(x, GuidedStep(unet, x, m, text3, timestep(s), ctx, &r));
    }
  }
  Sync(o.device);
  r.anchor_seconds = Seconds(start);
  r.cache_bytes = cache.ByteSize();

  start = Clock::now();
  for (int64_t done = k; done < o.frames; done += o.batch) {
    const int64_t f = std::min(o.batch, o.frames - done);
    auto x = randn({f, 4, lh, lw}), m = randn({f, 4, lh, lw});
    for (int64_t s = 0; s < o.steps; ++s) {
      SelfAttentionContext ctx{SelfAttentionMode::kFrame, &cache, static_cast<int>(s), 3};
      FAIRY_ASSIGN_OR_RETURN(x, GuidedStep(unet, x, m, text3, timestep(s), ctx, &r));
    }
  }
  Sync(o.device);
  r.frame_seconds = Seconds(start);
  return r;
}

bool ParseResolution(const std::string& text, int64_t* w, int64_t* h) {
  const auto x = text.find('x');
  if (x == std::string::npos) return false;
  try {
    *w = std::stoll(text.substr(0, x));
    *h = std::stoll(text.substr(x + 1));
  } catch (const std::exception&) {
    return false;
  }
  return *w > 0 && *h > 0;
}

void PrintHelp() {
  std::printf(
      "Usage: fairy-engine bench (--config UNET_CONFIG_JSON --random-weights | --model DIR) "
      "[options]\n\n"
      "Times the Fairy UNet loop (anchor pass + frame pass, three-way guidance) and a plain UNet\n"
      "forward against the plain matmul rate measured in the same run.\n\n"
      "  --resolution WxH   image size (default 512x384; latents are 1/8 of it, or 1/the VAE "
      "factor\n"
      "                     of --model's vae/config.json)\n"
      "  --frames N         frames of the shot, anchors included (default 120; 0: forwards only)\n"
      "  --anchors K        anchor frames (default 3)\n"
      "  --steps N          denoising steps (default 10)\n"
      "  --batch N          frames per frame-pass UNet call (x3 guidance branches; default 4)\n"
      "  --plain-batch N    batch of the plain-forward GFLOP/s measurement (default 1)\n"
      "  --device D         cpu (default), cuda, cuda:N\n"
      "  --dtype T          float32 (default), float16, bfloat16\n"
      "  --fp16-cache       store the anchor cache in float16\n"
      "  --warmup N         untimed plain forwards first (default 1)\n");
}

}  // namespace

int RunBenchCommand(int argc, char** argv) {
  Args args(argc, argv, 1);
  if (args.Flag("--help") || args.Flag("-h")) {
    PrintHelp();
    return kExitOk;
  }
  BenchOptions o;
  o.model_dir = args.Value("--model");
  o.config_path = args.Value("--config");
  o.random_weights = args.Flag("--random-weights");
  o.fp16_cache = args.Flag("--fp16-cache");
  const std::string resolution = args.Value("--resolution", "512x384");
  std::string error;
  try {
    o.frames = std::stoll(args.Value("--frames", "120"));
    o.anchors = std::stoll(args.Value("--anchors", "3"));
    o.steps = std::stoll(args.Value("--steps", "10"));
    o.batch = std::stoll(args.Value("--batch", "4"));
    o.plain_batch = std::stoll(args.Value("--plain-batch", "1"));
    o.warmup = std::stoi(args.Value("--warmup", "1"));
  } catch (const std::exception&) {
    error = "a numeric option has a non-numeric value";
  }
  const std::string device = args.Value("--device", "cpu");
  const std::string dtype = args.Value("--dtype", "float32");
  if (!args.Finish(&error) || !error.empty()) {
    std::fprintf(stderr, "fairy-engine bench: %s (see --help)\n", error.c_str());
    return kExitUsage;
  }
  if (!ParseResolution(resolution, &o.width, &o.height)) {
    std::fprintf(stderr, "fairy-engine bench: --resolution must be WxH, got \"%s\"\n",
                 resolution.c_str());
    return kExitUsage;
  }
  if (o.frames < 0 || o.anchors < 1 || o.steps < 1 || o.batch < 1 || o.plain_batch < 1 ||
      o.warmup < 0) {
    std::fprintf(
        stderr,
        "fairy-engine bench: --frames >= 0, --anchors/--steps/--batch/--plain-batch >= 1\n");
    return kExitUsage;
  }
  if (o.model_dir.empty() == (o.config_path.empty() || !o.random_weights)) {
    std::fprintf(stderr,
                 "fairy-engine bench: give either --model DIR or --config FILE --random-weights\n");
    return kExitUsage;
  }
  auto parsed_device = ParseDevice(device);
  auto parsed_dtype = ParseScalarType(dtype);
  if (!parsed_device.ok() || !parsed_dtype.ok()) {
    const Status& s = !parsed_device.ok() ? parsed_device.status() : parsed_dtype.status();
    std::fprintf(stderr, "fairy-engine bench: %s\n", s.ToString().c_str());
    return kExitUsage;
  }
  o.device = *parsed_device;
  o.dtype = *parsed_dtype;
  ConfigureTorchThreads();
  // Subnormal floats (random weights push softmax tails there) cost ~100x on x86 CPUs.
  at::globalContext().setFlushDenormal(true);
  c10::InferenceMode inference;

  UNet unet{nullptr};
  std::string source;
  if (!o.model_dir.empty()) {
    auto loaded = LoadUNet(o.model_dir + "/unet", o.device, o.dtype);
    if (!loaded.ok()) {
      std::fprintf(stderr, "fairy-engine bench: %s\n", loaded.status().ToString().c_str());
      return kExitUsage;
    }
    unet = *loaded;
    source = o.model_dir + "/unet";
  } else {
    auto config = UNetConfig::Load(o.config_path);
    if (!config.ok()) {
      std::fprintf(stderr, "fairy-engine bench: %s\n", config.status().ToString().c_str());
      return kExitUsage;
    }
    unet = RandomUNet(*config, 0, o.device, o.dtype);
    source = o.config_path + " (random weights, seed 0)";
  }
  int64_t params = 0;
  for (const auto& p : unet->parameters()) params += p.numel();
  // Latent size: the model's VAE factor with --model, else Stable Diffusion's 8.
  int64_t vae_factor = 8;
  if (!o.model_dir.empty()) {
    auto vae = VAEConfig::Load(o.model_dir + "/vae/config.json");
    if (!vae.ok()) {
      std::fprintf(stderr, "fairy-engine bench: %s\n", vae.status().ToString().c_str());
      return kExitUsage;
    }
    vae_factor = vae->ScaleFactor();
  }
  const int64_t lh = o.height / vae_factor, lw = o.width / vae_factor;

  std::printf("fairy-engine bench (%s)\n", BuildInfo().c_str());
  std::printf("unet: %s, %.1fM parameters, device %s, dtype %s\n", source.c_str(),
              static_cast<double>(params) / 1e6, o.device.str().c_str(),
              std::string(c10::toString(o.dtype)).c_str());
  std::printf("image %" PRId64 "x%" PRId64 " (latent %" PRId64 "x%" PRId64 "), frames %" PRId64
              ", K=%" PRId64 ", steps %" PRId64 ", batch %" PRId64
              " frames x 3 branches, anchor cache %s\n",
              o.width, o.height, lw, lh, o.frames, o.anchors, o.steps, o.batch,
              o.fp16_cache ? "float16" : "float32");
  std::fflush(stdout);

  const double matmul = MatmulGflops(o);
  std::printf("matmul reference: %.1f GFLOP/s\n", matmul);
  // Plain forwards: GFLOP/s of the UNet itself.
  auto opts = torch::TensorOptions().device(o.device).dtype(o.dtype);
  auto sample = torch::randn({o.plain_batch, unet->config().in_channels, lh, lw}).to(opts);
  auto text = torch::randn({o.plain_batch, 77, unet->config().cross_attention_dim}).to(opts);
  auto t = torch::tensor({500.0f});
  for (int i = 0; i < o.warmup; ++i) {
    auto warm = unet->Forward(sample, t, text);
    if (!warm.ok()) {
      std::fprintf(stderr, "fairy-engine bench: %s\n", warm.status().ToString().c_str());
      return kExitFailed;
    }
  }
  Sync(o.device);
  int reps = 0;
  auto start = Clock::now();
  do {
    (void)unet->Forward(sample, t, text);
    ++reps;
    Sync(o.device);
  } while (Seconds(start) < 2.0 && reps < 20);
  const double forward_s = Seconds(start) / reps;
  const double flops = unet->ForwardFlops(lh, lw, 77, 1.0) * static_cast<double>(o.plain_batch);
  std::printf("unet forward (plain, batch %" PRId64
              "): %.4f s, %.1f GFLOP, %.1f GFLOP/s = %.2f x matmul\n",
              o.plain_batch, forward_s, flops / 1e9, flops / forward_s / 1e9,
              flops / forward_s / 1e9 / matmul);
  std::fflush(stdout);

  if (o.frames > 0) {
    ResetPeakMemory(o.device);
    auto loop = RunFairyLoop(*unet, o, lh, lw);
    if (!loop.ok()) {
      std::fprintf(stderr, "fairy-engine bench: %s\n", loop.status().ToString().c_str());
      return kExitFailed;
    }
    const double total = loop->anchor_seconds + loop->frame_seconds;
    const int64_t k = std::min(o.anchors, o.frames);
    const double frame_flops = unet->ForwardFlops(lh, lw, 77, static_cast<double>(k + 1));
    const double anchor_flops = unet->ForwardFlops(lh, lw, 77, static_cast<double>(k));
    const double loop_flops = 3.0 * o.steps * (anchor_flops * k + frame_flops * (o.frames - k));
    std::printf("\n%-28s %12s\n", "measure", "value");
    std::printf("%-28s %12.3f s\n", "anchor pass", loop->anchor_seconds);
    std::printf("%-28s %12.3f s\n", "frame pass", loop->frame_seconds);
    std::printf("%-28s %12.3f s\n", "total (UNet loop)", total);
    std::printf("%-28s %12.3f\n", "frames/s", static_cast<double>(o.frames) / total);
    std::printf("%-28s %12.2f\n", "UNet calls/s", static_cast<double>(loop->calls) / total);
    std::printf("%-28s %12.2f\n", "UNet forwards/s (samples)",
                static_cast<double>(loop->samples) / total);
    std::printf("%-28s %12.1f\n", "loop GFLOP/s", loop_flops / total / 1e9);
    std::printf("%-28s %12s = %" PRId64 " bytes\n", "anchor cache",
                Bytes(loop->cache_bytes).c_str(), loop->cache_bytes);
    std::printf("%-28s %s\n", "peak memory", PeakMemory(o.device).c_str());
  } else {
    std::printf("peak memory: %s\n", PeakMemory(o.device).c_str());
  }
  return kExitOk;
}

}  // namespace fairy::engine::tool
