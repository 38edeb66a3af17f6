#include "worker/engine/frames/frame_tensors.h"

#include <string>

namespace fairy::engine {

torch::Tensor FrameToTensor(const media::RgbFrame& frame) {
  auto t = torch::from_blob(const_cast<uint8_t*>(frame.pixels.data()),
                            {frame.height, frame.width, 3}, torch::kUInt8);
  return t.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32).div(255.0).mul(2.0).sub(1.0);
}

media::RgbFrame TensorToFrame(const torch::Tensor& image, int64_t index) {
  media::RgbFrame frame;
  frame.height = static_cast<int>(image.size(0));
  frame.width = static_cast<int>(image.size(1));
  frame.index = index;
  auto bytes = image.mul(255.0).round().clamp(0, 255).to(torch::kUInt8).contiguous();
  frame.pixels.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return frame;
}

Result<torch::Tensor> DecodeFrames(media::FrameReader& reader,
                                   const std::vector<int64_t>& indices) {
  std::vector<torch::Tensor> out;
  media::RgbFrame frame;
  for (int64_t index : indices) {
    if (reader.index() != index) FAIRY_RETURN_IF_ERROR(reader.Seek(index));
    FAIRY_ASSIGN_OR_RETURN(bool got, reader.Next(&frame));
    if (!got) {
      return Status::Corruption(reader.info().path + ": frame " + std::to_string(index) +
                                " could not be decoded");
    }
    out.push_back(FrameToTensor(frame));
  }
  return torch::cat(out, 0);
}

}  // namespace fairy::engine
