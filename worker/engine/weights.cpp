#include "worker/engine/weights.h"

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

Status LoadWeights(torch::nn::Module& module, const std::vector<std::string>& safetensors_files,
                   const std::string& what, const LoadWeightsOptions& options) {
  if (safetensors_files.empty()) return Status::InvalidArgument(what + ": no weight files given");
  struct Source {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  std::map<std::string, Source> available;
  for (const std::string& path : safetensors_files) {
    auto opened = SafetensorsFile::Open(path);
    if (!opened.ok()) return opened.status().WithContext(what);
    files.push_back(opened.value());
    for (const TensorInfo& info : files.back()->tensors()) {
      auto [it, inserted] = available.emplace(info.name, Source{files.back().get(), &info});
      if (!inserted) {
        return Status::Corruption(what + ": tensor \"" + info.name + "\" is in both " +
                                  it->second.file->path() + " and " + path);
      }
    }
  }

  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    targets.emplace_back(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    targets.emplace_back(item.key(), item.value());
  }

  std::vector<std::string> missing, misshaped, unexpected;
  std::map<std::string, bool> used;
  for (const auto& [name, target] : targets) {
    auto it = available.find(name);
    if (it == available.end()) {
      missing.push_back(name);
      continue;
    }
    used[name] = true;
    const std::vector<int64_t>& shape = it->second.info->shape;
    if (c10::IntArrayRef(shape) != target.sizes()) {
      misshaped.push_back(name + " (checkpoint " + ShapeString(shape) + ", model " +
                          ShapeString(target.sizes()) + ")");
    }
  }
  for (const auto& [name, source] : available) {
    if (used.count(name) != 0) continue;
    bool ignored = false;
    for (const std::string& suffix : options.ignore_unexpected_suffixes) {
      ignored = ignored || EndsWith(name, suffix);
    }
    if (!ignored) unexpected.push_back(name);
  }
  if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
    std::string message = what + ": checkpoint does not match the model:";
    if (!missing.empty()) {
      message += " " + std::to_string(missing.size()) + " missing: " + JoinLimited(missing) + ";";
    }
    if (!unexpected.empty()) {
      message += " " + std::to_string(unexpected.size()) +
                 " unexpected: " + JoinLimited(unexpected) + ";";
    }
    if (!misshaped.empty()) {
      message += " " + std::to_string(misshaped.size()) +
                 " mis-shaped: " + JoinLimited(misshaped) + ";";
    }
    message.pop_back();
    return Status::InvalidArgument(message);
  }

  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    const Source& source = available.at(name);
    torch::Tensor value = TensorFromSafetensors(*source.file, *source.info);
    target.copy_(value.to(target.device(), target.scalar_type()));
  }
  return Status::OK();
}

Result<std::vector<std::string>> FindWeightFiles(const std::string& part_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(part_dir, ec)) return Status::NotFound(part_dir + ": no such folder");
  static const char* kNames[] = {"diffusion_pytorch_model", "model"};
  for (const char* name : kNames) {
    const std::string single = part_dir + "/" + name + ".safetensors";
    if (fs::is_regular_file(single, ec)) return std::vector<std::string>{single};
    const std::string index = single + ".index.json";
    if (!fs::is_regular_file(index, ec)) continue;
    FAIRY_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(index));
    if (!json.contains("weight_map") || !json["weight_map"].is_object()) {
      return Status::InvalidArgument(index + ": \"weight_map\": expected an object");
    }
    std::vector<std::string> files;
    for (const auto& [key, value] : json["weight_map"].items()) {
      if (!value.is_string()) {
        return Status::InvalidArgument(index + ": \"weight_map\".\"" + key +
                                       "\": expected a file name");
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
  for (const char* name : kNames) {
    for (const char* ext : {".bin", ".ckpt"}) {
      const std::string legacy = part_dir + "/" + name + ext;
      if (fs::is_regular_file(legacy, ec)) {
        return Status::Unsupported(legacy + ": pickled PyTorch weights are not read; convert the "
                                   "model to safetensors");
      }
    }
  }
  return Status::NotFound(part_dir +
                          ": no weights (looked for diffusion_pytorch_model.safetensors, "
                          "model.safetensors and their .index.json)");
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
