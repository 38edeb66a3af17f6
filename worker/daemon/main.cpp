// fairy-worker: a Fairy Farm GPU (or CPU) worker. Connects to the coordinator, pulls tasks, runs
// them with the LibTorch engine, heartbeats from its own thread; SIGTERM finishes or hands back its
// work and leaves cleanly. See worker/runner/worker.h and docs/operations.md.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/log.h"
#include "worker/daemon/worker_config.h"
#include "worker/executor/engine_executor.h"
#include "worker/runner/worker.h"

int main(int argc, char** argv) {
  CLI::App app{"fairy-worker: a Fairy Farm worker"};
  fairy::config::ConfigFlags flags;
  fairy::worker::AddWorkerFlags(app, &flags);
  // Tests only, left out of --help (empty group): EngineExecutorOptions::fault_hang_at_step.
  int64_t fault_hang_at_step = 0;
  app.add_option("--fault-hang-at-step", fault_hang_at_step)
      ->group("")
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto config = fairy::worker::ResolveWorkerSetup(flags);
  if (!config.ok()) {
    std::cerr << "fairy-worker: " << config.status().message() << "\n";
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  config->executor.fault_hang_at_step = fault_hang_at_step;
  auto executor = fairy::worker::EngineExecutor::Create(config->executor);
  if (!executor.ok()) {
    std::cerr << "fairy-worker: " << executor.status().ToString() << "\n";
    return 2;
  }
  auto worker = fairy::worker::Worker::Start(config->worker, executor->get());
  if (!worker.ok()) {
    std::cerr << "fairy-worker: " << worker.status().ToString() << "\n";
    return 1;
  }
  int64_t grace = config->worker.drain_grace_ms;
  std::thread waiter([&signals, w = worker->get(), grace] {
    int sig = 0;
    sigwait(&signals, &sig);
    FAIRY_LOG(kInfo, "worker") << "signal " << sig << " received: draining";
    w->Drain(grace);
  });
  (*worker)->Wait();
  waiter.join();
  return 0;
}
