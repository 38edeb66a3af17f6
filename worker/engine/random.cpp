#include "worker/engine/random.h"

namespace fairy::engine {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t FrameSeed(uint64_t job_seed, int64_t frame_index) {
  const uint64_t mixed =
      SplitMix64(SplitMix64(job_seed) + 0x9E3779B97F4A7C15ULL * (static_cast<uint64_t>(frame_index) + 1));
  return mixed & 0x7FFFFFFFFFFFFFFFULL;
}

at::Generator MakeCpuGenerator(uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return gen;
}

torch::Tensor Randn(at::Generator& gen, c10::IntArrayRef shape, const torch::TensorOptions& options) {
  // ATen's CPU normal kernel takes the generator's mutex itself.
  torch::Tensor draw = torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
  const bool same = !options.has_device() || options.device() == draw.device();
  const bool same_dtype = !options.has_dtype() || options.dtype() == draw.dtype();
  if (same && same_dtype) return draw;
  return draw.to(options.device_opt().value_or(draw.device()),
                 options.dtype_opt().has_value() ? c10::typeMetaToScalarType(*options.dtype_opt())
                                                 : draw.scalar_type());
}

}  // namespace fairy::engine
