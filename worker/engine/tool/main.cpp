// fairy-engine: single-process edit, golden verification, benchmarks, training.
#include <cstdio>
#include <cstring>
#include <string>

#include "worker/engine/engine_info.h"
#include "worker/engine/tool/commands.h"
#include "worker/engine/tool/train_command.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

// One line per subcommand; the function lives in tool/<name>_command.cpp.
constexpr Command kCommands[] = {
#ifdef FAIRY_ENGINE_HAS_EDIT
    {"edit", "         edit a whole video in one process (the farm's reference output)",
     fairy::engine::tool::RunEditCommand},
#endif
    {"verify", "FIXTURE_DIR  check the engine against a golden fixture folder",
     fairy::engine::tool::RunVerifyCommand},
    {"bench", "         engine throughput (frames/s, UNet forwards/s, GFLOP/s, memory)",
     fairy::engine::tool::RunBenchCommand},
    {"train", "         train or fine-tune a model (InstructPix2Pix objective, VAE, fairy-tiny)",
     fairy::engine::tool::RunTrainCommand},
    {"convert", "SRC      an original-layout single-file checkpoint -> a diffusers folder",
     fairy::engine::tool::RunConvertCommand},
    {"info", "MODEL       a model's layout, parts, sizes, dtypes, and whether it loads",
     fairy::engine::tool::RunInfoCommand},
};

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "fairy-engine: the Fairy engine tool (%s)\n\n"
               "Usage: fairy-engine COMMAND [OPTIONS]   (fairy-engine COMMAND --help for options)\n\n"
               "Commands:\n",
               fairy::engine::BuildInfo().c_str());
  for (const Command& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    PrintUsage(stdout);
    return argc < 2 ? fairy::engine::tool::kExitUsage : fairy::engine::tool::kExitOk;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "fairy-engine: unknown command \"%s\"\n\n", argv[1]);
  PrintUsage(stderr);
  return fairy::engine::tool::kExitUsage;
}
