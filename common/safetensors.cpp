#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace fairy {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2}, {DType::kI8, "I8", 1}, {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

std::string Errno() { return std::strerror(errno); }

}  // namespace

const char* DTypeName(DType dtype) {
  for (const auto& e : kDTypes) if (e.dtype == dtype) return e.name;
  return "?";
}

size_t DTypeSize(DType dtype) {
  for (const auto& e : kDTypes) if (e.dtype == dtype) return e.size;
  return 0;
}

Result<DType> ParseDType(std::string_view name) {
  for (const auto& e : kDTypes) if (name == e.name) return e.dtype;
  return Status::Unsupported("unsupported dtype '" + std::string(name) + "'");
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::IOError(path + ": cannot open: " + Errno());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string err = Errno();
    ::close(fd);
    return Status::IOError(path + ": cannot stat: " + err);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Status::Corruption(path + ": file of " + std::to_string(size) +
                              " bytes is too short for a safetensors header");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Status::IOError(path + ": cannot mmap: " + Errno());

  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = static_cast<const std::byte*>(map);
  file->map_size_ = size;

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(file->map_[i]);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return Status::Corruption(path + ": header length " + std::to_string(header_len) +
                              " exceeds the file size " + std::to_string(size) +
                              " (truncated or not a safetensors file)");
  }
  file->data_offset_ = 8 + header_len;
  const uint64_t data_size = size - file->data_offset_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(file->map_ + 8),
                                   reinterpret_cast<const char*>(file->map_ + 8 + header_len));
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(path + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) return Status::Corruption(path + ": header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return Status::Corruption(path + ": __metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          return Status::Corruption(path + ": __metadata__." + m.key() + " is not a string");
        file->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      return Status::Corruption(where + ": entry needs dtype, shape and data_offsets");
    }
    TensorInfo info;
    info.name = name;
    if (!entry["dtype"].is_string()) return Status::Corruption(where + ": dtype is not a string");
    auto dtype = ParseDType(entry["dtype"].get<std::string>());
    if (!dtype.ok()) return dtype.status().WithContext(where);
    info.dtype = *dtype;
    const auto& shape = entry["shape"];
    if (!shape.is_array()) return Status::Corruption(where + ": shape is not a list");
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        return Status::Corruption(where + ": shape has a negative or non-integer dimension");
      info.shape.push_back(d.get<int64_t>());
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      return Status::Corruption(where + ": data_offsets must be two non-negative integers");
    }
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    if (info.begin > info.end || info.end > data_size) {
      return Status::Corruption(where + ": data_offsets [" + std::to_string(info.begin) + ", " +
                                std::to_string(info.end) + ") lie outside the " +
                                std::to_string(data_size) + "-byte data section (truncated file?)");
    }
    const uint64_t expected = static_cast<uint64_t>(info.numel()) * DTypeSize(info.dtype);
    if (info.end - info.begin != expected) {
      return Status::Corruption(where + ": holds " + std::to_string(info.end - info.begin) +
                                " bytes but its shape and dtype need " + std::to_string(expected));
    }
    file->tensors_.push_back(std::move(info));
  }

  // Tensors must not overlap (the format also requires them to tile the data section).
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : file->tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return Status::Corruption(path + ": tensors '" + by_offset[i - 1]->name + "' and '" +
                                by_offset[i]->name + "' overlap");
    }
  }
  std::sort(file->tensors_.begin(), file->tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return std::shared_ptr<const SafetensorsFile>(std::move(file));
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<std::byte*>(map_), map_size_);
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  if (it == tensors_.end() || it->name != name) return nullptr;
  return &*it;
}

std::span<const std::byte> SafetensorsFile::Data(const TensorInfo& info) const {
  return {map_ + data_offset_ + info.begin, static_cast<size_t>(info.end - info.begin)};
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    const uint64_t bytes = static_cast<uint64_t>(numel) * DTypeSize(t.dtype);
    if (bytes != t.data.size()) {
      return Status::InvalidArgument(path + ": tensor '" + t.name + "' has " +
                                     std::to_string(t.data.size()) + " bytes, shape needs " +
                                     std::to_string(bytes));
    }
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');  // align the data section like upstream

  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IOError(tmp + ": cannot create: " + Errno());
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const auto& t : tensors) {
    if (!ok) break;
    ok = t.data.empty() || std::fwrite(t.data.data(), 1, t.data.size(), f) == t.data.size();
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return Status::IOError(tmp + ": write failed: " + Errno());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IOError(path + ": cannot rename into place: " + Errno());
  }
  return Status::OK();
}

}  // namespace fairy
