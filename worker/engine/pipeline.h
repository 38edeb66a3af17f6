// The InstructPix2Pix pipeline (three-way classifier-free guidance) and Fairy's video path on top
// of it (DESIGN.md section 1).
//
// A Model is a whole diffusers folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/,
// scheduler/) loaded once; it is immutable afterwards and serves any number of tasks. Per-run state
// (latents, schedulers, random generators, anchor caches) lives in the calls below.
//
// Guidance (as diffusers' StableDiffusionInstructPix2PixPipeline): every UNet batch holds three
// branches in the order [text+image, image only, unconditional], branch-major over the frames:
// prompt embeddings [E(instruction), E(""), E("")], image latents [m, m, 0];
// eps = eps_u + g_text (eps_t - eps_i) + g_image (eps_i - eps_u), routed through sigma space as
// upstream does.
//
// Fairy video path for one shot: RunAnchorPass denoises the K anchor frames together (every
// self-attention layer in anchor mode), filling an AnchorCache for every layer, step and guidance
// branch, and returns the anchors' edited images. RunFramePass then edits any frames of the shot,
// in any grouping, each attending to [own tokens ; cached anchor tokens]. The noise of frame i
// comes only from FrameSeed(seed, i) (or FrameSeed(seed, 0) with NoiseMode::kShared; random.h),
// so a frame's output does not depend on how frames were grouped into calls, tasks or workers:
// bit-identical on the CPU for the same batch size.
//
// Thread-safety: a Model may be used from several threads at once (each call has its own state);
// LibTorch's intra-op threads are shared.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/anchor_attention.h"
#include "worker/engine/model_source.h"
#include "worker/engine/scheduler.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/tokenizer.h"
#include "worker/engine/unet.h"
#include "worker/engine/vae.h"

namespace fairy::engine {

struct ModelOptions {
  torch::Device device = torch::kCPU;         // where every part runs
  torch::ScalarType dtype = torch::kFloat32;  // weights and activations (float16/bfloat16: CUDA)
  // Diffusers folders: the weights variant to read ("fp16"); "" = the default files, or a part's
  // only variant (ModelSourceOptions::variant).
  std::string variant;
  // Single files: the diffusers folder holding the configs and tokenizer; "" = inferred from the
  // shapes (ModelSourceOptions::config_dir).
  std::string config_dir;
  // Called as weights are read, from the loading thread: bytes read so far and in all (the
  // three parts' tensors). Default: none.
  std::function<void(int64_t bytes_read, int64_t bytes_total)> on_load_progress;
};

class Model {
 public:
  // Loads every part of the diffusers folder or original-layout single file at `path`
  // (ModelSource::Open). Errors name the folder, file and tensor.
  static Result<std::shared_ptr<Model>> Load(const std::string& path, const ModelOptions& options = {});
  static Result<std::shared_ptr<Model>> Load(const ModelSource& source, const ModelOptions& options = {});
  ~Model();

  // [1, 77, C] prompt embeddings of `text` (tokenizer + text encoder last_hidden_state). An
  // instruction longer than 75 tokens is truncated with a warning in the log. Memoised (the
  // encoder is deterministic): every pass of a job asks for the same instruction and "", so the
  // text encoder runs once per instruction, not once per UNet batch. Thread-safe; do not modify
  // the returned tensor in place.
  Result<torch::Tensor> EncodePrompt(const std::string& text);
  // VAE posterior mean (no sampling, no scaling factor) of images [B, 3, H, W] in [-1, 1]
  // -> [B, latent_channels, H/f, W/f]. H and W must be multiples of vae_scale_factor().
  Result<torch::Tensor> EncodeImages(const torch::Tensor& images);
  // decoder(post_quant_conv(latents / scaling_factor)) -> [B, 3, H, W], raw (not clamped).
  Result<torch::Tensor> DecodeLatents(const torch::Tensor& latents);

  UNetImpl& unet() { return *unet_; }
  const SchedulerConfig& scheduler_config() const { return scheduler_config_; }
  int64_t vae_scale_factor() const { return vae_scale_factor_; }
  // Frame width and height must be multiples of this: the VAE's factor (8), as the diffusers
  // pipeline sizes images, so any aspect ratio keeps its shape (1920x1080 -> 512x288). Latents
  // need not divide by the UNet's downsampling: each up-sampling is sized to its skip connection.
  // `fairy-engine edit` and the workers size frames by it.
  int64_t frame_multiple() const { return vae_scale_factor_; }
  int64_t latent_channels() const { return latent_channels_; }
  double scaling_factor() const { return scaling_factor_; }
  const std::string& dir() const { return dir_; }
  const ModelOptions& options() const { return options_; }

 private:
  Model() = default;

  std::string dir_;
  ModelOptions options_;
  std::unique_ptr<CLIPTokenizer> tokenizer_;
  CLIPTextModel text_encoder_{nullptr};
  AutoencoderKL vae_{nullptr};
  UNet unet_{nullptr};
  SchedulerConfig scheduler_config_;
  std::mutex prompt_mutex_;
  std::map<std::string, torch::Tensor> prompt_embeddings_;  // EncodePrompt's memo (bounded)
  int64_t vae_scale_factor_ = 8;
  int64_t latent_channels_ = 4;
  double scaling_factor_ = 0.18215;
};

// Where frame i's generator is seeded. kPerFrame: FrameSeed(seed, i), independent noise per frame
// (DESIGN.md section 1). kShared: FrameSeed(seed, 0) for every frame, i.e. every frame of the job
// starts from the same latent noise and draws the same ancestral-step noise, so the residue that
// noise leaves in an output frame is the same in every frame and does not flicker. Both keep a
// frame's output independent of how the video is partitioned.
enum class NoiseMode { kPerFrame, kShared };
const char* NoiseModeName(NoiseMode mode);  // "per_frame", "shared"
// "per_frame" or "shared"; InvalidArgument naming the accepted values otherwise.
Result<NoiseMode> ParseNoiseMode(const std::string& name);

// How the denoising loop steps, on the model's sigma schedule (job field edit.scheduler).
// kEulerAncestral (InstructPix2Pix's EulerAncestralDiscreteScheduler) adds fresh noise at every
// step; kEuler (EulerDiscreteScheduler) is deterministic after the initial latents.
enum class Sampler { kEulerAncestral, kEuler };
const char* SamplerName(Sampler sampler);  // "euler_ancestral", "euler"
// "euler_ancestral" or "euler"; InvalidArgument naming the accepted values otherwise.
Result<Sampler> ParseSampler(const std::string& name);

struct EditSettings {
  std::string instruction;       // REQUIRED: non-empty
  int steps = 10;                // denoising steps
  Sampler sampler = Sampler::kEulerAncestral;
  double guidance_text = 7.5;    // text guidance scale (> 1 for guidance)
  double guidance_image = 1.5;   // image guidance scale (>= 1)
  uint64_t seed = 0;             // job seed; frame i uses FrameSeed(seed, i) (see NoiseMode)
  NoiseMode noise = NoiseMode::kPerFrame;
  std::string timestep_spacing;  // empty: the scheduler config's value
  bool fp16_cache = false;       // anchor cache in float16 (half the bytes)

  // InvalidArgument naming the field (empty instruction, steps < 1, ...).
  Status Validate() const;
};

// Where a frame's random numbers come from: its initial latents first, then one draw per step.
class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  // N(0, 1) of `shape` ([1, C, h, w]) for frame `frame`, on the CPU in float32.
  virtual Result<torch::Tensor> Initial(int64_t frame, c10::IntArrayRef shape) = 0;
  virtual Result<torch::Tensor> Step(int64_t frame, int step, c10::IntArrayRef shape) = 0;
};

// Production noise: one generator per frame seeded with FrameSeed(seed, frame), or with
// FrameSeed(seed, 0) for every frame under NoiseMode::kShared.
class FrameNoise : public NoiseSource {
 public:
  explicit FrameNoise(uint64_t seed, NoiseMode mode = NoiseMode::kPerFrame)
      : seed_(seed), mode_(mode) {}
  Result<torch::Tensor> Initial(int64_t frame, c10::IntArrayRef shape) override;
  Result<torch::Tensor> Step(int64_t frame, int step, c10::IntArrayRef shape) override;

 private:
  uint64_t FrameSeedOf(int64_t frame) const;

  uint64_t seed_;
  NoiseMode mode_;
  std::map<int64_t, at::Generator> generators_;
};

// Noise given as tensors (golden checks): initial [1, C, h, w], steps [n, C, h, w]; one frame.
class InjectedNoise : public NoiseSource {
 public:
  InjectedNoise(torch::Tensor initial, torch::Tensor steps)
      : initial_(std::move(initial)), steps_(std::move(steps)) {}
  Result<torch::Tensor> Initial(int64_t frame, c10::IntArrayRef shape) override;
  Result<torch::Tensor> Step(int64_t frame, int step, c10::IntArrayRef shape) override;

 private:
  torch::Tensor initial_, steps_;
};

// Intermediate tensors of EditImage for the golden `pipeline` check (CPU copies).
struct PipelineTrace {
  torch::Tensor image, prompt_embeds, timesteps, sigmas, image_latents;
  double init_noise_sigma = 0;
  torch::Tensor step0_unet_input, step0_unet_output, vae_decode_input, vae_decoded;
  std::vector<torch::Tensor> latents_per_step, guided_noise_pred;  // [1, C, h, w] each
};

// Edits one image [1, 3, H, W] in [-1, 1] with ordinary self-attention (the upstream pipeline),
// frame index 0 of `noise`. Returns [1, H, W, 3] in [0, 1] (NHWC, float32, CPU).
Result<torch::Tensor> EditImage(Model& model, const torch::Tensor& image,
                                const EditSettings& settings, NoiseSource& noise,
                                PipelineTrace* trace = nullptr);

// Called after each denoising step of a group of frames (for progress bars): (steps done, total).
using StepCallback = std::function<void(int, int)>;

// The anchor pass of one shot: `anchor_images` [K, 3, H, W] in [-1, 1] are the frames with source
// indices `anchor_indices` (the noise keys). Fills `*cache` (made here for every layer and step,
// metadata from the settings) and returns the anchors' edited images [K, H, W, 3] in [0, 1] (CPU).
Result<torch::Tensor> RunAnchorPass(Model& model, const torch::Tensor& anchor_images,
                                    const std::vector<int64_t>& anchor_indices,
                                    const EditSettings& settings, AnchorCache* cache,
                                    const StepCallback& on_step = {});

// The frame pass: `images` [M, 3, H, W] with source indices `frame_indices`, edited in UNet calls
// of `batch` frames (x3 guidance branches), attending to `cache` (from RunAnchorPass with the same
// settings). Returns [M, H, W, 3] in [0, 1] (CPU), in input order.
Result<torch::Tensor> RunFramePass(Model& model, const AnchorCache& cache,
                                   const torch::Tensor& images,
                                   const std::vector<int64_t>& frame_indices,
                                   const EditSettings& settings, int64_t batch,
                                   const StepCallback& on_step = {});

// Reads an 8-bit RGB/RGBA/grey PNG as [1, 3, H, W] float32 in [-1, 1] (x / 255 * 2 - 1).
// Unsupported when this build has no libpng.
Result<torch::Tensor> ReadPngImage(const std::string& path);

}  // namespace fairy::engine
