// Diffusion schedulers of diffusers 0.25.1, reproduced to the bit on the CPU in float32:
// EulerAncestralDiscreteScheduler (the InstructPix2Pix pipeline's), EulerDiscreteScheduler and
// DDIMScheduler (which shares only the train tables; no goldens, tested against its formulas).
//
// Both share one sigma schedule (DiscreteSigmaSchedule):
//   train tables  betas (T,) = linspace(sqrt(beta_start), sqrt(beta_end), T, f32)^2 (scaled_linear)
//                 or linspace(beta_start, beta_end, T, f32) (linear); alphas_cumprod =
//                 cumprod(1-betas) in float32; train sigmas (T+1,) = sqrt((1-ac)/ac) reversed, then
//                 0.
//   set_timesteps timesteps (n,) float32 by `timestep_spacing` (numpy's float64 arithmetic, then
//                 cast); sigmas (n+1,) = np.interp of the float32 train sigmas at the timesteps in
//                 float64, cast to float32, then 0.
// Every tensor operation that upstream does in torch (tables, step arithmetic) is done here with
// the same torch operations on the same dtypes, so results match upstream bit for bit (the
// goldens of fixtures/pix2pix-tiny check this).
//
// Unlike upstream, the schedulers are stateless after SetTimesteps: the step index is an argument
// (upstream looks it up from t on first use and increments it per step()). Frames of one shot run
// at different times on different workers, so a hidden step counter would be wrong.
//
// Thread-safety: SetTimesteps mutates; everything else is const and safe to call concurrently.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::engine {

// scheduler/scheduler_config.json. Keys upstream accepts but this engine does not implement
// (trained_betas, rescale_betas_zero_snr, use_karras_sigmas, interpolation_type other than
// "linear", timestep_type other than "discrete") are refused unless absent, null or neutral.
struct SchedulerConfig {
  std::string class_name;              // "_class_name"; informational, not enforced by Create
  int64_t num_train_timesteps = 1000;  // T, >= 1
  double beta_start = 0.00085;         // beta of the first train timestep
  double beta_end = 0.012;             // beta of the last train timestep
  std::string beta_schedule = "scaled_linear";  // "scaled_linear" | "linear"
  std::string prediction_type = "epsilon";      // "epsilon" | "v_prediction"
  std::string timestep_spacing = "linspace";    // "linspace" | "leading" | "trailing"
  int64_t steps_offset = 0;  // added to the timesteps of "leading" spacing only (as upstream)
  // DDIM only (upstream DDIMScheduler defaults; "thresholding": true is refused).
  bool clip_sample = true;  // clamp the x0 estimate to [-clip_sample_range, range]
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;  // alpha_cumprod "before" t = 0: 1, else alphas_cumprod[0]

  // Errors name `source` (e.g. the file path) and the key.
  static Result<SchedulerConfig> FromJson(const nlohmann::json& json, const std::string& source);
  // Reads scheduler_dir + "/scheduler_config.json".
  static Result<SchedulerConfig> Load(const std::string& scheduler_dir);
};

// The train tables and, after SetTimesteps, the inference schedule of the Euler schedulers.
class DiscreteSigmaSchedule {
 public:
  // Builds the train tables. Errors: InvalidArgument / Unsupported for a config this engine
  // cannot run (checked again here so a hand-built config is validated too).
  static Result<DiscreteSigmaSchedule> Create(const SchedulerConfig& config);

  // REQUIRES for the getters below: SetTimesteps succeeded.
  // 1 <= num_inference_steps <= num_train_timesteps, else InvalidArgument. "trailing" spacing
  // for the few step counts where numpy's float arange yields n+1 timesteps (an upstream bug,
  // e.g. n = 61 for T = 1000) is refused as Unsupported.
  Status SetTimesteps(int num_inference_steps);

  const SchedulerConfig& config() const { return config_; }
  int num_inference_steps() const { return num_inference_steps_; }
  const torch::Tensor& timesteps() const { return timesteps_; }  // (n,) float32 CPU
  const torch::Tensor& sigmas() const { return sigmas_; }        // (n+1,) float32 CPU, last 0
  // max(sigmas) for linspace/trailing, sqrt(max(sigmas)^2 + 1) for leading (float32 math).
  double init_noise_sigma() const { return init_noise_sigma_; }
  // sigmas[step] as a 0-d float32 CPU tensor (what upstream indexes). REQUIRES 0 <= step <= n.
  torch::Tensor SigmaAt(int step) const;
  // x / sqrt(sigma_step^2 + 1) in x's dtype and device. REQUIRES 0 <= step < n.
  torch::Tensor ScaleModelInput(const torch::Tensor& x, int step) const;

  const torch::Tensor& train_betas() const { return train_betas_; }                    // (T,)
  const torch::Tensor& train_alphas_cumprod() const { return train_alphas_cumprod_; }  // (T,)
  const torch::Tensor& train_sigmas() const { return train_sigmas_; }                  // (T+1,)

 private:
  explicit DiscreteSigmaSchedule(SchedulerConfig config) : config_(std::move(config)) {}

  SchedulerConfig config_;
  torch::Tensor train_betas_, train_alphas_cumprod_, train_sigmas_;  // float32 CPU
  int num_inference_steps_ = 0;
  torch::Tensor timesteps_;  // float32 CPU
  torch::Tensor sigmas_;     // float32 CPU
  double init_noise_sigma_ = 0;
};

// Output of one scheduler step.
struct SchedulerStepResult {
  torch::Tensor prev_sample;           // x_{i+1}, in x's dtype and device
  torch::Tensor pred_original_sample;  // the x0 estimate, in x's dtype and device
};

// EulerAncestralDiscreteScheduler (k-diffusion's sample_euler_ancestral).
class EulerAncestralScheduler {
 public:
  using StepResult = SchedulerStepResult;

  static Result<EulerAncestralScheduler> Create(const SchedulerConfig& config);
  // See DiscreteSigmaSchedule::SetTimesteps.
  Status SetTimesteps(int num_inference_steps) {
    return schedule_.SetTimesteps(num_inference_steps);
  }

  // REQUIRES for everything below: SetTimesteps succeeded; 0 <= step < num_inference_steps().
  const torch::Tensor& timesteps() const { return schedule_.timesteps(); }
  const torch::Tensor& sigmas() const { return schedule_.sigmas(); }
  double init_noise_sigma() const { return schedule_.init_noise_sigma(); }
  int num_inference_steps() const { return schedule_.num_inference_steps(); }
  torch::Tensor ScaleModelInput(const torch::Tensor& x, int step) const {
    return schedule_.ScaleModelInput(x, step);
  }
  // One ancestral step from sigma = sigmas[step] to s' = sigmas[step+1]:
  //   x0 = x - sigma*eps (epsilon) | eps*(-sigma/sqrt(sigma^2+1)) + x/(sigma^2+1) (v_prediction)
  //   s_up = sqrt(s'^2 (sigma^2 - s'^2) / sigma^2), s_down = sqrt(s'^2 - s_up^2)
  //   prev = x + (x - x0)/sigma * (s_down - sigma) + noise * s_up
  // `model_output` and `noise` have x's shape (any batch: every sample is computed alone, so a
  // batch gives bit-identical results to per-sample calls); `noise` is N(0,1), drawn by the
  // caller (upstream draws it inside step(), the last step too, where s_up = 0). The math runs in
  // float32 as upstream (x upcast); results are cast back to x's dtype.
  StepResult Step(const torch::Tensor& model_output, int step, const torch::Tensor& x,
                  const torch::Tensor& noise) const;

  const SchedulerConfig& config() const { return schedule_.config(); }
  const DiscreteSigmaSchedule& schedule() const { return schedule_; }
  const torch::Tensor& train_betas() const { return schedule_.train_betas(); }
  const torch::Tensor& train_alphas_cumprod() const { return schedule_.train_alphas_cumprod(); }
  const torch::Tensor& train_sigmas() const { return schedule_.train_sigmas(); }

 private:
  explicit EulerAncestralScheduler(DiscreteSigmaSchedule schedule)
      : schedule_(std::move(schedule)) {}
  DiscreteSigmaSchedule schedule_;
};

// EulerDiscreteScheduler with its pipeline defaults (s_churn = 0, so no noise: deterministic).
class EulerScheduler {
 public:
  using StepResult = SchedulerStepResult;

  static Result<EulerScheduler> Create(const SchedulerConfig& config);
  Status SetTimesteps(int num_inference_steps) {
    return schedule_.SetTimesteps(num_inference_steps);
  }

  // REQUIRES as for EulerAncestralScheduler.
  const torch::Tensor& timesteps() const { return schedule_.timesteps(); }
  const torch::Tensor& sigmas() const { return schedule_.sigmas(); }
  double init_noise_sigma() const { return schedule_.init_noise_sigma(); }
  int num_inference_steps() const { return schedule_.num_inference_steps(); }
  torch::Tensor ScaleModelInput(const torch::Tensor& x, int step) const {
    return schedule_.ScaleModelInput(x, step);
  }
  // x0 as in EulerAncestralScheduler::Step; prev = x + (x - x0)/sigma * (s' - sigma).
  StepResult Step(const torch::Tensor& model_output, int step, const torch::Tensor& x) const;

  const SchedulerConfig& config() const { return schedule_.config(); }
  const DiscreteSigmaSchedule& schedule() const { return schedule_; }

 private:
  explicit EulerScheduler(DiscreteSigmaSchedule schedule) : schedule_(std::move(schedule)) {}
  DiscreteSigmaSchedule schedule_;
};

// DDIMScheduler (deterministic for eta = 0). Timesteps are int64 as upstream; init noise
// sigma is 1 and the model input is not scaled.
class DDIMScheduler {
 public:
  using StepResult = SchedulerStepResult;

  static Result<DDIMScheduler> Create(const SchedulerConfig& config);
  // 1 <= num_inference_steps <= num_train_timesteps, else InvalidArgument (trailing: as above).
  Status SetTimesteps(int num_inference_steps);

  const torch::Tensor& timesteps() const { return timesteps_; }  // (n,) int64 CPU
  int num_inference_steps() const { return num_inference_steps_; }
  double init_noise_sigma() const { return 1.0; }
  // With t = timesteps[step], t' = t - T/n (integer division), a = alphas_cumprod[t],
  // a' = alphas_cumprod[t'] (or the final alpha when t' < 0):
  //   x0 = (x - sqrt(1-a) eps) / sqrt(a) (epsilon) | sqrt(a) x - sqrt(1-a) v (v_prediction),
  //   clamped when clip_sample; std = eta * sqrt((1-a')/(1-a) * (1 - a/a'));
  //   prev = sqrt(a') x0 + sqrt(1 - a' - std^2) eps_hat (+ std * noise when eta > 0).
  // REQUIRES: SetTimesteps succeeded, 0 <= step < n; `noise` defined (x's shape) when eta > 0.
  StepResult Step(const torch::Tensor& model_output, int step, const torch::Tensor& x,
                  double eta = 0.0, const torch::Tensor& noise = {}) const;

  const SchedulerConfig& config() const { return schedule_.config(); }
  const torch::Tensor& train_alphas_cumprod() const { return schedule_.train_alphas_cumprod(); }

 private:
  explicit DDIMScheduler(DiscreteSigmaSchedule schedule) : schedule_(std::move(schedule)) {}
  DiscreteSigmaSchedule schedule_;  // for the train tables and the config
  int num_inference_steps_ = 0;
  torch::Tensor timesteps_;
};

}  // namespace fairy::engine
