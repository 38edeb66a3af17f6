// RegisterAllCheckKinds(): the one place that lists every file defining check kinds.
#include "worker/engine/verify/check.h"

namespace fairy::engine::verify {

void RegisterAllCheckKinds() {
  static const bool registered = [] {
    RegisterCoreCheckKinds();
    RegisterTokenizeCheckKinds();      // tokenizer (verify/tokenize_kinds.cpp)
    RegisterModelCheckKinds();         // models (verify/model_kinds.cpp)
    RegisterSchedulerCheckKinds();     // scheduler (verify/scheduler_kinds.cpp)
    RegisterUNetCheckKinds();          // pipeline (verify/unet_kinds.cpp)
    return true;
  }();
  (void)registered;
}

}  // namespace fairy::engine::verify
