#include "jobs/storage_paths.h"

#include <filesystem>

namespace fairy::jobs {
namespace fs = std::filesystem;

bool IsUnder(const std::string& path, const std::string& root) {
  const fs::path p(path), r(root);
  auto pi = p.begin();
  for (auto ri = r.begin(); ri != r.end(); ++ri, ++pi) {
    if (ri->empty() && std::next(ri) == r.end()) break;  // a trailing slash of the root
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

static fs::path Canonical(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal() : c;
}

Result<std::string> ResolveStoragePath(const std::string& path, const std::vector<std::string>& roots,
                                       const std::string& base_dir) {
  if (path.empty()) return Status::InvalidArgument("must not be empty");
  if (path.find('\0') != std::string::npos) return Status::InvalidArgument("contains a NUL byte");
  fs::path p(path);
  if (p.is_relative()) {
    fs::path base = roots.empty() ? fs::path(base_dir) : fs::path(roots.front());
    for (const std::string& r : roots) {
      std::error_code ec;
      if (fs::exists(fs::path(r) / p, ec)) {
        base = r;
        break;
      }
    }
    if (base.empty()) {
      std::error_code ec;
      base = fs::current_path(ec);
    }
    p = base / p;
  }
  const std::string resolved = Canonical(p).string();
  if (roots.empty()) return resolved;
  for (const std::string& r : roots) {
    if (IsUnder(resolved, r) && fs::path(resolved) != fs::path(r)) return resolved;
  }
  std::string list;
  for (const std::string& r : roots) list += (list.empty() ? "" : ", ") + r;
  return Status::PermissionDenied("\"" + path + "\" resolves to " + resolved +
                                  ", outside the storage roots (" + list + ")");
}

}  // namespace fairy::jobs
