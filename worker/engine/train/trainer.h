// fairy-engine train: the InstructPix2Pix objective on (source, instruction, target) triples, and
// the VAE's reconstruction training for small models trained from scratch.
//
// Model folders are the diffusers layout (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
// scheduler/). A part whose weights file is absent is initialised randomly from its config.json
// (training from scratch); otherwise its weights are loaded (fine-tuning). The output folder is a
// complete model folder the engine loads, rewritten at every checkpoint, plus training_state/
// (raw weights when EMA is on, optimizer moments, step) so that --resume continues exactly.
//
// Objective (upstream train_instruct_pix2pix.py): z = scaling_factor * VAE(target) (posterior sample),
// c = VAE(source).mean (unscaled), t ~ U{0..T-1}, x_t = sqrt(ac_t) z + sqrt(1 - ac_t) eps,
// loss = |UNet([x_t ; c], t, E(instruction)) - eps|^2. Conditioning dropout with one uniform draw
// p per sample: p < 2q drops the text (E("")), q <= p < 3q zeroes c (q = 0.05: 5% text only,
// 5% both, 5% image only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/train/augment.h"
#include "worker/engine/train/frame_pool.h"
#include "worker/engine/train/pair_generator.h"
#include "worker/engine/train/triple_folder.h"

namespace fairy::engine::train {

// Shared by both kinds of training.
struct CommonTrainOptions {
  std::string model_dir;              // REQUIRED: starting model folder (configs; weights optional)
  std::string output_dir;             // REQUIRED: where the trained model folder is written
  std::string tokenizer_dir;          // tokenizer files (default: model_dir/tokenizer)
  std::vector<std::string> videos;    // real frames from these videos/folders (may be empty)
  std::string triples_dir;            // set: train on this folder of triples (triple_folder.h)
                                      // instead of the built-in generator
  FramePoolOptions frame_pool;        // how frames are sampled from the videos
  PairGeneratorOptions data;          // resolution, procedural share, ops, seed
  int64_t steps = 1000;               // optimizer steps (total, including resumed ones)
  int64_t batch_size = 8;
  double learning_rate = 1e-4;        // AdamW peak learning rate
  double weight_decay = 1e-2;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  int64_t warmup_steps = 100;         // linear warm-up
  bool cosine_decay = false;          // after the warm-up, half-cosine decay to lr * final_lr_ratio
  double final_lr_ratio = 0.05;       // where the cosine decay ends (last step)
  double max_grad_norm = 1.0;         // gradient clipping (<= 0: off)
  int64_t checkpoint_every = 500;     // steps between checkpoints (the last step always writes one)
  bool resume = false;                // continue from output_dir/training_state
  std::string device = "cpu";         // "cpu", "cuda", "cuda:N"
  std::string dtype = "float32";      // float32, or bfloat16 (CUDA autocast; weights stay float32)
  int64_t log_every = 50;             // progress lines when stderr is not a terminal
};

struct TrainUNetOptions {
  CommonTrainOptions common;
  AffineRanges augment;               // equivariant augmentation (on by default)
  double text_dropout = 0.05;         // conditioning dropout q (see top of file)
  bool train_text_encoder = false;    // also optimise the text encoder (small models from scratch)
  double snr_gamma = 0;               // > 0: Min-SNR loss weighting min(SNR_t, gamma) / SNR_t (0: plain MSE)
  double snr_floor = 0;               // > 0: weight max(SNR_t, floor) / SNR_t too (x0 error weighted >= floor)
  double ema_decay = 0;               // > 0: keep EMA weights and save them as the model
  int64_t eval_every = 0;             // > 0: sample edits on held-out data and log PSNR per op
  int64_t eval_steps = 10;            // denoising steps of that evaluation
};

struct TrainVAEOptions {
  CommonTrainOptions common;
  double kl_weight = 1e-6;            // weight of KL(q(z|x) || N(0, I)) against the pixel loss
};

// What a run reached (also printed).
struct TrainReport {
  int64_t steps_done = 0;
  double first_loss = 0;              // mean raw loss of the first min(10, n/4) steps of this run
  double final_loss = 0;              // mean raw loss of the last min(10, n/4) steps
  double seconds = 0;
  std::vector<std::pair<std::string, double>> eval_psnr;  // (op name, PSNR dB) of the last eval
};

Result<TrainReport> RunUNetTraining(const TrainUNetOptions& options);
Result<TrainReport> RunVAETraining(const TrainVAEOptions& options);

}  // namespace fairy::engine::train
