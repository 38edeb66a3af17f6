// What the engine was built against (LibTorch version, CUDA availability), and process setup.
#pragma once

#include <string>

namespace fairy::engine {

// "LibTorch 1.13.1, CPU" or "LibTorch 2.3.0, CUDA (1 device(s))".
std::string BuildInfo();

// Sets LibTorch's intra-op thread count to the FAIRY_THREADS environment variable when it holds a
// positive integer, else to std::thread::hardware_concurrency(). Call once at start-up.
void ConfigureTorchThreads();

}  // namespace fairy::engine
