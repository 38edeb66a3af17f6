// libFuzzer target: arbitrary bytes split into frames must decode to a message or a Status, never
// crash, hang or leak; a decoded message must re-encode and decode to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/protocol/protocol.h"
#include "common/protocol/task_settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Frames separated by the byte 0xFE (so the fuzzer can vary the frame count).
  std::vector<std::string> frames(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0xFE) {
      frames.emplace_back();
    } else {
      frames.back().push_back(static_cast<char>(data[i]));
    }
  }
  auto decoded = fairy::protocol::Decode(frames);
  if (!decoded.ok()) return 0;
  for (auto enc : {fairy::protocol::Encoding::kJson, fairy::protocol::Encoding::kMsgPack}) {
    auto again = fairy::protocol::Decode(fairy::protocol::Encode(*decoded, enc));
    if (!again.ok() || !(*again == *decoded)) __builtin_trap();
  }
  if (auto* task = std::get_if<fairy::protocol::Task>(&*decoded)) {
    (void)fairy::protocol::TaskSettingsFromJson(task->settings);
  }
  return 0;
}
