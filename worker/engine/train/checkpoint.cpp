#include "worker/engine/train/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/safetensors.h"

namespace fairy::engine::train {
namespace {

namespace fs = std::filesystem;

Result<DType> ToDType(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return DType::kF32;
    case torch::kFloat16: return DType::kF16;
    case torch::kBFloat16: return DType::kBF16;
    case torch::kInt64: return DType::kI64;
    default: return Status::Unsupported(std::string("cannot store tensors of dtype ") + c10::toString(type));
  }
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status WriteNamed(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, torch::ScalarType dtype,
                  const std::string& path, const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;  // owns the bytes until written
  std::vector<TensorToWrite> out;
  keep.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    torch::ScalarType want = tensor.is_floating_point() ? dtype : tensor.scalar_type();
    FAIRY_ASSIGN_OR_RETURN(DType stored, ToDType(want));
    keep.push_back(tensor.detach().to(torch::kCPU, want).contiguous());
    const torch::Tensor& t = keep.back();
    TensorToWrite w;
    w.name = name;
    w.dtype = stored;
    w.shape.assign(t.sizes().begin(), t.sizes().end());
    w.data = std::span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()), t.nbytes());
    out.push_back(std::move(w));
  }
  return WriteSafetensors(path, out, metadata);
}

}  // namespace

Status SaveModuleWeights(torch::nn::Module& module, const std::string& path, torch::ScalarType dtype,
                         const std::map<std::string, std::string>& metadata,
                         const std::vector<std::string>& skip_suffixes) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  auto skipped = [&](const std::string& name) {
    for (const auto& s : skip_suffixes) {
      if (EndsWith(name, s)) return true;
    }
    return false;
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!skipped(item.key())) tensors.emplace_back(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (!skipped(item.key())) tensors.emplace_back(item.key(), item.value());
  }
  return WriteNamed(tensors, dtype, path, metadata);
}

Status SaveTensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& path,
                   const std::map<std::string, std::string>& metadata) {
  return WriteNamed(tensors, torch::kFloat32, path, metadata);
}

Result<std::map<std::string, torch::Tensor>> LoadTensors(const std::string& path) {
  FAIRY_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  std::map<std::string, torch::Tensor> out;
  for (const TensorInfo& info : file->tensors()) {
    torch::ScalarType type;
    switch (info.dtype) {
      case DType::kF32: type = torch::kFloat32; break;
      case DType::kF16: type = torch::kFloat16; break;
      case DType::kBF16: type = torch::kBFloat16; break;
      case DType::kI64: type = torch::kInt64; break;
      case DType::kF64: type = torch::kFloat64; break;
      default:
        return Status::Unsupported(path + ": tensor \"" + info.name + "\" has dtype " + DTypeName(info.dtype) +
                                   " (supported here: F32, F16, BF16, F64, I64)");
    }
    auto t = torch::empty(std::vector<int64_t>(info.shape.begin(), info.shape.end()), type);
    auto bytes = file->Data(info);
    std::memcpy(t.data_ptr(), bytes.data(), bytes.size());  // safetensors and x86 are little-endian
    out[info.name] = t;
  }
  return out;
}

Status LoadModuleWeights(torch::nn::Module& module, const std::string& path,
                         const std::vector<std::string>& ignore_suffixes) {
  FAIRY_ASSIGN_OR_RETURN(auto tensors, LoadTensors(path));
  std::vector<std::string> missing, misshaped;
  std::map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters(true)) targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers(true)) targets[item.key()] = item.value();
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.sizes() != target.sizes()) {
      std::ostringstream os;
      os << name << " (file " << it->second.sizes() << ", model " << target.sizes() << ")";
      misshaped.push_back(os.str());
      continue;
    }
    target.copy_(it->second.to(target.device(), target.scalar_type()));
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : tensors) {
    bool ignored = false;
    for (const auto& s : ignore_suffixes) ignored = ignored || EndsWith(name, s);
    if (!ignored && targets.count(name) == 0) unexpected.push_back(name);
  }
  if (missing.empty() && misshaped.empty() && unexpected.empty()) return Status::OK();
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 8) s += ", ... (" + std::to_string(v.size()) + " in all)";
    return s;
  };
  std::string msg = path + ": weights do not fit the model:";
  if (!missing.empty()) msg += " missing [" + list(missing) + "]";
  if (!unexpected.empty()) msg += " unexpected [" + list(unexpected) + "]";
  if (!misshaped.empty()) msg += " mis-shaped [" + list(misshaped) + "]";
  return Status::InvalidArgument(msg);
}

Status WriteJsonFile(const std::string& path, const nlohmann::json& json) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::IOError("cannot write " + tmp + ": " + std::strerror(errno));
    f << json.dump(2) << "\n";
    if (!f) return Status::IOError("cannot write " + tmp + ": " + std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::OK();
}

Status CopyFolderFiles(const std::string& from, const std::string& to) {
  std::error_code ec;
  if (!fs::is_directory(from, ec)) return Status::NotFound("no such folder: " + from);
  fs::create_directories(to, ec);
  if (ec) return Status::IOError("cannot create " + to + ": " + ec.message());
  for (const auto& entry : fs::directory_iterator(from, ec)) {
    if (!entry.is_regular_file()) continue;
    fs::path dst = fs::path(to) / entry.path().filename();
    fs::copy_file(entry.path(), dst, fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::IOError("cannot copy " + entry.path().string() + " to " + dst.string() + ": " + ec.message());
    // Copies of read-only sources (the shared fixtures) must stay writable for the next save.
    fs::permissions(dst, fs::perms::owner_write, fs::perm_options::add, ec);
  }
  if (ec) return Status::IOError("cannot list " + from + ": " + ec.message());
  return Status::OK();
}

nlohmann::json InstructPix2PixModelIndex() {
  return nlohmann::json{
      {"_class_name", "StableDiffusionInstructPix2PixPipeline"},
      {"_diffusers_version", "0.25.1"},
      {"feature_extractor", {nullptr, nullptr}},
      {"image_encoder", {nullptr, nullptr}},
      {"requires_safety_checker", false},
      {"safety_checker", {nullptr, nullptr}},
      {"scheduler", {"diffusers", "EulerAncestralDiscreteScheduler"}},
      {"text_encoder", {"transformers", "CLIPTextModel"}},
      {"tokenizer", {"transformers", "CLIPTokenizer"}},
      {"unet", {"diffusers", "UNet2DConditionModel"}},
      {"vae", {"diffusers", "AutoencoderKL"}},
  };
}

}  // namespace fairy::engine::train
