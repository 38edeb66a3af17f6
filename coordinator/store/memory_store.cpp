// MemoryStore: the Store contract in process memory (tests, runs without Redis).
#include <algorithm>
#include <map>
#include <set>

#include "coordinator/store/store.h"
#include "coordinator/store/store_util.h"

namespace fairy::store {
namespace {

using scheduler::IsFinal;
using scheduler::IsLive;

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(const scheduler::Clock* clock) : clock_(clock) {}

  Status Apply(const Mutation& m) override {
    if (m.job_id.empty()) return Status::InvalidArgument("store: mutation without job_id");
    if (m.fence) {
      const int64_t live = Live(m.fence->job_id, m.fence->task_id);
      if (live != m.fence->attempt) return StaleError(*m.fence, std::to_string(live));
    }
    if (m.job) {
      if (m.job->job_id != m.job_id)
        return Status::InvalidArgument("store: mutation for job " + m.job_id + " carries job " +
                                       m.job->job_id);
      auto it = jobs_.find(m.job_id);
      JobRecord r = *m.job;
      if (!m.include_spec) r.spec = it == jobs_.end() ? std::string() : it->second.spec;
      if (!m.include_plan)
        r.shots = it == jobs_.end() ? std::vector<scheduler::ShotPlan>() : it->second.shots;
      jobs_[m.job_id] = r;
      std::erase_if(queue_, [&](const auto& e) { return e.second == m.job_id; });
      if (!IsFinal(r.state)) queue_.insert({redis::QueueScore(r.priority, r.submit_ms), m.job_id});
    }
    for (const TaskRecord& t : m.tasks) {
      tasks_[m.job_id][t.task_id] = t;
      attempts_[m.job_id][t.task_id] = IsLive(t.state) ? t.attempt : 0;
    }
    for (const Event& e : m.events) AppendEvent(e);
    return Status::OK();
  }

  Result<JobSnapshot> LoadJob(const std::string& job_id) override {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return Status::NotFound("store: job " + job_id + " is unknown");
    JobSnapshot s;
    s.job = it->second;
    for (const auto& [id, t] : tasks_[job_id]) s.tasks.push_back(t);
    return s;
  }

  Result<std::vector<JobSnapshot>> LoadAll(bool unfinished_only) override {
    std::vector<JobSnapshot> out;
    for (const auto& [id, r] : jobs_) {
      if (unfinished_only && IsFinal(r.state)) continue;
      FAIRY_ASSIGN_OR_RETURN(JobSnapshot s, LoadJob(id));
      out.push_back(std::move(s));
    }
    SortSnapshots(&out);
    return out;
  }

  Result<std::vector<std::string>> QueueOrder() override {
    std::vector<std::string> out;
    for (const auto& e : queue_) out.push_back(e.second);
    return out;
  }

  Status DeleteJob(const std::string& job_id) override {
    jobs_.erase(job_id);
    tasks_.erase(job_id);
    attempts_.erase(job_id);
    logs_.erase(job_id);
    std::erase_if(queue_, [&](const auto& e) { return e.second == job_id; });
    return Status::OK();
  }

  Result<int64_t> LiveAttempt(const std::string& job_id, const std::string& task_id) override {
    return Live(job_id, task_id);
  }

  Status PutWorker(const WorkerRecord& worker, int64_t ttl_ms) override {
    if (worker.info.worker_id.empty()) return Status::InvalidArgument("store: worker without id");
    workers_[worker.info.worker_id] = {worker, clock_->NowMs() + std::max<int64_t>(ttl_ms, 1)};
    return Status::OK();
  }

  Status DeleteWorker(const std::string& worker_id) override {
    workers_.erase(worker_id);
    return Status::OK();
  }

  Result<std::vector<WorkerRecord>> LoadWorkers() override {
    std::vector<WorkerRecord> out;
    const auto now = clock_->NowMs();
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->second.second <= now) {
        it = workers_.erase(it);
      } else {
        out.push_back(it->second.first);
        ++it;
      }
    }
    return out;
  }

  Result<std::vector<Event>> ReadEvents(const std::string& after_id, int max_count) override {
    FAIRY_ASSIGN_OR_RETURN(StreamId after, ParseStreamId(after_id));
    std::vector<Event> out;
    for (const auto& e : events_) {
      if (static_cast<int>(out.size()) >= max_count) break;
      auto id = ParseStreamId(e.id);
      if (id.ok() && *id > after) out.push_back(e);
    }
    return out;
  }

  Status AppendLog(const std::string& job_id, const LogLine& line) override {
    LogLine l = line;
    l.id = NextId();
    logs_[job_id].push_back(std::move(l));
    return Status::OK();
  }

  Result<std::vector<LogLine>> ReadLog(const std::string& job_id, const std::string& after_id,
                                       int max_count) override {
    FAIRY_ASSIGN_OR_RETURN(StreamId after, ParseStreamId(after_id));
    std::vector<LogLine> out;
    auto it = logs_.find(job_id);
    if (it == logs_.end()) return out;
    for (const auto& l : it->second) {
      if (static_cast<int>(out.size()) >= max_count) break;
      auto id = ParseStreamId(l.id);
      if (id.ok() && *id > after) out.push_back(l);
    }
    return out;
  }

 private:
  int64_t Live(const std::string& job_id, const std::string& task_id) const {
    auto j = attempts_.find(job_id);
    if (j == attempts_.end()) return 0;
    auto t = j->second.find(task_id);
    return t == j->second.end() ? 0 : t->second;
  }

  // Stream ids as Redis makes them: "<ms>-<seq>", strictly increasing.
  std::string NextId() {
    const int64_t now = std::max(clock_->NowMs(), last_ms_);
    seq_ = now == last_ms_ ? seq_ + 1 : 0;
    last_ms_ = now;
    return std::to_string(now) + "-" + std::to_string(seq_);
  }

  void AppendEvent(const Event& e) {
    Event copy = e;
    copy.id = NextId();
    events_.push_back(std::move(copy));
    if (events_.size() > 100000) events_.erase(events_.begin(), events_.begin() + 10000);
  }

  const scheduler::Clock* clock_;
  std::map<std::string, JobRecord> jobs_;
  std::map<std::string, std::map<std::string, TaskRecord>> tasks_;
  std::map<std::string, std::map<std::string, int64_t>> attempts_;
  std::set<std::pair<double, std::string>> queue_;
  std::map<std::string, std::pair<WorkerRecord, int64_t>> workers_;
  std::vector<Event> events_;
  std::map<std::string, std::vector<LogLine>> logs_;
  int64_t last_ms_ = 0;
  int64_t seq_ = 0;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore(const scheduler::Clock* clock) {
  return std::make_unique<MemoryStore>(clock);
}

}  // namespace fairy::store
