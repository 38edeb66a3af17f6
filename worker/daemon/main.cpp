// fairy-worker: placeholder until the farm issue lands.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  std::printf(
      "fairy-worker: a Fairy Farm GPU worker (not yet implemented; see the farm issue)\n\n"
      "Usage: fairy-worker --config FILE\n");
  bool help = argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
  return help ? 0 : 2;
}
