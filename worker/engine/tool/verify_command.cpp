// fairy-engine verify FIXTURE_DIR [--only KIND,...] [--check NAME,...] [--device D] [--dtype T]
//                     [--model PATH [--config DIR]]
#include <cstdio>
#include <iostream>

#include "worker/engine/engine_info.h"
#include "worker/engine/tool/args.h"
#include "worker/engine/tool/commands.h"
#include "worker/engine/verify/verifier.h"
#include "worker/engine/weights.h"

namespace fairy::engine::tool {

int RunVerifyCommand(int argc, char** argv) {
  Args args(argc, argv, 1);
  if (args.Flag("--help") || args.Flag("-h")) {
    std::printf(
        "Usage: fairy-engine verify FIXTURE_DIR [options]\n\n"
        "Runs every check of FIXTURE_DIR/golden/manifest.json and prints one line per compared\n"
        "quantity and one verdict per check. Exit 0 when no check fails, 1 when one does, 2 on\n"
        "usage or fixture errors.\n\n"
        "  --only KIND,...    run only checks of these kinds (tokenize, text_encoder, unet, ...)\n"
        "  --check NAME,...   run only these checks\n"
        "  --device D         cpu (default), cuda, cuda:N\n"
        "  --dtype T          float32 (default; the manifest's tolerances are for it), float16, ...\n"
        "  --model PATH       check this model instead of the fixture's own: a diffusers folder or\n"
        "                     an original-layout .safetensors file (the same weights, another layout)\n"
        "  --config DIR       with a single-file --model: the diffusers folder holding its configs\n"
        "                     and tokenizer (default: inferred from the tensor shapes)\n");
    return kExitOk;
  }
  verify::VerifyOptions options;
  options.only_kinds = SplitComma(args.Value("--only"));
  options.only_checks = SplitComma(args.Value("--check"));
  options.model = args.Value("--model");
  options.model_config_dir = args.Value("--config");
  const std::string device = args.Value("--device", "cpu");
  const std::string dtype = args.Value("--dtype", "float32");
  const std::vector<std::string> positionals = args.Positionals();
  std::string error;
  if (!args.Finish(&error) || positionals.size() != 1) {
    if (error.empty()) error = "expected exactly one FIXTURE_DIR";
    std::fprintf(stderr, "fairy-engine verify: %s (see --help)\n", error.c_str());
    return kExitUsage;
  }
  options.fixture_dir = positionals[0];
  auto parsed_device = ParseDevice(device);
  auto parsed_dtype = ParseScalarType(dtype);
  if (!parsed_device.ok() || !parsed_dtype.ok()) {
    const Status& s = !parsed_device.ok() ? parsed_device.status() : parsed_dtype.status();
    std::fprintf(stderr, "fairy-engine verify: %s\n", s.ToString().c_str());
    return kExitUsage;
  }
  options.device = *parsed_device;
  options.dtype = *parsed_dtype;
  ConfigureTorchThreads();
  std::cout << "fairy-engine verify (" << BuildInfo() << ")\n";
  auto summary = verify::RunVerify(options, std::cout);
  std::cout.flush();
  if (!summary.ok()) {
    std::fprintf(stderr, "fairy-engine verify: %s\n", summary.status().ToString().c_str());
    return kExitUsage;
  }
  return summary->ok() ? kExitOk : kExitFailed;
}

}  // namespace fairy::engine::tool
