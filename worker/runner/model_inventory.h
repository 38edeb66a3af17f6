// The model ids a worker can load: the entries of its models folder that a job may name by id
// (`model: NAME`). Reported to the coordinator in READY and, when they change, in a HEARTBEAT.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::worker {

// The entries of `models_dir` that are diffusers folders (hold model_index.json) or
// `NAME.safetensors` files (the id keeps the extension), sorted. Symbolic links are followed.
// Hidden entries (".name", e.g. a file still being copied under a temporary name) and names
// starting with '~' are left out. A listing, nothing is opened: cheap enough to repeat every few
// seconds. NotFound / IOError naming the folder when it cannot be listed.
Result<std::vector<std::string>> ScanModels(const std::string& models_dir);

}  // namespace fairy::worker
