// What the engine was built against (LibTorch version, CUDA availability).
#pragma once

#include <string>

namespace fairy::engine {

// "LibTorch 1.13.1, CPU" or "LibTorch 2.3.0, CUDA 12.1 (1 device)".
std::string BuildInfo();

}  // namespace fairy::engine
