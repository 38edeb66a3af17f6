// The built-in training-data generator: (source, instruction, target) triples where the target is
// the exact edit (edit_ops.h) of the source. Sources are random crops of real frames (decoded from
// any videos, see frame_pool.h) and procedural images (gradients, shapes, smooth and fine noise).
// The equivariant augmentation (augment.h) is applied by the trainer, not here.
//
// Deterministic: batch `step` depends only on (options.seed, step) and the frame pool, so a resumed
// run sees the same data as an uninterrupted one. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "worker/engine/train/edit_ops.h"

namespace fairy::engine::train {

struct PairGeneratorOptions {
  int64_t resolution = 64;           // square side of every generated image, pixels
  double procedural_fraction = 0.3;  // share of procedural sources (1.0 when the frame pool is empty)
  double min_crop_fraction = 0.3;    // a frame crop's side is [min, 1] x the frame's shorter side
  double canonical_fraction = 0.7;   // share of canonical instructions (the rest: variants)
  std::vector<EditOp> ops = AllEditOps();  // the edits to draw from, uniformly
  uint64_t seed = 1;
};

struct TrainingBatch {
  torch::Tensor source;  // [B, 3, R, R] float32 in [0, 1]
  torch::Tensor target;  // [B, 3, R, R] float32 in [0, 1], ApplyEdit(ops[i], source[i])
  std::vector<EditOp> ops;
  std::vector<std::string> instructions;
};

// Where training batches come from: this generator, or a folder of triples (triple_folder.h).
// Batch `step` depends only on the source's data and seed and on `step`.
class TrainingData {
 public:
  virtual ~TrainingData() = default;
  // Batch number `step` of `batch_size` triples.
  virtual TrainingBatch Next(int64_t batch_size, uint64_t step) const = 0;
  // Only images, no edit: what the VAE trains on.
  virtual torch::Tensor NextImages(int64_t batch_size, uint64_t step) const = 0;
};

class PairGenerator : public TrainingData {
 public:
  // `frames`: real frames, each uint8 [3, H, W] (any sizes); may be empty.
  PairGenerator(PairGeneratorOptions options, std::vector<torch::Tensor> frames);

  TrainingBatch Next(int64_t batch_size, uint64_t step) const override;
  // The sources.
  torch::Tensor NextImages(int64_t batch_size, uint64_t step) const override;

  const PairGeneratorOptions& options() const { return options_; }
  size_t num_frames() const { return frames_.size(); }

 private:
  torch::Tensor RandomSource(at::Generator& gen) const;
  torch::Tensor FrameCrop(at::Generator& gen) const;

  PairGeneratorOptions options_;
  std::vector<torch::Tensor> frames_;
};

// Procedural image [3, size, size] in [0, 1] of one of the kinds (gradient, shapes, noise),
// chosen with `gen`.
torch::Tensor ProceduralImage(int64_t size, at::Generator& gen);

// Helpers shared with triple_folder.cpp.
at::Generator BatchGenerator(uint64_t seed, uint64_t step);  // independent stream per (seed, step)
double UniformDouble(at::Generator& gen);                    // [0, 1)
int64_t UniformIndex(at::Generator& gen, int64_t n);         // [0, n)
torch::Tensor ResizeSquare(const torch::Tensor& image, int64_t size);  // [3, h, w] float -> [3, size, size]
// A random square window of an h x w image: side in [min_fraction, 1] x the shorter side (at least
// 8 pixels, at most the shorter side), position uniform. Draws side, then y, then x from `gen`.
struct SquareWindow {
  int64_t y = 0, x = 0, side = 0;
};
SquareWindow RandomSquareWindow(int64_t h, int64_t w, double min_fraction, at::Generator& gen);
// `window` of a uint8 [3, H, W] image as float [3, size, size] in [0, 1].
torch::Tensor CutSquare(const torch::Tensor& image, const SquareWindow& window, int64_t size);

}  // namespace fairy::engine::train
