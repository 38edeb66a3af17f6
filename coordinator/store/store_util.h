// Helpers shared by the Store implementations. Not part of the public API.
#pragma once

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/store/store.h"

namespace fairy::store {

using StreamId = std::pair<int64_t, int64_t>;  // "<ms>-<seq>"

// "" and "0" mean "before everything"; "<ms>" means "<ms>-0".
inline Result<StreamId> ParseStreamId(const std::string& id) {
  if (id.empty() || id == "0" || id == "-") return StreamId{0, -1};
  StreamId out{0, 0};
  const char* p = id.data();
  const char* end = id.data() + id.size();
  auto r = std::from_chars(p, end, out.first);
  if (r.ec != std::errc())
    return Status::InvalidArgument("stream id '" + id + "' is not <ms>-<seq>");
  if (r.ptr != end) {
    if (*r.ptr != '-') return Status::InvalidArgument("stream id '" + id + "' is not <ms>-<seq>");
    auto r2 = std::from_chars(r.ptr + 1, end, out.second);
    if (r2.ec != std::errc() || r2.ptr != end)
      return Status::InvalidArgument("stream id '" + id + "' is not <ms>-<seq>");
  }
  return out;
}

inline Status StaleError(const scheduler::Fence& f, const std::string& live) {
  return Status::FailedPrecondition("stale attempt: " + f.job_id + "/" + f.task_id + " attempt " +
                                    std::to_string(f.attempt) +
                                    " is not live (live attempt: " + live + ")");
}

inline void SortSnapshots(std::vector<JobSnapshot>* snaps) {
  std::sort(snaps->begin(), snaps->end(), [](const JobSnapshot& a, const JobSnapshot& b) {
    return a.job.submit_ms != b.job.submit_ms ? a.job.submit_ms < b.job.submit_ms
                                              : a.job.job_id < b.job.job_id;
  });
}

}  // namespace fairy::store
