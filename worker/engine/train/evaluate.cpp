#include "worker/engine/train/evaluate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>

#include "worker/engine/train/frame_pool.h"
#include "worker/engine/train/model_parts.h"
#include "worker/engine/train/sampler.h"

namespace fairy::engine::train {
namespace {

double Flicker(const torch::Tensor& frames) {  // [N, 3, H, W]
  if (frames.size(0) < 2) return 0;
  return (frames.slice(0, 1) - frames.slice(0, 0, frames.size(0) - 1)).abs().mean().item<double>();
}

}  // namespace

Result<std::vector<EvalRow>> EvaluateModel(const EvalOptions& o) {
  if (o.model_dir.empty()) return Status::InvalidArgument("--model: a model folder is required");
  if (o.videos.empty()) return Status::InvalidArgument("--videos: at least one clip is required");
  if (o.frames < 1) return Status::InvalidArgument("--frames must be >= 1");
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(o.device);
  } catch (const c10::Error&) {
    return Status::InvalidArgument("--device: \"" + o.device + "\" is not a device");
  }
  FAIRY_ASSIGN_OR_RETURN(ModelParts parts, ModelParts::Load(o.model_dir, device, 0));
  if (!parts.vae_loaded || !parts.unet_loaded || !parts.text_loaded) {
    return Status::FailedPrecondition(o.model_dir + ": every part needs trained weights to be evaluated");
  }
  parts.unet->eval();
  parts.vae->eval();
  parts.text_encoder->eval();
  torch::NoGradGuard no_grad;
  const int64_t multiple = 8;
  std::vector<EvalRow> rows;
  for (const std::string& video : o.videos) {
    FramePoolOptions fp;
    fp.long_side = o.long_side;
    fp.frames_per_video = o.frames;
    fp.max_decode_frames = o.frames;
    FAIRY_ASSIGN_OR_RETURN(auto frames, LoadFramePool({video}, fp));
    if (frames.empty()) return Status::InvalidArgument(video + ": no frames");
    int64_t h = frames[0].size(1) / multiple * multiple, w = frames[0].size(2) / multiple * multiple;
    std::vector<torch::Tensor> cropped;
    for (auto& f : frames) cropped.push_back(f.slice(1, 0, h).slice(2, 0, w).to(torch::kFloat32) / 255.0);
    auto source = torch::stack(cropped);  // [N, 3, h, w] in [0, 1]
    for (EditOp op : o.ops) {
      auto target = ApplyEdit(op, source);
      FAIRY_ASSIGN_OR_RETURN(auto ids, parts.tokenizer.EncodeBatch({CanonicalInstruction(op)}));
      auto emb = parts.text_encoder->forward(ids.to(device));
      std::vector<torch::Tensor> outputs, recon;
      for (int64_t i = 0; i < source.size(0); ++i) {
        auto src = (source[i].unsqueeze(0) * 2 - 1).to(device);
        auto cond = parts.vae->Encode(src).first;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003ULL + static_cast<uint64_t>(i));
        SamplerSettings ss;
        ss.steps = o.steps;
        FAIRY_ASSIGN_OR_RETURN(auto latents, SampleEulerAncestral(*parts.unet, parts.schedule, cond, emb, ss, gen));
        outputs.push_back((parts.vae->Decode(latents / parts.scaling_factor()) / 2 + 0.5).clamp(0, 1).cpu());
        auto tgt = (target[i].unsqueeze(0) * 2 - 1).to(device);
        recon.push_back((parts.vae->Decode(parts.vae->Encode(tgt).first) / 2 + 0.5).clamp(0, 1).cpu());
      }
      auto out = torch::cat(outputs);
      EvalRow row;
      row.video = video;
      row.op = op;
      row.psnr_db = Psnr(out, target);
      row.flicker = Flicker(out);
      row.target_flicker = Flicker(target);
      row.vae_psnr_db = Psnr(torch::cat(recon), target);
      std::fprintf(stderr, "eval: %s %-8s PSNR %.2f dB (VAE ceiling %.2f) flicker %.4f vs exact %.4f\n", video.c_str(),
                   EditOpName(op), row.psnr_db, row.vae_psnr_db, row.flicker, row.target_flicker);
      rows.push_back(row);
    }
  }
  return rows;
}

}  // namespace fairy::engine::train
