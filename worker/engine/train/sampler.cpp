#include "worker/engine/train/sampler.h"

#include <cmath>
#include <vector>

namespace fairy::engine::train {

Result<torch::Tensor> SampleEulerAncestral(UNetImpl& unet, const NoiseSchedule& schedule, const torch::Tensor& cond,
                                           const torch::Tensor& emb, const SamplerSettings& settings, at::Generator& gen) {
  if (settings.steps < 1) return Status::InvalidArgument("sampler: steps must be >= 1");
  const int64_t T = schedule.num_train_timesteps;
  const int n = settings.steps;
  auto ac = schedule.alphas_cumprod.to(torch::kFloat32);
  auto train_sigmas = ((1 - ac) / ac).sqrt();  // [T], t = 0 first
  std::vector<double> timesteps, sigmas;
  for (int i = 0; i < n; ++i) {
    double t = n == 1 ? static_cast<double>(T - 1)
                      : static_cast<double>(T - 1) * (1.0 - static_cast<double>(i) / static_cast<double>(n - 1));
    timesteps.push_back(t);
    int64_t lo = static_cast<int64_t>(std::floor(t));
    int64_t hi = std::min<int64_t>(lo + 1, T - 1);
    double w = t - static_cast<double>(lo);
    double s = (1 - w) * train_sigmas[lo].item<double>() + w * train_sigmas[hi].item<double>();
    sigmas.push_back(static_cast<double>(static_cast<float>(s)));
  }
  sigmas.push_back(0.0);
  auto x = torch::randn(cond.sizes(), gen).to(cond.device()) * sigmas[0];
  const int64_t B = cond.size(0);
  try {
    for (int i = 0; i < n; ++i) {
      double s = sigmas[static_cast<size_t>(i)], s_next = sigmas[static_cast<size_t>(i) + 1];
      auto input = torch::cat({x / std::sqrt(s * s + 1), cond}, 1);
      auto t = torch::full({B}, timesteps[static_cast<size_t>(i)], torch::TensorOptions().device(cond.device()));
      auto eps = unet.forward(input, t, emb);
      auto x0 = x - s * eps;
      double s_up = std::sqrt(s_next * s_next * (s * s - s_next * s_next) / (s * s));
      double s_down = std::sqrt(std::max(0.0, s_next * s_next - s_up * s_up));
      x = x + (x - x0) / s * (s_down - s) + torch::randn(cond.sizes(), gen).to(cond.device()) * s_up;
    }
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("sampler: ") + e.what_without_backtrace());
  }
  return x;
}

}  // namespace fairy::engine::train
