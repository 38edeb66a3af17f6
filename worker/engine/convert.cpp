#include "worker/engine/convert.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <system_error>

#include "worker/engine/scheduler.h"
#include "worker/engine/text_encoder.h"
#include "worker/engine/unet.h"
#include "worker/engine/vae.h"

namespace fairy::engine {
namespace {

namespace fs = std::filesystem;

DType ToDType(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat64:
      return DType::kF64;
    case torch::kFloat16:
      return DType::kF16;
    case torch::kBFloat16:
      return DType::kBF16;
    default:
      return DType::kF32;
  }
}

bool IsFloat(DType d) {
  return d == DType::kF64 || d == DType::kF32 || d == DType::kF16 || d == DType::kBF16;
}

Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::IOError(path.string() + ": cannot write");
  return Status::OK();
}

Status WriteJson(const fs::path& path, const nlohmann::json& json) {
  return WriteText(path, json.dump(2) + "\n");
}

// One part's tensors into `path` (diffusers names and shapes), converted to `dtype` if given.
Status WritePart(const TensorMap& tensors, const fs::path& path,
                 const std::optional<torch::ScalarType>& dtype) {
  std::vector<TensorToWrite> out;
  std::vector<torch::Tensor> keep;  // converted tensors' storage while writing
  out.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    TensorToWrite w;
    w.name = name;
    w.shape = t.shape;
    w.dtype = t.info->dtype;
    w.data = t.file->Data(*t.info);
    if (dtype && IsFloat(t.info->dtype) && ToDType(*dtype) != t.info->dtype) {
      keep.push_back(TensorFromSafetensors(*t.file, *t.info).to(*dtype).contiguous());
      w.dtype = ToDType(*dtype);
      w.data = std::span<const std::byte>(static_cast<const std::byte*>(keep.back().data_ptr()),
                                          keep.back().numel() * keep.back().element_size());
    }
    out.push_back(std::move(w));
  }
  return WriteSafetensors(path.string(), out, {{"format", "pt"}});
}

Status WriteAll(const ModelSource& source, const fs::path& dir, const ConvertOptions& options) {
  const std::string scheduler_class =
      source.scheduler_config.value("_class_name", "EulerAncestralDiscreteScheduler");
  const nlohmann::json index = {{"_class_name", "StableDiffusionInstructPix2PixPipeline"},
                                {"_diffusers_version", "0.25.1"},
                                {"feature_extractor", {nullptr, nullptr}},
                                {"requires_safety_checker", false},
                                {"safety_checker", {nullptr, nullptr}},
                                {"scheduler", {"diffusers", scheduler_class}},
                                {"text_encoder", {"transformers", "CLIPTextModel"}},
                                {"tokenizer", {"transformers", "CLIPTokenizer"}},
                                {"unet", {"diffusers", "UNet2DConditionModel"}},
                                {"vae", {"diffusers", "AutoencoderKL"}}};
  FAIRY_RETURN_IF_ERROR(WriteJson(dir / "model_index.json", index));
  for (const char* part : {"unet", "vae", "text_encoder", "scheduler", "tokenizer"}) {
    std::error_code ec;
    fs::create_directories(dir / part, ec);
    if (ec) return Status::IOError((dir / part).string() + ": " + ec.message());
  }
  FAIRY_RETURN_IF_ERROR(WriteJson(dir / "unet/config.json", source.unet.config));
  FAIRY_RETURN_IF_ERROR(WriteJson(dir / "vae/config.json", source.vae.config));
  FAIRY_RETURN_IF_ERROR(WriteJson(dir / "text_encoder/config.json", source.text_encoder.config));
  FAIRY_RETURN_IF_ERROR(
      WriteJson(dir / "scheduler/scheduler_config.json", source.scheduler_config));
  FAIRY_RETURN_IF_ERROR(WriteText(dir / "tokenizer/vocab.json", source.tokenizer.vocab_json));
  FAIRY_RETURN_IF_ERROR(WriteText(dir / "tokenizer/merges.txt", source.tokenizer.merges_txt));
  if (!source.tokenizer.tokenizer_config_json.empty()) {
    FAIRY_RETURN_IF_ERROR(
        WriteText(dir / "tokenizer/tokenizer_config.json", source.tokenizer.tokenizer_config_json));
  }
  if (!source.tokenizer.special_tokens_map_json.empty()) {
    FAIRY_RETURN_IF_ERROR(WriteText(dir / "tokenizer/special_tokens_map.json",
                                    source.tokenizer.special_tokens_map_json));
  }
  FAIRY_RETURN_IF_ERROR(WritePart(source.unet.tensors,
                                  dir / "unet/diffusion_pytorch_model.safetensors", options.dtype));
  FAIRY_RETURN_IF_ERROR(WritePart(source.vae.tensors,
                                  dir / "vae/diffusion_pytorch_model.safetensors", options.dtype));
  FAIRY_RETURN_IF_ERROR(WritePart(source.text_encoder.tensors,
                                  dir / "text_encoder/model.safetensors", options.dtype));
  return Status::OK();
}

}  // namespace

Status CheckModelSource(const ModelSource& source) {
  torch::NoGradGuard no_grad;
  FAIRY_ASSIGN_OR_RETURN(
      CLIPTextConfig text,
      CLIPTextConfig::FromJson(source.text_encoder.config, source.text_encoder.config_source));
  FAIRY_ASSIGN_OR_RETURN(UNetConfig unet,
                         UNetConfig::FromJson(source.unet.config, source.unet.config_source));
  FAIRY_ASSIGN_OR_RETURN(VAEConfig vae,
                         VAEConfig::FromJson(source.vae.config, source.vae.config_source));
  FAIRY_RETURN_IF_ERROR(
      SchedulerConfig::FromJson(source.scheduler_config, source.scheduler_source).status());
  FAIRY_RETURN_IF_ERROR(CLIPTokenizer::FromFiles(source.tokenizer).status());
  LoadWeightsOptions text_options;
  text_options.ignore_unexpected_suffixes = {"embeddings.position_ids"};
  CLIPTextModel text_model(text);
  FAIRY_RETURN_IF_ERROR(CheckWeights(*text_model, source.text_encoder.tensors,
                                     source.text_encoder.what, text_options));
  UNet unet_model(unet);
  FAIRY_RETURN_IF_ERROR(CheckWeights(*unet_model, source.unet.tensors, source.unet.what));
  AutoencoderKL vae_model(vae);
  return CheckWeights(*vae_model, source.vae.tensors, source.vae.what);
}

Status WriteDiffusersFolder(const ModelSource& source, const std::string& out_dir,
                            const ConvertOptions& options) {
  std::error_code ec;
  const fs::path out = fs::path(out_dir).lexically_normal();
  if (fs::exists(out, ec)) {
    return Status::FailedPrecondition(
        out_dir + ": already exists (nothing written; remove it or choose another)");
  }
  FAIRY_RETURN_IF_ERROR(CheckModelSource(source));
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) return Status::IOError(parent.string() + ": " + ec.message());
  const fs::path tmp =
      parent / ("." + out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) return Status::IOError(tmp.string() + ": " + ec.message());
  Status st = WriteAll(source, tmp, options);
  if (st.ok()) {
    fs::rename(tmp, out, ec);
    if (ec)
      st =
          Status::IOError(out_dir + ": cannot move the finished model into place: " + ec.message());
  }
  if (!st.ok()) fs::remove_all(tmp, ec);
  return st;
}

}  // namespace fairy::engine
