// Writing what training produces: module weights as safetensors under their state_dict names (the
// names the engine loads by), config files, and whole diffusers model folders.
//
// Every file is written to "<path>.tmp" and renamed into place, so a reader never sees half a file.
#pragma once

#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace fairy::engine::train {

// Writes every parameter and buffer of `module` (dotted names, recursively) to `path` as float32
// (or `dtype`: F32/F16/BF16) safetensors. Names in `skip_suffixes` are left out.
Status SaveModuleWeights(torch::nn::Module& module, const std::string& path,
                         torch::ScalarType dtype = torch::kFloat32,
                         const std::map<std::string, std::string>& metadata = {},
                         const std::vector<std::string>& skip_suffixes = {});

// Writes named tensors (any float dtype, stored as float32) to `path`.
Status SaveTensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& path,
                   const std::map<std::string, std::string>& metadata = {});
// Reads every tensor of a safetensors file (CPU, stored dtype), by name.
Result<std::map<std::string, torch::Tensor>> LoadTensors(const std::string& path);

// Assigns every parameter and buffer of `module` from the safetensors file `path` by name. One
// InvalidArgument lists missing, unexpected (unless ending in one of `ignore_suffixes`) and
// mis-shaped tensors by name.
Status LoadModuleWeights(torch::nn::Module& module, const std::string& path,
                         const std::vector<std::string>& ignore_suffixes = {"position_ids"});

// Pretty-printed JSON (2 spaces) plus a newline, atomically.
Status WriteJsonFile(const std::string& path, const nlohmann::json& json);
// Copies the regular files of folder `from` into `to` (created), not recursing.
Status CopyFolderFiles(const std::string& from, const std::string& to);

// The model_index.json of an InstructPix2Pix diffusers folder (Euler-ancestral scheduler).
nlohmann::json InstructPix2PixModelIndex();

}  // namespace fairy::engine::train
