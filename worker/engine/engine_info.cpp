#include "worker/engine/engine_info.h"

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
}

}  // namespace fairy::engine
