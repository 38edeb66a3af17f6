#include "worker/engine/engine_info.h"

#include <dlfcn.h>

#include <cstdlib>
#include <thread>

#include <torch/torch.h>

namespace fairy::engine {

std::string BuildInfo() {
  std::string info = "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                     std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH);
  if (torch::cuda::is_available()) {
    info += ", CUDA (" + std::to_string(torch::cuda::device_count()) + " device(s))";
  } else {
    info += ", CPU";
  }
  info += ", " + std::to_string(at::get_num_threads()) + " thread(s)";
  return info;
}

void ConfigureTorchThreads() {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("FAIRY_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) threads = n;
  }
  if (threads > 0) at::set_num_threads(threads);
  // OpenBLAS (behind Debian's LibTorch) keeps its own thread pool, one thread per core, beside
  // LibTorch's intra-op threads: both at once oversubscribe the cores (measured on 2 cores: a UNet
  // forward 2-3x slower, the Fairy loop 1.6x). LibTorch already spreads an op over its threads, so
  // OpenBLAS gets one unless OPENBLAS_NUM_THREADS says otherwise. Looked up at run time: builds
  // on MKL or other BLAS libraries have no such symbols and are left alone.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) SetBlasThreads(1);
}

bool SetBlasThreads(int threads) {
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set == nullptr) return false;
  set(threads);
  return true;
}

int BlasThreads() {
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get == nullptr ? -1 : get();
}

}  // namespace fairy::engine
