#include "worker/engine/model_source.h"

#include <filesystem>
#include <system_error>

#include "worker/engine/ldm_layout.h"

namespace fairy::engine {
namespace {

namespace fs = std::filesystem;

// The parts a model folder must have, as model_index.json names their classes ("" = any class).
constexpr std::pair<const char*, const char*> kParts[] = {
    {"tokenizer", "CLIPTokenizer"},
    {"text_encoder", "CLIPTextModel"},
    {"unet", "UNet2DConditionModel"},
    {"vae", "AutoencoderKL"},
    {"scheduler", ""},
};

Status CheckModelIndex(const std::string& dir) {
  const std::string path = dir + "/model_index.json";
  FAIRY_ASSIGN_OR_RETURN(nlohmann::json index, ReadJsonFile(path));
  for (const auto& [part, cls] : kParts) {
    if (!index.contains(part))
      return Status::InvalidArgument(path + ": missing key \"" + std::string(part) + "\"");
    const auto& entry = index[part];
    if (!entry.is_array() || entry.size() != 2 || !entry[1].is_string()) {
      return Status::InvalidArgument(path + ": " + part + ": expected [library, class], got " +
                                     entry.dump());
    }
    const std::string got = entry[1].get<std::string>();
    if (*cls != '\0' && got != cls) {
      return Status::Unsupported(path + ": " + part + " is " + got + "; this engine runs " + cls);
    }
    if (!fs::is_directory(dir + "/" + part)) {
      return Status::NotFound(dir + "/" + part + ": missing folder (listed in model_index.json)");
    }
  }
  return Status::OK();
}

bool HasExtension(const fs::path& p, std::initializer_list<const char*> extensions) {
  const std::string ext = p.extension().string();
  for (const char* e : extensions) {
    if (ext == e) return true;
  }
  return false;
}

// The configs and tokenizer of the diffusers folder `dir` into `source`.
Status ReadFolderConfigs(const std::string& dir, ModelSource* source) {
  FAIRY_RETURN_IF_ERROR(CheckModelIndex(dir));
  for (auto [part, name] : {std::pair{&source->unet, "unet"}, std::pair{&source->vae, "vae"},
                            std::pair{&source->text_encoder, "text_encoder"}}) {
    part->config_source = dir + "/" + name + "/config.json";
    FAIRY_ASSIGN_OR_RETURN(part->config, ReadJsonFile(part->config_source));
  }
  source->scheduler_source = dir + "/scheduler/scheduler_config.json";
  FAIRY_ASSIGN_OR_RETURN(source->scheduler_config, ReadJsonFile(source->scheduler_source));
  FAIRY_ASSIGN_OR_RETURN(source->tokenizer, TokenizerFiles::Read(dir + "/tokenizer"));
  return Status::OK();
}

Result<ModelSource> OpenFolder(const std::string& dir, const ModelSourceOptions& options) {
  ModelSource source;
  source.path = dir;
  source.layout = ModelSource::Layout::kDiffusers;
  FAIRY_RETURN_IF_ERROR(ReadFolderConfigs(dir, &source));
  for (auto [part, name] : {std::pair{&source.unet, "unet"}, std::pair{&source.vae, "vae"},
                            std::pair{&source.text_encoder, "text_encoder"}}) {
    const std::string part_dir = dir + "/" + name;
    FAIRY_ASSIGN_OR_RETURN(std::vector<std::string> files,
                           FindWeightFiles(part_dir, options.variant));
    FAIRY_ASSIGN_OR_RETURN(part->tensors, ReadWeightFiles(files, part_dir));
    part->what = std::string(name) + " (" + part_dir + ")";
    if (const int renamed = RenameDeprecatedAttention(part->tensors); renamed > 0) {
      source.notes.push_back(
          std::string(name) + ": " + std::to_string(renamed) +
          " attention tensors under their pre-0.14 diffusers names (query, key, value, "
          "proj_attn) read as to_q, to_k, to_v, to_out.0");
    }
    if (fs::path(files.front()).stem().has_extension()) {  // "<name>.fp16.safetensors"
      source.notes.push_back(
          std::string(name) + ": weights from " + fs::path(files.front()).filename().string() +
          (files.size() > 1 ? " and " + std::to_string(files.size() - 1) + " more" : ""));
    }
  }
  return source;
}

Result<ModelSource> OpenSingleFile(const std::string& path, const ModelSourceOptions& options) {
  FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<const SafetensorsFile> file, SafetensorsFile::Open(path));
  if (!IsOriginalLayout(*file)) {
    return Status::Unsupported(path + ": not an original-layout Stable Diffusion checkpoint (no " +
                               std::string(kOriginalUNetPrefix) +
                               "* tensors); a diffusers model is a folder");
  }
  ModelSource source;
  source.path = path;
  source.layout = ModelSource::Layout::kSingleFile;
  if (!options.config_dir.empty()) {
    FAIRY_RETURN_IF_ERROR(ReadFolderConfigs(options.config_dir, &source));
    source.notes.push_back("configs, scheduler and tokenizer from " + options.config_dir);
  } else {
    FAIRY_ASSIGN_OR_RETURN(InferredConfigs inferred, InferOriginalConfigs(*file));
    const std::string inferred_from = path + " (inferred ";
    source.unet.config = inferred.unet;
    source.unet.config_source = inferred_from + "unet config)";
    source.vae.config = inferred.vae;
    source.vae.config_source = inferred_from + "vae config)";
    source.text_encoder.config = inferred.text_encoder;
    source.text_encoder.config_source = inferred_from + "text_encoder config)";
    source.scheduler_config = inferred.scheduler;
    source.scheduler_source = inferred_from + "scheduler config)";
    source.tokenizer = TokenizerFiles::Builtin();
    source.notes = inferred.notes;
    source.notes.push_back("tokenizer: the built-in CLIP tokenizer (a single file holds none)");
  }
  // Input blocks are numbered with the UNet's layers per block.
  const nlohmann::json& layers = source.unet.config.contains("layers_per_block")
                                     ? source.unet.config["layers_per_block"]
                                     : nlohmann::json(2);
  const nlohmann::json& first = layers.is_array() && !layers.empty() ? layers[0] : layers;
  if (!first.is_number_integer()) {
    return Status::InvalidArgument(source.unet.config_source +
                                   ": \"layers_per_block\": expected an integer");
  }
  OriginalLayoutOptions lo;
  lo.ema = options.ema;
  FAIRY_ASSIGN_OR_RETURN(OriginalParts parts, MapOriginalLayout(file, first.get<int64_t>(), lo));
  source.unet.tensors = std::move(parts.unet);
  source.vae.tensors = std::move(parts.vae);
  source.text_encoder.tensors = std::move(parts.text_encoder);
  source.unet.what = "unet (" + path + ", " + kOriginalUNetPrefix + "*)";
  source.vae.what = "vae (" + path + ", " + kOriginalVAEPrefix + "*)";
  source.text_encoder.what = "text_encoder (" + path + ", " + kOriginalTextPrefix + "*)";
  source.notes.insert(source.notes.end(), parts.notes.begin(), parts.notes.end());
  return source;
}

}  // namespace

Result<ModelSource> ModelSource::Open(const std::string& path, const ModelSourceOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return OpenFolder(path, options);
  if (!fs::exists(path, ec)) return Status::NotFound(path + ": no such model folder or file");
  if (HasExtension(path, {".ckpt", ".bin", ".pt", ".pth"})) return PickleRefused(path);
  if (!HasExtension(path, {".safetensors"})) {
    return Status::Unsupported(
        path + ": a model is a diffusers folder or an original-layout .safetensors file");
  }
  if (!options.variant.empty()) {
    return Status::InvalidArgument(path + ": variant \"" + options.variant +
                                   "\" asked for; variants are files of diffusers folders");
  }
  return OpenSingleFile(path, options);
}

int64_t ModelSource::TensorBytes() const {
  return engine::TensorBytes(unet.tensors) + engine::TensorBytes(vae.tensors) +
         engine::TensorBytes(text_encoder.tensors);
}

}  // namespace fairy::engine
