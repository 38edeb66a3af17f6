// Check kinds of the engine's model parts: text_encoder, vae_encode, vae_decode (procedures defined
// in the fixture's golden/README.md).
#include <map>
#include <string>

#include "worker/engine/text_encoder.h"
#include "worker/engine/vae.h"
#include "worker/engine/verify/check.h"

namespace fairy::engine::verify {
namespace {

Result<std::shared_ptr<CLIPTextModelImpl>> GetTextEncoder(CheckContext& ctx) {
  return ctx.models().GetOrLoad<CLIPTextModelImpl>(
      "text_encoder", [&]() -> Result<std::shared_ptr<CLIPTextModelImpl>> {
        FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ModelSource> source, ctx.source());
        const ModelPart& part = source->text_encoder;
        FAIRY_ASSIGN_OR_RETURN(CLIPTextConfig config, CLIPTextConfig::FromJson(part.config, part.config_source));
        FAIRY_ASSIGN_OR_RETURN(CLIPTextModel model,
                               LoadCLIPTextModel(config, part.tensors, part.what, ctx.device(), ctx.dtype()));
        return model.ptr();
      });
}

Result<std::shared_ptr<AutoencoderKLImpl>> GetVAE(CheckContext& ctx) {
  return ctx.models().GetOrLoad<AutoencoderKLImpl>(
      "vae", [&]() -> Result<std::shared_ptr<AutoencoderKLImpl>> {
        FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ModelSource> source, ctx.source());
        const ModelPart& part = source->vae;
        FAIRY_ASSIGN_OR_RETURN(VAEConfig config, VAEConfig::FromJson(part.config, part.config_source));
        FAIRY_ASSIGN_OR_RETURN(AutoencoderKL vae,
                               LoadAutoencoderKL(config, part.tensors, part.what, ctx.device(), ctx.dtype()));
        return vae.ptr();
      });
}

// LibTorch errors (bad shapes) as a failed check instead of an exception.
template <typename Fn>
Status Guarded(CheckContext& ctx, Fn&& fn) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("check \"" + ctx.name() + "\": " + e.what_without_backtrace());
  }
}

// text_encoder: CLIPTextModel on input_ids (no attention mask).
Status RunTextEncoder(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto model, GetTextEncoder(ctx));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor ids, ctx.Input("input_ids"));
  return Guarded(ctx, [&] {
    c10::InferenceMode guard;
    TextEncoderOutput out = model->Forward(ids.to(ctx.device()), /*keep_hidden_states=*/true);
    ctx.Output("last_hidden_state", out.last_hidden_state);
    ctx.Output("pooler_output", out.pooler_output);
    for (size_t i = 0; i < out.hidden_states.size(); ++i) {
      ctx.Debug("hidden_states." + std::to_string(i), out.hidden_states[i]);
    }
    return Status::OK();
  });
}

// vae_encode: mean, logvar (clamped), std = exp(logvar / 2) of the posterior.
Status RunVAEEncode(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto vae, GetVAE(ctx));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor image, ctx.Input("image"));
  return Guarded(ctx, [&] {
    c10::InferenceMode guard;
    std::map<std::string, torch::Tensor> debug;
    auto [mean, logvar] = vae->Encode(image.to(ctx.device(), ctx.dtype()), &debug);
    ctx.Output("mean", mean);
    ctx.Output("logvar", logvar);
    ctx.Output("std", torch::exp(0.5 * logvar));
    for (const auto& [name, value] : debug) ctx.Debug(name, value);
    return Status::OK();
  });
}

// vae_decode: decoder(post_quant_conv(latents)), no scaling factor, not clamped.
Status RunVAEDecode(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(auto vae, GetVAE(ctx));
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor latents, ctx.Input("latents"));
  return Guarded(ctx, [&] {
    c10::InferenceMode guard;
    std::map<std::string, torch::Tensor> debug;
    ctx.Output("sample", vae->Decode(latents.to(ctx.device(), ctx.dtype()), &debug));
    for (const auto& [name, value] : debug) ctx.Debug(name, value);
    return Status::OK();
  });
}

}  // namespace

void RegisterModelCheckKinds() {
  RegisterCheckKind("text_encoder", RunTextEncoder);
  RegisterCheckKind("vae_encode", RunVAEEncode);
  RegisterCheckKind("vae_decode", RunVAEDecode);
}

}  // namespace fairy::engine::verify
