// Engine scheduler: the golden Euler-ancestral schedules and steps through the library API
// (bit-identical to diffusers 0.25.1), bad config values, batched == per-sample steps, Euler
// against hand-computed upstream formulas, and the verifier on the scheduler kinds.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>

#include "tests/support/test_paths.h"
#include "worker/engine/scheduler.h"
#include "worker/engine/verify/verifier.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

using testing::TinyFixture;

const std::map<std::string, torch::Tensor>& Golden() {
  static const std::map<std::string, torch::Tensor> golden = [] {
    std::map<std::string, torch::Tensor> out;
    auto file = SafetensorsFile::Open(TinyFixture() + "/golden/scheduler.safetensors");
    if (!file.ok()) return out;
    for (const TensorInfo& info : (*file)->tensors()) {
      out[info.name] = TensorFromSafetensors(**file, info);
    }
    return out;
  }();
  return golden;
}

torch::Tensor G(const std::string& name) {
  auto it = Golden().find(name);
  return it == Golden().end() ? torch::Tensor() : it->second;
}

// Bit-identical (the goldens were bit-identical run to run; the engine mirrors upstream's ops).
void ExpectSame(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_TRUE(b.defined()) << what << ": no golden tensor";
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  ASSERT_EQ(a.scalar_type(), b.scalar_type()) << what;
  EXPECT_TRUE(torch::equal(a, b))
      << what << ": max abs diff "
      << (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

SchedulerConfig FixtureConfig(const std::string& spacing = "linspace") {
  auto config = SchedulerConfig::Load(TinyFixture() + "/scheduler");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  SchedulerConfig c = config.ok() ? *config : SchedulerConfig{};
  c.timestep_spacing = spacing;
  return c;
}

EulerAncestralScheduler MakeAncestral(const std::string& spacing, int n) {
  auto s = EulerAncestralScheduler::Create(FixtureConfig(spacing));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  Status st = s->SetTimesteps(n);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return std::move(s).value();
}

TEST(EngineScheduler, ConfigLoadsFromTheModelFolder) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json",
                       "fixtures/ip2p-sd15-config/scheduler/scheduler_config.json");
  SchedulerConfig c = FixtureConfig();
  EXPECT_EQ(c.class_name, "EulerAncestralDiscreteScheduler");
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_DOUBLE_EQ(c.beta_start, 0.00085);
  EXPECT_DOUBLE_EQ(c.beta_end, 0.012);
  EXPECT_EQ(c.beta_schedule, "scaled_linear");
  EXPECT_EQ(c.prediction_type, "epsilon");
  EXPECT_EQ(c.steps_offset, 1);
  auto sd15 = SchedulerConfig::Load(testing::SharedDir() + "/fixtures/ip2p-sd15-config/scheduler");
  ASSERT_TRUE(sd15.ok()) << sd15.status().ToString();
  EXPECT_EQ(sd15->timestep_spacing, "linspace");
}

TEST(EngineScheduler, TrainTablesMatchGoldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/scheduler.safetensors");
  EulerAncestralScheduler s = MakeAncestral("linspace", 10);
  ExpectSame(s.train_betas(), G("sched.train.betas"), "betas");
  ExpectSame(s.train_alphas_cumprod(), G("sched.train.alphas_cumprod"), "alphas_cumprod");
  ExpectSame(s.train_sigmas(), G("sched.train.sigmas"), "train sigmas");
}

TEST(EngineScheduler, SchedulesMatchGoldensForEverySpacing) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/scheduler.safetensors");
  const std::map<std::string, std::string> prefix = {{"linspace", "sched."},
                                                     {"leading", "sched.extra_leading."},
                                                     {"trailing", "sched.extra_trailing."}};
  for (const auto& [spacing, p] : prefix) {
    for (int n : {10, 20}) {
      const std::string what = spacing + " n" + std::to_string(n);
      const std::string base = p + "n" + std::to_string(n) + ".";
      EulerAncestralScheduler s = MakeAncestral(spacing, n);
      EXPECT_EQ(s.num_inference_steps(), n);
      ExpectSame(s.timesteps(), G(base + "timesteps"), what + " timesteps");
      ExpectSame(s.sigmas(), G(base + "sigmas"), what + " sigmas");
      EXPECT_EQ(static_cast<float>(s.init_noise_sigma()),
                G(base + "init_noise_sigma").item<float>())
          << what;
      if (spacing == "linspace") {
        std::vector<torch::Tensor> factors;
        for (int i = 0; i < n; ++i) factors.push_back(s.ScaleModelInput(torch::ones({1}), i));
        ExpectSame(torch::cat(factors), G(base + "scale_model_input_factor"), what + " factors");
      }
    }
  }
}

TEST(EngineScheduler, StepsMatchGoldens) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/scheduler.safetensors");
  for (const std::string which : {"step_mid", "step_last"}) {
    const std::string p = "sched." + which + ".";
    const int n = static_cast<int>(G(p + "num_inference_steps").item<int64_t>());
    const int i = static_cast<int>(G(p + "step_index").item<int64_t>());
    EulerAncestralScheduler s = MakeAncestral("linspace", n);
    ExpectSame(s.timesteps().slice(0, i, i + 1), G(p + "timestep"), which + " timestep");
    ExpectSame(s.ScaleModelInput(G(p + "sample"), i), G(p + "scaled_sample"), which + " scaled");
    EulerAncestralScheduler::StepResult r =
        s.Step(G(p + "model_output"), i, G(p + "sample"), G(p + "noise"));
    ExpectSame(r.pred_original_sample, G(p + "pred_original_sample"), which + " x0");
    ExpectSame(r.prev_sample, G(p + "prev_sample"), which + " prev");
  }
}

TEST(EngineScheduler, BatchedStepEqualsPerSampleSteps) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  EulerAncestralScheduler s = MakeAncestral("linspace", 10);
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(7);
  const torch::Tensor x = torch::randn({3, 4, 8, 8}, gen) * 5;
  const torch::Tensor eps = torch::randn({3, 4, 8, 8}, gen);
  const torch::Tensor noise = torch::randn({3, 4, 8, 8}, gen);
  for (int step : {0, 4, 9}) {
    EulerAncestralScheduler::StepResult batched = s.Step(eps, step, x, noise);
    const torch::Tensor scaled = s.ScaleModelInput(x, step);
    for (int64_t b = 0; b < 3; ++b) {
      EulerAncestralScheduler::StepResult one =
          s.Step(eps.slice(0, b, b + 1), step, x.slice(0, b, b + 1), noise.slice(0, b, b + 1));
      EXPECT_TRUE(torch::equal(batched.prev_sample.slice(0, b, b + 1), one.prev_sample))
          << "step " << step << " sample " << b;
      EXPECT_TRUE(
          torch::equal(batched.pred_original_sample.slice(0, b, b + 1), one.pred_original_sample));
      EXPECT_TRUE(
          torch::equal(scaled.slice(0, b, b + 1), s.ScaleModelInput(x.slice(0, b, b + 1), step)));
    }
  }
  // The last step has sigma_up = 0: the noise must not matter.
  EXPECT_TRUE(torch::equal(s.Step(eps, 9, x, noise).prev_sample,
                           s.Step(eps, 9, x, noise * 100).prev_sample));
  EXPECT_FALSE(
      torch::equal(s.Step(eps, 4, x, noise).prev_sample, s.Step(eps, 4, x, noise * 2).prev_sample));
}

TEST(EngineScheduler, StepKeepsDtypeOfTheSample) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  EulerAncestralScheduler s = MakeAncestral("linspace", 10);
  const torch::Tensor x = torch::ones({1, 4, 2, 2}, torch::kFloat64);
  auto r = s.Step(torch::zeros({1, 4, 2, 2}, torch::kFloat64), 3, x, torch::zeros({1, 4, 2, 2}));
  EXPECT_EQ(r.prev_sample.scalar_type(), torch::kFloat64);
  EXPECT_EQ(s.ScaleModelInput(x, 3).scalar_type(), torch::kFloat64);
}

// ---- Bad configuration and arguments: errors name the source and the key.

Status FromJsonStatus(const nlohmann::json& j) {
  auto r = SchedulerConfig::FromJson(j, "sched/scheduler_config.json");
  return r.ok() ? Status::OK() : r.status();
}

void ExpectKeyError(const nlohmann::json& j, const std::string& key) {
  Status s = FromJsonStatus(j);
  ASSERT_FALSE(s.ok()) << j.dump();
  EXPECT_NE(s.message().find("sched/scheduler_config.json"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("\"" + key + "\""), std::string::npos) << s.message();
}

TEST(EngineScheduler, BadConfigValuesNameTheKey) {
  ExpectKeyError({{"beta_schedule", "squaredcos_cap_v2"}}, "beta_schedule");
  ExpectKeyError({{"beta_schedule", "nope"}}, "beta_schedule");
  ExpectKeyError({{"timestep_spacing", "karras"}}, "timestep_spacing");
  ExpectKeyError({{"prediction_type", "sample"}}, "prediction_type");
  ExpectKeyError({{"num_train_timesteps", "1000"}}, "num_train_timesteps");
  ExpectKeyError({{"num_train_timesteps", 0}}, "num_train_timesteps");
  ExpectKeyError({{"beta_start", -1.0}}, "beta_start");
  ExpectKeyError({{"trained_betas", {0.1, 0.2}}}, "trained_betas");
  ExpectKeyError({{"rescale_betas_zero_snr", true}}, "rescale_betas_zero_snr");
  ExpectKeyError({{"use_karras_sigmas", true}}, "use_karras_sigmas");
  EXPECT_EQ(FromJsonStatus({{"beta_schedule", "nope"}}).code(), Status::Code::kUnsupported);
  EXPECT_TRUE(FromJsonStatus({{"trained_betas", nullptr}, {"use_karras_sigmas", false}}).ok());
  EXPECT_FALSE(FromJsonStatus(nlohmann::json::array()).ok());

  auto missing = SchedulerConfig::Load("/nonexistent/scheduler");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/scheduler/scheduler_config.json"),
            std::string::npos);

  SchedulerConfig hand_built;
  hand_built.timestep_spacing = "karras";
  auto created = EulerAncestralScheduler::Create(hand_built);
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.status().message().find("timestep_spacing"), std::string::npos);
}

TEST(EngineScheduler, StepCountOutsideOneToTIsRefused) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  auto s = EulerAncestralScheduler::Create(FixtureConfig());
  ASSERT_TRUE(s.ok());
  for (int n : {0, -3, 1001}) {
    Status st = s->SetTimesteps(n);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << n;
    EXPECT_NE(st.message().find("num_inference_steps"), std::string::npos) << st.message();
  }
  EXPECT_TRUE(s->SetTimesteps(1000).ok());
  EXPECT_TRUE(s->SetTimesteps(1).ok());
  // numpy's linspace(0, 999, 1) is [0].
  EXPECT_EQ(s->timesteps().item<float>(), 0.0f);
}

TEST(EngineScheduler, EveryStepCountGivesAConsistentSchedule) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  for (const std::string spacing : {"linspace", "leading", "trailing"}) {
    auto s = EulerAncestralScheduler::Create(FixtureConfig(spacing));
    ASSERT_TRUE(s.ok());
    int refused = 0;
    for (int n = 1; n <= 1000; ++n) {
      Status st = s->SetTimesteps(n);
      if (!st.ok()) {
        // Only trailing, where upstream's np.arange returns n+1 values.
        EXPECT_EQ(spacing, "trailing");
        EXPECT_EQ(st.code(), Status::Code::kUnsupported);
        ++refused;
        continue;
      }
      ASSERT_EQ(s->timesteps().size(0), n) << spacing << " " << n;
      ASSERT_EQ(s->sigmas().size(0), n + 1);
      EXPECT_EQ(s->sigmas()[n].item<float>(), 0.0f);
      // Decreasing timesteps and sigmas.
      if (n > 1) {
        EXPECT_TRUE(
            (s->timesteps().slice(0, 0, n - 1) > s->timesteps().slice(0, 1, n)).all().item<bool>())
            << spacing << " " << n;
      }
      EXPECT_TRUE(
          (s->sigmas().slice(0, 0, n) >= s->sigmas().slice(0, 1, n + 1)).all().item<bool>());
    }
    if (spacing == "trailing") {
      EXPECT_GT(refused, 0);
      EXPECT_EQ(s->SetTimesteps(61).code(), Status::Code::kUnsupported);
    }
  }
}

// ---- Euler and v_prediction against hand-computed upstream formulas (no goldens exist).

TEST(EngineScheduler, LinearBetasFollowTheFormula) {
  SchedulerConfig c;
  c.beta_schedule = "linear";
  c.beta_start = 0.0001;
  c.beta_end = 0.02;
  auto s = EulerScheduler::Create(c);
  ASSERT_TRUE(s.ok());
  const auto& sched = s->schedule();
  EXPECT_FLOAT_EQ(sched.train_betas()[0].item<float>(), 0.0001f);
  EXPECT_FLOAT_EQ(sched.train_betas()[999].item<float>(), 0.02f);
  EXPECT_NEAR(sched.train_betas()[500].item<float>(), 0.0001 + 500 * (0.02 - 0.0001) / 999, 1e-8);
  const double ac1 = (1 - 0.0001) * (1 - (0.0001 + (0.02 - 0.0001) / 999));
  EXPECT_NEAR(sched.train_alphas_cumprod()[1].item<float>(), ac1, 1e-7);
  // train sigmas: t = 999 first, then 0.
  const double ac_last = sched.train_alphas_cumprod()[999].item<float>();
  EXPECT_NEAR(sched.train_sigmas()[0].item<float>(), std::sqrt((1 - ac_last) / ac_last), 1e-3);
  EXPECT_EQ(sched.train_sigmas()[1000].item<float>(), 0.0f);
}

TEST(EngineScheduler, EulerStepFollowsTheUpstreamFormula) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  auto e = EulerScheduler::Create(FixtureConfig());
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->SetTimesteps(10).ok());
  // Euler shares the ancestral schedule.
  EulerAncestralScheduler a = MakeAncestral("linspace", 10);
  EXPECT_TRUE(torch::equal(e->sigmas(), a.sigmas()));
  EXPECT_EQ(e->init_noise_sigma(), a.init_noise_sigma());

  auto gen = torch::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor x = torch::randn({2, 4, 4, 4}, gen) * 3;
  const torch::Tensor eps = torch::randn({2, 4, 4, 4}, gen);
  const torch::Tensor x64 = x.to(torch::kFloat64), eps64 = eps.to(torch::kFloat64);
  for (int i : {0, 5, 9}) {
    const double s = e->sigmas()[i].item<float>(), s1 = e->sigmas()[i + 1].item<float>();
    // x0 = x - s*eps; prev = x + (x - x0)/s * (s' - s) = x + eps*(s' - s).
    auto r = e->Step(eps, i, x);
    const torch::Tensor x0 = x64 - s * eps64;
    const torch::Tensor prev = x64 + (x64 - x0) / s * (s1 - s);
    EXPECT_LE((r.pred_original_sample.to(torch::kFloat64) - x0).abs().max().item<double>(), 1e-5)
        << i;
    EXPECT_LE((r.prev_sample.to(torch::kFloat64) - prev).abs().max().item<double>(), 1e-5) << i;
    // The ancestral step with zero noise differs from Euler except at the last step (s' = 0).
    auto ra = a.Step(eps, i, x, torch::zeros_like(x));
    if (i == 9) {
      EXPECT_LE((ra.prev_sample - r.prev_sample).abs().max().item<float>(), 1e-5);
    } else {
      EXPECT_GT((ra.prev_sample - r.prev_sample).abs().max().item<float>(), 1e-3) << i;
    }
    // Ancestral in float64 from the upstream formula.
    const double up = std::sqrt(s1 * s1 * (s * s - s1 * s1) / (s * s));
    const double down = std::sqrt(s1 * s1 - up * up);
    const torch::Tensor prev_a = x64 + (x64 - x0) / s * (down - s);
    EXPECT_LE((ra.prev_sample.to(torch::kFloat64) - prev_a).abs().max().item<double>(), 1e-4) << i;
  }
}

TEST(EngineScheduler, VPredictionFollowsTheUpstreamFormula) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  SchedulerConfig c = FixtureConfig();
  c.prediction_type = "v_prediction";
  auto a = EulerAncestralScheduler::Create(c);
  auto e = EulerScheduler::Create(c);
  ASSERT_TRUE(a.ok() && e.ok());
  ASSERT_TRUE(a->SetTimesteps(20).ok() && e->SetTimesteps(20).ok());
  const torch::Tensor x = torch::full({1, 4, 2, 2}, 2.0);
  const torch::Tensor v = torch::full({1, 4, 2, 2}, 0.5);
  const int i = 7;
  const double s = a->sigmas()[i].item<float>();
  const double x0 = 0.5 * (-s / std::sqrt(s * s + 1)) + 2.0 / (s * s + 1);
  EXPECT_NEAR(a->Step(v, i, x, torch::zeros_like(x)).pred_original_sample[0][0][0][0].item<float>(),
              x0, 1e-5);
  EXPECT_NEAR(e->Step(v, i, x).pred_original_sample[0][0][0][0].item<float>(), x0, 1e-5);
}

TEST(EngineScheduler, DDIMTimestepsAndStepFollowTheUpstreamFormulas) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/scheduler/scheduler_config.json");
  SchedulerConfig c = FixtureConfig();
  auto sd15 = SchedulerConfig::FromJson({{"clip_sample", false},
                                         {"set_alpha_to_one", false},
                                         {"steps_offset", 1},
                                         {"timestep_spacing", "leading"}},
                                        "ddim.json");
  ASSERT_TRUE(sd15.ok()) << sd15.status().ToString();
  EXPECT_FALSE(sd15->clip_sample);
  EXPECT_FALSE(sd15->set_alpha_to_one);
  EXPECT_FALSE(SchedulerConfig::FromJson({{"thresholding", true}}, "ddim.json").ok());

  // Timesteps: linspace(0, 999, n).round() reversed; leading i*(T//n) + offset; trailing.
  auto d = DDIMScheduler::Create(c);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->SetTimesteps(4).ok());
  EXPECT_EQ(std::vector<int64_t>(d->timesteps().data_ptr<int64_t>(),
                                 d->timesteps().data_ptr<int64_t>() + 4),
            (std::vector<int64_t>{999, 666, 333, 0}));
  auto lead = DDIMScheduler::Create(*sd15);
  ASSERT_TRUE(lead.ok());
  ASSERT_TRUE(lead->SetTimesteps(10).ok());
  EXPECT_EQ(lead->timesteps()[0].item<int64_t>(), 901);
  EXPECT_EQ(lead->timesteps()[9].item<int64_t>(), 1);
  EXPECT_EQ(lead->init_noise_sigma(), 1.0);
  EXPECT_EQ(d->SetTimesteps(0).code(), Status::Code::kInvalidArgument);

  // Step (eta = 0, no clipping): hand-computed in float64 from alphas_cumprod.
  const auto& ac = lead->train_alphas_cumprod();
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(11);
  const torch::Tensor x = torch::randn({2, 4, 3, 3}, gen);
  const torch::Tensor eps = torch::randn({2, 4, 3, 3}, gen);
  const torch::Tensor x64 = x.to(torch::kFloat64), eps64 = eps.to(torch::kFloat64);
  for (int i : {0, 9}) {
    const int64_t t = lead->timesteps()[i].item<int64_t>();
    const double a = ac[t].item<float>();
    // t' = t - 100; at the last step t' < 0 and set_alpha_to_one = false gives alphas_cumprod[0].
    const double a_prev = t - 100 >= 0 ? ac[t - 100].item<float>() : ac[0].item<float>();
    const torch::Tensor x0 = (x64 - std::sqrt(1 - a) * eps64) / std::sqrt(a);
    const torch::Tensor prev = std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev) * eps64;
    auto r = lead->Step(eps, i, x);
    EXPECT_LE((r.pred_original_sample.to(torch::kFloat64) - x0).abs().max().item<double>(),
              1e-5 * (1 + x0.abs().max().item<double>()))
        << i;
    EXPECT_LE((r.prev_sample.to(torch::kFloat64) - prev).abs().max().item<double>(), 1e-5) << i;
    // Batched == per sample.
    auto one = lead->Step(eps.slice(0, 1, 2), i, x.slice(0, 1, 2));
    EXPECT_TRUE(torch::equal(one.prev_sample, r.prev_sample.slice(0, 1, 2)));
  }
  // eta = 1 adds std * noise with std = sqrt((1-a')/(1-a) (1 - a/a')).
  {
    const int i = 3;
    const int64_t t = lead->timesteps()[i].item<int64_t>();
    const double a = ac[t].item<float>(), a_prev = ac[t - 100].item<float>();
    const double sd = std::sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev));
    const torch::Tensor noise = torch::ones_like(x);
    const torch::Tensor x0 = (x64 - std::sqrt(1 - a) * eps64) / std::sqrt(a);
    const torch::Tensor prev =
        std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev - sd * sd) * eps64 + sd;
    auto r = lead->Step(eps, i, x, 1.0, noise);
    EXPECT_LE((r.prev_sample.to(torch::kFloat64) - prev).abs().max().item<double>(), 1e-5);
  }
  // clip_sample (upstream default) clamps x0 to [-1, 1].
  auto r = d->Step(eps * 50, 1, x);
  EXPECT_LE(r.pred_original_sample.abs().max().item<float>(), 1.0f);
}

// ---- The verifier on the scheduler kinds (optional leading/trailing checks run and count).

TEST(EngineScheduler, VerifierPassesEverySchedulerCheck) {
  FAIRY_REQUIRE_SHARED("fixtures/pix2pix-tiny/golden/manifest.json");
  verify::VerifyOptions options;
  options.fixture_dir = TinyFixture();
  options.only_kinds = {"scheduler_schedule", "scheduler_step"};
  std::ostringstream report;
  auto summary = verify::RunVerify(options, report);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->failed, 0) << report.str();
  EXPECT_EQ(summary->skipped, 0) << report.str();
  EXPECT_EQ(summary->passed, 8) << report.str();
}

}  // namespace
}  // namespace fairy::engine
