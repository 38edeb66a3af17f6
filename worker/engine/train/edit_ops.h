// The exact colour edits the embedded default model (models/fairy-tiny) is trained to perform,
// and that the quality test compares the farm's output against. docs/training.md defines each one.
//
// Images are float RGB in [0, 1], shaped [3, H, W] or [B, 3, H, W] (channels R, G, B). Every op is
// per pixel, deterministic, and returns a new tensor in [0, 1] of the input's shape, dtype and device.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fairy::engine::train {

enum class EditOp {
  kBlackAndWhite,     // "make it black and white": Rec.601 luma replicated to R, G, B
  kInvert,            // "invert the colors": 1 - x
  kSepia,             // "make it sepia": the classic sepia matrix, clamped
  kWarmer,            // "make it warmer": R x 1.15, B x 0.85, clamped
  kCooler,            // "make it cooler": R x 0.85, B x 1.15, clamped
  kIncreaseContrast,  // "increase the contrast": 0.5 + 1.5 (x - 0.5), clamped
};

// Every op, in the order above.
const std::vector<EditOp>& AllEditOps();
// The canonical instruction ("make it black and white", ...).
const char* CanonicalInstruction(EditOp op);
// Short name used in file names and reports ("bw", "invert", "sepia", "warmer", "cooler", "contrast").
const char* EditOpName(EditOp op);
// Other phrasings the training generator uses besides the canonical one (all lower case).
const std::vector<std::string>& InstructionVariants(EditOp op);
// The op an instruction asks for: the canonical instruction, a variant or the short name,
// compared case-insensitively after trimming whitespace and a trailing '.'; nullopt otherwise.
std::optional<EditOp> EditOpFromInstruction(std::string_view instruction);

// Applies `op` to `image` (float [3, H, W] or [B, 3, H, W] in [0, 1]). Throws c10::Error on
// another rank or channel count.
torch::Tensor ApplyEdit(EditOp op, const torch::Tensor& image);

}  // namespace fairy::engine::train
