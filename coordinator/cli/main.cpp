// fairy: the Fairy Farm command-line client.
#include <CLI/CLI.hpp>

#include "coordinator/cli/commands.h"
#include "coordinator/cli/farm_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"fairy: submit, watch and control Fairy Farm jobs; validate job files; find shots"};
  app.require_subcommand(1);
  int exit_code = fairy::cli::kExitOk;
  (void)exit_code;
  fairy::cli::AddFarmCommands(app, &exit_code);
  fairy::cli::AddShotsCommand(app, &exit_code);
  fairy::cli::AddValidateCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the message or the help
    return code == 0 ? fairy::cli::kExitOk : fairy::cli::kExitUsage;
  }
  return exit_code;
}
