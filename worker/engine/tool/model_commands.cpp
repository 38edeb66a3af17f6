// fairy-engine convert SRC --output OUT [--config DIR] [--dtype T] [--ema]
// fairy-engine info MODEL [--variant V] [--config DIR]
#include <chrono>
#include <cstdio>
#include <map>

#include "worker/engine/convert.h"
#include "worker/engine/engine_info.h"
#include "worker/engine/tool/args.h"
#include "worker/engine/tool/commands.h"
#include "worker/engine/weights.h"

namespace fairy::engine::tool {
namespace {

// "float32 x 686" style summary of a part's dtypes, parameters and bytes.
std::string PartSummary(const ModelPart& part) {
  std::map<std::string, int> dtypes;
  int64_t params = 0;
  for (const auto& [name, t] : part.tensors) {
    ++dtypes[DTypeName(t.info->dtype)];
    if (!name.ends_with("position_ids")) params += t.info->numel();
  }
  std::string types;
  for (const auto& [d, n] : dtypes)
    types += (types.empty() ? "" : ", ") + d + " x " + std::to_string(n);
  char line[256];
  std::snprintf(line, sizeof line, "%zu tensors, %.2f M parameters, %.1f MiB (%s)",
                part.tensors.size(), static_cast<double>(params) / 1e6,
                static_cast<double>(TensorBytes(part.tensors)) / (1 << 20), types.c_str());
  return line;
}

void PrintNotes(const ModelSource& source, const char* prefix) {
  for (const std::string& note : source.notes) std::printf("%s%s\n", prefix, note.c_str());
}

}  // namespace

int RunConvertCommand(int argc, char** argv) {
  Args args(argc, argv, 1);
  if (args.Flag("--help") || args.Flag("-h")) {
    std::printf(
        "Usage: fairy-engine convert SRC --output OUT [options]\n\n"
        "Converts an original-layout single-file checkpoint (SRC.safetensors: "
        "model.diffusion_model.*,\n"
        "first_stage_model.*, cond_stage_model.transformer.*, as the original InstructPix2Pix "
        "release\n"
        "and A1111/ComfyUI hold them) into a diffusers folder OUT (safetensors weights). Every "
        "tensor\n"
        "is checked against the model first; OUT is written whole or not at all. A diffusers "
        "folder\n"
        "as SRC is rewritten (e.g. with --dtype, or to fix pre-0.14 VAE attention names).\n\n"
        "  --output OUT   the diffusers folder to write (must not exist)\n"
        "  --config DIR   a diffusers folder with the configs (model_index.json, unet/, vae/,\n"
        "                 text_encoder/ config.json, scheduler/, tokenizer/); without it the\n"
        "                 architecture is inferred from the shapes (SD 1.x family) and printed\n"
        "  --dtype T      write floating-point tensors as float32, float16 or bfloat16\n"
        "                 (default: each tensor's own dtype)\n"
        "  --ema          take the UNet's EMA weights (model_ema.*) when SRC has them\n"
        "  --variant V    a diffusers SRC's weights variant (fp16)\n"
        "Pickled checkpoints (.ckpt, .bin) are refused: the error gives the command that turns "
        "them\n"
        "into safetensors without running their code.\n");
    return kExitOk;
  }
  ModelSourceOptions so;
  so.config_dir = args.Value("--config");
  so.ema = args.Flag("--ema");
  so.variant = args.Value("--variant");
  const std::string output = args.Value("--output");
  const std::string dtype = args.Value("--dtype");
  const std::vector<std::string> positionals = args.Positionals();
  std::string error;
  if (!args.Finish(&error) || positionals.size() != 1 || output.empty()) {
    if (error.empty())
      error = positionals.size() != 1 ? "expected exactly one SRC" : "--output is required";
    std::fprintf(stderr, "fairy-engine convert: %s (see --help)\n", error.c_str());
    return kExitUsage;
  }
  ConvertOptions co;
  if (!dtype.empty()) {
    auto parsed = ParseScalarType(dtype);
    if (!parsed.ok() || *parsed == torch::kFloat64) {
      std::fprintf(
          stderr,
          "fairy-engine convert: --dtype: expected float32, float16 or bfloat16, got \"%s\"\n",
          dtype.c_str());
      return kExitUsage;
    }
    co.dtype = *parsed;
  }
  const auto start = std::chrono::steady_clock::now();
  auto source = ModelSource::Open(positionals[0], so);
  if (!source.ok()) {
    std::fprintf(stderr, "fairy-engine convert: %s\n", source.status().ToString().c_str());
    return kExitUsage;
  }
  std::printf("fairy-engine convert: %s (%s)\n", positionals[0].c_str(),
              source->layout == ModelSource::Layout::kSingleFile ? "original single file"
                                                                 : "diffusers folder");
  PrintNotes(*source, "  ");
  ConfigureTorchThreads();
  Status st = WriteDiffusersFolder(*source, output, co);
  if (!st.ok()) {
    std::fprintf(stderr, "fairy-engine convert: %s\n", st.ToString().c_str());
    return kExitFailed;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("  unet: %s\n  vae: %s\n  text_encoder: %s\nwrote %s in %.1f s\n",
              PartSummary(source->unet).c_str(), PartSummary(source->vae).c_str(),
              PartSummary(source->text_encoder).c_str(), output.c_str(), seconds);
  return kExitOk;
}

int RunInfoCommand(int argc, char** argv) {
  Args args(argc, argv, 1);
  if (args.Flag("--help") || args.Flag("-h")) {
    std::printf(
        "Usage: fairy-engine info MODEL [options]\n\n"
        "Describes a model (a diffusers folder or an original-layout .safetensors file): its "
        "layout,\n"
        "the architecture of each part, tensor and parameter counts, dtypes and sizes, whether "
        "the\n"
        "UNet is an InstructPix2Pix one (8 input channels), and whether every tensor matches the\n"
        "model the configs describe. Exit 0 when it loads, 1 when it does not, 2 when it cannot "
        "be\n"
        "read.\n\n"
        "  --variant V    a diffusers folder's weights variant (fp16)\n"
        "  --config DIR   a single file's configs and tokenizer (default: inferred)\n");
    return kExitOk;
  }
  ModelSourceOptions so;
  so.config_dir = args.Value("--config");
  so.variant = args.Value("--variant");
  const std::vector<std::string> positionals = args.Positionals();
  std::string error;
  if (!args.Finish(&error) || positionals.size() != 1) {
    if (error.empty()) error = "expected exactly one MODEL";
    std::fprintf(stderr, "fairy-engine info: %s (see --help)\n", error.c_str());
    return kExitUsage;
  }
  auto source = ModelSource::Open(positionals[0], so);
  if (!source.ok()) {
    std::fprintf(stderr, "fairy-engine info: %s\n", source.status().ToString().c_str());
    return kExitUsage;
  }
  std::printf("model: %s\nlayout: %s\n", positionals[0].c_str(),
              source->layout == ModelSource::Layout::kSingleFile
                  ? "original single file (.safetensors)"
                  : "diffusers folder");
  const nlohmann::json& unet = source->unet.config;
  const int64_t in_channels = unet.value("in_channels", int64_t{0});
  std::printf("unet: %s\n  in_channels %lld: %s; block_out_channels %s, cross_attention_dim %s\n",
              PartSummary(source->unet).c_str(), static_cast<long long>(in_channels),
              in_channels == 8 ? "an InstructPix2Pix UNet (noise + image latents)"
                               : "not an InstructPix2Pix UNet (the farm needs 8 input channels)",
              unet.value("block_out_channels", nlohmann::json()).dump().c_str(),
              unet.value("cross_attention_dim", nlohmann::json()).dump().c_str());
  std::printf("vae: %s\n  latent_channels %s, scaling_factor %s\n",
              PartSummary(source->vae).c_str(),
              source->vae.config.value("latent_channels", nlohmann::json()).dump().c_str(),
              source->vae.config.value("scaling_factor", nlohmann::json()).dump().c_str());
  std::printf(
      "text_encoder: %s\n  %s layers, hidden_size %s\n", PartSummary(source->text_encoder).c_str(),
      source->text_encoder.config.value("num_hidden_layers", nlohmann::json()).dump().c_str(),
      source->text_encoder.config.value("hidden_size", nlohmann::json()).dump().c_str());
  std::printf(
      "scheduler: %s\n",
      source->scheduler_config.value("_class_name", std::string("(no _class_name)")).c_str());
  std::printf("tokenizer: %s\n", source->tokenizer.dir.c_str());
  PrintNotes(*source, "note: ");
  Status st = CheckModelSource(*source);
  if (!st.ok()) {
    std::printf("loads: no: %s\n", st.ToString().c_str());
    return kExitFailed;
  }
  std::printf("loads: yes (every tensor's name and shape matches the configs)\n");
  return in_channels == 8 ? kExitOk : kExitFailed;
}

}  // namespace fairy::engine::tool
