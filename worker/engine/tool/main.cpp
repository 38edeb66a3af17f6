// fairy-engine: single-process edit, golden verification, benchmarks, training.
#include <cstdio>
#include <cstring>

#include "worker/engine/engine_info.h"

int main(int argc, char** argv) {
  std::printf(
      "fairy-engine: the Fairy engine tool (%s)\n\n"
      "Usage: fairy-engine COMMAND [OPTIONS]\n\n"
      "Commands (being built; see the engine issue):\n"
      "  verify FIXTURE_DIR   check the engine against a golden fixture folder\n"
      "  edit                 edit a whole video in one process\n"
      "  bench                engine throughput\n",
      fairy::engine::BuildInfo().c_str());
  bool help = argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
  return help ? 0 : 2;
}
