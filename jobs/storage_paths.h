// Storage roots: the folders a job may read and write. Every path a job names is resolved and
// checked here so that no job can reach outside them, whatever `..` or symlinks it uses.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::jobs {

// Resolves `path` for reading or writing:
//  - a relative path is taken relative to the first root under which it exists, else to the
//    first root (`base_dir` instead when `roots` is empty);
//  - `.` and `..` are normalised and every symlink of the existing part is followed
//    (std::filesystem::weakly_canonical), so a link that points outside a root is seen as outside;
//  - with roots given, the result must lie inside one of them (a root itself is not a file
//    location): PermissionDenied otherwise, naming the resolved path and the roots.
// REQUIRES: roots are absolute and canonical (fairy::config makes them so).
Result<std::string> ResolveStoragePath(const std::string& path, const std::vector<std::string>& roots,
                                       const std::string& base_dir);

// True when `path` (absolute, canonical) is `root` or lies under it, component by component.
bool IsUnder(const std::string& path, const std::string& root);

}  // namespace fairy::jobs
