// Loading checkpoint files into LibTorch modules.
//
// Weights come from safetensors files in the Hugging Face diffusers folder layout (unet/,
// vae/, text_encoder/, each with a config.json). Modules register their submodules, parameters
// and buffers under exactly the checkpoint's key names (torch::nn::ModuleList "down_blocks",
// a Sequential-like "to_out" holding "0", ...), so loading is a name lookup.
//
// Original-layout single files (model.diffusion_model.*, ...) are mapped to these names by
// ldm_layout.h; a whole model, from either layout, is a ModelSource (model_source.h).
//
// Thread safety: all functions are reentrant; LoadWeights mutates only `module`.
#pragma once

#include <functional>
#include <map>
#include <memory>
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

// One tensor of a checkpoint, under the name the engine's module gives it, and where its bytes are.
struct CheckpointTensor {
  std::shared_ptr<const SafetensorsFile> file;  // keeps the mapping alive
  const TensorInfo* info = nullptr;             // in `file`
  // The shape the module sees: the stored shape, or the stored shape with trailing 1s dropped (a
  // 1x1 convolution stored where the module has a linear layer; the bytes are the same).
  std::vector<int64_t> shape;
  std::string stored_name;  // the key in the file (differs from the map key after a rename)
};
// A model part's tensors by module name.
using TensorMap = std::map<std::string, CheckpointTensor>;

// Opens `safetensors_files` (one checkpoint, possibly sharded) and maps every tensor under its
// stored name. A key present in two files is Corruption; errors start with `what`.
Result<TensorMap> ReadWeightFiles(const std::vector<std::string>& safetensors_files,
                                  const std::string& what);

// Renames what diffusers renames when it loads a model saved before 0.14: the attention blocks of
// the VAE's mid blocks stored as `query`, `key`, `value`, `proj_attn` become `to_q`, `to_k`,
// `to_v`, `to_out.0` (diffusers' _convert_deprecated_attention_blocks), only where the new name
// is absent. Returns how many tensors were renamed.
int RenameDeprecatedAttention(TensorMap& tensors);

// Total bytes of `tensors` (what LoadWeights reads).
int64_t TensorBytes(const TensorMap& tensors);

// Options of LoadWeights (defaults: strict).
struct LoadWeightsOptions {
  // Checkpoint keys that end with one of these are not reported as unexpected (e.g. the
  // "position_ids" buffer that older transformers checkpoints carry). Default: none.
  std::vector<std::string> ignore_unexpected_suffixes;
  // Called after each tensor is copied with the bytes read so far by this call (from 0 up to
  // TensorBytes(tensors)). Default: none.
  std::function<void(int64_t bytes_read)> on_progress;
};

// Assigns every named parameter and buffer of `module` (dotted names, recursively, exactly the
// checkpoint's keys) from `tensors`, converting to the module's own dtype and device. On any
// problem nothing useful is left in `module` and ONE failed Status lists, by name, the missing
// tensors, the unexpected tensors and the mis-shaped ones (with both shapes), long lists
// truncated with a count; `what` (e.g. "unet (/models/ip2p/unet)") starts the message.
Status LoadWeights(torch::nn::Module& module, const TensorMap& tensors, const std::string& what,
                   const LoadWeightsOptions& options = {});
// The checks of LoadWeights alone (names and shapes; no tensor is read): the same Status.
Status CheckWeights(torch::nn::Module& module, const TensorMap& tensors, const std::string& what,
                    const LoadWeightsOptions& options = {});

// The safetensors files of one model part folder (e.g. ".../unet"): "<name>.safetensors" for
// name in {diffusion_pytorch_model, model}, or the files listed by "<name>.safetensors.index.json"
// (sharded checkpoints). With `variant` (e.g. "fp16") only "<name>.<variant>.safetensors" and
// "<name>.safetensors.index.<variant>.json" are used; without, the variant-less files are
// preferred and a folder holding only one variant's files uses those (diffusers' fp16 uploads).
// NotFound names the folder and the file names it looked for; a folder holding only .bin/.ckpt
// weights gets an Unsupported error giving the command that converts them.
Result<std::vector<std::string>> FindWeightFiles(const std::string& part_dir,
                                                 const std::string& variant = "");

// Loads one diffusers part folder's weights: FindWeightFiles, ReadWeightFiles and
// RenameDeprecatedAttention.
Result<TensorMap> ReadPartFolder(const std::string& part_dir, const std::string& variant = "");

// The message for a pickled checkpoint (.bin, .ckpt, .pt, .pth): it is never unpickled (that
// runs code); it says how to turn it into safetensors and convert it.
Status PickleRefused(const std::string& path);

// "float32"/"fp32"/"float", "float16"/"fp16"/"half", "bfloat16"/"bf16", "float64"/"fp64".
Result<torch::ScalarType> ParseScalarType(const std::string& name);
// "cpu", "cuda", "cuda:N". Unavailable when CUDA is asked for and not present.
Result<torch::Device> ParseDevice(const std::string& name);

// "[3, 77, 32]".
std::string ShapeString(c10::IntArrayRef shape);

}  // namespace fairy::engine
