// Check kinds of the UNet side of the engine: unet, anchor_pass, frame_pass, pipeline
// (procedures defined in the fixture's golden/README.md).
#include <map>
#include <string>
#include <vector>

#include "worker/engine/anchor_attention.h"
#include "worker/engine/pipeline.h"
#include "worker/engine/unet.h"
#include "worker/engine/verify/check.h"
#include "worker/engine/weights.h"

namespace fairy::engine::verify {
namespace {

Result<std::shared_ptr<UNetImpl>> GetUNet(CheckContext& ctx) {
  return ctx.models().GetOrLoad<UNetImpl>("unet", [&]() -> Result<std::shared_ptr<UNetImpl>> {
    FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ModelSource> source, ctx.source());
    const ModelPart& part = source->unet;
    FAIRY_ASSIGN_OR_RETURN(UNetConfig config, UNetConfig::FromJson(part.config, part.config_source));
    FAIRY_ASSIGN_OR_RETURN(UNet unet, LoadUNet(config, part.tensors, part.what, ctx.device(), ctx.dtype()));
    return unet.ptr();
  });
}

Result<std::shared_ptr<Model>> GetModel(CheckContext& ctx) {
  return ctx.models().GetOrLoad<Model>("model", [&]() -> Result<std::shared_ptr<Model>> {
    ModelOptions options;
    options.device = ctx.device();
    options.dtype = ctx.dtype();
    FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ModelSource> source, ctx.source());
    return Model::Load(*source, options);
  });
}

torch::Tensor ToModel(CheckContext& ctx, const torch::Tensor& t) { return t.to(ctx.device(), ctx.dtype()); }

// Rows `indices` of `t` (dim 0), each index checked against its size.
Result<torch::Tensor> Rows(const CheckContext& ctx, const torch::Tensor& t, const std::vector<int64_t>& indices,
                           const std::string& what) {
  for (int64_t i : indices) {
    if (i < 0 || i >= t.size(0)) {
      return Status::InvalidArgument("check \"" + ctx.name() + "\": " + what + " index " + std::to_string(i) +
                                     " is outside the " + std::to_string(t.size(0)) + " frames");
    }
  }
  return t.index_select(0, torch::tensor(indices, torch::kLong));
}

// unet: one forward on the whole batch; debug outputs by diffusers module path.
Status RunUNet(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto unet, GetUNet(ctx));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor sample, ctx.Input("sample"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor timesteps, ctx.Input("timesteps"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor text, ctx.Input("encoder_hidden_states"));
  c10::InferenceMode guard;
  std::map<std::string, torch::Tensor> debug;
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor out, unet->Forward(ToModel(ctx, sample), timesteps.to(torch::kFloat32),
                                                          ToModel(ctx, text), nullptr, &debug));
  ctx.Output("noise_pred", out);
  for (const auto& [name, value] : debug) ctx.Debug(name, value);
  return Status::OK();
}

struct FairyInputs {
  torch::Tensor sample, text, timestep;
  std::vector<int64_t> anchors;
};

Result<FairyInputs> ReadFairyInputs(CheckContext& ctx) {
  FairyInputs in;
  FAIRY_ASSIGN_OR_RETURN(in.sample, ctx.Input("sample"));
  FAIRY_ASSIGN_OR_RETURN(in.text, ctx.Input("encoder_hidden_states"));
  FAIRY_ASSIGN_OR_RETURN(double t, ctx.FloatArg("timestep"));
  in.timestep = torch::tensor({static_cast<float>(t)});
  FAIRY_ASSIGN_OR_RETURN(in.anchors, ctx.IntListArg("anchor_indices"));
  if (in.anchors.empty()) return Status::InvalidArgument("check \"" + ctx.name() + "\": no anchor_indices");
  return in;
}

// The anchor pass of one step (index 0) without guidance: fills `cache`, returns the anchors' output.
Result<torch::Tensor> AnchorPass(CheckContext& ctx, UNetImpl& unet, const FairyInputs& in, AnchorCache* cache) {
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor sample, Rows(ctx, in.sample, in.anchors, "anchor"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor text, Rows(ctx, in.text, in.anchors, "anchor"));
  SelfAttentionContext attn{SelfAttentionMode::kAnchor, cache, 0, 1};
  return unet.Forward(ToModel(ctx, sample), in.timestep, ToModel(ctx, text), &attn);
}

Status RunAnchorPass(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto unet, GetUNet(ctx));
  FAIRY_ASSIGN_OR_RETURN(FairyInputs in, ReadFairyInputs(ctx));
  c10::InferenceMode guard;
  AnchorCache cache(unet->SelfAttentionLayers(), 1, false);
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor out, AnchorPass(ctx, *unet, in, &cache));
  ctx.Output("noise_pred", out);
  const auto& layers = cache.layer_names();
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!ctx.WantsDebug("cache." + layers[l])) continue;
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor tokens, cache.Get(static_cast<int>(l), 0));
    ctx.Debug("cache." + layers[l], tokens[0]);  // [G=1, K, N, C] -> [K, N, C]
  }
  return Status::OK();
}

Status RunFramePass(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto unet, GetUNet(ctx));
  FAIRY_ASSIGN_OR_RETURN(FairyInputs in, ReadFairyInputs(ctx));
  FAIRY_ASSIGN_OR_RETURN(std::vector<int64_t> frames, ctx.IntListArg("frame_indices"));
  FAIRY_ASSIGN_OR_RETURN(int64_t per_call, ctx.IntArg("frames_per_call"));
  if (per_call < 1) return Status::InvalidArgument("check \"" + ctx.name() + "\": frames_per_call must be >= 1");
  c10::InferenceMode guard;
  AnchorCache cache(unet->SelfAttentionLayers(), 1, false);
  FAIRY_RETURN_IF_ERROR(AnchorPass(ctx, *unet, in, &cache).status());
  std::vector<torch::Tensor> outs;
  SelfAttentionContext attn{SelfAttentionMode::kFrame, &cache, 0, 1};
  for (size_t start = 0; start < frames.size(); start += static_cast<size_t>(per_call)) {
    std::vector<int64_t> group(frames.begin() + static_cast<std::ptrdiff_t>(start),
                               frames.begin() + static_cast<std::ptrdiff_t>(
                                                    std::min(frames.size(), start + static_cast<size_t>(per_call))));
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor sample, Rows(ctx, in.sample, group, "frame"));
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor text, Rows(ctx, in.text, group, "frame"));
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor out,
                           unet->Forward(ToModel(ctx, sample), in.timestep, ToModel(ctx, text), &attn));
    outs.push_back(out);
  }
  ctx.Output("noise_pred", torch::cat(outs, 0));
  return Status::OK();
}

// pipeline: StableDiffusionInstructPix2PixPipeline on one image with injected noise.
Status RunPipeline(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto model, GetModel(ctx));
  EditSettings settings;
  FAIRY_ASSIGN_OR_RETURN(settings.instruction, ctx.StringArg("prompt"));
  FAIRY_ASSIGN_OR_RETURN(int64_t steps, ctx.IntArg("num_inference_steps"));
  settings.steps = static_cast<int>(steps);
  FAIRY_ASSIGN_OR_RETURN(settings.guidance_text, ctx.FloatArg("guidance_scale"));
  FAIRY_ASSIGN_OR_RETURN(settings.guidance_image, ctx.FloatArg("image_guidance_scale"));
  if (ctx.HasParam("timestep_spacing")) {
    FAIRY_ASSIGN_OR_RETURN(settings.timestep_spacing, ctx.StringArg("timestep_spacing"));
  }
  FAIRY_ASSIGN_OR_RETURN(std::string image_path, ctx.StringArg("image"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor image, ReadPngImage(ctx.FixturePath(image_path)));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor initial, ctx.Input("initial_latents"));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor step_noise, ctx.Input("step_noise"));
  InjectedNoise noise(initial, step_noise);
  PipelineTrace trace;
  c10::InferenceMode guard;
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor out, EditImage(*model, image, settings, noise, &trace));
  ctx.Output("latents_per_step", torch::cat(trace.latents_per_step, 0));
  ctx.Output("output_image", out);
  ctx.Debug("image", trace.image);
  ctx.Debug("prompt_embeds", trace.prompt_embeds);
  ctx.Debug("timesteps", trace.timesteps);
  ctx.Debug("sigmas", trace.sigmas);
  ctx.Debug("init_noise_sigma", torch::tensor({trace.init_noise_sigma}));
  ctx.Debug("image_latents", trace.image_latents);
  ctx.Debug("step0.unet_input", trace.step0_unet_input);
  ctx.Debug("step0.unet_output", trace.step0_unet_output);
  ctx.Debug("guided_noise_pred", torch::cat(trace.guided_noise_pred, 0));
  ctx.Debug("vae_decode_input", trace.vae_decode_input);
  ctx.Debug("vae_decoded", trace.vae_decoded);
  return Status::OK();
}

}  // namespace

void RegisterUNetCheckKinds() {
  RegisterCheckKind("unet", RunUNet);
  RegisterCheckKind("anchor_pass", RunAnchorPass);
  RegisterCheckKind("frame_pass", RunFramePass);
  RegisterCheckKind("pipeline", RunPipeline);
}

}  // namespace fairy::engine::verify
