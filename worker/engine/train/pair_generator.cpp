#include "worker/engine/train/pair_generator.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <ATen/CPUGeneratorImpl.h>

namespace fairy::engine::train {

namespace F = torch::nn::functional;

double UniformDouble(at::Generator& gen) { return torch::rand({1}, gen, torch::kFloat64).item<double>(); }
int64_t UniformIndex(at::Generator& gen, int64_t n) {  // [0, n)
  return std::min<int64_t>(n - 1, static_cast<int64_t>(UniformDouble(gen) * static_cast<double>(n)));
}

at::Generator BatchGenerator(uint64_t seed, uint64_t step) {
  // splitmix-style mixing so neighbouring steps get unrelated streams.
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + step + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return at::make_generator<at::CPUGeneratorImpl>(z);
}

torch::Tensor ResizeSquare(const torch::Tensor& image, int64_t size) {  // [3, h, w] float -> [3, size, size]
  return F::interpolate(image.unsqueeze(0), F::InterpolateFuncOptions()
                                                 .size(std::vector<int64_t>{size, size})
                                                 .mode(torch::kBilinear)
                                                 .align_corners(false)
                                                 .antialias(true))
      .squeeze(0);
}

SquareWindow RandomSquareWindow(int64_t h, int64_t w, double min_fraction, at::Generator& gen) {
  const int64_t short_side = std::min(h, w);
  const double frac = min_fraction + (1.0 - min_fraction) * UniformDouble(gen);
  SquareWindow window;
  window.side = std::min(short_side, std::max<int64_t>(8, static_cast<int64_t>(frac * static_cast<double>(short_side))));
  window.y = UniformIndex(gen, h - window.side + 1);
  window.x = UniformIndex(gen, w - window.side + 1);
  return window;
}

torch::Tensor CutSquare(const torch::Tensor& image, const SquareWindow& window, int64_t size) {
  auto crop = image.slice(1, window.y, window.y + window.side).slice(2, window.x, window.x + window.side)
                  .to(torch::kFloat32) / 255.0;
  return (window.side == size ? crop : ResizeSquare(crop, size)).clamp(0, 1).contiguous();
}

namespace {

torch::Tensor RandomColor(at::Generator& gen) { return torch::rand({3, 1, 1}, gen); }

torch::Tensor Gradient(int64_t size, at::Generator& gen) {
  double angle = UniformDouble(gen) * 2 * std::numbers::pi;
  auto coords = torch::linspace(-1, 1, size);
  auto yy = coords.view({size, 1}).expand({size, size});
  auto xx = coords.view({1, size}).expand({size, size});
  auto t = ((xx * std::cos(angle) + yy * std::sin(angle)) / std::sqrt(2.0) + 1) / 2;  // [S, S] in [0, 1]
  auto a = RandomColor(gen), b = RandomColor(gen);
  auto image = a + (b - a) * t.unsqueeze(0);
  if (UniformDouble(gen) < 0.5) {  // a second, radial component
    auto c = RandomColor(gen);
    auto r = (xx.square() + yy.square()).sqrt().clamp_max(1.0).unsqueeze(0);
    image = image * r + c * (1 - r);
  }
  return image;
}

torch::Tensor Shapes(int64_t size, at::Generator& gen) {
  auto image = RandomColor(gen).expand({3, size, size}).clone();
  auto coords = torch::arange(size, torch::kFloat32);
  auto yy = coords.view({size, 1});
  auto xx = coords.view({1, size});
  int64_t n = 2 + UniformIndex(gen, 6);
  for (int64_t i = 0; i < n; ++i) {
    double cx = UniformDouble(gen) * size, cy = UniformDouble(gen) * size;
    double rx = (0.05 + 0.3 * UniformDouble(gen)) * size, ry = (0.05 + 0.3 * UniformDouble(gen)) * size;
    torch::Tensor mask;
    if (UniformDouble(gen) < 0.5) {
      mask = ((xx - cx).abs() <= rx).logical_and((yy - cy).abs() <= ry);
    } else {
      mask = ((xx - cx) / rx).square() + ((yy - cy) / ry).square() <= 1.0;
    }
    image = torch::where(mask.unsqueeze(0), RandomColor(gen).expand({3, size, size}), image);
  }
  return image;
}

torch::Tensor Noise(int64_t size, at::Generator& gen) {
  int64_t cells = 2 + UniformIndex(gen, 8);
  auto coarse = torch::rand({1, 3, cells, cells}, gen);
  auto smooth = F::interpolate(coarse, F::InterpolateFuncOptions()
                                           .size(std::vector<int64_t>{size, size})
                                           .mode(torch::kBicubic)
                                           .align_corners(false))
                    .squeeze(0);
  double fine = 0.15 * UniformDouble(gen);
  return (smooth + fine * (torch::rand({3, size, size}, gen) - 0.5)).clamp(0, 1);
}

}  // namespace

torch::Tensor ProceduralImage(int64_t size, at::Generator& gen) {
  switch (UniformIndex(gen, 4)) {
    case 0: return Gradient(size, gen).clamp(0, 1);
    case 1: return Shapes(size, gen);
    case 2: return Noise(size, gen);
    default: {  // shapes over a gradient, softened
      auto base = Gradient(size, gen).clamp(0, 1);
      auto shapes = Shapes(size, gen);
      double w = 0.3 + 0.7 * UniformDouble(gen);
      return (base * (1 - w) + shapes * w).clamp(0, 1);
    }
  }
}

PairGenerator::PairGenerator(PairGeneratorOptions options, std::vector<torch::Tensor> frames)
    : options_(std::move(options)), frames_(std::move(frames)) {
  if (options_.ops.empty()) options_.ops = AllEditOps();
}

torch::Tensor PairGenerator::FrameCrop(at::Generator& gen) const {
  const torch::Tensor& frame = frames_[static_cast<size_t>(UniformIndex(gen, static_cast<int64_t>(frames_.size())))];
  const SquareWindow window = RandomSquareWindow(frame.size(1), frame.size(2), options_.min_crop_fraction, gen);
  auto image = CutSquare(frame, window, options_.resolution);
  if (UniformDouble(gen) < 0.5) image = image.flip({2}).contiguous();
  return image;
}

torch::Tensor PairGenerator::RandomSource(at::Generator& gen) const {
  bool procedural = frames_.empty() || UniformDouble(gen) < options_.procedural_fraction;
  return procedural ? ProceduralImage(options_.resolution, gen) : FrameCrop(gen);
}

torch::Tensor PairGenerator::NextImages(int64_t batch_size, uint64_t step) const {
  at::Generator gen = BatchGenerator(options_.seed, step);
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < batch_size; ++i) images.push_back(RandomSource(gen));
  return torch::stack(images);
}

TrainingBatch PairGenerator::Next(int64_t batch_size, uint64_t step) const {
  at::Generator gen = BatchGenerator(options_.seed, step);
  TrainingBatch batch;
  std::vector<torch::Tensor> sources, targets;
  for (int64_t i = 0; i < batch_size; ++i) {
    auto source = RandomSource(gen);
    EditOp op = options_.ops[static_cast<size_t>(UniformIndex(gen, static_cast<int64_t>(options_.ops.size())))];
    std::string instruction = CanonicalInstruction(op);
    const auto& variants = InstructionVariants(op);
    if (!variants.empty() && UniformDouble(gen) >= options_.canonical_fraction) {
      instruction = variants[static_cast<size_t>(UniformIndex(gen, static_cast<int64_t>(variants.size())))];
    }
    sources.push_back(source);
    targets.push_back(ApplyEdit(op, source));
    batch.ops.push_back(op);
    batch.instructions.push_back(std::move(instruction));
  }
  batch.source = torch::stack(sources);
  batch.target = torch::stack(targets);
  return batch;
}

}  // namespace fairy::engine::train
