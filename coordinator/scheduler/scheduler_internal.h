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

  bool HasReady() const { return !ready_anchor.empty() || !ready_frames.empty(); }
};

struct Scheduler::WorkerEntry {
  WorkerRecord rec;
};

}  // namespace fairy::scheduler
