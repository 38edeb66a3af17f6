// Check kinds of the engine core: randn
#include "worker/engine/random.h"
#include "worker/engine/verify/check.h"

namespace fairy::engine::verify {
namespace {

// randn: `draws` consecutive torch.randn(shape) draws of a CPU generator seeded with `seed`,
// concatenated along dim 0.
Status RunRandn(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(int64_t seed, ctx.IntArg("seed"));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.IntListArg("shape"));
  int64_t draws = 1;
  if (ctx.HasParam("draws") || ctx.HasInput("draws")) {
    FAIRY_ASSIGN_OR_RETURN(draws, ctx.IntArg("draws"));
  }
  if (draws < 1 || shape.empty()) {
    return Status::InvalidArgument("check \"" + ctx.name() + "\": draws must be >= 1 and shape non-empty");
  }
  at::Generator gen = MakeCpuGenerator(static_cast<uint64_t>(seed));
  std::vector<torch::Tensor> samples;
  for (int64_t i = 0; i < draws; ++i) samples.push_back(Randn(gen, shape));
  ctx.Output("samples", torch::cat(samples, 0));
  return Status::OK();
}

}  // namespace

void RegisterCoreCheckKinds() {
  RegisterCheckKind("randn", RunRandn);
}

}  // namespace fairy::engine::verify
