// Paths the tests need: the shared reference data, the source tree, built binaries, temp folders.
#pragma once

#include <string>

namespace fairy::testing {

// ../shared beside the checkout (FAIRY_SHARED_DIR at configure time; the environment variable of
// the same name overrides it).
std::string SharedDir();
// ../shared/media/NAME
std::string MediaPath(const std::string& name);
// The build's bin/ folder (fairy, fairy-engine, ...).
std::string BinDir();
std::string SourceDir();
// A fresh empty folder under $TMPDIR, removed when the process exits.
std::string MakeTempDir(const std::string& prefix);

}  // namespace fairy::testing
