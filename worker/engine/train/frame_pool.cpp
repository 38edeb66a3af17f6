#include "worker/engine/train/frame_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#ifdef FAIRY_TRAIN_HAS_MEDIA
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#else
#include "worker/engine/pipeline.h"
#endif

namespace fairy::engine::train {

#ifdef FAIRY_TRAIN_HAS_MEDIA
namespace {

torch::Tensor FrameTensor(const media::RgbFrame& frame) {  // uint8 [3, H, W]
  auto hwc = torch::empty({frame.height, frame.width, 3}, torch::kUInt8);
  std::memcpy(hwc.data_ptr<uint8_t>(), frame.pixels.data(), frame.pixels.size());
  return hwc.permute({2, 0, 1}).contiguous();
}

Status AppendVideo(const std::string& path, const FramePoolOptions& options, std::vector<torch::Tensor>* out) {
  media::ProbeOptions probe_options;
  auto info = media::Probe(path, probe_options);
  if (!info.ok()) return info.status().WithContext("training frames");
  int64_t total = std::min<int64_t>(info->frame_count, options.max_decode_frames);
  if (total <= 0) return Status::InvalidArgument("training frames: " + path + " has no frames");
  int64_t wanted = std::max<int64_t>(1, std::min(options.frames_per_video, total));
  double stride = static_cast<double>(total) / static_cast<double>(wanted);
  int64_t next_pick = 0;
  double next_at = 0;
  media::DecodeOptions decode;
  decode.long_side = options.long_side;
  return media::DecodeRange(
      path, decode, 0, total,
      [&](const media::RgbFrame& frame) -> Status {
        if (next_pick < wanted && static_cast<double>(frame.index) >= next_at) {
          out->push_back(FrameTensor(frame));
          ++next_pick;
          next_at = stride * static_cast<double>(next_pick);
        }
        return Status::OK();
      },
      &info.value());
}

}  // namespace

Result<torch::Tensor> LoadStillImage(const std::string& path, int long_side) {
  auto info = media::Probe(path, media::ProbeOptions{});
  if (!info.ok()) return info.status();
  media::DecodeOptions decode;
  decode.long_side = long_side;
  torch::Tensor image;
  FAIRY_RETURN_IF_ERROR(media::DecodeRange(
      path, decode, 0, 1,
      [&](const media::RgbFrame& frame) -> Status {
        image = FrameTensor(frame);
        return Status::OK();
      },
      &info.value()));
  if (!image.defined()) return Status::Corruption(path + ": no image decoded");
  return image;
}

Result<std::vector<torch::Tensor>> LoadFramePool(const std::vector<std::string>& paths,
                                                 const FramePoolOptions& options) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::vector<bool> from_folder;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        if (entry.is_regular_file()) in_dir.push_back(entry.path().string());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
      from_folder.resize(files.size(), true);
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
      from_folder.push_back(false);
    } else {
      return Status::NotFound("training frames: no such file or folder: " + p);
    }
  }
  std::vector<torch::Tensor> frames;
  for (size_t i = 0; i < files.size(); ++i) {
    Status st = AppendVideo(files[i], options, &frames);
    if (st.ok()) continue;
    // A folder may hold other files (licences, manifests): skip what is not a video, say so.
    if (!from_folder[i]) return st;
    std::fprintf(stderr, "train: skipping %s (%s)\n", files[i].c_str(), st.message().c_str());
  }
  return frames;
}

#else

Result<torch::Tensor> LoadStillImage(const std::string& path, int long_side) {
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor image, ReadPngImage(path));  // [1, 3, H, W] in [-1, 1]
  image = ((image + 1) * 127.5).round().clamp(0, 255);
  if (long_side > 0) {
    const double scale = static_cast<double>(long_side) / static_cast<double>(std::max(image.size(2), image.size(3)));
    std::vector<int64_t> size = {std::max<int64_t>(1, std::lround(image.size(2) * scale)),
                                 std::max<int64_t>(1, std::lround(image.size(3) * scale))};
    namespace F = torch::nn::functional;
    image = F::interpolate(image, F::InterpolateFuncOptions().size(size).mode(torch::kBilinear).align_corners(false));
  }
  return image.squeeze(0).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

Result<std::vector<torch::Tensor>> LoadFramePool(const std::vector<std::string>& paths, const FramePoolOptions&) {
  if (paths.empty()) return std::vector<torch::Tensor>{};
  return Status::Unsupported("training frames: this build has no media layer (FAIRY_ENGINE_ONLY); cannot decode " +
                             paths.front());
}

#endif

}  // namespace fairy::engine::train
