// Paths the tests need: the shared reference data, the source tree, built binaries, temp folders.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace fairy::testing {

// ../shared beside the checkout (FAIRY_SHARED_DIR at configure time; the environment variable of
// the same name overrides it).
std::string SharedDir();
// ../shared/media/NAME
std::string MediaPath(const std::string& name);
// ../shared/fixtures/pix2pix-tiny: the tiny InstructPix2Pix checkpoint and its golden outputs.
std::string TinyFixture();

// The reference data is not in the repository: a plain clone has no ../shared. A test that reads a
// file of it names the file (relative to SharedDir()) with FAIRY_REQUIRE_SHARED and is skipped,
// not failed, when the file is absent. scripts/run-tests.sh counts these skips by the message's
// first words, kMissingSharedPrefix.
inline constexpr const char* kMissingSharedPrefix = "missing reference data: ";
// "" when every one of `relative_paths` exists under SharedDir(); else the one-line reason naming
// the first that does not: kMissingSharedPrefix, its path, and where the reference data goes.
std::string MissingShared(std::initializer_list<std::string> relative_paths);

// The build's bin/ folder (fairy, fairy-engine, ...).
std::string BinDir();
std::string SourceDir();
// A fresh empty folder under $TMPDIR, removed when the process exits.
std::string MakeTempDir(const std::string& prefix);

}  // namespace fairy::testing

// Skips the current test (from its body or SetUp(); in gtest 1.12 a skip in SetUpTestSuite() does
// not skip the tests) unless every named file or folder exists under SharedDir():
//   FAIRY_REQUIRE_SHARED("media/manifest.json", "media/bikes.mp4");
#define FAIRY_REQUIRE_SHARED(...)                                                             \
  do {                                                                                        \
    const std::string fairy_missing_shared_ = ::fairy::testing::MissingShared({__VA_ARGS__}); \
    if (!fairy_missing_shared_.empty()) GTEST_SKIP() << fairy_missing_shared_;                \
  } while (0)
