// Pieces every training loop here shares: the DDPM noise schedule of the scheduler config, the
// learning-rate warm-up, exponential moving averages of weights, and the progress bar.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::engine::train {

// alphas_cumprod of a diffusers scheduler config (beta_schedule "scaled_linear" or "linear";
// beta_start, beta_end, num_train_timesteps), float32 [T].
struct NoiseSchedule {
  torch::Tensor alphas_cumprod;
  int64_t num_train_timesteps = 1000;

  // `source` names the file in errors.
  static Result<NoiseSchedule> FromConfig(const nlohmann::json& config, const std::string& source);
  // DDPM forward process: sqrt(ac_t) x0 + sqrt(1 - ac_t) noise, t [B] int64. Equals the Euler
  // sampler's scale_model_input(x0 + sigma_t noise).
  torch::Tensor AddNoise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;
};

// Linear warm-up from 0 to `base` over `warmup_steps`, then constant. step counts from 0.
double WarmupLearningRate(int64_t step, double base, int64_t warmup_steps);

// The same warm-up, then (when `cosine`) a half-cosine decay from `base` at the end of the warm-up
// to `base * final_ratio` at step `total_steps - 1`; constant when not `cosine`.
double ScheduledLearningRate(int64_t step, double base, int64_t warmup_steps, int64_t total_steps, bool cosine,
                             double final_ratio);

// Shadow copies of parameters: shadow = decay * shadow + (1 - decay) * param after each step.
// decay is min(max_decay, (1 + n) / (10 + n)) at update n, as diffusers' EMAModel warm-up.
class ExponentialMovingAverage {
 public:
  ExponentialMovingAverage() = default;
  ExponentialMovingAverage(const std::vector<torch::Tensor>& params, double max_decay);
  bool enabled() const { return !shadow_.empty(); }
  void Update(const std::vector<torch::Tensor>& params);
  // Copies the shadow weights into `params` (e.g. before saving), returning the originals.
  std::vector<torch::Tensor> SwapInto(const std::vector<torch::Tensor>& params);
  std::vector<torch::Tensor>& shadow() { return shadow_; }
  int64_t updates() const { return updates_; }
  void set_updates(int64_t n) { updates_ = n; }

 private:
  std::vector<torch::Tensor> shadow_;
  double max_decay_ = 0.999;
  int64_t updates_ = 0;
};

// One-line progress display on stderr: "\r[#####.....] 120/2000 loss 0.0412 avg 0.0450 3.2 it/s
// eta 9m47s". When stderr is not a terminal, one full line every `log_every` steps instead.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t first_step, int64_t total_steps, int64_t log_every = 50);
  void Update(int64_t step, double loss, const std::string& extra = "");
  void Finish();
  // Average loss over the last window of steps.
  double average_loss() const { return avg_loss_; }
  double steps_per_second() const;

 private:
  std::string label_;
  int64_t first_step_, total_steps_, log_every_;
  int64_t last_step_ = 0;
  double avg_loss_ = 0;
  bool have_avg_ = false;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

// Peak signal-to-noise ratio in dB of images in [0, 1] (any equal shapes).
double Psnr(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace fairy::engine::train
