// Random numbers of the engine: torch's CPU stream (MT19937), one generator per frame.
//
// Determinism contract (DESIGN.md section 1): the initial latents and every ancestral-step noise
// of frame i come from one generator seeded with FrameSeed(job seed, i), drawn in this order:
// initial latents first, then one draw per denoising step. Nothing is drawn from a shared stream,
// so a frame's output does not depend on how the video was partitioned. Draws are always made on
// the CPU in float32 (torch's CPU normal stream, identical to Python's torch.randn with a
// torch.Generator().manual_seed(seed)) and then moved to the target device/dtype, so CPU and CUDA
// runs use the same noise.
//
// Thread safety: a generator must not be shared between threads without external locking.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace fairy::engine {

// The seed of frame `frame_index` of a job seeded with `job_seed`:
//   FrameSeed(s, i) = SplitMix64(SplitMix64(s) + 0x9E3779B97F4A7C15 * (i + 1)) & (2^63 - 1)
// (SplitMix64 as in Steele, Lea & Flood 2014). Distinct frames get statistically independent
// streams; the result fits torch's manual_seed (non-negative int64).
uint64_t FrameSeed(uint64_t job_seed, int64_t frame_index);

// A CPU generator with torch.Generator().manual_seed(seed) semantics.
at::Generator MakeCpuGenerator(uint64_t seed);

// `draws` is 1: torch.randn(shape, generator=gen) in float32 on the CPU, then moved to
// `options` (device/dtype). Consecutive calls continue the same stream.
torch::Tensor Randn(at::Generator& gen, c10::IntArrayRef shape,
                    const torch::TensorOptions& options = {});

}  // namespace fairy::engine
