#include "worker/engine/weights.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fairy::engine {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host needs byte swapping");

torch::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kF64: return torch::kFloat64;
    case DType::kF32: return torch::kFloat32;
    case DType::kF16: return torch::kFloat16;
    case DType::kBF16: return torch::kBFloat16;
    case DType::kI64: return torch::kInt64;
    case DType::kI32: return torch::kInt32;
    case DType::kI16: return torch::kInt16;
    case DType::kI8: return torch::kInt8;
    case DType::kU8: return torch::kUInt8;
    case DType::kBool: return torch::kBool;
  }
  return torch::kFloat32;
}

// "a, b, c (and 12 more)".
std::string JoinLimited(const std::vector<std::string>& items, size_t limit = 12) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) {
    if (i > 0) out += ", ";
    out += items[i];
  }
  if (items.size() > limit) out += " (and " + std::to_string(items.size() - limit) + " more)";
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string ShapeString(c10::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::NotFound(path + ": no such file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path + ": cannot open for reading");
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::IOError(path + ": read error");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    return Status::InvalidArgument(path + ": invalid JSON at byte " + std::to_string(e.byte) +
                                   ": " + e.what());
  }
  return json;
}

torch::Tensor TensorFromSafetensors(const SafetensorsFile& file, const TensorInfo& info) {
  torch::Tensor out = torch::empty(info.shape, torch::TensorOptions().dtype(ToScalarType(info.dtype)));
  std::span<const std::byte> data = file.Data(info);
  // memcpy rather than from_blob: the data section need not be aligned for the element type.
  if (!data.empty()) std::memcpy(out.data_ptr(), data.data(), data.size());
  return out;
}

Result<TensorMap> ReadWeightFiles(const std::vector<std::string>& safetensors_files,
                                  const std::string& what) {
  if (safetensors_files.empty()) return Status::InvalidArgument(what + ": no weight files given");
  TensorMap tensors;
  for (const std::string& path : safetensors_files) {
    auto opened = SafetensorsFile::Open(path);
    if (!opened.ok()) return opened.status().WithContext(what);
    std::shared_ptr<const SafetensorsFile> file = opened.value();
    for (const TensorInfo& info : file->tensors()) {
      auto [it, inserted] = tensors.emplace(info.name, CheckpointTensor{file, &info, info.shape, info.name});
      if (!inserted) {
        return Status::Corruption(what + ": tensor \"" + info.name + "\" is in both " +
                                  it->second.file->path() + " and " + path);
      }
    }
  }
  return tensors;
}

int RenameDeprecatedAttention(TensorMap& tensors) {
  // (old, new) leaf names of an attention block built by diffusers' UNetMidBlock2D / AttnBlocks
  // with _from_deprecated_attn_block; group_norm keeps its name.
  static const std::pair<const char*, const char*> kRenames[] = {
      {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
  std::vector<std::pair<std::string, std::string>> moves;
  for (const auto& [name, tensor] : tensors) {
    // "<prefix>mid_block.attentions.<n>.<old>.<weight|bias>"
    const size_t at = name.find("mid_block.attentions.");
    if (at == std::string::npos || (at > 0 && name[at - 1] != '.')) continue;
    for (const auto& [old_leaf, new_leaf] : kRenames) {
      for (const char* kind : {".weight", ".bias"}) {
        const std::string suffix = std::string(".") + old_leaf + kind;
        if (!EndsWith(name, suffix)) continue;
        const std::string block = name.substr(0, name.size() - suffix.size());
        // Only directly under the attention block: "<...>.attentions.<n>".
        const size_t dot = block.rfind('.');
        if (dot == std::string::npos || dot < 10 || block.compare(dot - 10, 10, "attentions") != 0) continue;
        const std::string renamed = block + "." + new_leaf + kind;
        if (tensors.count(renamed) == 0) moves.emplace_back(name, renamed);
      }
    }
  }
  for (const auto& [from, to] : moves) {
    auto node = tensors.extract(from);
    node.key() = to;
    tensors.insert(std::move(node));
  }
  return static_cast<int>(moves.size());
}

int64_t TensorBytes(const TensorMap& tensors) {
  int64_t bytes = 0;
  for (const auto& [name, tensor] : tensors) bytes += static_cast<int64_t>(tensor.info->end - tensor.info->begin);
  return bytes;
}

namespace {

// Every named parameter and buffer of `module`.
std::vector<std::pair<std::string, torch::Tensor>> Targets(torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    targets.emplace_back(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    targets.emplace_back(item.key(), item.value());
  }
  return targets;
}

}  // namespace

Status CheckWeights(torch::nn::Module& module, const TensorMap& tensors, const std::string& what,
                    const LoadWeightsOptions& options) {
  const std::vector<std::pair<std::string, torch::Tensor>> targets = Targets(module);
  std::vector<std::string> missing, misshaped, unexpected;
  std::map<std::string, bool> used;
  for (const auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    used[name] = true;
    const std::vector<int64_t>& shape = it->second.shape;
    if (c10::IntArrayRef(shape) != target.sizes()) {
      misshaped.push_back(name + " (checkpoint " + ShapeString(shape) + ", model " +
                          ShapeString(target.sizes()) + ")");
    }
  }
  for (const auto& [name, source] : tensors) {
    if (used.count(name) != 0) continue;
    bool ignored = false;
    for (const std::string& suffix : options.ignore_unexpected_suffixes) {
      ignored = ignored || EndsWith(name, suffix);
    }
    if (!ignored) unexpected.push_back(source.stored_name);
  }
  if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
    std::string message = what + ": checkpoint does not match the model:";
    for (const auto& [label, names] : {std::pair{" missing: ", &missing}, std::pair{" unexpected: ", &unexpected},
                                       std::pair{" mis-shaped: ", &misshaped}}) {
      if (names->empty()) continue;
      message.append(" ").append(std::to_string(names->size())).append(label);
      message.append(JoinLimited(*names)).append(";");
    }
    message.pop_back();
    return Status::InvalidArgument(message);
  }
  return Status::OK();
}

Status LoadWeights(torch::nn::Module& module, const TensorMap& tensors, const std::string& what,
                   const LoadWeightsOptions& options) {
  FAIRY_RETURN_IF_ERROR(CheckWeights(module, tensors, what, options));
  std::vector<std::pair<std::string, torch::Tensor>> targets = Targets(module);
  torch::NoGradGuard no_grad;
  int64_t bytes_read = 0;
  for (auto& [name, target] : targets) {
    const CheckpointTensor& source = tensors.at(name);
    torch::Tensor value = TensorFromSafetensors(*source.file, *source.info).view(source.shape);
    target.copy_(value.to(target.device(), target.scalar_type()));
    bytes_read += static_cast<int64_t>(source.info->end - source.info->begin);
    if (options.on_progress) options.on_progress(bytes_read);
  }
  return Status::OK();
}

Status PickleRefused(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const bool part_file = p.stem() == "diffusion_pytorch_model" || p.stem() == "model";
  const std::string out = (p.parent_path() / p.stem()).string() + ".safetensors";
  std::string message =
      path + ": pickled PyTorch weights are never loaded (unpickling runs code). Where PyTorch is "
             "installed, save the tensors as safetensors (weights_only=True loads no code):\n"
             "  python3 -c \"import torch, safetensors.torch as st; sd = torch.load('" +
      path +
      "', map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); "
      "st.save_file({k: v.contiguous() for k, v in sd.items() if isinstance(v, torch.Tensor)}, '" +
      out + "')\"";
  if (!part_file) {
    message += "\nthen: fairy-engine convert " + out + " --output " +
               (p.parent_path() / p.stem()).string() + "-diffusers";
  }
  return Status::Unsupported(message);
}

Result<std::vector<std::string>> FindWeightFiles(const std::string& part_dir, const std::string& variant) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(part_dir, ec)) return Status::NotFound(part_dir + ": no such folder");
  static const char* kNames[] = {"diffusion_pytorch_model", "model"};
  // The single file and the shard index of `name` for a variant ("" = none), as diffusers names
  // them: "<name>.fp16.safetensors", "<name>.safetensors.index.fp16.json".
  const auto single_file = [&](const char* name, const std::string& v) {
    return part_dir + "/" + name + (v.empty() ? "" : "." + v) + ".safetensors";
  };
  const auto index_file = [&](const char* name, const std::string& v) {
    return part_dir + "/" + name + ".safetensors.index" + (v.empty() ? "" : "." + v) + ".json";
  };
  const auto find = [&](const std::string& v) -> Result<std::vector<std::string>> {
    for (const char* name : kNames) {
      const std::string single = single_file(name, v);
      if (fs::is_regular_file(single, ec)) return std::vector<std::string>{single};
      const std::string index = index_file(name, v);
      if (!fs::is_regular_file(index, ec)) continue;
      FAIRY_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(index));
      if (!json.contains("weight_map") || !json["weight_map"].is_object()) {
        return Status::InvalidArgument(index + ": \"weight_map\": expected an object");
      }
      std::vector<std::string> files;
      for (const auto& [key, value] : json["weight_map"].items()) {
        if (!value.is_string()) {
          return Status::InvalidArgument(index + ": \"weight_map\".\"" + key + "\": expected a file name");
        }
        const std::string file = value.get<std::string>();
        if (file.find('/') != std::string::npos || file.find("..") != std::string::npos) {
          return Status::InvalidArgument(index + ": \"weight_map\".\"" + key + "\": \"" + file +
                                         "\" must be a file name inside the folder");
        }
        const std::string path = part_dir + "/" + file;
        if (std::find(files.begin(), files.end(), path) == files.end()) files.push_back(path);
      }
      if (files.empty()) return Status::InvalidArgument(index + ": \"weight_map\" is empty");
      return files;
    }
    return std::vector<std::string>{};  // none of this variant
  };
  std::vector<std::string> variants;
  if (!variant.empty()) {
    variants = {variant};
  } else {
    variants = {""};
    // A folder with one variant's weights and nothing else (e.g. only the fp16 files).
    std::vector<std::string> seen;
    for (const auto& entry : fs::directory_iterator(part_dir, ec)) {
      const std::string file = entry.path().filename().string();
      for (const char* name : kNames) {
        const std::string prefix = std::string(name) + ".";
        // "<name>.<variant>.safetensors": longer than "<name>." + ".safetensors".
        if (file.rfind(prefix, 0) != 0 || !EndsWith(file, ".safetensors") || file.size() <= prefix.size() + 12) {
          continue;
        }
        std::string v = file.substr(prefix.size(), file.size() - prefix.size() - 12);
        v = v.substr(0, v.find('-'));  // "fp16-00001-of-00002" -> "fp16"
        if (!v.empty() && std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
      }
    }
    std::sort(seen.begin(), seen.end());
    if (seen.size() == 1) variants.push_back(seen[0]);
  }
  for (const std::string& v : variants) {
    FAIRY_ASSIGN_OR_RETURN(std::vector<std::string> files, find(v));
    if (!files.empty()) return files;
  }
  for (const char* name : kNames) {
    for (const char* ext : {".bin", ".ckpt"}) {
      const std::string legacy = part_dir + "/" + name + (variant.empty() ? "" : "." + variant) + ext;
      if (fs::is_regular_file(legacy, ec)) return PickleRefused(legacy);
    }
  }
  if (!variant.empty()) {
    return Status::NotFound(part_dir + ": no weights of variant \"" + variant + "\" (looked for " +
                            single_file(kNames[0], variant) + ", " + single_file(kNames[1], variant) +
                            " and their .index." + variant + ".json)");
  }
  return Status::NotFound(part_dir +
                          ": no weights (looked for diffusion_pytorch_model.safetensors, "
                          "model.safetensors, their .index.json and a single variant of them)");
}

Result<TensorMap> ReadPartFolder(const std::string& part_dir, const std::string& variant) {
  FAIRY_ASSIGN_OR_RETURN(std::vector<std::string> files, FindWeightFiles(part_dir, variant));
  FAIRY_ASSIGN_OR_RETURN(TensorMap tensors, ReadWeightFiles(files, part_dir));
  RenameDeprecatedAttention(tensors);
  return tensors;
}

Result<torch::ScalarType> ParseScalarType(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return torch::kFloat32;
  if (name == "float16" || name == "fp16" || name == "half") return torch::kFloat16;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float64" || name == "fp64" || name == "double") return torch::kFloat64;
  return Status::InvalidArgument("dtype \"" + name +
                                 "\": expected one of float32, float16, bfloat16, float64");
}

Result<torch::Device> ParseDevice(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name.size() > 4) {
      if (name[4] != ':' || name.size() == 5 || name.size() > 8 ||
          name.find_first_not_of("0123456789", 5) != std::string::npos) {
        return Status::InvalidArgument("device \"" + name + "\": expected cpu, cuda or cuda:N");
      }
      index = std::stoi(name.substr(5));
    }
    if (!torch::cuda::is_available()) {
      return Status::Unavailable("device \"" + name + "\": this LibTorch build sees no CUDA device");
    }
    if (index >= static_cast<int>(torch::cuda::device_count())) {
      return Status::InvalidArgument("device \"" + name + "\": only " +
                                     std::to_string(torch::cuda::device_count()) +
                                     " CUDA device(s)");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return Status::InvalidArgument("device \"" + name + "\": expected cpu, cuda or cuda:N");
}

}  // namespace fairy::engine
