#include "worker/runner/model_inventory.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace fairy::worker {

namespace fs = std::filesystem;

Result<std::vector<std::string>> ScanModels(const std::string& models_dir) {
  std::error_code ec;
  if (!fs::is_directory(models_dir, ec)) {
    return Status::NotFound("models folder " + models_dir + " does not exist or is no folder");
  }
  std::vector<std::string> ids;
  fs::directory_iterator it(models_dir, ec);
  if (ec) return Status::IOError("models folder " + models_dir + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.empty() || name[0] == '.' || name[0] == '~') continue;
    std::error_code entry_ec;
    if (fs::is_directory(path, entry_ec)) {
      if (fs::is_regular_file(path / "model_index.json", entry_ec)) ids.push_back(name);
    } else if (path.extension() == ".safetensors" && fs::is_regular_file(path, entry_ec)) {
      ids.push_back(name);
    }
  }
  if (ec) return Status::IOError("models folder " + models_dir + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace fairy::worker
