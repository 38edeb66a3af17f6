#include "worker/engine/train/evaluate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>

#ifdef FAIRY_TRAIN_HAS_MEDIA
#include "common/media/shots.h"
#endif
#include "worker/engine/pipeline.h"
#include "worker/engine/train/frame_pool.h"
#include "worker/engine/train/model_parts.h"
#include "worker/engine/train/sampler.h"

namespace fairy::engine::train {
namespace {

double Flicker(const torch::Tensor& frames) {  // [N, 3, H, W]
  if (frames.size(0) < 2) return 0;
  return (frames.slice(0, 1) - frames.slice(0, 0, frames.size(0) - 1)).abs().mean().item<double>();
}

// `source` [N, 3, H, W] in [0, 1] edited as one shot by the engine's Fairy pipeline, as
// `fairy-engine edit` does it. Returns [N, 3, H, W] in [0, 1] (CPU).
Result<torch::Tensor> EditShotLikeTheFarm(Model& model, const torch::Tensor& source, EditOp op,
                                          const EvalOptions& o) {
#ifdef FAIRY_TRAIN_HAS_MEDIA
  const int64_t n = source.size(0);
  const std::vector<int64_t> anchors = media::ChooseAnchors(0, n, o.anchors);
  std::vector<int64_t> others;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::binary_search(anchors.begin(), anchors.end(), i)) others.push_back(i);
  }
  EditSettings s;
  s.instruction = CanonicalInstruction(op);
  s.steps = o.steps;
  s.guidance_text = 1;
  s.guidance_image = 1;
  s.seed = o.seed;
  s.noise = o.noise;
  s.sampler = o.sampler;
  const auto images = source * 2 - 1;
  auto pick = [&](const std::vector<int64_t>& idx) { return images.index_select(0, torch::tensor(idx)); };
  AnchorCache cache;
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor anchor_out, RunAnchorPass(model, pick(anchors), anchors, s, &cache));
  auto out = torch::empty({n, source.size(2), source.size(3), 3});
  out.index_copy_(0, torch::tensor(anchors), anchor_out);
  if (!others.empty()) {
    // One call over the shot's non-anchor frames in order forms the farm's batches (frame_plan.h).
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor rest, RunFramePass(model, cache, pick(others), others, s, o.batch));
    out.index_copy_(0, torch::tensor(others), rest);
  }
  return out.permute({0, 3, 1, 2}).contiguous();
#else
  (void)model, (void)source, (void)op, (void)o;
  return Status::Unsupported("eval --fairy needs a build with common/media");
#endif
}

}  // namespace

Result<std::vector<EvalRow>> EvaluateModel(const EvalOptions& o) {
  if (o.model_dir.empty()) return Status::InvalidArgument("--model: a model folder is required");
  if (o.videos.empty()) return Status::InvalidArgument("--videos: at least one clip is required");
  if (o.frames < 1) return Status::InvalidArgument("--frames must be >= 1");
  if (o.fairy && (o.anchors < 1 || o.batch < 1)) return Status::InvalidArgument("--anchors and --batch must be >= 1");
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
  std::shared_ptr<Model> engine_model;
  if (o.fairy) {
    FAIRY_ASSIGN_OR_RETURN(engine_model, Model::Load(o.model_dir, ModelOptions{device}));
  }
  torch::NoGradGuard no_grad;
  const int64_t multiple = engine_model ? engine_model->frame_multiple() : 8;
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
      FAIRY_ASSIGN_OR_RETURN(auto ids, parts.TokenIds({CanonicalInstruction(op)}));
      auto emb = parts.text_encoder->forward(ids.to(device));
      std::vector<torch::Tensor> outputs, recon;
      for (int64_t i = 0; i < source.size(0); ++i) {
        auto tgt = (target[i].unsqueeze(0) * 2 - 1).to(device);
        recon.push_back((parts.vae->Decode(parts.vae->Encode(tgt).first) / 2 + 0.5).clamp(0, 1).cpu());
        if (engine_model) continue;
        auto src = (source[i].unsqueeze(0) * 2 - 1).to(device);
        auto cond = parts.vae->Encode(src).first;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003ULL + static_cast<uint64_t>(i));
        SamplerSettings ss;
        ss.steps = o.steps;
        FAIRY_ASSIGN_OR_RETURN(auto latents, SampleEulerAncestral(*parts.unet, parts.schedule, cond, emb, ss, gen));
        outputs.push_back((parts.vae->Decode(latents / parts.scaling_factor()) / 2 + 0.5).clamp(0, 1).cpu());
      }
      torch::Tensor out;
      if (engine_model) {
        FAIRY_ASSIGN_OR_RETURN(out, EditShotLikeTheFarm(*engine_model, source.to(device), op, o));
      } else {
        out = torch::cat(outputs);
      }
      {
        // Diagnostics: one denoising prediction from the exact target noised to t, and the VAE posterior spread.
        auto src = (source * 2 - 1).to(device);
        auto tgt = (target * 2 - 1).to(device);
        auto cond = parts.vae->Encode(src).first;
        auto [mean, logvar] = parts.vae->Encode(tgt);
        auto z = mean * parts.scaling_factor();
        std::string line;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + 99);
        for (int64_t t : {50, 250, 500, 750, 950}) {
          auto noise = torch::randn(z.sizes(), gen).to(device);
          auto tt = torch::full({z.size(0)}, t, torch::TensorOptions().dtype(torch::kInt64).device(device));
          auto x_t = parts.schedule.AddNoise(z, noise, tt);
          auto eps = parts.unet->forward(torch::cat({x_t, cond}, 1), tt.to(torch::kFloat32), emb.expand({z.size(0), -1, -1}));
          double ac = parts.schedule.alphas_cumprod[t].item<double>();
          auto x0 = (x_t - std::sqrt(1 - ac) * eps) / std::sqrt(ac);
          auto img = (parts.vae->Decode(x0 / parts.scaling_factor()) / 2 + 0.5).clamp(0, 1).cpu();
          char buf[64];
          std::snprintf(buf, sizeof buf, " t%lld %.1f", static_cast<long long>(t), Psnr(img, target));
          line += buf;
        }
        std::fprintf(stderr, "eval: %s %-8s one-step x0 PSNR:%s | latent std %.3f posterior std %.3f (scaled)\n",
                     video.c_str(), EditOpName(op), line.c_str(), z.std().item<double>(),
                     ((0.5 * logvar).exp().mean() * parts.scaling_factor()).item<double>());
      }
      EvalRow row;
      row.video = video;
      row.op = op;
      row.psnr_db = Psnr(out, target);
      row.flicker = Flicker(out);
      row.target_flicker = Flicker(target);
      row.vae_psnr_db = Psnr(torch::cat(recon), target);
      std::fprintf(stderr,
                   "eval: %s %-8s PSNR %.2f dB (VAE ceiling %.2f) flicker %.4f vs exact %.4f (VAE "
                   "alone %.4f)\n",
                   video.c_str(), EditOpName(op), row.psnr_db, row.vae_psnr_db, row.flicker,
                   row.target_flicker, Flicker(torch::cat(recon)));
      rows.push_back(row);
    }
  }
  return rows;
}

}  // namespace fairy::engine::train
