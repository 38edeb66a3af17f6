// Precompiled header of fairy_engine: LibTorch's C++ frontend costs ~10 s per translation unit,
// so every engine source shares one precompiled copy (target_precompile_headers).
#pragma once

#include <torch/torch.h>
