#include "coordinator/daemon/model_check.h"

namespace fairy::coordinator {
namespace {

std::string Join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

}  // namespace

std::vector<const scheduler::WorkerRecord*> ConnectedWorkers(
    const std::vector<const scheduler::WorkerRecord*>& workers) {
  std::vector<const scheduler::WorkerRecord*> out;
  for (const scheduler::WorkerRecord* w : workers) {
    if (!w->draining) out.push_back(w);
  }
  return out;
}

Status CheckModelOnWorkers(const std::string& source_name, const std::string& job_name,
                           const std::string& model_id,
                           const std::vector<const scheduler::WorkerRecord*>& connected) {
  if (model_id.empty() || connected.empty()) return Status::OK();
  std::vector<std::string> have;
  for (const scheduler::WorkerRecord* w : connected) {
    if (scheduler::HasModel(w->info, model_id)) return Status::OK();
    have.push_back(w->info.worker_id + ": " +
                   (w->info.installed_models.empty() ? std::string("none")
                                                     : Join(w->info.installed_models, ", ")));
  }
  return Status::InvalidArgument(
      source_name + ": job '" + job_name + "': model '" + model_id +
      "' is installed on no connected worker (" + Join(have, "; ") +
      "); copy it into the workers' models folder (a diffusers folder with model_index.json, or "
      "a .safetensors file named with its extension), or name it by its absolute path");
}

std::string ModelWorkersLine(const std::string& model_id,
                             const std::vector<const scheduler::WorkerRecord*>& connected) {
  std::string line = "model " + model_id + ": ";
  if (connected.empty()) {
    return line +
           "could not be checked: no worker is connected; its tasks go only to workers that have "
           "it installed";
  }
  std::vector<std::string> have;
  std::vector<std::string> unknown;
  for (const scheduler::WorkerRecord* w : connected) {
    if (!w->info.reports_models) {
      unknown.push_back(w->info.worker_id);
    } else if (scheduler::HasModel(w->info, model_id)) {
      have.push_back(w->info.worker_id);
    }
  }
  line += have.empty() ? std::string("on no worker that reports its models")
                       : "on workers " + Join(have, ", ");
  if (!unknown.empty()) {
    line += "; " + Join(unknown, ", ") + " (older) report no models and may get its tasks too";
  }
  return line;
}

}  // namespace fairy::coordinator
