#include "worker/engine/scheduler.h"

#include <cmath>
#include <utility>

#include "worker/engine/model_config.h"

namespace fairy::engine {
namespace {

Status ValidateConfig(const SchedulerConfig& c, const std::string& source) {
  auto key_error = [&](const std::string& key, const std::string& message) {
    return Status::InvalidArgument(source + ": \"" + key + "\": " + message);
  };
  auto unsupported = [&](const std::string& key, const std::string& value,
                         const std::string& supported) {
    return Status::Unsupported(source + ": \"" + key + "\": value \"" + value +
                               "\" is not supported (supported: " + supported + ")");
  };
  if (c.num_train_timesteps < 1) {
    return key_error("num_train_timesteps",
                     "must be >= 1, got " + std::to_string(c.num_train_timesteps));
  }
  if (!(c.beta_start > 0 && c.beta_end > 0 && c.beta_start < 1 && c.beta_end < 1)) {
    return key_error("beta_start", "beta_start and beta_end must lie in (0, 1)");
  }
  if (c.beta_schedule != "scaled_linear" && c.beta_schedule != "linear") {
    return unsupported("beta_schedule", c.beta_schedule, "scaled_linear, linear");
  }
  if (c.prediction_type != "epsilon" && c.prediction_type != "v_prediction") {
    return unsupported("prediction_type", c.prediction_type, "epsilon, v_prediction");
  }
  if (c.timestep_spacing != "linspace" && c.timestep_spacing != "leading" &&
      c.timestep_spacing != "trailing") {
    return unsupported("timestep_spacing", c.timestep_spacing, "linspace, leading, trailing");
  }
  return Status::OK();
}

// numpy.linspace(0, stop, n) in float64 (start 0, endpoint): i*step, the last exactly stop.
std::vector<double> NumpyLinspaceFromZero(double stop, int n) {
  std::vector<double> y(static_cast<size_t>(n));
  if (n == 1) {
    y[0] = 0.0;  // numpy: div = 0, y = arange(1) * delta + start
    return y;
  }
  const double step = stop / static_cast<double>(n - 1);
  for (int i = 0; i < n; ++i) y[static_cast<size_t>(i)] = static_cast<double>(i) * step + 0.0;
  y[static_cast<size_t>(n - 1)] = stop;
  return y;
}

// numpy.arange(start, 0, step) for float step < 0: length ceil((0 - start) / step), element 1 is
// start + step and element i >= 2 is start + i*((start + step) - start) (numpy's fill).
std::vector<double> NumpyArangeDown(double start, double step) {
  const double len_f = std::ceil((0.0 - start) / step);
  const int64_t len = len_f > 0 ? static_cast<int64_t>(len_f) : 0;
  std::vector<double> y(static_cast<size_t>(len));
  if (len >= 1) y[0] = start;
  if (len >= 2) y[1] = start + step;
  if (len >= 3) {
    const double delta = y[1] - y[0];
    for (int64_t i = 2; i < len; ++i) {
      // volatile: keep start + i*delta two roundings (numpy's C is built without FMA).
      volatile double product = static_cast<double>(i) * delta;
      y[static_cast<size_t>(i)] = start + product;
    }
  }
  return y;
}

// numpy.interp(x, arange(len(fp)), fp) in float64 for one x.
double NumpyInterpUnitGrid(double x, const std::vector<double>& fp) {
  const int64_t last = static_cast<int64_t>(fp.size()) - 1;
  if (x < 0.0) return fp[0];
  if (x > static_cast<double>(last)) return fp[static_cast<size_t>(last)];
  const int64_t j = static_cast<int64_t>(std::floor(x));  // dx[j] <= x < dx[j+1]
  if (j >= last) return fp[static_cast<size_t>(last)];
  const double xj = static_cast<double>(j);
  if (xj == x) return fp[static_cast<size_t>(j)];
  const double slope = (fp[static_cast<size_t>(j + 1)] - fp[static_cast<size_t>(j)]) /
                       (static_cast<double>(j + 1) - xj);
  volatile double product = slope * (x - xj);  // no FMA, as numpy's baseline build
  return product + fp[static_cast<size_t>(j)];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SchedulerConfig

Result<SchedulerConfig> SchedulerConfig::FromJson(const nlohmann::json& json,
                                                  const std::string& source) {
  if (!json.is_object()) return Status::InvalidArgument(source + ": expected a JSON object");
  ConfigReader r(json, source);
  SchedulerConfig c;
  c.class_name = r.String("_class_name", "");
  c.num_train_timesteps = r.Int("num_train_timesteps", c.num_train_timesteps);
  c.beta_start = r.Float("beta_start", c.beta_start);
  c.beta_end = r.Float("beta_end", c.beta_end);
  c.beta_schedule = r.String("beta_schedule", c.beta_schedule);
  c.prediction_type = r.String("prediction_type", c.prediction_type);
  c.timestep_spacing = r.String("timestep_spacing", c.timestep_spacing);
  c.steps_offset = r.Int("steps_offset", c.steps_offset);
  c.clip_sample = r.Bool("clip_sample", c.clip_sample);
  c.clip_sample_range = r.Float("clip_sample_range", c.clip_sample_range);
  c.set_alpha_to_one = r.Bool("set_alpha_to_one", c.set_alpha_to_one);
  r.ExpectAbsentOr("thresholding", false);
  r.ExpectAbsentOr("trained_betas", nullptr);
  r.ExpectAbsentOr("rescale_betas_zero_snr", false);
  r.ExpectAbsentOr("use_karras_sigmas", false);
  r.ExpectAbsentOr("interpolation_type", "linear");
  r.ExpectAbsentOr("timestep_type", "discrete");
  FAIRY_RETURN_IF_ERROR(r.status());
  FAIRY_RETURN_IF_ERROR(ValidateConfig(c, source));
  return c;
}

Result<SchedulerConfig> SchedulerConfig::Load(const std::string& scheduler_dir) {
  FAIRY_ASSIGN_OR_RETURN(ConfigReader r,
                         ConfigReader::Load(scheduler_dir + "/scheduler_config.json"));
  return FromJson(r.json(), r.path());
}

// ---------------------------------------------------------------------------------------------
// DiscreteSigmaSchedule

Result<DiscreteSigmaSchedule> DiscreteSigmaSchedule::Create(const SchedulerConfig& config) {
  FAIRY_RETURN_IF_ERROR(ValidateConfig(config, "scheduler config"));
  DiscreteSigmaSchedule s(config);
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCPU);
  const int64_t T = config.num_train_timesteps;
  // Upstream: torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=float32) ** 2; Python's
  // ** is C pow, hence std::pow rather than std::sqrt.
  if (config.beta_schedule == "scaled_linear") {
    s.train_betas_ =
        torch::linspace(std::pow(config.beta_start, 0.5), std::pow(config.beta_end, 0.5), T, f32)
            .pow(2);
  } else {
    s.train_betas_ = torch::linspace(config.beta_start, config.beta_end, T, f32);
  }
  const torch::Tensor alphas = 1.0 - s.train_betas_;
  s.train_alphas_cumprod_ = torch::cumprod(alphas, 0);
  const torch::Tensor ac = s.train_alphas_cumprod_;
  const torch::Tensor sig = ((1 - ac) / ac).pow(0.5);  // float32, index t
  s.train_sigmas_ = torch::cat({sig.flip({0}), torch::zeros({1}, f32)}).contiguous();
  return s;
}

Status DiscreteSigmaSchedule::SetTimesteps(int num_inference_steps) {
  const int64_t T = config_.num_train_timesteps;
  const int n = num_inference_steps;
  if (n < 1 || n > T) {
    return Status::InvalidArgument("num_inference_steps must be in [1, num_train_timesteps = " +
                                   std::to_string(T) + "], got " + std::to_string(n));
  }
  std::vector<float> timesteps;
  timesteps.reserve(static_cast<size_t>(n));
  const std::string& spacing = config_.timestep_spacing;
  if (spacing == "linspace") {
    // np.linspace(0, T-1, n, dtype=float32)[::-1]: float64 math, then cast.
    std::vector<double> y = NumpyLinspaceFromZero(static_cast<double>(T - 1), n);
    for (auto it = y.rbegin(); it != y.rend(); ++it) timesteps.push_back(static_cast<float>(*it));
  } else if (spacing == "leading") {
    // (np.arange(n) * (T // n)).round()[::-1].astype(float32) + steps_offset (float32 add).
    const int64_t ratio = T / n;
    for (int64_t i = n - 1; i >= 0; --i) {
      timesteps.push_back(static_cast<float>(i * ratio) + static_cast<float>(config_.steps_offset));
    }
  } else {  // trailing
    // np.arange(T, 0, -T/n).round().astype(float32) - 1; round is half-to-even (nearbyint).
    std::vector<double> y = NumpyArangeDown(static_cast<double>(T), -static_cast<double>(T) / n);
    if (static_cast<int64_t>(y.size()) != n) {
      return Status::Unsupported("timestep_spacing \"trailing\" with " + std::to_string(n) +
                                 " steps: diffusers' "
                                 "np.arange yields " +
                                 std::to_string(y.size()) +
                                 " timesteps for this count "
                                 "(an upstream rounding bug); choose another number of steps");
    }
    for (double v : y) timesteps.push_back(static_cast<float>(std::nearbyint(v)) - 1.0f);
  }

  // np.interp(timesteps, arange(T), float32 sigmas) in float64, cast to float32, then 0.
  const torch::Tensor ac = train_alphas_cumprod_;
  const torch::Tensor sig = ((1 - ac) / ac).pow(0.5).contiguous();
  std::vector<double> fp(sig.data_ptr<float>(), sig.data_ptr<float>() + sig.numel());
  std::vector<float> sigmas;
  sigmas.reserve(static_cast<size_t>(n) + 1);
  for (float t : timesteps) {
    sigmas.push_back(static_cast<float>(NumpyInterpUnitGrid(static_cast<double>(t), fp)));
  }
  sigmas.push_back(0.0f);

  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  timesteps_ = torch::tensor(timesteps, f32);
  sigmas_ = torch::tensor(sigmas, f32);
  num_inference_steps_ = n;
  // Upstream: sigmas.max() (a float32 tensor), or (max**2 + 1) ** 0.5 for leading.
  torch::Tensor max_sigma = sigmas_.max();
  if (spacing != "leading") {
    init_noise_sigma_ = max_sigma.item<float>();
  } else {
    init_noise_sigma_ = (max_sigma.pow(2) + 1).pow(0.5).item<float>();
  }
  return Status::OK();
}

torch::Tensor DiscreteSigmaSchedule::SigmaAt(int step) const {
  TORCH_CHECK(step >= 0 && step <= num_inference_steps_, "sigma index ", step, " out of range [0, ",
              num_inference_steps_, "]");
  return sigmas_[step];
}

torch::Tensor DiscreteSigmaSchedule::ScaleModelInput(const torch::Tensor& x, int step) const {
  TORCH_CHECK(step >= 0 && step < num_inference_steps_, "step ", step, " out of range [0, ",
              num_inference_steps_, ")");
  const torch::Tensor sigma = sigmas_[step];
  return x / (sigma.pow(2) + 1).pow(0.5);
}

namespace {

// x0 from the model output, upstream's formula per prediction type; `sample` float32.
torch::Tensor PredictOriginal(const std::string& prediction_type, const torch::Tensor& sample,
                              const torch::Tensor& model_output, const torch::Tensor& sigma) {
  if (prediction_type == "epsilon") return sample - sigma * model_output;
  // v_prediction: model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
  return model_output * (-sigma / (sigma.pow(2) + 1).pow(0.5)) + (sample / (sigma.pow(2) + 1));
}

void CheckStepArgs(const torch::Tensor& model_output, const torch::Tensor& x, int step, int n) {
  TORCH_CHECK(step >= 0 && step < n, "scheduler step ", step, " out of range [0, ", n, ")");
  TORCH_CHECK(model_output.sizes() == x.sizes(), "model_output shape ", model_output.sizes(),
              " differs from the sample's ", x.sizes());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// EulerAncestralScheduler

Result<EulerAncestralScheduler> EulerAncestralScheduler::Create(const SchedulerConfig& config) {
  FAIRY_ASSIGN_OR_RETURN(DiscreteSigmaSchedule schedule, DiscreteSigmaSchedule::Create(config));
  return EulerAncestralScheduler(std::move(schedule));
}

EulerAncestralScheduler::StepResult EulerAncestralScheduler::Step(
    const torch::Tensor& model_output, int step, const torch::Tensor& x,
    const torch::Tensor& noise) const {
  CheckStepArgs(model_output, x, step, num_inference_steps());
  TORCH_CHECK(noise.sizes() == x.sizes(), "noise shape ", noise.sizes(),
              " differs from the sample's ", x.sizes());
  torch::NoGradGuard no_grad;
  const torch::Tensor sigma = schedule_.SigmaAt(step);
  const torch::Tensor sigma_to = schedule_.SigmaAt(step + 1);
  const torch::Tensor sample = x.to(torch::kFloat32);
  const torch::Tensor x0 = PredictOriginal(config().prediction_type, sample, model_output, sigma);
  const torch::Tensor sigma_up =
      (sigma_to.pow(2) * (sigma.pow(2) - sigma_to.pow(2)) / sigma.pow(2)).pow(0.5);
  const torch::Tensor sigma_down = (sigma_to.pow(2) - sigma_up.pow(2)).pow(0.5);
  const torch::Tensor derivative = (sample - x0) / sigma;
  const torch::Tensor dt = sigma_down - sigma;
  torch::Tensor prev = sample + derivative * dt;
  prev = prev + noise.to(model_output.scalar_type()) * sigma_up;
  return {prev.to(x.scalar_type()), x0.to(x.scalar_type())};
}

// ---------------------------------------------------------------------------------------------
// EulerScheduler

Result<EulerScheduler> EulerScheduler::Create(const SchedulerConfig& config) {
  FAIRY_ASSIGN_OR_RETURN(DiscreteSigmaSchedule schedule, DiscreteSigmaSchedule::Create(config));
  return EulerScheduler(std::move(schedule));
}

EulerScheduler::StepResult EulerScheduler::Step(const torch::Tensor& model_output, int step,
                                                const torch::Tensor& x) const {
  CheckStepArgs(model_output, x, step, num_inference_steps());
  torch::NoGradGuard no_grad;
  const torch::Tensor sample = x.to(torch::kFloat32);
  const torch::Tensor sigma = schedule_.SigmaAt(step);
  // gamma = 0 (s_churn = 0): sigma_hat = sigma * (0 + 1), no noise added.
  const torch::Tensor sigma_hat = sigma * 1.0;
  const torch::Tensor x0 =
      config().prediction_type == "epsilon"
          ? sample - sigma_hat * model_output
          : PredictOriginal(config().prediction_type, sample, model_output, sigma);
  const torch::Tensor derivative = (sample - x0) / sigma_hat;
  const torch::Tensor dt = schedule_.SigmaAt(step + 1) - sigma_hat;
  const torch::Tensor prev = sample + derivative * dt;
  return {prev.to(x.scalar_type()), x0.to(x.scalar_type())};
}

// ---------------------------------------------------------------------------------------------
// DDIMScheduler

Result<DDIMScheduler> DDIMScheduler::Create(const SchedulerConfig& config) {
  FAIRY_ASSIGN_OR_RETURN(DiscreteSigmaSchedule schedule, DiscreteSigmaSchedule::Create(config));
  return DDIMScheduler(std::move(schedule));
}

Status DDIMScheduler::SetTimesteps(int num_inference_steps) {
  const int64_t T = config().num_train_timesteps;
  const int n = num_inference_steps;
  if (n < 1 || n > T) {
    return Status::InvalidArgument("num_inference_steps must be in [1, num_train_timesteps = " +
                                   std::to_string(T) + "], got " + std::to_string(n));
  }
  std::vector<int64_t> timesteps;
  const std::string& spacing = config().timestep_spacing;
  if (spacing == "linspace") {
    // np.linspace(0, T-1, n).round()[::-1].astype(int64)
    std::vector<double> y = NumpyLinspaceFromZero(static_cast<double>(T - 1), n);
    for (auto it = y.rbegin(); it != y.rend(); ++it) {
      timesteps.push_back(static_cast<int64_t>(std::nearbyint(*it)));
    }
  } else if (spacing == "leading") {
    const int64_t ratio = T / n;
    for (int64_t i = n - 1; i >= 0; --i) timesteps.push_back(i * ratio + config().steps_offset);
  } else {
    std::vector<double> y = NumpyArangeDown(static_cast<double>(T), -static_cast<double>(T) / n);
    if (static_cast<int64_t>(y.size()) != n) {
      return Status::Unsupported("timestep_spacing \"trailing\" with " + std::to_string(n) +
                                 " steps: diffusers' np.arange yields " + std::to_string(y.size()) +
                                 " timesteps for this count; choose another number of steps");
    }
    for (double v : y) timesteps.push_back(static_cast<int64_t>(std::nearbyint(v)) - 1);
  }
  for (int64_t t : timesteps) {
    if (t < 0 || t >= T) {
      return Status::InvalidArgument("timestep " + std::to_string(t) + " (steps_offset " +
                                     std::to_string(config().steps_offset) + ") outside [0, " +
                                     std::to_string(T) + ")");
    }
  }
  timesteps_ = torch::tensor(timesteps, torch::kInt64);
  num_inference_steps_ = n;
  return Status::OK();
}

DDIMScheduler::StepResult DDIMScheduler::Step(const torch::Tensor& model_output, int step,
                                              const torch::Tensor& x, double eta,
                                              const torch::Tensor& noise) const {
  CheckStepArgs(model_output, x, step, num_inference_steps_);
  TORCH_CHECK(eta <= 0 || (noise.defined() && noise.sizes() == x.sizes()),
              "DDIM with eta > 0 needs noise of the sample's shape");
  torch::NoGradGuard no_grad;
  const SchedulerConfig& c = config();
  const torch::Tensor& ac = train_alphas_cumprod();
  const int64_t t = timesteps_[step].item<int64_t>();
  const int64_t t_prev = t - c.num_train_timesteps / num_inference_steps_;
  // 0-d float32 tensors, as upstream indexes alphas_cumprod.
  const torch::Tensor a = ac[t];
  const torch::Tensor a_prev =
      t_prev >= 0 ? ac[t_prev] : (c.set_alpha_to_one ? torch::tensor(1.0f) : ac[0]);
  const torch::Tensor b = 1 - a;
  torch::Tensor x0, eps;
  if (c.prediction_type == "epsilon") {
    x0 = (x - b.pow(0.5) * model_output) / a.pow(0.5);
    eps = model_output;
  } else {  // v_prediction
    x0 = a.pow(0.5) * x - b.pow(0.5) * model_output;
    eps = a.pow(0.5) * model_output + b.pow(0.5) * x;
  }
  if (c.clip_sample) x0 = x0.clamp(-c.clip_sample_range, c.clip_sample_range);
  const torch::Tensor variance = ((1 - a_prev) / b) * (1 - a / a_prev);
  const torch::Tensor std_dev = eta * variance.pow(0.5);
  const torch::Tensor direction = (1 - a_prev - std_dev.pow(2)).pow(0.5) * eps;
  torch::Tensor prev = a_prev.pow(0.5) * x0 + direction;
  if (eta > 0) prev = prev + std_dev * noise;
  return {prev.to(x.scalar_type()), x0.to(x.scalar_type())};
}

}  // namespace fairy::engine
