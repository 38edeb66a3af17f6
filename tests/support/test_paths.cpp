#include "tests/support/test_paths.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace fairy::testing {
namespace {

std::vector<std::string>& TempDirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

void RemoveTempDirs() {
  if (std::getenv("FAIRY_KEEP_TEST_FILES") != nullptr) return;
  for (const auto& d : TempDirs()) {
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
  }
}

}  // namespace

std::string SharedDir() {
  if (const char* env = std::getenv("FAIRY_SHARED_DIR")) return env;
#ifdef FAIRY_SHARED_DIR
  return FAIRY_SHARED_DIR;
#else
  return SourceDir() + "/../shared";
#endif
}

std::string MediaPath(const std::string& name) { return SharedDir() + "/media/" + name; }

std::string TinyFixture() { return SharedDir() + "/fixtures/pix2pix-tiny"; }

std::string MissingShared(std::initializer_list<std::string> relative_paths) {
  for (const std::string& relative : relative_paths) {
    const std::string path = SharedDir() + "/" + relative;
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) continue;
    return kMissingSharedPrefix + path +
           " (put the reference data folder at ../shared beside the checkout, or set "
           "FAIRY_SHARED_DIR to it)";
  }
  return "";
}

std::string BinDir() {
#ifdef FAIRY_BIN_DIR
  return FAIRY_BIN_DIR;
#else
  return "build/bin";
#endif
}

std::string SourceDir() {
#ifdef FAIRY_SOURCE_DIR
  return FAIRY_SOURCE_DIR;
#else
  return ".";
#endif
}

std::string MakeTempDir(const std::string& prefix) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  if (TempDirs().empty()) std::atexit(RemoveTempDirs);
  TempDirs().push_back(pattern);
  return pattern;
}

}  // namespace fairy::testing
