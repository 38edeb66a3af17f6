#include "worker/engine/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "common/log.h"
#include "worker/engine/train/checkpoint.h"
#include "worker/engine/train/model_parts.h"
#include "worker/engine/train/sampler.h"

namespace fairy::engine::train {
namespace {

namespace fs = std::filesystem;

Result<torch::Device> ParseTrainDevice(const std::string& name) {
  try {
    torch::Device d(name);
    if (d.is_cuda() && !torch::cuda::is_available()) {
      return Status::Unavailable("--device " + name + ": CUDA is not available in this build or machine");
    }
    return d;
  } catch (const c10::Error&) {
    return Status::InvalidArgument("--device: \"" + name + "\" is not a device (cpu, cuda, cuda:N)");
  }
}

Status Validate(const CommonTrainOptions& o) {
  if (o.model_dir.empty()) return Status::InvalidArgument("--model: a model folder is required");
  if (o.output_dir.empty()) return Status::InvalidArgument("--output: an output folder is required");
  if (o.steps < 1) return Status::InvalidArgument("--steps must be >= 1");
  if (o.batch_size < 1) return Status::InvalidArgument("--batch must be >= 1");
  if (o.learning_rate <= 0) return Status::InvalidArgument("--lr must be > 0");
  if (!(o.final_lr_ratio >= 0 && o.final_lr_ratio <= 1)) return Status::InvalidArgument("--final-lr-ratio must be in [0, 1]");
  if (o.data.resolution < 8) return Status::InvalidArgument("--resolution must be >= 8");
  if (o.dtype != "float32" && o.dtype != "fp32" && o.dtype != "bfloat16" && o.dtype != "bf16") {
    return Status::InvalidArgument("--dtype: \"" + o.dtype + "\" (supported: float32, bfloat16)");
  }
  return Status::OK();
}

bool UseBf16(const CommonTrainOptions& o, const torch::Device& d) {
  return d.is_cuda() && (o.dtype == "bfloat16" || o.dtype == "bf16");
}

// Mixed precision on CUDA: autocast to bfloat16 while the guard lives (weights stay float32).
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  }
  ~AutocastGuard() {
    if (!on_) return;
    at::autocast::set_enabled(false);
    at::autocast::clear_cache();
  }

 private:
  bool on_;
};

at::Generator StepGenerator(uint64_t seed, int64_t step, uint64_t salt) {
  return at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL + static_cast<uint64_t>(step) * 7919ULL + salt);
}

std::vector<torch::Tensor> Parameters(torch::nn::Module& m) { return m.parameters(true); }

// The persistent part of a run: the step reached and the optimizer's moments.
struct StateFiles {
  std::string dir;
  std::string json() const { return dir + "/state.json"; }
  std::string optimizer() const { return dir + "/optimizer.pt"; }
  std::string raw(const std::string& part) const { return dir + "/raw_" + part + ".safetensors"; }
};

Result<int64_t> ReadResumeStep(const StateFiles& files, const std::string& kind) {
  FAIRY_ASSIGN_OR_RETURN(auto state, ReadJson(files.json()));
  if (state.value("kind", std::string()) != kind) {
    return Status::InvalidArgument(files.json() + ": \"kind\" is \"" + state.value("kind", std::string()) +
                                   "\", this run trains \"" + kind + "\"");
  }
  return state.value("step", int64_t{0});
}

Result<std::vector<torch::Tensor>> LoadFrames(const CommonTrainOptions& o) {
  if (o.videos.empty()) return std::vector<torch::Tensor>{};
  auto start = std::chrono::steady_clock::now();
  FAIRY_ASSIGN_OR_RETURN(auto frames, LoadFramePool(o.videos, o.frame_pool));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "train: %zu real frames from %zu video path(s) in %.1f s\n", frames.size(), o.videos.size(), secs);
  return frames;
}

// Training data and the evaluation's own draw of it: the triples folder when one is given,
// otherwise the built-in generator over the videos' frames (evaluated with canonical instructions).
struct DataSources {
  std::shared_ptr<TrainingData> train, eval;
  std::shared_ptr<TripleFolder> folder;  // set when training on a triples folder
  std::vector<torch::Tensor> frames;     // the generator's real frames
  PairGeneratorOptions eval_options;     // the generator's options for the evaluation's pairs
};

Result<DataSources> LoadData(const CommonTrainOptions& o) {
  DataSources d;
  d.eval_options = o.data;
  d.eval_options.seed = o.data.seed + 7777;
  d.eval_options.canonical_fraction = 1.0;
  if (!o.triples_dir.empty()) {
    auto start = std::chrono::steady_clock::now();
    FAIRY_ASSIGN_OR_RETURN(d.folder, TripleFolder::Load(o.triples_dir, o.data));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "train: %zu triples from %s in %.1f s\n", d.folder->size(), o.triples_dir.c_str(), secs);
    d.train = d.folder;
    d.eval = d.folder->WithSeed(d.eval_options.seed);
    return d;
  }
  FAIRY_ASSIGN_OR_RETURN(d.frames, LoadFrames(o));
  d.train = std::make_shared<PairGenerator>(o.data, d.frames);
  d.eval = std::make_shared<PairGenerator>(d.eval_options, d.frames);
  return d;
}

// first_loss / final_loss: means of the first and last min(10, n/4) raw losses of this run.
void WindowLosses(const std::vector<double>& losses, TrainReport* report) {
  if (losses.empty()) return;
  size_t w = std::max<size_t>(1, std::min<size_t>(10, losses.size() / 4));
  double a = 0, b = 0;
  for (size_t i = 0; i < w; ++i) {
    a += losses[i];
    b += losses[losses.size() - 1 - i];
  }
  report->first_loss = a / static_cast<double>(w);
  report->final_loss = b / static_cast<double>(w);
}

torch::Tensor ToModelRange(const torch::Tensor& x, const torch::Device& d) { return (x * 2 - 1).to(d); }

}  // namespace

// ---------------------------------------------------------------- UNet (InstructPix2Pix objective)

Result<TrainReport> RunUNetTraining(const TrainUNetOptions& options) {
  const CommonTrainOptions& o = options.common;
  FAIRY_RETURN_IF_ERROR(Validate(o));
  FAIRY_ASSIGN_OR_RETURN(torch::Device device, ParseTrainDevice(o.device));
  StateFiles state{o.output_dir + "/training_state"};
  int64_t start_step = 0;
  std::string load_dir = o.model_dir, tokenizer_dir = o.tokenizer_dir;
  if (o.resume) {
    FAIRY_ASSIGN_OR_RETURN(start_step, ReadResumeStep(state, "unet"));
    load_dir = o.output_dir;
    tokenizer_dir = o.output_dir + "/tokenizer";
  }
  FAIRY_ASSIGN_OR_RETURN(ModelParts parts, ModelParts::Load(load_dir, device, o.data.seed, tokenizer_dir));
  if (!parts.vae_loaded) {
    return Status::FailedPrecondition(load_dir + "/vae has no weights: train the VAE first (fairy-engine train vae)");
  }
  parts.vae->eval();
  for (auto& p : parts.vae->parameters()) p.set_requires_grad(false);
  if (!options.train_text_encoder) {
    parts.text_encoder->eval();
    for (auto& p : parts.text_encoder->parameters()) p.set_requires_grad(false);
  }
  std::vector<torch::Tensor> params = Parameters(*parts.unet);
  if (options.train_text_encoder) {
    for (auto& p : Parameters(*parts.text_encoder)) params.push_back(p);
  }
  ExponentialMovingAverage ema;
  if (options.ema_decay > 0) ema = ExponentialMovingAverage(params, options.ema_decay);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(o.learning_rate)
                                            .betas({o.adam_beta1, o.adam_beta2})
                                            .eps(o.adam_eps)
                                            .weight_decay(o.weight_decay));
  if (o.resume) {
    // The model folder holds the EMA weights when EMA is on; the raw ones are in the state.
    if (ema.enabled()) {
      FAIRY_RETURN_IF_ERROR(LoadModuleWeights(*parts.unet, state.raw("unet")));
      if (options.train_text_encoder) FAIRY_RETURN_IF_ERROR(LoadModuleWeights(*parts.text_encoder, state.raw("text_encoder")));
      FAIRY_ASSIGN_OR_RETURN(auto shadow, LoadTensors(state.dir + "/ema.safetensors"));
      for (size_t i = 0; i < ema.shadow().size(); ++i) {
        auto it = shadow.find("p" + std::to_string(i));
        if (it == shadow.end()) return Status::Corruption(state.dir + "/ema.safetensors: missing p" + std::to_string(i));
        ema.shadow()[i].copy_(it->second.to(device));
      }
      ema.set_updates(start_step);
    }
    try {
      torch::load(optimizer, state.optimizer());
    } catch (const c10::Error& e) {
      return Status::Corruption(state.optimizer() + ": cannot load the optimizer state: " + e.what_without_backtrace());
    }
    std::fprintf(stderr, "train: resuming at step %lld from %s\n", static_cast<long long>(start_step), o.output_dir.c_str());
  }
  FAIRY_ASSIGN_OR_RETURN(DataSources data, LoadData(o));

  const double sf = parts.scaling_factor();
  const int64_t T = parts.schedule.num_train_timesteps;
  const bool bf16 = UseBf16(o, device);
  auto null_ids = parts.TokenIds({""});
  if (!null_ids.ok()) return null_ids.status();

  auto save = [&](int64_t step) -> Status {
    std::error_code ec;
    fs::create_directories(state.dir, ec);
    if (ec) return Status::IOError("cannot create " + state.dir + ": " + ec.message());
    std::vector<torch::Tensor> originals;
    if (ema.enabled()) {
      FAIRY_RETURN_IF_ERROR(SaveModuleWeights(*parts.unet, state.raw("unet")));
      if (options.train_text_encoder) FAIRY_RETURN_IF_ERROR(SaveModuleWeights(*parts.text_encoder, state.raw("text_encoder")));
      std::vector<std::pair<std::string, torch::Tensor>> shadow;
      for (size_t i = 0; i < ema.shadow().size(); ++i) shadow.emplace_back("p" + std::to_string(i), ema.shadow()[i]);
      FAIRY_RETURN_IF_ERROR(SaveTensors(shadow, state.dir + "/ema.safetensors"));
      originals = ema.SwapInto(params);
    }
    Status st = parts.Save(o.output_dir);
    if (ema.enabled()) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(originals[i]);
    }
    FAIRY_RETURN_IF_ERROR(st);
    try {
      torch::save(optimizer, state.optimizer() + ".tmp");
    } catch (const c10::Error& e) {
      return Status::IOError(state.optimizer() + ": " + e.what_without_backtrace());
    }
    fs::rename(state.optimizer() + ".tmp", state.optimizer(), ec);
    if (ec) return Status::IOError("cannot rename " + state.optimizer() + ".tmp: " + ec.message());
    return WriteJsonFile(state.json(), {{"kind", "unet"}, {"step", step}, {"steps", o.steps}});
  };

  auto evaluate = [&](TrainReport* report) -> Status {
    torch::NoGradGuard no_grad;
    parts.unet->eval();
    std::vector<torch::Tensor> originals;
    if (ema.enabled()) originals = ema.SwapInto(params);
    report->eval_psnr.clear();
    std::string line;
    // Per edit on generated pairs; one figure over 4 drawn triples for a triples folder.
    std::vector<std::pair<std::string, TrainingBatch>> sets;
    if (data.folder) {
      sets.emplace_back("triples", data.eval->Next(4, 0));
    } else {
      for (EditOp op : o.data.ops) {
        PairGeneratorOptions one = data.eval_options;
        one.ops = {op};
        sets.emplace_back(EditOpName(op), PairGenerator(one, data.frames).Next(4, 0));
      }
    }
    for (const auto& [name, b] : sets) {
      FAIRY_ASSIGN_OR_RETURN(auto ids, parts.TokenIds(b.instructions));
      auto emb = parts.text_encoder->forward(ids.to(device));
      auto cond = parts.vae->Encode(ToModelRange(b.source, device)).first;
      SamplerSettings ss;
      ss.steps = static_cast<int>(options.eval_steps);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
      FAIRY_ASSIGN_OR_RETURN(auto latents, SampleEulerAncestral(*parts.unet, parts.schedule, cond, emb, ss, gen));
      auto out = (parts.vae->Decode(latents / sf) / 2 + 0.5).clamp(0, 1).cpu();
      double psnr = Psnr(out, b.target);
      report->eval_psnr.emplace_back(name, psnr);
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.1f", name.c_str(), psnr);
      line += buf;
    }
    if (ema.enabled()) {
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(originals[i]);
    }
    parts.unet->train();
    std::fprintf(stderr, "\ntrain: eval PSNR dB (%lld steps):%s\n", static_cast<long long>(options.eval_steps), line.c_str());
    return Status::OK();
  };

  TrainReport report;
  ProgressBar bar("train unet", start_step, o.steps, o.log_every);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<double> losses;
  for (int64_t step = start_step; step < o.steps; ++step) {
    TrainingBatch batch = data.train->Next(o.batch_size, static_cast<uint64_t>(step));
    at::Generator gen = StepGenerator(o.data.seed, step, 17);
    auto [src, tgt] = EquivariantAugment(batch.source, batch.target, options.augment, gen);
    const int64_t B = src.size(0);
    torch::Tensor cond, z;
    {
      torch::NoGradGuard no_grad;
      AutocastGuard autocast(bf16);
      cond = parts.vae->Encode(ToModelRange(src, device)).first.to(torch::kFloat32);
      auto [mean, logvar] = parts.vae->Encode(ToModelRange(tgt, device));
      auto eps = torch::randn(mean.sizes(), gen).to(device);
      z = ((mean + (0.5 * logvar).exp() * eps) * sf).to(torch::kFloat32);
    }
    auto noise = torch::randn(z.sizes(), gen).to(device);
    auto t = torch::randint(0, T, {B}, gen, torch::kInt64).to(device);
    auto p = torch::rand({B}, gen);
    double q = options.text_dropout;
    auto text_drop = p < 2 * q;
    auto image_keep = ((p >= q).logical_and(p < 3 * q)).logical_not().to(torch::kFloat32).view({B, 1, 1, 1}).to(device);
    std::vector<std::string> prompts = batch.instructions;
    for (int64_t i = 0; i < B; ++i) {
      if (text_drop[i].item<bool>()) prompts[static_cast<size_t>(i)] = "";
    }
    FAIRY_ASSIGN_OR_RETURN(auto ids, parts.TokenIds(prompts));
    torch::Tensor loss;
    {
      AutocastGuard autocast(bf16);
      torch::Tensor emb;
      if (options.train_text_encoder) {
        emb = parts.text_encoder->forward(ids.to(device));
      } else {
        torch::NoGradGuard no_grad;
        emb = parts.text_encoder->forward(ids.to(device));
      }
      auto x_t = parts.schedule.AddNoise(z, noise, t);
      auto input = torch::cat({x_t, cond * image_keep}, 1);  // [B, 2L, h, w]
      auto pred = parts.unet->forward(input, t.to(torch::kFloat32), emb);
      auto per_sample = (pred.to(torch::kFloat32) - noise).square().mean({1, 2, 3});  // [B]
      if (options.snr_gamma > 0 || options.snr_floor > 0) {
        // |eps error|^2 = SNR |x0 error|^2, so weighting the epsilon loss by clamp(SNR, floor, gamma) / SNR
        // weights the x0 error by clamp(SNR, floor, gamma): gamma caps the low-noise steps (Min-SNR,
        // Hang et al. 2023), floor keeps the high-noise steps, which decide the colours, from
        // vanishing (truncated SNR, Salimans & Ho 2022).
        auto ac = parts.schedule.alphas_cumprod.to(device).index_select(0, t);
        auto snr = ac / (1 - ac);
        auto w = snr;
        if (options.snr_gamma > 0) w = w.clamp_max(options.snr_gamma);
        if (options.snr_floor > 0) w = w.clamp_min(options.snr_floor);
        per_sample = per_sample * (w / snr);
      }
      loss = per_sample.mean();
    }
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options())
          .lr(ScheduledLearningRate(step, o.learning_rate, o.warmup_steps, o.steps, o.cosine_decay, o.final_lr_ratio));
    }
    optimizer.zero_grad();
    loss.backward();
    if (o.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
    optimizer.step();
    if (ema.enabled()) ema.Update(params);
    double l = loss.item<double>();
    if (!std::isfinite(l)) {
      return Status::Internal("train unet: the loss became " + std::to_string(l) + " at step " + std::to_string(step) +
                              "; lower --lr or enable clipping");
    }
    bar.Update(step + 1, l);
    losses.push_back(l);
    bool last = step + 1 == o.steps;
    if (options.eval_every > 0 && ((step + 1) % options.eval_every == 0 || last)) FAIRY_RETURN_IF_ERROR(evaluate(&report));
    if (last || (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0)) FAIRY_RETURN_IF_ERROR(save(step + 1));
  }
  bar.Finish();
  report.steps_done = o.steps - start_step;
  WindowLosses(losses, &report);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

// ---------------------------------------------------------------- VAE (reconstruction)

Result<TrainReport> RunVAETraining(const TrainVAEOptions& options) {
  const CommonTrainOptions& o = options.common;
  FAIRY_RETURN_IF_ERROR(Validate(o));
  FAIRY_ASSIGN_OR_RETURN(torch::Device device, ParseTrainDevice(o.device));
  StateFiles state{o.output_dir + "/training_state"};
  int64_t start_step = 0;
  std::string load_dir = o.model_dir, tokenizer_dir = o.tokenizer_dir;
  if (o.resume) {
    FAIRY_ASSIGN_OR_RETURN(start_step, ReadResumeStep(state, "vae"));
    load_dir = o.output_dir;
    tokenizer_dir = o.output_dir + "/tokenizer";
  }
  FAIRY_ASSIGN_OR_RETURN(ModelParts parts, ModelParts::Load(load_dir, device, o.data.seed, tokenizer_dir));
  int64_t f = parts.vae->config().ScaleFactor();
  if (o.data.resolution % f != 0) {
    return Status::InvalidArgument("--resolution " + std::to_string(o.data.resolution) +
                                   " must be a multiple of the VAE's scale factor " + std::to_string(f));
  }
  std::vector<torch::Tensor> params = Parameters(*parts.vae);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(o.learning_rate)
                                            .betas({o.adam_beta1, o.adam_beta2})
                                            .eps(o.adam_eps)
                                            .weight_decay(o.weight_decay));
  if (o.resume) {
    try {
      torch::load(optimizer, state.optimizer());
    } catch (const c10::Error& e) {
      return Status::Corruption(state.optimizer() + ": cannot load the optimizer state: " + e.what_without_backtrace());
    }
  }
  FAIRY_ASSIGN_OR_RETURN(DataSources data, LoadData(o));
  const bool bf16 = UseBf16(o, device);

  // scaling_factor = 1 / std of the posterior means over a few batches (as SD's 0.18215 was found).
  auto calibrate = [&]() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> means;
    for (int i = 0; i < 8; ++i) {
      means.push_back(parts.vae->Encode(ToModelRange(data.eval->NextImages(o.batch_size, 100 + i), device)).first.cpu());
    }
    double sd = torch::cat(means).std().item<double>();
    parts.set_scaling_factor(sd > 0 ? 1.0 / sd : 1.0);
  };
  auto eval_psnr = [&]() {
    torch::NoGradGuard no_grad;
    parts.vae->eval();
    auto images = data.eval->NextImages(16, 0);
    auto rec = (parts.vae->Decode(parts.vae->Encode(ToModelRange(images, device)).first) / 2 + 0.5).clamp(0, 1).cpu();
    parts.vae->train();
    return Psnr(rec, images);
  };
  auto save = [&](int64_t step) -> Status {
    std::error_code ec;
    fs::create_directories(state.dir, ec);
    if (ec) return Status::IOError("cannot create " + state.dir + ": " + ec.message());
    calibrate();
    FAIRY_RETURN_IF_ERROR(parts.Save(o.output_dir));
    try {
      torch::save(optimizer, state.optimizer() + ".tmp");
    } catch (const c10::Error& e) {
      return Status::IOError(state.optimizer() + ": " + e.what_without_backtrace());
    }
    fs::rename(state.optimizer() + ".tmp", state.optimizer(), ec);
    if (ec) return Status::IOError("cannot rename " + state.optimizer() + ".tmp: " + ec.message());
    return WriteJsonFile(state.json(), {{"kind", "vae"}, {"step", step}, {"steps", o.steps}});
  };

  TrainReport report;
  ProgressBar bar("train vae", start_step, o.steps, o.log_every);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<double> losses;
  for (int64_t step = start_step; step < o.steps; ++step) {
    at::Generator gen = StepGenerator(o.data.seed, step, 29);
    auto x = ToModelRange(data.train->NextImages(o.batch_size, static_cast<uint64_t>(step)), device);
    torch::Tensor loss;
    {
      AutocastGuard autocast(bf16);
      auto [mean, logvar] = parts.vae->Encode(x);
      auto z = mean + (0.5 * logvar).exp() * torch::randn(mean.sizes(), gen).to(device);
      auto rec = parts.vae->Decode(z).to(torch::kFloat32);
      auto kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).to(torch::kFloat32).sum({1, 2, 3}).mean();
      loss = (rec - x).abs().mean() + (rec - x).square().mean() + options.kl_weight * kl;
    }
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options())
          .lr(ScheduledLearningRate(step, o.learning_rate, o.warmup_steps, o.steps, o.cosine_decay, o.final_lr_ratio));
    }
    optimizer.zero_grad();
    loss.backward();
    if (o.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
    optimizer.step();
    double l = loss.item<double>();
    if (!std::isfinite(l)) {
      return Status::Internal("train vae: the loss became " + std::to_string(l) + " at step " + std::to_string(step));
    }
    bar.Update(step + 1, l);
    losses.push_back(l);
    bool last = step + 1 == o.steps;
    if (last || (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0)) {
      double psnr = eval_psnr();
      std::fprintf(stderr, "\ntrain vae: reconstruction PSNR %.2f dB at step %lld\n", psnr, static_cast<long long>(step + 1));
      report.eval_psnr = {{"reconstruction", psnr}};
      FAIRY_RETURN_IF_ERROR(save(step + 1));
    }
  }
  bar.Finish();
  report.steps_done = o.steps - start_step;
  WindowLosses(losses, &report);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace fairy::engine::train
