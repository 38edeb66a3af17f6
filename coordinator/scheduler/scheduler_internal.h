// Private state of Scheduler, shared by its .cpp files. Not part of the public API.
#pragma once

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/scheduler/scheduler.h"

namespace fairy::scheduler {

struct Scheduler::JobEntry {
  JobRecord rec;
  std::vector<TaskRecord> tasks;               // plan order: per shot, anchor then frames
  std::unordered_map<std::string, int> index;  // task id -> position in tasks
  std::vector<int> anchor_of_shot;             // shot -> position of its ANCHOR task
  // READY tasks whose backoff has ended, by plan position.
  std::set<int> ready_anchor;
  std::set<int> ready_frames;
  std::unordered_map<int, std::set<int>> ready_frames_by_shot;
  std::set<int> live;  // ASSIGNED/RUNNING
  // What the live attempt of a task (by plan position) has reported; reset at each assignment.
  struct AttemptWatch {
    int64_t steps = -1;  // last step count reported (-1: none yet)
    TimeMs step_ms = 0;  // when it was reported
    int64_t load_bytes = 0;
    bool loading = false;  // a model is being loaded (bytes read < bytes total)
  };
  std::unordered_map<int, AttemptWatch> watch;

  bool HasReady() const { return !ready_anchor.empty() || !ready_frames.empty(); }
};

struct Scheduler::WorkerEntry {
  WorkerRecord rec;
};

}  // namespace fairy::scheduler
