// Fairy's equivariant augmentation (DESIGN.md section 1): one random affine transform per sample,
// applied identically to the source and the target image, so the model learns edits that commute
// with small camera motion (which is what keeps a video's frames consistent).
//
// The transform maps output pixel p to input pixel A^-1 (p - c - t) + c around the image centre c,
// A = Rotation(angle) x Shear(shear) x Scale(scale), t a translation in pixels; bilinear sampling
// with reflection padding (no black borders), align_corners = false.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace fairy::engine::train {

// Ranges of the random transform (defaults: Fairy's; each parameter is drawn uniformly).
struct AffineRanges {
  bool enabled = true;            // false: Augment returns its inputs unchanged
  double max_rotation_deg = 5.0;  // angle in [-max, max] degrees
  double max_translate = 0.05;    // tx, ty in [-max, max] as a fraction of the width / height
  double min_scale = 0.95;        // scale in [min, max]
  double max_scale = 1.05;
  double max_shear_deg = 5.0;     // shear in [-max, max] degrees (x shear)
};

struct AffineParams {
  double rotation_deg = 0;
  double translate_x = 0;  // fraction of the width
  double translate_y = 0;  // fraction of the height
  double scale = 1;
  double shear_deg = 0;
};

// Draws one parameter set from `ranges` using `gen` (torch CPU generator).
AffineParams SampleAffine(const AffineRanges& ranges, at::Generator& gen);

// The [2, 3] float32 matrix for torch's affine_grid (normalised output -> input coordinates) of
// `params` on an image of `height` x `width` pixels.
torch::Tensor AffineTheta(const AffineParams& params, int64_t height, int64_t width);

// Warps every image of `images` [B, C, H, W] with its own parameters (params.size() == B).
torch::Tensor WarpImages(const torch::Tensor& images, const std::vector<AffineParams>& params);

// Draws one transform per sample and applies it to both `source` and `target` ([B, 3, H, W], same
// shape). Returns {source', target'}. With ranges.enabled false returns the inputs.
std::pair<torch::Tensor, torch::Tensor> EquivariantAugment(const torch::Tensor& source, const torch::Tensor& target,
                                                           const AffineRanges& ranges, at::Generator& gen);

}  // namespace fairy::engine::train
