#include "worker/engine/engine_info.h"

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
  return info;
}

}  // namespace fairy::engine
