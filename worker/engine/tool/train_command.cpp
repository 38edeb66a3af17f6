// fairy-engine train [unet|vae|fairy-tiny] [OPTIONS]: training and fine-tuning (docs/training.md).
#include "worker/engine/tool/train_command.h"

#include <cstdio>
#include <filesystem>
#include <string>

#include <torch/torch.h>

#include "worker/engine/engine_info.h"
#include "worker/engine/tool/args.h"
#include "worker/engine/tool/commands.h"
#include "worker/engine/train/checkpoint.h"
#include "worker/engine/train/evaluate.h"
#include "worker/engine/train/model_parts.h"
#include "worker/engine/train/trainer.h"
#include "worker/engine/vae.h"

namespace fairy::engine::tool {
namespace {

namespace fs = std::filesystem;
using train::CommonTrainOptions;

constexpr const char* kUsage = R"(Usage:
  fairy-engine train [unet] --model DIR --output DIR [OPTIONS]   InstructPix2Pix objective
  fairy-engine train vae    --model DIR --output DIR [OPTIONS]   VAE reconstruction (small models)
  fairy-engine train fairy-tiny --output DIR [--videos PATHS] [--tokenizer DIR] [--scale X]
                             [--vae-steps N (8000)] [--unet-steps N (32000)] [--resume]
                             [--latent-channels N (4)]
                                                                 the embedded default model, all stages
  fairy-engine train eval --model DIR --videos A,B [--frames N (8)] [--size N (128)] [--steps N (10)]
                          [--seed N (0)] [--device D] [--fairy [--anchors K (3)] [--batch N (4)]
                          [--noise per_frame|shared (per_frame)]
                          [--scheduler euler_ancestral|euler (euler_ancestral)]]
                          PSNR and flicker per edit on real clips; --fairy edits each clip as one
                          shot with the engine's pipeline, as fairy-engine edit and the farm do

--model DIR is a diffusers folder; parts without weights are initialised from their config.json.
Common options (default):
  --triples DIR        train on DIR/triples.jsonl, one {"source", "instruction", "target"} per
                       line (image paths relative to DIR), instead of the built-in generator
  --videos A,B,...     real frames from these videos or folders of videos (none: procedural only)
  --frames-per-video N (48)   --frame-size N  longer side of decoded frames (192)
  --resolution N       training image size in pixels (64)
  --procedural X       share of procedural images (0.3)
  --steps N (1000)  --batch N (8)  --lr X (1e-4)  --weight-decay X (0.01)  --warmup N (100)
  --lr-schedule constant|cosine   after the warm-up: constant, or half-cosine decay (constant)
  --final-lr-ratio X   where the cosine decay ends, as a fraction of --lr (0.05)
  --clip-grad X        max gradient norm, 0 = off (1.0)
  --checkpoint-every N (500)   --resume   continue OUTPUT's training_state
  --tokenizer DIR      tokenizer files (MODEL/tokenizer)
  --device cpu|cuda[:N] (cpu)   --dtype float32|bfloat16 (float32; bfloat16 = CUDA autocast)
  --seed N (1)   --log-every N (50)
unet options:
  --no-augment         turn the equivariant affine augmentation off
  --max-rotation DEG (5)  --max-translate FRAC (0.05)  --min-scale X (0.95)  --max-scale X (1.05)
  --max-shear DEG (5)
  --cond-dropout X     conditioning dropout q: 5% text, 5% both, 5% image at 0.05 (0.05)
  --snr-gamma X        Min-SNR loss weighting, 0 = plain MSE as upstream (0)
  --snr-floor X        weight the x0 error by at least X (truncated SNR), 0 = off (0)
  --train-text-encoder also optimise the text encoder
  --ema X              EMA decay, 0 = off (0)
  --eval-every N       sample and print PSNR per edit every N steps (0 = only with fairy-tiny)
  --eval-steps N       denoising steps of that evaluation (10)
vae options:
  --kl-weight X (1e-6)
)";

template <typename T>
bool ParseNumber(Args& args, const std::string& name, T* out, std::string* error) {
  if (!args.Has(name)) return true;
  std::string v = args.Value(name);
  try {
    size_t used = 0;
    if constexpr (std::is_integral_v<T>) {
      long long x = std::stoll(v, &used);
      *out = static_cast<T>(x);
    } else {
      *out = static_cast<T>(std::stod(v, &used));
    }
    if (used != v.size()) throw std::invalid_argument(v);
  } catch (const std::exception&) {
    *error = name + ": \"" + v + "\" is not a number";
    return false;
  }
  return true;
}

bool ParseCommon(Args& args, CommonTrainOptions* o, std::string* error) {
  o->model_dir = args.Value("--model", o->model_dir);
  o->output_dir = args.Value("--output", o->output_dir);
  o->tokenizer_dir = args.Value("--tokenizer", o->tokenizer_dir);
  if (args.Has("--videos")) o->videos = SplitComma(args.Value("--videos"));
  o->triples_dir = args.Value("--triples", o->triples_dir);
  o->device = args.Value("--device", o->device);
  o->dtype = args.Value("--dtype", o->dtype);
  o->resume = args.Flag("--resume");
  if (args.Has("--lr-schedule")) {
    std::string schedule = args.Value("--lr-schedule");
    if (schedule != "constant" && schedule != "cosine") {
      *error = "--lr-schedule: \"" + schedule + "\" is not constant or cosine";
      return false;
    }
    o->cosine_decay = schedule == "cosine";
  }
  return ParseNumber(args, "--final-lr-ratio", &o->final_lr_ratio, error) && ParseNumber(args, "--frames-per-video", &o->frame_pool.frames_per_video, error) &&
         ParseNumber(args, "--frame-size", &o->frame_pool.long_side, error) &&
         ParseNumber(args, "--resolution", &o->data.resolution, error) &&
         ParseNumber(args, "--procedural", &o->data.procedural_fraction, error) &&
         ParseNumber(args, "--steps", &o->steps, error) && ParseNumber(args, "--batch", &o->batch_size, error) &&
         ParseNumber(args, "--lr", &o->learning_rate, error) &&
         ParseNumber(args, "--weight-decay", &o->weight_decay, error) &&
         ParseNumber(args, "--warmup", &o->warmup_steps, error) &&
         ParseNumber(args, "--clip-grad", &o->max_grad_norm, error) &&
         ParseNumber(args, "--checkpoint-every", &o->checkpoint_every, error) &&
         ParseNumber(args, "--seed", &o->data.seed, error) && ParseNumber(args, "--log-every", &o->log_every, error);
}

bool ParseUNet(Args& args, train::TrainUNetOptions* o, std::string* error) {
  if (!ParseCommon(args, &o->common, error)) return false;
  if (args.Flag("--no-augment")) o->augment.enabled = false;
  o->train_text_encoder = args.Flag("--train-text-encoder") || o->train_text_encoder;
  return ParseNumber(args, "--max-rotation", &o->augment.max_rotation_deg, error) &&
         ParseNumber(args, "--max-translate", &o->augment.max_translate, error) &&
         ParseNumber(args, "--min-scale", &o->augment.min_scale, error) &&
         ParseNumber(args, "--max-scale", &o->augment.max_scale, error) &&
         ParseNumber(args, "--max-shear", &o->augment.max_shear_deg, error) &&
         ParseNumber(args, "--cond-dropout", &o->text_dropout, error) &&
         ParseNumber(args, "--snr-gamma", &o->snr_gamma, error) &&
         ParseNumber(args, "--snr-floor", &o->snr_floor, error) && ParseNumber(args, "--ema", &o->ema_decay, error) &&
         ParseNumber(args, "--eval-every", &o->eval_every, error) &&
         ParseNumber(args, "--eval-steps", &o->eval_steps, error);
}

void PrintReport(const char* what, const train::TrainReport& r) {
  std::printf("%s: %lld steps in %.1f s (%.2f steps/s), loss %.4f -> %.4f\n", what, static_cast<long long>(r.steps_done),
              r.seconds, r.seconds > 0 ? static_cast<double>(r.steps_done) / r.seconds : 0.0, r.first_loss, r.final_loss);
  for (const auto& [name, psnr] : r.eval_psnr) std::printf("  PSNR %-14s %.2f dB\n", name.c_str(), psnr);
}

int Fail(const Status& st) {
  std::fprintf(stderr, "fairy-engine train: %s\n", st.ToString().c_str());
  return st.code() == Status::Code::kInvalidArgument || st.code() == Status::Code::kNotFound ? kExitUsage : kExitFailed;
}

// The embedded default model's architecture (docs/training.md explains the choices). The UNet
// takes the noisy latents and the source's latents, and predicts the noise of the first.
Status WriteFairyTinyConfig(const std::string& dir, int64_t latent_channels) {
  for (const char* sub : {"unet", "vae", "text_encoder", "scheduler"}) fs::create_directories(fs::path(dir) / sub);
  nlohmann::json unet = {
      {"_class_name", "UNet2DConditionModel"},
      {"_diffusers_version", "0.25.1"},
      {"act_fn", "silu"},
      {"attention_head_dim", 4},
      {"block_out_channels", {32, 64, 64}},
      {"center_input_sample", false},
      {"cross_attention_dim", 32},
      {"down_block_types", {"DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"}},
      {"downsample_padding", 1},
      {"flip_sin_to_cos", true},
      {"freq_shift", 0},
      {"in_channels", 2 * latent_channels},
      {"layers_per_block", 1},
      {"mid_block_scale_factor", 1},
      {"mid_block_type", "UNetMidBlock2DCrossAttn"},
      {"norm_eps", 1e-5},
      {"norm_num_groups", 8},
      {"out_channels", latent_channels},
      {"sample_size", 16},
      {"up_block_types", {"CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"}},
      {"use_linear_projection", false}};
  VAEConfig vae;
  vae.block_out_channels = {16, 32};
  vae.latent_channels = latent_channels;
  vae.layers_per_block = 1;
  vae.norm_num_groups = 8;
  vae.sample_size = 64;
  nlohmann::json text = {{"architectures", {"CLIPTextModel"}}, {"hidden_act", "quick_gelu"}, {"hidden_size", 32},
                         {"intermediate_size", 64}, {"num_attention_heads", 4}, {"num_hidden_layers", 1},
                         {"max_position_embeddings", 77}, {"vocab_size", 49408}, {"layer_norm_eps", 1e-5},
                         {"bos_token_id", 49406}, {"eos_token_id", 49407}, {"model_type", "clip_text_model"}};
  nlohmann::json sched = {{"_class_name", "EulerAncestralDiscreteScheduler"}, {"_diffusers_version", "0.25.1"},
                          {"beta_end", 0.012}, {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                          {"num_train_timesteps", 1000}, {"prediction_type", "epsilon"}, {"steps_offset", 1},
                          {"timestep_spacing", "linspace"}, {"trained_betas", nullptr}};
  FAIRY_RETURN_IF_ERROR(train::WriteJsonFile(dir + "/unet/config.json", unet));
  FAIRY_RETURN_IF_ERROR(train::WriteJsonFile(dir + "/vae/config.json", vae.ToJson()));
  FAIRY_RETURN_IF_ERROR(train::WriteJsonFile(dir + "/text_encoder/config.json", text));
  return train::WriteJsonFile(dir + "/scheduler/scheduler_config.json", sched);
}

int RunEval(Args& args) {
  train::EvalOptions o;
  std::string error;
  o.model_dir = args.Value("--model");
  o.videos = SplitComma(args.Value("--videos"));
  o.device = args.Value("--device", o.device);
  o.fairy = args.Flag("--fairy");
  if (auto noise = ParseNoiseMode(args.Value("--noise", NoiseModeName(o.noise))); noise.ok()) {
    o.noise = *noise;
  } else {
    error = "--" + noise.status().message();
  }
  if (auto sampler = ParseSampler(args.Value("--scheduler", SamplerName(o.sampler)));
      sampler.ok()) {
    o.sampler = *sampler;
  } else if (error.empty()) {
    error = "--" + sampler.status().message();
  }
  if (!error.empty() || !ParseNumber(args, "--anchors", &o.anchors, &error) || !ParseNumber(args, "--batch", &o.batch, &error) ||
      !ParseNumber(args, "--frames", &o.frames, &error) || !ParseNumber(args, "--size", &o.long_side, &error) ||
      !ParseNumber(args, "--steps", &o.steps, &error) || !ParseNumber(args, "--seed", &o.seed, &error) ||
      !args.Finish(&error)) {
    std::fprintf(stderr, "fairy-engine train eval: %s\n\n%s", error.c_str(), kUsage);
    return kExitUsage;
  }
  ConfigureTorchThreads();
  auto rows = train::EvaluateModel(o);
  if (!rows.ok()) return Fail(rows.status());
  std::printf("%-40s %-9s %9s %9s %9s %9s %s\n", "video", "edit", "PSNR dB", "VAE dB", "flicker", "exact", "verdict");
  int failed = 0;
  for (const auto& r : *rows) {
    bool ok = r.psnr_db >= 25.0 && r.flicker <= 1.1 * r.target_flicker && r.flicker >= 0.9 * r.target_flicker;
    failed += ok ? 0 : 1;
    std::printf("%-40s %-9s %9.2f %9.2f %9.4f %9.4f %s\n", fs::path(r.video).filename().string().c_str(),
                train::EditOpName(r.op), r.psnr_db, r.vae_psnr_db, r.flicker, r.target_flicker, ok ? "pass" : "FAIL");
  }
  std::printf("%d of %zu (clip, edit) pairs below PSNR 25 dB or outside flicker +-10%%\n", failed, rows->size());
  return failed == 0 ? kExitOk : kExitFailed;
}

int RunFairyTiny(Args& args) {
  std::string error;
  CommonTrainOptions common;
  common.tokenizer_dir = "../shared/fixtures/pix2pix-tiny/tokenizer";
  common.videos = {"../shared/media"};
  common.data.resolution = 32;
  common.data.procedural_fraction = 0.3;
  common.batch_size = 8;
  double scale = 1.0;  // multiplies every step count (quick trials: 0.1)
  int64_t vae_steps = 8000, unet_steps = 32000, latent_channels = 4;
  if (!ParseCommon(args, &common, &error) || !ParseNumber(args, "--scale", &scale, &error) ||
      !ParseNumber(args, "--vae-steps", &vae_steps, &error) ||
      !ParseNumber(args, "--unet-steps", &unet_steps, &error) ||
      !ParseNumber(args, "--latent-channels", &latent_channels, &error) || !args.Finish(&error)) {
    std::fprintf(stderr, "fairy-engine train fairy-tiny: %s\n\n%s", error.c_str(), kUsage);
    return kExitUsage;
  }
  if (common.output_dir.empty()) {
    std::fprintf(stderr, "fairy-engine train fairy-tiny: --output is required\n");
    return kExitUsage;
  }
  if (latent_channels < 1 || latent_channels > 64) {
    std::fprintf(stderr,
                 "fairy-engine train fairy-tiny: --latent-channels must be 1 to 64, got %lld\n",
                 static_cast<long long>(latent_channels));
    return kExitUsage;
  }
  ConfigureTorchThreads();
  std::string config_dir = common.output_dir + "/training_state/config";
  if (Status st = WriteFairyTinyConfig(config_dir, latent_channels); !st.ok()) return Fail(st);
  auto steps = [&](int64_t n) { return std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * scale)); };

  train::TrainVAEOptions vae;
  vae.common = common;
  vae.common.model_dir = config_dir;
  vae.common.steps = steps(vae_steps);
  vae.common.learning_rate = 1e-3;
  vae.common.warmup_steps = 50;
  vae.common.cosine_decay = true;
  vae.common.final_lr_ratio = 0.02;
  vae.common.checkpoint_every = 1000;
  // --resume: the VAE stage is skipped once the state says the UNet stage began (both stages are
  // deterministic, so a resumed run ends with the weights of an uninterrupted one).
  auto state = train::ReadJson(common.output_dir + "/training_state/state.json");
  bool vae_done = common.resume && state.ok() && state->value("kind", std::string()) == "unet";
  vae.common.resume = common.resume && !vae_done && state.ok();
  if (!vae_done) {
    auto vr = train::RunVAETraining(vae);
    if (!vr.ok()) return Fail(vr.status());
    PrintReport("fairy-tiny vae", *vr);
  }

  train::TrainUNetOptions unet;
  unet.common = common;
  unet.common.model_dir = common.output_dir;
  unet.common.tokenizer_dir = common.output_dir + "/tokenizer";
  unet.common.steps = steps(unet_steps);
  unet.common.resume = vae_done;
  unet.common.batch_size = 16;
  unet.common.learning_rate = 1e-3;
  unet.common.warmup_steps = 100;
  unet.common.cosine_decay = true;
  unet.common.final_lr_ratio = 0.02;
  unet.common.checkpoint_every = 500;
  unet.train_text_encoder = true;
  unet.eval_every = steps(1000);
  unet.ema_decay = 0;
  unet.snr_gamma = 5.0;
  unet.snr_floor = 1.0;
  unet.eval_steps = 10;
  auto ur = train::RunUNetTraining(unet);
  if (!ur.ok()) return Fail(ur.status());
  PrintReport("fairy-tiny unet", *ur);
  std::printf("fairy-tiny: model written to %s\n", common.output_dir.c_str());
  return kExitOk;
}

}  // namespace

int RunTrainCommand(int argc, char** argv) {
  std::string mode = "unet";
  int first = 1;
  if (argc > 1 && argv[1][0] != '-') {
    mode = argv[1];
    first = 2;
  }
  Args args(argc, argv, first);
  if (args.Flag("--help") || args.Flag("-h")) {
    std::printf("%s", kUsage);
    return kExitOk;
  }
  if (mode == "fairy-tiny") return RunFairyTiny(args);
  if (mode == "eval") return RunEval(args);
  std::string error;
  if (mode == "vae") {
    train::TrainVAEOptions o;
    bool ok = ParseCommon(args, &o.common, &error) && ParseNumber(args, "--kl-weight", &o.kl_weight, &error) &&
              args.Finish(&error);
    if (!ok) {
      std::fprintf(stderr, "fairy-engine train vae: %s\n\n%s", error.c_str(), kUsage);
      return kExitUsage;
    }
    ConfigureTorchThreads();
    auto r = train::RunVAETraining(o);
    if (!r.ok()) return Fail(r.status());
    PrintReport("train vae", *r);
    return kExitOk;
  }
  if (mode != "unet") {
    std::fprintf(stderr, "fairy-engine train: unknown mode \"%s\" (unet, vae, fairy-tiny)\n\n%s", mode.c_str(), kUsage);
    return kExitUsage;
  }
  train::TrainUNetOptions o;
  if (!ParseUNet(args, &o, &error) || !args.Finish(&error)) {
    std::fprintf(stderr, "fairy-engine train: %s\n\n%s", error.c_str(), kUsage);
    return kExitUsage;
  }
  ConfigureTorchThreads();
  auto r = train::RunUNetTraining(o);
  if (!r.ok()) return Fail(r.status());
  PrintReport("train unet", *r);
  return kExitOk;
}

}  // namespace fairy::engine::tool
