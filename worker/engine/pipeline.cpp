#include "worker/engine/pipeline.h"

#include <cmath>
#include <cstring>

#ifdef FAIRY_WITH_PNG
#include <png.h>
#endif

#include <filesystem>
#include <optional>

#include "common/edit_values.h"
#include "common/log.h"
#include "worker/engine/random.h"
#include "worker/engine/weights.h"

namespace fairy::engine {
namespace {

constexpr int kTextLength = 77;

// Per-call state shared by the anchor and frame passes.
struct Conditioning {
  torch::Tensor cond;    // [1, 77, C] E(instruction)
  torch::Tensor uncond;  // [1, 77, C] E("")
};

Result<Conditioning> Condition(Model& model, const EditSettings& s) {
  Conditioning c;
  FAIRY_ASSIGN_OR_RETURN(c.cond, model.EncodePrompt(s.instruction));
  FAIRY_ASSIGN_OR_RETURN(c.uncond, model.EncodePrompt(""));
  return c;
}

// The settings' sampler on the model's sigma schedule: exactly one of the two is set.
struct StepSampler {
  std::optional<EulerAncestralScheduler> ancestral;
  std::optional<EulerScheduler> euler;

  const DiscreteSigmaSchedule& schedule() const {
    return ancestral ? ancestral->schedule() : euler->schedule();
  }
};

Result<StepSampler> MakeSampler(const Model& model, const EditSettings& s) {
  SchedulerConfig config = model.scheduler_config();
  if (!s.timestep_spacing.empty()) config.timestep_spacing = s.timestep_spacing;
  StepSampler sampler;
  if (s.sampler == Sampler::kEuler) {
    FAIRY_ASSIGN_OR_RETURN(EulerScheduler euler, EulerScheduler::Create(config));
    FAIRY_RETURN_IF_ERROR(euler.SetTimesteps(s.steps));
    sampler.euler.emplace(std::move(euler));
  } else {
    FAIRY_ASSIGN_OR_RETURN(EulerAncestralScheduler ancestral,
                           EulerAncestralScheduler::Create(config));
    FAIRY_RETURN_IF_ERROR(ancestral.SetTimesteps(s.steps));
    sampler.ancestral.emplace(std::move(ancestral));
  }
  return sampler;
}

// Images [N, 3, H, W] with H and W multiples of `f`.
Status CheckImages(const torch::Tensor& images, int64_t f, const std::string& what) {
  if (!images.defined() || images.dim() != 4 || images.size(1) != 3 || images.size(0) == 0) {
    return Status::InvalidArgument(what + ": images must be [N, 3, H, W], got " +
                                   (images.defined() ? ShapeString(images.sizes()) : "none"));
  }
  if (images.size(2) % f != 0 || images.size(3) % f != 0) {
    return Status::InvalidArgument(what + ": image size " + std::to_string(images.size(3)) + "x" +
                                   std::to_string(images.size(2)) + " is not a multiple of " +
                                   std::to_string(f));
  }
  return Status::OK();
}

// Denoises frames `frames` (noise keys) whose VAE latents are `image_latents` [F, C, h, w]: every
// UNet call holds the three guidance branches of all F frames, branch-major. Returns the final
// latents [F, C, h, w] (float32, model device).
Result<torch::Tensor> Denoise(Model& model, const torch::Tensor& image_latents,
                              const Conditioning& c, const EditSettings& s,
                              const std::vector<int64_t>& frames, NoiseSource& noise,
                              SelfAttentionMode mode, AnchorCache* cache, PipelineTrace* trace,
                              const StepCallback& on_step) {
  const auto& opts = model.options();
  const int64_t f = static_cast<int64_t>(frames.size());
  FAIRY_ASSIGN_OR_RETURN(StepSampler sampler, MakeSampler(model, s));
  const DiscreteSigmaSchedule& schedule = sampler.schedule();
  const std::vector<int64_t> shape = {1, image_latents.size(1), image_latents.size(2),
                                      image_latents.size(3)};
  std::vector<torch::Tensor> initial;
  for (int64_t frame : frames) {
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor n, noise.Initial(frame, shape));
    initial.push_back(n);
  }
  // Latents stay float32 for the scheduler's arithmetic; the UNet sees the model dtype.
  auto x = torch::cat(initial, 0).to(opts.device, torch::kFloat32) * schedule.init_noise_sigma();
  auto m = image_latents.to(opts.device, torch::kFloat32);
  auto m3 = torch::cat({m, m, torch::zeros_like(m)}, 0).to(opts.dtype);  // [3F, C, h, w]
  auto text = torch::cat({c.cond.expand({f, -1, -1}), c.uncond.expand({f, -1, -1}),
                          c.uncond.expand({f, -1, -1})},
                         0)
                  .to(opts.dtype);  // [3F, 77, C]
  if (trace != nullptr) {
    trace->timesteps = schedule.timesteps().cpu();
    trace->sigmas = schedule.sigmas().cpu();
    trace->init_noise_sigma = schedule.init_noise_sigma();
    trace->image_latents = torch::cat({m, m, torch::zeros_like(m)}, 0).cpu();
  }
  const auto timesteps = schedule.timesteps().cpu();
  const auto sigmas = schedule.sigmas().cpu();
  for (int step = 0; step < s.steps; ++step) {
    const float t = timesteps[step].item<float>();
    const double sigma = sigmas[step].item<float>();
    auto x3 = torch::cat({x, x, x}, 0);  // [3F, C, h, w]
    auto u = torch::cat({schedule.ScaleModelInput(x3, step), m3.to(torch::kFloat32)}, 1);
    SelfAttentionContext ctx{mode, cache, step, 3};
    FAIRY_ASSIGN_OR_RETURN(
        torch::Tensor e, model.unet().Forward(u.to(opts.dtype), torch::tensor({t}), text,
                                              mode == SelfAttentionMode::kPlain ? nullptr : &ctx));
    e = e.to(torch::kFloat32);
    // Guidance in sigma space, as the upstream pipeline does.
    auto p = x3 - sigma * e;
    auto parts = p.chunk(3, 0);  // text+image, image, unconditional
    auto guided = parts[2] + s.guidance_text * (parts[0] - parts[1]) +
                  s.guidance_image * (parts[1] - parts[2]);
    auto eps = (guided - x) / (-sigma);
    torch::Tensor prev;
    if (sampler.ancestral) {
      std::vector<torch::Tensor> step_noise;
      for (int64_t frame : frames) {
        FAIRY_ASSIGN_OR_RETURN(torch::Tensor n, noise.Step(frame, step, shape));
        step_noise.push_back(n);
      }
      prev = sampler.ancestral
                 ->Step(eps, step, x, torch::cat(step_noise, 0).to(opts.device, torch::kFloat32))
                 .prev_sample;
    } else {
      prev = sampler.euler->Step(eps, step, x).prev_sample;
    }
    if (trace != nullptr) {
      if (step == 0) {
        trace->step0_unet_input = u.cpu();
        trace->step0_unet_output = e.cpu();
      }
      trace->guided_noise_pred.push_back(eps.cpu());
      trace->latents_per_step.push_back(prev.cpu());
    }
    x = prev;
    if (on_step) on_step(step + 1, s.steps);
  }
  return x;
}

// Latents [F, C, h, w] -> images [F, H, W, 3] in [0, 1] (CPU float32).
Result<torch::Tensor> Finish(Model& model, const torch::Tensor& latents, PipelineTrace* trace) {
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor decoded, model.DecodeLatents(latents));
  if (trace != nullptr) trace->vae_decoded = decoded.cpu();
  return (decoded.to(torch::kFloat32) / 2 + 0.5)
      .clamp(0, 1)
      .permute({0, 2, 3, 1})
      .contiguous()
      .cpu();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
Status EditSettings::Validate() const {
  if (instruction.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Status::InvalidArgument("edit: instruction is empty");
  }
  if (steps < 1 || steps > 1000)
    return Status::InvalidArgument("edit: steps must be in [1, 1000], got " +
                                   std::to_string(steps));
  if (!std::isfinite(guidance_text) || !std::isfinite(guidance_image) || guidance_text < 0 ||
      guidance_image < 0) {
    return Status::InvalidArgument("edit: guidance scales must be finite and >= 0");
  }
  return Status::OK();
}

const char* SamplerName(Sampler sampler) {
  return sampler == Sampler::kEuler ? "euler" : "euler_ancestral";
}

Result<Sampler> ParseSampler(const std::string& name) {
  if (name == "euler_ancestral") return Sampler::kEulerAncestral;
  if (name == "euler") return Sampler::kEuler;
  return Status::InvalidArgument("scheduler: \"" + name + "\" is not a sampler (" +
                                 edit_values::Listed(edit_values::kScheduler, "", ", ") + ")");
}

const char* NoiseModeName(NoiseMode mode) {
  return mode == NoiseMode::kShared ? "shared" : "per_frame";
}

Result<NoiseMode> ParseNoiseMode(const std::string& name) {
  if (name == "per_frame") return NoiseMode::kPerFrame;
  if (name == "shared") return NoiseMode::kShared;
  return Status::InvalidArgument("noise: \"" + name + "\" is not a noise mode (" +
                                 edit_values::Listed(edit_values::kNoise, "", ", ") + ")");
}

uint64_t FrameNoise::FrameSeedOf(int64_t frame) const {
  return FrameSeed(seed_, mode_ == NoiseMode::kShared ? 0 : frame);
}

Result<torch::Tensor> FrameNoise::Initial(int64_t frame, c10::IntArrayRef shape) {
  auto [it, inserted] = generators_.try_emplace(frame, MakeCpuGenerator(FrameSeedOf(frame)));
  if (!inserted) it->second = MakeCpuGenerator(FrameSeedOf(frame));  // a new run of this frame
  return Randn(it->second, shape);
}

Result<torch::Tensor> FrameNoise::Step(int64_t frame, int step, c10::IntArrayRef shape) {
  auto it = generators_.find(frame);
  if (it == generators_.end()) {
    return Status::FailedPrecondition("noise: step " + std::to_string(step) + " of frame " +
                                      std::to_string(frame) + " before its initial latents");
  }
  return Randn(it->second, shape);
}

Result<torch::Tensor> InjectedNoise::Initial(int64_t frame, c10::IntArrayRef shape) {
  if (frame != 0 || initial_.sizes() != shape) {
    return Status::InvalidArgument("noise: injected initial latents " +
                                   ShapeString(initial_.sizes()) + " do not fit frame " +
                                   std::to_string(frame) + " of " + ShapeString(shape));
  }
  return initial_.to(torch::kFloat32);
}

Result<torch::Tensor> InjectedNoise::Step(int64_t frame, int step, c10::IntArrayRef shape) {
  if (frame != 0 || step < 0 || step >= steps_.size(0) ||
      steps_[step].unsqueeze(0).sizes() != shape) {
    return Status::InvalidArgument("noise: injected step noise " + ShapeString(steps_.sizes()) +
                                   " has no step " + std::to_string(step) + " of " +
                                   ShapeString(shape));
  }
  return steps_.narrow(0, step, 1).to(torch::kFloat32);
}

// ---------------------------------------------------------------------------------------------
Result<torch::Tensor> EditImage(Model& model, const torch::Tensor& image,
                                const EditSettings& settings, NoiseSource& noise,
                                PipelineTrace* trace) {
  FAIRY_RETURN_IF_ERROR(settings.Validate());
  FAIRY_RETURN_IF_ERROR(CheckImages(image, model.frame_multiple(), "edit"));
  if (image.size(0) != 1) return Status::InvalidArgument("edit: EditImage takes one image");
  FAIRY_ASSIGN_OR_RETURN(Conditioning c, Condition(model, settings));
  if (trace != nullptr) {
    trace->image = image.cpu();
    trace->prompt_embeds = torch::cat({c.cond, c.uncond, c.uncond}, 0).cpu();
  }
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor m, model.EncodeImages(image));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor x, Denoise(model, m, c, settings, {0}, noise,
                                                  SelfAttentionMode::kPlain, nullptr, trace, {}));
  if (trace != nullptr) trace->vae_decode_input = (x / model.scaling_factor()).cpu();
  return Finish(model, x, trace);
}

Result<torch::Tensor> RunAnchorPass(Model& model, const torch::Tensor& anchor_images,
                                    const std::vector<int64_t>& anchor_indices,
                                    const EditSettings& settings, AnchorCache* cache,
                                    const StepCallback& on_step) {
  FAIRY_RETURN_IF_ERROR(settings.Validate());
  FAIRY_RETURN_IF_ERROR(CheckImages(anchor_images, model.frame_multiple(), "anchor pass"));
  if (static_cast<int64_t>(anchor_indices.size()) != anchor_images.size(0)) {
    return Status::InvalidArgument("anchor pass: " + std::to_string(anchor_indices.size()) +
                                   " indices for " + std::to_string(anchor_images.size(0)) +
                                   " images");
  }
  *cache = AnchorCache(model.unet().SelfAttentionLayers(), settings.steps, settings.fp16_cache);
  cache->metadata()["model"] = model.dir();
  cache->metadata()["width"] = std::to_string(anchor_images.size(3));
  cache->metadata()["height"] = std::to_string(anchor_images.size(2));
  cache->metadata()["noise"] = NoiseModeName(settings.noise);
  cache->metadata()["sampler"] = SamplerName(settings.sampler);
  FAIRY_ASSIGN_OR_RETURN(Conditioning c, Condition(model, settings));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor m, model.EncodeImages(anchor_images));
  FrameNoise noise(settings.seed, settings.noise);
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor x,
                         Denoise(model, m, c, settings, anchor_indices, noise,
                                 SelfAttentionMode::kAnchor, cache, nullptr, on_step));
  return Finish(model, x, nullptr);
}

Result<torch::Tensor> RunFramePass(Model& model, const AnchorCache& cache,
                                   const torch::Tensor& images,
                                   const std::vector<int64_t>& frame_indices,
                                   const EditSettings& settings, int64_t batch,
                                   const StepCallback& on_step) {
  FAIRY_RETURN_IF_ERROR(settings.Validate());
  FAIRY_RETURN_IF_ERROR(CheckImages(images, model.frame_multiple(), "frame pass"));
  if (static_cast<int64_t>(frame_indices.size()) != images.size(0)) {
    return Status::InvalidArgument("frame pass: " + std::to_string(frame_indices.size()) +
                                   " indices for " + std::to_string(images.size(0)) + " images");
  }
  if (batch < 1) return Status::InvalidArgument("frame pass: batch must be >= 1");
  FAIRY_RETURN_IF_ERROR(cache.CheckUsableFor(model.unet().SelfAttentionLayers(), settings.steps));
  if (cache.num_branches() != 3) {
    return Status::InvalidArgument("frame pass: the anchor cache holds " +
                                   std::to_string(cache.num_branches()) +
                                   " guidance branches, the pipeline needs 3");
  }
  // A cache from before a field was recorded has no entry for it and is taken as it is.
  for (const auto& [field, value] :
       {std::pair<std::string, std::string>{"noise", NoiseModeName(settings.noise)},
        {"sampler", SamplerName(settings.sampler)}}) {
    const auto it = cache.metadata().find(field);
    if (it != cache.metadata().end() && it->second != value) {
      return Status::InvalidArgument("frame pass: the anchor cache was computed with " + field +
                                     " " + it->second + ", this pass uses " + value);
    }
  }
  FAIRY_ASSIGN_OR_RETURN(Conditioning c, Condition(model, settings));
  // kFrame only reads the cache; the context's pointer is non-const because kAnchor fills it.
  AnchorCache* anchors = const_cast<AnchorCache*>(&cache);
  FrameNoise noise(settings.seed, settings.noise);
  std::vector<torch::Tensor> outs;
  const int64_t n = images.size(0);
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t len = std::min(batch, n - start);
    std::vector<int64_t> group(frame_indices.begin() + start, frame_indices.begin() + start + len);
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor m, model.EncodeImages(images.narrow(0, start, len)));
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor x,
                           Denoise(model, m, c, settings, group, noise, SelfAttentionMode::kFrame,
                                   anchors, nullptr, on_step));
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor out, Finish(model, x, nullptr));
    outs.push_back(out);
  }
  return torch::cat(outs, 0);
}

// ---------------------------------------------------------------------------------------------
Result<torch::Tensor> ReadPngImage(const std::string& path) {
#ifdef FAIRY_WITH_PNG
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    return Status::InvalidArgument(path + ": cannot read PNG: " + image.message);
  }
  image.format = PNG_FORMAT_RGB;
  auto pixels = torch::empty(
      {static_cast<int64_t>(image.height), static_cast<int64_t>(image.width), 3}, torch::kUInt8);
  if (!png_image_finish_read(&image, nullptr, pixels.data_ptr<uint8_t>(), 0, nullptr)) {
    std::string message = image.message;
    png_image_free(&image);
    return Status::Corruption(path + ": PNG decode failed: " + message);
  }
  // [H, W, 3] uint8 -> [1, 3, H, W] in [-1, 1]
  return pixels.permute({2, 0, 1})
      .unsqueeze(0)
      .to(torch::kFloat32)
      .div(255.0)
      .mul(2.0)
      .sub(1.0)
      .contiguous();
#else
  return Status::Unsupported(
      path + ": this build has no PNG support (libpng not found at configure time)");
#endif
}

Result<std::shared_ptr<Model>> Model::Load(const std::string& path, const ModelOptions& options) {
  ModelSourceOptions so;
  so.variant = options.variant;
  so.config_dir = options.config_dir;
  FAIRY_ASSIGN_OR_RETURN(ModelSource source, ModelSource::Open(path, so));
  return Load(source, options);
}

Result<std::shared_ptr<Model>> Model::Load(const ModelSource& source, const ModelOptions& options) {
  const std::string& dir = source.path;
  std::shared_ptr<Model> model(new Model());
  model->dir_ = dir;
  model->options_ = options;
  for (const std::string& note : source.notes) FAIRY_LOG(kInfo, "engine") << dir << ": " << note;
  // Progress over the three parts' bytes, in the order they are read.
  const int64_t total = source.TensorBytes();
  int64_t done = 0;
  const auto progress_of = [&](const TensorMap& tensors) {
    LoadWeightsOptions lo;
    if (options.on_load_progress) {
      lo.on_progress = [&options, &done, total](int64_t bytes) { options.on_load_progress(done + bytes, total); };
    }
    return lo;
  };
  FAIRY_ASSIGN_OR_RETURN(model->tokenizer_, CLIPTokenizer::FromFiles(source.tokenizer));
  FAIRY_ASSIGN_OR_RETURN(CLIPTextConfig text_config,
                         CLIPTextConfig::FromJson(source.text_encoder.config, source.text_encoder.config_source));
  FAIRY_ASSIGN_OR_RETURN(model->text_encoder_,
                         LoadCLIPTextModel(text_config, source.text_encoder.tensors, source.text_encoder.what,
                                           options.device, options.dtype, progress_of(source.text_encoder.tensors)));
  done += TensorBytes(source.text_encoder.tensors);
  FAIRY_ASSIGN_OR_RETURN(UNetConfig unet_config, UNetConfig::FromJson(source.unet.config, source.unet.config_source));
  FAIRY_ASSIGN_OR_RETURN(model->unet_, LoadUNet(unet_config, source.unet.tensors, source.unet.what, options.device,
                                                options.dtype, progress_of(source.unet.tensors)));
  done += TensorBytes(source.unet.tensors);
  FAIRY_ASSIGN_OR_RETURN(VAEConfig vae_config, VAEConfig::FromJson(source.vae.config, source.vae.config_source));
  FAIRY_ASSIGN_OR_RETURN(model->vae_, LoadAutoencoderKL(vae_config, source.vae.tensors, source.vae.what,
                                                        options.device, options.dtype, progress_of(source.vae.tensors)));
  FAIRY_ASSIGN_OR_RETURN(model->scheduler_config_,
                         SchedulerConfig::FromJson(source.scheduler_config, source.scheduler_source));
  const std::string& scheduler_class = model->scheduler_config_.class_name;
  if (!scheduler_class.empty() && scheduler_class != "EulerAncestralDiscreteScheduler" &&
      scheduler_class != "EulerDiscreteScheduler") {
    FAIRY_LOG(kWarn, "engine") << source.scheduler_source << ": " << scheduler_class
                               << " configured; Fairy samples with the job's edit.scheduler (Euler "
                                  "ancestral or Euler) on the same schedule";
  }
  const VAEConfig& vae = model->vae_->config();
  model->vae_scale_factor_ = vae.ScaleFactor();
  model->latent_channels_ = vae.latent_channels;
  model->scaling_factor_ = vae.scaling_factor;
  const int64_t unet_in = model->unet_->config().in_channels;
  if (unet_in != 2 * model->latent_channels_) {
    return Status::Unsupported(source.unet.config_source + ": in_channels is " +
                               std::to_string(unet_in) +
                               "; an InstructPix2Pix UNet takes noise and image latents (2 x " +
                               std::to_string(model->latent_channels_) + " channels)");
  }
  return model;
}

Model::~Model() = default;

Result<torch::Tensor> Model::EncodePrompt(const std::string& text) {
  constexpr size_t kMaxMemoised = 64;  // prompts; a worker serves a handful of jobs at a time
  std::lock_guard<std::mutex> lock(prompt_mutex_);
  if (auto it = prompt_embeddings_.find(text); it != prompt_embeddings_.end()) return it->second;
  FAIRY_ASSIGN_OR_RETURN(Tokenized tokens, tokenizer_->Tokenize(text, kTextLength));
  if (tokens.truncated()) {
    FAIRY_LOG(kWarn, "engine") << "instruction has " << tokens.untruncated_length - 2
                               << " tokens; the text encoder reads the first " << kTextLength - 2;
  }
  auto ids = torch::tensor(tokens.input_ids, torch::kLong).unsqueeze(0).to(options_.device);
  torch::Tensor embeddings = text_encoder_->forward(ids);
  if (prompt_embeddings_.size() >= kMaxMemoised) prompt_embeddings_.clear();
  prompt_embeddings_.emplace(text, embeddings);
  return embeddings;
}

Result<torch::Tensor> Model::EncodeImages(const torch::Tensor& images) {
  FAIRY_RETURN_IF_ERROR(CheckImages(images, vae_scale_factor_, "encode"));
  return vae_->Encode(images.to(options_.device, options_.dtype)).first;
}

Result<torch::Tensor> Model::DecodeLatents(const torch::Tensor& latents) {
  if (!latents.defined() || latents.dim() != 4 || latents.size(1) != latent_channels_) {
    return Status::InvalidArgument("decode: latents must be [N, " +
                                   std::to_string(latent_channels_) + ", h, w], got " +
                                   (latents.defined() ? ShapeString(latents.sizes()) : "none"));
  }
  return vae_->Decode((latents / scaling_factor_).to(options_.device, options_.dtype));
}

}  // namespace fairy::engine
