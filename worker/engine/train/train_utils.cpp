#include "worker/engine/train/train_utils.h"

#include <unistd.h>

#include <cmath>

namespace fairy::engine::train {

Result<NoiseSchedule> NoiseSchedule::FromConfig(const nlohmann::json& config, const std::string& source) {
  auto number = [&](const char* key, double fallback) -> double {
    return config.contains(key) && config[key].is_number() ? config[key].get<double>() : fallback;
  };
  std::string schedule = config.value("beta_schedule", std::string("scaled_linear"));
  if (config.contains("trained_betas") && !config["trained_betas"].is_null()) {
    return Status::Unsupported(source + ": \"trained_betas\" is not supported for training");
  }
  NoiseSchedule s;
  s.num_train_timesteps = static_cast<int64_t>(number("num_train_timesteps", 1000));
  double b0 = number("beta_start", 0.00085), b1 = number("beta_end", 0.012);
  if (s.num_train_timesteps < 2 || b0 <= 0 || b1 <= b0 || b1 >= 1) {
    return Status::InvalidArgument(source + ": need num_train_timesteps >= 2 and 0 < beta_start < beta_end < 1");
  }
  torch::Tensor betas;
  if (schedule == "scaled_linear") {
    betas = torch::linspace(std::sqrt(b0), std::sqrt(b1), s.num_train_timesteps, torch::kFloat32).square();
  } else if (schedule == "linear") {
    betas = torch::linspace(b0, b1, s.num_train_timesteps, torch::kFloat32);
  } else {
    return Status::Unsupported(source + ": \"beta_schedule\": \"" + schedule +
                               "\" (supported: scaled_linear, linear)");
  }
  s.alphas_cumprod = torch::cumprod(1.0 - betas, 0);
  return s;
}

torch::Tensor NoiseSchedule::AddNoise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const {
  auto ac = alphas_cumprod.to(x0.device()).index_select(0, t.to(x0.device())).to(x0.scalar_type());
  auto shape = std::vector<int64_t>{x0.size(0), 1, 1, 1};
  return ac.sqrt().view(shape) * x0 + (1 - ac).sqrt().view(shape) * noise;
}

double WarmupLearningRate(int64_t step, double base, int64_t warmup_steps) {
  if (warmup_steps <= 0 || step >= warmup_steps) return base;
  return base * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
}

double ScheduledLearningRate(int64_t step, double base, int64_t warmup_steps, int64_t total_steps, bool cosine,
                             double final_ratio) {
  if (!cosine || step < warmup_steps) return WarmupLearningRate(step, base, warmup_steps);
  int64_t span = total_steps - 1 - std::max<int64_t>(warmup_steps, 0);
  if (span <= 0) return base;
  double progress = std::min(1.0, static_cast<double>(step - std::max<int64_t>(warmup_steps, 0)) / span);
  double ratio = final_ratio + (1 - final_ratio) * 0.5 * (1 + std::cos(M_PI * progress));
  return base * ratio;
}

ExponentialMovingAverage::ExponentialMovingAverage(const std::vector<torch::Tensor>& params, double max_decay)
    : max_decay_(max_decay) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params) shadow_.push_back(p.detach().clone());
}

void ExponentialMovingAverage::Update(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  double n = static_cast<double>(updates_++);
  double decay = std::min(max_decay_, (1 + n) / (10 + n));
  for (size_t i = 0; i < shadow_.size(); ++i) shadow_[i].mul_(decay).add_(params[i].detach(), 1 - decay);
}

std::vector<torch::Tensor> ExponentialMovingAverage::SwapInto(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> originals;
  for (size_t i = 0; i < shadow_.size(); ++i) {
    originals.push_back(params[i].detach().clone());
    params[i].copy_(shadow_[i]);
  }
  return originals;
}

ProgressBar::ProgressBar(std::string label, int64_t first_step, int64_t total_steps, int64_t log_every)
    : label_(std::move(label)),
      first_step_(first_step),
      total_steps_(total_steps),
      log_every_(log_every > 0 ? log_every : 50),
      last_step_(first_step),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

double ProgressBar::steps_per_second() const {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return secs > 0 ? static_cast<double>(last_step_ - first_step_) / secs : 0.0;
}

void ProgressBar::Update(int64_t step, double loss, const std::string& extra) {
  last_step_ = step;
  avg_loss_ = have_avg_ ? 0.98 * avg_loss_ + 0.02 * loss : loss;
  have_avg_ = true;
  if (!tty_ && step % log_every_ != 0 && step != total_steps_) return;
  double rate = steps_per_second();
  double eta = rate > 0 ? static_cast<double>(total_steps_ - step) / rate : 0.0;
  int filled = total_steps_ > 0 ? static_cast<int>(20 * step / total_steps_) : 20;
  std::string bar(static_cast<size_t>(std::clamp(filled, 0, 20)), '#');
  bar.resize(20, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld loss %.4f avg %.4f %.2f it/s eta %dm%02ds%s%s%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), static_cast<long long>(step), static_cast<long long>(total_steps_), loss,
               avg_loss_, rate, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60, extra.empty() ? "" : " ",
               extra.c_str(), tty_ ? "\x1b[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

double Psnr(const torch::Tensor& a, const torch::Tensor& b) {
  double mse = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).square().mean().item<double>();
  if (mse <= 0) return 100.0;
  return 10.0 * std::log10(1.0 / mse);
}

}  // namespace fairy::engine::train
