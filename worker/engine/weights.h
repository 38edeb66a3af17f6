// Loading checkpoint files into LibTorch modules.
//
// Weights come from safetensors files in the Hugging Face diffusers folder layout (unet/,
// vae/, text_encoder/, each with a config.json). Modules register their submodules, parameters
// and buffers under exactly the checkpoint's key names (torch::nn::ModuleList "down_blocks",
// a Sequential-like "to_out" holding "0", ...), so loading is a name lookup.
//
// Thread safety: all functions are reentrant; LoadWeights mutates only `module`.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/safetensors.h"
#include "common/status.h"

namespace fairy::engine {

// Parses the JSON file at `path`. Errors (NotFound, IOError, InvalidArgument for bad JSON)
// name the file (and the parser's byte position).
Result<nlohmann::json> ReadJsonFile(const std::string& path);

// Copies one tensor of `file` into a new contiguous CPU tensor of the stored dtype
// (F64/F32/F16/BF16/I64/I32/I16/I8/U8/BOOL). REQUIRES: `info` belongs to `file` (the file's
// validation guarantees its byte size matches its shape).
torch::Tensor TensorFromSafetensors(const SafetensorsFile& file, const TensorInfo& info);

// Options of LoadWeights (defaults: strict).
struct LoadWeightsOptions {
  // Checkpoint keys that end with one of these are not reported as unexpected (e.g. the
  // "position_ids" buffer that older transformers checkpoints carry). Default: none.
  std::vector<std::string> ignore_unexpected_suffixes;
};

// Assigns every named parameter and buffer of `module` (dotted names, recursively, exactly the
// checkpoint's keys) from `safetensors_files` (one checkpoint, possibly sharded), converting to
// the module's own dtype and device. On any problem nothing useful is left in `module` and ONE
// failed Status lists, by name, the missing tensors, the unexpected tensors and the mis-shaped
// ones (with both shapes), long lists truncated with a count; `what` (e.g. "unet
// (/models/ip2p/unet)") starts the message. A key present in two files is an error too.
Status LoadWeights(torch::nn::Module& module, const std::vector<std::string>& safetensors_files,
                   const std::string& what, const LoadWeightsOptions& options = {});

// The safetensors files of one model part folder (e.g. ".../unet"): "<name>.safetensors" for
// name in {diffusion_pytorch_model, model}, or the files listed by "<name>.safetensors.index.json"
// (sharded checkpoints). NotFound names the folder and the file names it looked for; a folder
// holding only .bin/.ckpt weights gets an Unsupported error saying to convert to safetensors.
Result<std::vector<std::string>> FindWeightFiles(const std::string& part_dir);

// "float32"/"fp32"/"float", "float16"/"fp16"/"half", "bfloat16"/"bf16", "float64"/"fp64".
Result<torch::ScalarType> ParseScalarType(const std::string& name);
// "cpu", "cuda", "cuda:N". Unavailable when CUDA is asked for and not present.
Result<torch::Device> ParseDevice(const std::string& name);

// "[3, 77, 32]".
std::string ShapeString(c10::IntArrayRef shape);

}  // namespace fairy::engine
