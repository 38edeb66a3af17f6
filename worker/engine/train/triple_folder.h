// Training data from a studio's own material: a folder of (source image, instruction, edited
// image) triples, listed in DIR/triples.jsonl, one JSON object per line:
//
//   {"source": "plates/sh010.0001.png", "instruction": "make it night", "target": "night/sh010.0001.png"}
//
// Paths are relative to DIR (or absolute); blank lines and lines starting with '#' are skipped.
// Images are anything FFmpeg decodes as a still (PNG, JPEG, TIFF, EXR, ...; PNG only in
// engine-only builds); a source and its target must have the same size. Every image is decoded
// once at load, scaled so its longer side is `decode_long_side`, and kept in memory (uint8).
//
// Batch `step`: `batch_size` triples drawn uniformly with replacement, each cut to one random
// square crop (side in [min_crop_fraction, 1] x the shorter side, the same window in the source
// and the target) resized to `resolution`. No flip: an instruction may name a side. Deterministic
// in (seed, step). Errors name the file and line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/train/pair_generator.h"

namespace fairy::engine::train {

class TripleFolder : public TrainingData {
 public:
  // `data` gives resolution, min_crop_fraction and seed; decode_long_side <= 0 means
  // 2 x data.resolution.
  static Result<std::shared_ptr<TripleFolder>> Load(const std::string& dir,
                                                    const PairGeneratorOptions& data,
                                                    int decode_long_side = 0);

  TrainingBatch Next(int64_t batch_size, uint64_t step) const override;
  // Sources and targets alike (both are images the VAE must reproduce).
  torch::Tensor NextImages(int64_t batch_size, uint64_t step) const override;

  // The same triples drawn with another seed (held-out style sampling for evaluation).
  std::shared_ptr<TripleFolder> WithSeed(uint64_t seed) const;
  size_t size() const { return sources_.size(); }

 private:
  // One random crop of triple `index` (source, target) as float [3, R, R] in [0, 1].
  std::pair<torch::Tensor, torch::Tensor> Crop(size_t index, at::Generator& gen) const;

  PairGeneratorOptions options_;
  std::vector<torch::Tensor> sources_, targets_;  // uint8 [3, H, W]
  std::vector<std::string> instructions_;
};

}  // namespace fairy::engine::train
