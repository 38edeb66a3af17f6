// What the engine was built against (LibTorch version, CUDA availability), and process setup.
#pragma once

#include <string>

namespace fairy::engine {

// "LibTorch 1.13.1, CPU" or "LibTorch 2.3.0, CUDA (1 device(s))".
std::string BuildInfo();

// Sets LibTorch's intra-op thread count to the FAIRY_THREADS environment variable when it holds a
// positive integer, else to std::thread::hardware_concurrency(), and OpenBLAS's own pool (when the
// process uses OpenBLAS and OPENBLAS_NUM_THREADS is unset) to one thread. Call once at start-up.
void ConfigureTorchThreads();

// OpenBLAS's own thread pool, when the process uses OpenBLAS (looked up at run time): Set returns
// false and Get returns -1 without it.
bool SetBlasThreads(int threads);
int BlasThreads();

}  // namespace fairy::engine
