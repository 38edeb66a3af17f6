// fairy-engine train (tool/train_command.cpp): see `fairy-engine train --help` and docs/training.md.
#pragma once

namespace fairy::engine::tool {

int RunTrainCommand(int argc, char** argv);

}  // namespace fairy::engine::tool
