// fairy-coordinator: the Fairy Farm coordinator (scheduling, worker link, control API, analyze and
// stitch). See coordinator/daemon/coordinator.h and docs/operations.md.
#include <CLI/CLI.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>

#include "common/log.h"
#include "coordinator/daemon/coordinator.h"
#include "coordinator/daemon/daemon_config.h"

int main(int argc, char** argv) {
  CLI::App app{"fairy-coordinator: the Fairy Farm coordinator"};
  fairy::config::ConfigFlags flags;
  fairy::coordinator::AddCoordinatorFlags(app, &flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto options = fairy::coordinator::ResolveCoordinatorOptions(flags);
  if (!options.ok()) {
    std::cerr << "fairy-coordinator: " << options.status().message() << "\n";
    return 2;
  }
  // Signals go to a dedicated thread (sigwait), never interrupt the loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto coordinator = fairy::coordinator::Coordinator::Start(std::move(options).value());
  if (!coordinator.ok()) {
    std::cerr << "fairy-coordinator: " << coordinator.status().ToString() << "\n";
    return coordinator.status().code() == fairy::Status::Code::kUnavailable ? 3 : 1;
  }
  std::thread waiter([&signals, c = coordinator->get()] {
    int sig = 0;
    sigwait(&signals, &sig);
    FAIRY_LOG(kInfo, "coordinator") << "signal " << sig << " received";
    c->Shutdown();
  });
  waiter.detach();
  (*coordinator)->Run();
  return 0;
}
