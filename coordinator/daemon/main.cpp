// fairy-coordinator: placeholder until the farm issue lands.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  std::printf(
      "fairy-coordinator: the Fairy Farm coordinator (not yet implemented; see the farm issue)\n\n"
      "Usage: fairy-coordinator --config FILE\n");
  bool help = argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
  return help ? 0 : 2;
}
