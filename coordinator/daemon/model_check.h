// Models by id at submit: a job that names its model by id (jobs::IsModelId) needs a connected
// worker that has the model installed (WorkerInfo::installed_models, reported in READY and
// refreshed by heartbeats). Pure functions of the scheduler's worker records.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/scheduler/records.h"

namespace fairy::coordinator {

// The workers that may take tasks (registered, not leaving).
std::vector<const scheduler::WorkerRecord*> ConnectedWorkers(
    const std::vector<const scheduler::WorkerRecord*>& workers);

// OK when no worker is connected (nothing to check), when a worker has `model_id`, or when a
// worker does not report its models (older than the field: it may have it). Otherwise
// InvalidArgument "<source>: job '<job>': model '<id>' is installed on no connected worker
// (w1: a, b; w2: none) ...", naming what every worker has.
Status CheckModelOnWorkers(const std::string& source_name, const std::string& job_name,
                           const std::string& model_id,
                           const std::vector<const scheduler::WorkerRecord*>& connected);

// The job log line at submit: "model ip2p: on workers w1, w3", or why it could not be checked.
std::string ModelWorkersLine(const std::string& model_id,
                             const std::vector<const scheduler::WorkerRecord*>& connected);

}  // namespace fairy::coordinator
