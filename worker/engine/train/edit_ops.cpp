#include "worker/engine/train/edit_ops.h"

#include <algorithm>
#include <cctype>

namespace fairy::engine::train {
namespace {

// [.., 3, H, W] -> [.., 3, H, W] with out_c = sum_k m[c][k] in_k.
torch::Tensor ColorMatrix(const torch::Tensor& image, const float (&m)[3][3]) {
  auto matrix = torch::tensor({m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2]},
                              torch::TensorOptions().dtype(torch::kFloat32))
                    .view({3, 3})
                    .to(image.device(), image.scalar_type());
  // [.., 3, H, W] -> [.., H, W, 3] x [3, 3]^T -> back.
  return torch::matmul(image.movedim(-3, -1), matrix.t()).movedim(-1, -3);
}

torch::Tensor ChannelGains(const torch::Tensor& image, float r, float g, float b) {
  auto gains = torch::tensor({r, g, b}, torch::TensorOptions().dtype(torch::kFloat32))
                   .view({3, 1, 1})
                   .to(image.device(), image.scalar_type());
  return image * gains;
}

std::string Normalize(std::string_view text) {
  std::string s(text);
  while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == '.')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  s = s.substr(start);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

const std::vector<EditOp>& AllEditOps() {
  static const std::vector<EditOp> kOps = {EditOp::kBlackAndWhite, EditOp::kInvert, EditOp::kSepia,
                                           EditOp::kWarmer,        EditOp::kCooler, EditOp::kIncreaseContrast};
  return kOps;
}

const char* CanonicalInstruction(EditOp op) {
  switch (op) {
    case EditOp::kBlackAndWhite: return "make it black and white";
    case EditOp::kInvert: return "invert the colors";
    case EditOp::kSepia: return "make it sepia";
    case EditOp::kWarmer: return "make it warmer";
    case EditOp::kCooler: return "make it cooler";
    case EditOp::kIncreaseContrast: return "increase the contrast";
  }
  return "";
}

const char* EditOpName(EditOp op) {
  switch (op) {
    case EditOp::kBlackAndWhite: return "bw";
    case EditOp::kInvert: return "invert";
    case EditOp::kSepia: return "sepia";
    case EditOp::kWarmer: return "warmer";
    case EditOp::kCooler: return "cooler";
    case EditOp::kIncreaseContrast: return "contrast";
  }
  return "";
}

const std::vector<std::string>& InstructionVariants(EditOp op) {
  static const std::vector<std::string> kBw = {"turn it black and white", "make it grayscale", "convert to grayscale",
                                               "make it monochrome"};
  static const std::vector<std::string> kInvert = {"invert the colours", "make it a negative", "invert the image"};
  static const std::vector<std::string> kSepia = {"give it a sepia tone", "turn it sepia", "make it look like an old photo"};
  static const std::vector<std::string> kWarmer = {"make the colors warmer", "give it a warm tone", "warm it up"};
  static const std::vector<std::string> kCooler = {"make the colors cooler", "give it a cool tone", "cool it down"};
  static const std::vector<std::string> kContrast = {"add more contrast", "make it more contrasty", "boost the contrast"};
  switch (op) {
    case EditOp::kBlackAndWhite: return kBw;
    case EditOp::kInvert: return kInvert;
    case EditOp::kSepia: return kSepia;
    case EditOp::kWarmer: return kWarmer;
    case EditOp::kCooler: return kCooler;
    case EditOp::kIncreaseContrast: return kContrast;
  }
  return kBw;
}

std::optional<EditOp> EditOpFromInstruction(std::string_view instruction) {
  std::string wanted = Normalize(instruction);
  for (EditOp op : AllEditOps()) {
    if (wanted == CanonicalInstruction(op) || wanted == EditOpName(op)) return op;
    for (const std::string& v : InstructionVariants(op)) {
      if (wanted == v) return op;
    }
  }
  return std::nullopt;
}

torch::Tensor ApplyEdit(EditOp op, const torch::Tensor& image) {
  TORCH_CHECK((image.dim() == 3 || image.dim() == 4) && image.size(-3) == 3,
              "ApplyEdit: expected an RGB image [3, H, W] or [B, 3, H, W], got ", image.sizes());
  switch (op) {
    case EditOp::kBlackAndWhite: {
      static const float kLuma[3][3] = {{0.299f, 0.587f, 0.114f}, {0.299f, 0.587f, 0.114f}, {0.299f, 0.587f, 0.114f}};
      return ColorMatrix(image, kLuma).clamp(0.0, 1.0);
    }
    case EditOp::kInvert:
      return 1.0 - image;
    case EditOp::kSepia: {
      static const float kSepiaMatrix[3][3] = {
          {0.393f, 0.769f, 0.189f}, {0.349f, 0.686f, 0.168f}, {0.272f, 0.534f, 0.131f}};
      return ColorMatrix(image, kSepiaMatrix).clamp(0.0, 1.0);
    }
    case EditOp::kWarmer:
      return ChannelGains(image, 1.15f, 1.0f, 0.85f).clamp(0.0, 1.0);
    case EditOp::kCooler:
      return ChannelGains(image, 0.85f, 1.0f, 1.15f).clamp(0.0, 1.0);
    case EditOp::kIncreaseContrast:
      return ((image - 0.5) * 1.5 + 0.5).clamp(0.0, 1.0);
  }
  TORCH_CHECK(false, "ApplyEdit: unknown op");
}

}  // namespace fairy::engine::train
