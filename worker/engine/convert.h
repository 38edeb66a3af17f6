// Checking a ModelSource against the engine's modules, and writing it as a diffusers folder
// (`fairy-engine convert`).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

#include "common/status.h"
#include "worker/engine/model_source.h"

namespace fairy::engine {

// Parses every part's config and checks its tensors' names and shapes against the module the
// config describes (modules are built on the CPU; no tensor is read). The first problem, as
// LoadWeights reports it (missing, unexpected and mis-shaped tensors by name).
Status CheckModelSource(const ModelSource& source);

struct ConvertOptions {
  // Floating-point tensors are written in this dtype; nullopt keeps each tensor's own. Default.
  std::optional<torch::ScalarType> dtype;
};

// Writes `source` as a diffusers folder at `out_dir` (model_index.json, unet/, vae/,
// text_encoder/ with safetensors weights under diffusers names, scheduler/, tokenizer/).
// CheckModelSource runs first; everything is written into a temporary folder beside `out_dir`
// that is renamed into place only when complete, so `out_dir` holds a whole model or nothing.
// FailedPrecondition when `out_dir` exists.
Status WriteDiffusersFolder(const ModelSource& source, const std::string& out_dir,
                            const ConvertOptions& options = {});

}  // namespace fairy::engine
