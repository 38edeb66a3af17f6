#include "worker/engine/train/augment.h"

#include <cmath>
#include <numbers>

namespace fairy::engine::train {
namespace {

double Uniform(at::Generator& gen, double lo, double hi) {
  if (hi <= lo) return lo;
  double u = torch::rand({1}, gen, torch::kFloat64).item<double>();
  return lo + (hi - lo) * u;
}

double Radians(double deg) { return deg * std::numbers::pi / 180.0; }

}  // namespace

AffineParams SampleAffine(const AffineRanges& ranges, at::Generator& gen) {
  AffineParams p;
  p.rotation_deg = Uniform(gen, -ranges.max_rotation_deg, ranges.max_rotation_deg);
  p.translate_x = Uniform(gen, -ranges.max_translate, ranges.max_translate);
  p.translate_y = Uniform(gen, -ranges.max_translate, ranges.max_translate);
  p.scale = Uniform(gen, ranges.min_scale, ranges.max_scale);
  p.shear_deg = Uniform(gen, -ranges.max_shear_deg, ranges.max_shear_deg);
  return p;
}

torch::Tensor AffineTheta(const AffineParams& params, int64_t height, int64_t width) {
  // Forward map in pixel units around the centre: p_out = A p_in + t.
  double a = Radians(params.rotation_deg), sh = std::tan(Radians(params.shear_deg)), s = params.scale;
  double ca = std::cos(a), sa = std::sin(a);
  // A = R(a) [[1, sh], [0, 1]] s
  double a00 = ca * s, a01 = (ca * sh - sa) * s, a10 = sa * s, a11 = (sa * sh + ca) * s;
  double det = a00 * a11 - a01 * a10;
  double i00 = a11 / det, i01 = -a01 / det, i10 = -a10 / det, i11 = a00 / det;
  double tx = params.translate_x * static_cast<double>(width), ty = params.translate_y * static_cast<double>(height);
  // Normalised coordinates n = D^-1 p with D = diag(W/2, H/2): n_in = D^-1 A^-1 D n_out - D^-1 A^-1 t.
  double hw = static_cast<double>(width) / 2.0, hh = static_cast<double>(height) / 2.0;
  double m00 = i00, m01 = i01 * hh / hw, m10 = i10 * hw / hh, m11 = i11;
  double b0 = -(i00 * tx + i01 * ty) / hw, b1 = -(i10 * tx + i11 * ty) / hh;
  return torch::tensor({static_cast<float>(m00), static_cast<float>(m01), static_cast<float>(b0),
                        static_cast<float>(m10), static_cast<float>(m11), static_cast<float>(b1)})
      .view({2, 3});
}

torch::Tensor WarpImages(const torch::Tensor& images, const std::vector<AffineParams>& params) {
  TORCH_CHECK(images.dim() == 4 && static_cast<size_t>(images.size(0)) == params.size(),
              "WarpImages: expected [B, C, H, W] with one parameter set per sample, got ", images.sizes(), " and ",
              params.size(), " parameter sets");
  int64_t h = images.size(2), w = images.size(3);
  std::vector<torch::Tensor> thetas;
  thetas.reserve(params.size());
  for (const AffineParams& p : params) thetas.push_back(AffineTheta(p, h, w));
  auto theta = torch::stack(thetas).to(images.device(), images.scalar_type());  // [B, 2, 3]
  namespace F = torch::nn::functional;
  auto grid = F::affine_grid(theta, images.sizes(), /*align_corners=*/false);  // [B, H, W, 2]
  return F::grid_sample(images, grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kReflection).align_corners(false));
}

std::pair<torch::Tensor, torch::Tensor> EquivariantAugment(const torch::Tensor& source, const torch::Tensor& target,
                                                           const AffineRanges& ranges, at::Generator& gen) {
  TORCH_CHECK(source.sizes() == target.sizes() && source.dim() == 4,
              "EquivariantAugment: source and target must both be [B, C, H, W] of one shape, got ", source.sizes(),
              " and ", target.sizes());
  if (!ranges.enabled) return {source, target};
  std::vector<AffineParams> params;
  for (int64_t i = 0; i < source.size(0); ++i) params.push_back(SampleAffine(ranges, gen));
  // One warp of both images stacked along channels: the same grid for source and target by construction.
  auto both = WarpImages(torch::cat({source, target}, 1), params);
  auto halves = both.split(source.size(1), 1);
  return {halves[0].contiguous(), halves[1].contiguous()};
}

}  // namespace fairy::engine::train
