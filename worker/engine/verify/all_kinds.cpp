// RegisterAllCheckKinds(): the one place that lists every file defining check kinds.
#include "worker/engine/verify/check.h"

namespace fairy::engine::verify {

void RegisterAllCheckKinds() {
  static const bool registered = [] {
    RegisterCoreCheckKinds();
    // RegisterUNetCheckKinds();  // engine-unet: uncomment when verify_unet_kinds.cpp exists
    return true;
  }();
  (void)registered;
}

}  // namespace fairy::engine::verify
