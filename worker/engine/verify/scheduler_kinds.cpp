// Check kinds of the scheduler: scheduler_schedule, scheduler_step (procedures defined in the
// fixture's golden/README.md). Both build a fresh EulerAncestralScheduler from the model's
// scheduler/scheduler_config.json with params.timestep_spacing replacing the config's value.
// The step math runs in float32 on the verifier's device (upstream upcasts the sample anyway).
#include <string>

#include "worker/engine/scheduler.h"
#include "worker/engine/verify/check.h"

namespace fairy::engine::verify {
namespace {

Result<EulerAncestralScheduler> MakeScheduler(CheckContext& ctx, int64_t num_inference_steps) {
  FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ModelSource> source, ctx.source());
  FAIRY_ASSIGN_OR_RETURN(SchedulerConfig config,
                         SchedulerConfig::FromJson(source->scheduler_config, source->scheduler_source));
  if (ctx.HasParam("timestep_spacing")) {
    FAIRY_ASSIGN_OR_RETURN(config.timestep_spacing, ctx.StringArg("timestep_spacing"));
  }
  Result<EulerAncestralScheduler> scheduler = EulerAncestralScheduler::Create(config);
  if (!scheduler.ok()) return scheduler.status().WithContext("check \"" + ctx.name() + "\"");
  Status s = scheduler->SetTimesteps(static_cast<int>(num_inference_steps));
  if (!s.ok()) return s.WithContext("check \"" + ctx.name() + "\"");
  return scheduler;
}

void DebugTrainTables(CheckContext& ctx, const EulerAncestralScheduler& scheduler) {
  ctx.Debug("train_betas", scheduler.train_betas());
  ctx.Debug("train_alphas_cumprod", scheduler.train_alphas_cumprod());
  ctx.Debug("train_sigmas", scheduler.train_sigmas());
}

template <typename Fn>
Status Guarded(CheckContext& ctx, Fn&& fn) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("check \"" + ctx.name() + "\": " + e.what_without_backtrace());
  }
}

// scheduler_schedule: timesteps, sigmas, init_noise_sigma and, where listed, the
// scale_model_input factor 1/sqrt(sigma_i^2+1) of every step (scale_model_input(ones, t)).
Status RunSchedule(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(int64_t n, ctx.IntArg("num_inference_steps"));
  FAIRY_ASSIGN_OR_RETURN(EulerAncestralScheduler scheduler, MakeScheduler(ctx, n));
  return Guarded(ctx, [&] {
    ctx.Output("timesteps", scheduler.timesteps());
    ctx.Output("sigmas", scheduler.sigmas());
    ctx.Output("init_noise_sigma",
               torch::tensor({static_cast<float>(scheduler.init_noise_sigma())}, torch::kFloat32));
    if (ctx.WantsOutput("scale_model_input_factor")) {
      std::vector<torch::Tensor> factors;
      const torch::Tensor ones = torch::ones({1}, torch::kFloat32);
      for (int i = 0; i < scheduler.num_inference_steps(); ++i) {
        factors.push_back(scheduler.ScaleModelInput(ones, i));
      }
      ctx.Output("scale_model_input_factor", torch::cat(factors));
    }
    DebugTrainTables(ctx, scheduler);
    return Status::OK();
  });
}

// scheduler_step: scale_model_input then one ancestral step at `step_index` with the golden noise.
Status RunStep(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(int64_t n, ctx.IntArg("num_inference_steps"));
  FAIRY_ASSIGN_OR_RETURN(int64_t i, ctx.IntArg("step_index"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor sample, ctx.Input("sample"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor model_output, ctx.Input("model_output"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor noise, ctx.Input("noise"));
  FAIRY_ASSIGN_OR_RETURN(EulerAncestralScheduler scheduler, MakeScheduler(ctx, n));
  if (i < 0 || i >= scheduler.num_inference_steps()) {
    return Status::InvalidArgument("check \"" + ctx.name() + "\": step_index " + std::to_string(i) +
                                   " outside [0, " + std::to_string(n) + ")");
  }
  const int step = static_cast<int>(i);
  return Guarded(ctx, [&] {
    c10::InferenceMode guard;
    const torch::Tensor x = sample.to(ctx.device());
    ctx.Output("timestep", scheduler.timesteps().slice(0, step, step + 1));
    ctx.Output("scaled_sample", scheduler.ScaleModelInput(x, step));
    EulerAncestralScheduler::StepResult r =
        scheduler.Step(model_output.to(ctx.device()), step, x, noise.to(ctx.device()));
    ctx.Output("pred_original_sample", r.pred_original_sample);
    ctx.Output("prev_sample", r.prev_sample);
    // Upstream's internal index after the call; the engine's step is an argument, so i + 1.
    ctx.Output("step_index_after", torch::tensor({i + 1}, torch::kInt64));
    DebugTrainTables(ctx, scheduler);
    return Status::OK();
  });
}

}  // namespace

void RegisterSchedulerCheckKinds() {
  RegisterCheckKind("scheduler_schedule", RunSchedule);
  RegisterCheckKind("scheduler_step", RunStep);
}

}  // namespace fairy::engine::verify
