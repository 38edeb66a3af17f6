// RedisStore: the Store contract on the DESIGN.md section 4 layout (docs/redis-layout.md).
// Apply() is one Lua script, so a mutation (with its fence check) is atomic in Redis.
//
// Write-through cache: the store remembers, per job, the job-hash fields and queue entry it last
// wrote successfully, and a mutation sends only the fields that differ from them (a DONE changes
// 3-4 of ~20 fields). That is exact as long as this store is the only writer of its job hashes
// (one coordinator per key prefix, as the farm runs). Any failed call forgets the job, so its next
// write is whole again; a new store (coordinator restart) starts empty and writes whole records.
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "coordinator/store/store.h"
#include "coordinator/store/store_util.h"

namespace fairy::store {
namespace {

using nlohmann::json;
using redis::Reply;
using redis::Script;
using scheduler::IsFinal;
using scheduler::IsLive;

// KEYS: job hash, tasks hash, attempts hash, queue zset, events stream, jobs set.
// ARGV: fence task ('' = none), fence attempt, job id, queue op ('add'|'rem'|'' = leave the queue
//       and the jobs set as they are), queue score, events maxlen, njobfields, field/value
//       pairs... (only the changed ones), ntasks, (task id, json, live attempt)...,
//       nevents, (time, type, job, task, worker, attempt, detail)...
// Returns 'ok' or 'stale:<live attempt>'.
const Script& ApplyScript() {
  static const Script script(R"lua(
if ARGV[1] ~= '' then
  local live = redis.call('HGET', KEYS[3], ARGV[1]) or '0'
  if live ~= ARGV[2] then return 'stale:' .. live end
end
local job_id = ARGV[3]
local p = 8
local n = tonumber(ARGV[7])
if n > 0 then
  local args = {}
  for k = 0, n - 1 do
    args[#args + 1] = ARGV[p + 2 * k]
    args[#args + 1] = ARGV[p + 2 * k + 1]
  end
  redis.call('HSET', KEYS[1], unpack(args))
end
if ARGV[4] ~= '' then redis.call('SADD', KEYS[6], job_id) end
p = p + 2 * n
if ARGV[4] == 'add' then
  redis.call('ZADD', KEYS[4], ARGV[5], job_id)
elseif ARGV[4] == 'rem' then
  redis.call('ZREM', KEYS[4], job_id)
end
n = tonumber(ARGV[p])
p = p + 1
-- Task records and live attempts: one HSET per 256 tasks, not two calls per task (analysis
-- writes every task of the job at once, a cancel or retry many).
local k = 0
while k < n do
  local records, attempts = {}, {}
  local last = math.min(n, k + 256)
  while k < last do
    records[#records + 1] = ARGV[p]
    records[#records + 1] = ARGV[p + 1]
    attempts[#attempts + 1] = ARGV[p]
    attempts[#attempts + 1] = ARGV[p + 2]
    p = p + 3
    k = k + 1
  end
  redis.call('HSET', KEYS[2], unpack(records))
  redis.call('HSET', KEYS[3], unpack(attempts))
end
n = tonumber(ARGV[p])
p = p + 1
for k = 1, n do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'time_ms', ARGV[p], 'type', ARGV[p + 1],
             'job', ARGV[p + 2], 'task', ARGV[p + 3], 'worker', ARGV[p + 4], 'attempt', ARGV[p + 5],
             'detail', ARGV[p + 6])
  p = p + 7
end
return 'ok'
)lua");
  return script;
}

// Job hash fields stored as plain text (readable with redis-cli); all others hold JSON.
const std::set<std::string>& TextFields() {
  static const std::set<std::string> fields = {"job_id", "name",  "spec", "output",
                                               "state",  "phase", "error"};
  return fields;
}

std::map<std::string, std::string> FieldMap(const Reply& r) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2)
    out[r.elements[i].str] = r.elements[i + 1].str;
  return out;
}

class RedisStore final : public Store {
 public:
  RedisStore(std::unique_ptr<redis::RedisClient> client, RedisStoreOptions options)
      : client_(std::move(client)), options_(std::move(options)), keys_(options_.key_prefix) {}

  Status Apply(const Mutation& m) override { return ApplyAll({&m}).front(); }

  // One pipeline (one round trip) of EVALSHA calls: one per fenced mutation, one per run of
  // consecutive unfenced mutations of the same job (merged: the same end state as applying them
  // in order, with one script call instead of many; a burst of assignments is one call).
  std::vector<Status> ApplyAll(const std::vector<const Mutation*>& mutations) override {
    std::vector<Status> out(mutations.size());
    std::vector<std::vector<size_t>> groups;  // indices in `mutations` applied by one call
    for (size_t i = 0; i < mutations.size(); ++i) {
      const bool mergeable = Mergeable(*mutations[i]);
      if (mergeable && !groups.empty()) {
        const Mutation& last = *mutations[groups.back().back()];
        if (Mergeable(last) && last.job_id == mutations[i]->job_id) {
          groups.back().push_back(i);
          continue;
        }
      }
      groups.push_back({i});
    }
    std::vector<ApplyCall> calls;
    std::vector<const std::vector<size_t>*> sent;  // the group of each call
    std::unordered_map<std::string, Touched> touched;  // by job id
    calls.reserve(groups.size());
    for (const std::vector<size_t>& g : groups) {
      ApplyCall c;
      Touched* t = &touched[mutations[g[0]]->job_id];
      Status st = g.size() == 1 ? BuildApply(*mutations[g[0]], t, &c)
                                : BuildApply(Merge(mutations, g), t, &c);
      if (!st.ok()) {
        for (size_t i : g) out[i] = st;
        continue;
      }
      calls.push_back(std::move(c));
      sent.push_back(&g);
    }
    if (calls.empty()) return out;
    std::vector<redis::RedisClient::EvalCall> evals;
    evals.reserve(calls.size());
    for (const ApplyCall& c : calls) {
      evals.push_back({std::vector<std::string_view>(c.keys.begin(), c.keys.end()),
                       std::vector<std::string_view>(c.args.begin(), c.args.end())});
    }
    Result<std::vector<Reply>> replies = client_->EvalPipeline(ApplyScript(), evals);
    std::set<std::string> failed_jobs;  // forgotten after this pipeline: their next write is whole
    for (size_t k = 0; k < sent.size(); ++k) {
      const Mutation& m = *mutations[sent[k]->front()];
      Status st;
      if (!replies.ok()) {
        st = replies.status();
      } else if (const Reply& r = (*replies)[k]; r.is_error()) {
        st = Status::FailedPrecondition("redis " + client_->endpoint() + ": apply script: " + r.str);
      } else if (r.str.rfind("stale:", 0) == 0) {
        st = StaleError(*m.fence, r.str.substr(6));
      } else if (r.str != "ok") {
        st = Status::Internal("store: apply script answered " + r.DebugString());
      }
      for (size_t i : *sent[k]) out[i] = st;
      if (st.ok()) {
        Remember(calls[k]);
      } else {
        failed_jobs.insert(m.job_id);
      }
    }
    for (const std::string& job_id : failed_jobs) written_.erase(job_id);
    return out;
  }

  Result<JobSnapshot> LoadJob(const std::string& job_id) override {
    const std::string jk = keys_.Job(job_id), tk = keys_.Tasks(job_id);
    FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> replies,
                           client_->Pipeline({{"HGETALL", jk}, {"HGETALL", tk}}));
    return Decode(job_id, replies[0], replies[1]);
  }

  Result<std::vector<JobSnapshot>> LoadAll(bool unfinished_only) override {
    FAIRY_ASSIGN_OR_RETURN(Reply ids, client_->Command({"SMEMBERS", keys_.Jobs()}));
    std::vector<std::string> names;
    for (const auto& e : ids.elements) {
      names.push_back(keys_.Job(e.str));
      names.push_back(keys_.Tasks(e.str));
    }
    std::vector<std::vector<std::string_view>> cmds;
    for (const auto& n : names) cmds.push_back({"HGETALL", n});
    FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, client_->Pipeline(cmds));
    std::vector<JobSnapshot> out;
    for (size_t i = 0; i < ids.elements.size(); ++i) {
      const std::string& id = ids.elements[i].str;
      if (replies[2 * i].type == Reply::Type::kArray && replies[2 * i].elements.empty()) {
        continue;  // deleted meanwhile
      }
      FAIRY_ASSIGN_OR_RETURN(JobSnapshot s, Decode(id, replies[2 * i], replies[2 * i + 1]));
      if (unfinished_only && IsFinal(s.job.state)) continue;
      out.push_back(std::move(s));
    }
    SortSnapshots(&out);
    return out;
  }

  Result<std::vector<std::string>> QueueOrder() override {
    FAIRY_ASSIGN_OR_RETURN(Reply r, client_->Command({"ZRANGE", keys_.Queue(), "0", "-1"}));
    std::vector<std::string> out;
    for (const auto& e : r.elements) out.push_back(e.str);
    return out;
  }

  Status DeleteJob(const std::string& job_id) override {
    const std::string a = keys_.Job(job_id), b = keys_.Tasks(job_id), c = keys_.Attempts(job_id),
                      d = keys_.Log(job_id);
    const std::string q = keys_.Queue(), s = keys_.Jobs();
    written_.erase(job_id);
    FAIRY_ASSIGN_OR_RETURN(
        std::vector<Reply> r,
        client_->Pipeline(
            {{"MULTI"}, {"DEL", a, b, c, d}, {"ZREM", q, job_id}, {"SREM", s, job_id}, {"EXEC"}}));
    if (r.back().is_error())
      return Status::Unavailable("store: delete of job " + job_id + " failed: " + r.back().str);
    return Status::OK();
  }

  Result<int64_t> LiveAttempt(const std::string& job_id, const std::string& task_id) override {
    FAIRY_ASSIGN_OR_RETURN(Reply r, client_->Command({"HGET", keys_.Attempts(job_id), task_id}));
    if (r.is_nil()) return int64_t{0};
    try {
      return static_cast<int64_t>(std::stoll(r.str));
    } catch (const std::exception&) {
      return Status::Corruption("store: " + keys_.Attempts(job_id) + " field " + task_id + " is '" +
                                r.str + "', not a number");
    }
  }

  // The commands that write worker `w` (a MULTI block); `*storage` holds the strings they point
  // into (a deque: they do not move as it grows).
  Status WorkerCommands(const WorkerRecord& w, int64_t ttl_ms, std::deque<std::string>* storage,
                        std::vector<std::vector<std::string_view>>* commands) const {
    if (w.info.worker_id.empty()) return Status::InvalidArgument("store: worker without id");
    const std::string& key = storage->emplace_back(keys_.Worker(w.info.worker_id));
    const std::string& record =
        storage->emplace_back(w.ToJson().dump(-1, ' ', false, json::error_handler_t::replace));
    const std::string& seen = storage->emplace_back(std::to_string(w.last_seen_ms));
    const std::string& ttl = storage->emplace_back(std::to_string(std::max<int64_t>(ttl_ms, 1)));
    commands->push_back({"MULTI"});
    commands->push_back({"HSET", key, "record", record, "host", w.info.host, "device",
                         w.info.device, "last_seen_ms", seen});
    commands->push_back({"PEXPIRE", key, ttl});
    commands->push_back({"EXEC"});
    return Status::OK();
  }

  Status PutWorker(const WorkerRecord& w, int64_t ttl_ms) override {
    std::deque<std::string> storage;
    std::vector<std::vector<std::string_view>> commands;
    FAIRY_RETURN_IF_ERROR(WorkerCommands(w, ttl_ms, &storage, &commands));
    FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> r, client_->Pipeline(commands));
    if (r.back().is_error())
      return Status::Unavailable("store: " + storage[0] + ": " + r.back().str);
    return Status::OK();
  }

  Status PutWorkersLater(
      const std::vector<std::pair<const WorkerRecord*, int64_t>>& workers) override {
    std::deque<std::string> storage;
    std::vector<std::vector<std::string_view>> commands;
    Status built;
    for (const auto& [worker, ttl_ms] : workers) {
      Status s = WorkerCommands(*worker, ttl_ms, &storage, &commands);
      if (built.ok()) built = s;
    }
    return SendLater(commands, built);
  }

  // Sends `commands` without waiting (RedisClient::Send). Returns the first error known by now of
  // earlier such writes, else `prepared` (an error in making these commands), else whether these
  // could be sent.
  Status SendLater(const std::vector<std::vector<std::string_view>>& commands,
                   Status prepared = Status::OK()) {
    Status earlier = client_->TakeSendError();
    Status now = commands.empty() ? Status::OK() : client_->Send(commands);
    if (!earlier.ok()) return earlier;
    return prepared.ok() ? now : prepared;
  }

  Status DeleteWorker(const std::string& worker_id) override {
    return client_->Command({"DEL", keys_.Worker(worker_id)}).status();
  }

  Result<std::vector<WorkerRecord>> LoadWorkers() override {
    std::vector<std::string> found;
    std::string cursor = "0";
    const std::string pattern = keys_.Worker("*");
    do {
      FAIRY_ASSIGN_OR_RETURN(Reply r,
                             client_->Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}));
      if (r.elements.size() != 2)
        return Status::Internal("store: SCAN answered " + r.DebugString());
      cursor = r.elements[0].str;
      for (const auto& e : r.elements[1].elements) found.push_back(e.str);
    } while (cursor != "0");
    std::sort(found.begin(), found.end());
    found.erase(std::unique(found.begin(), found.end()), found.end());
    std::vector<std::vector<std::string_view>> cmds;
    for (const auto& k : found) cmds.push_back({"HGET", k, "record"});
    FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, client_->Pipeline(cmds));
    std::vector<WorkerRecord> out;
    for (size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_nil()) continue;  // expired meanwhile
      json j = json::parse(replies[i].str, nullptr, false);
      auto w = WorkerRecord::FromJson(j);
      if (!w.ok()) return w.status().WithContext("store: " + found[i]);
      out.push_back(std::move(*w));
    }
    return out;
  }

  Result<std::vector<Event>> ReadEvents(const std::string& after_id, int max_count) override {
    FAIRY_RETURN_IF_ERROR(ParseStreamId(after_id).status());
    FAIRY_ASSIGN_OR_RETURN(Reply r, Range(keys_.Events(), after_id, max_count));
    std::vector<Event> out;
    for (const auto& entry : r.elements) {
      if (entry.elements.size() != 2) continue;
      auto f = FieldMap(entry.elements[1]);
      Event e;
      e.id = entry.elements[0].str;
      e.time_ms = std::atoll(f["time_ms"].c_str());
      e.type = f["type"];
      e.job_id = f["job"];
      e.task_id = f["task"];
      e.worker_id = f["worker"];
      e.attempt = std::atoll(f["attempt"].c_str());
      e.detail = f["detail"];
      out.push_back(std::move(e));
    }
    return out;
  }

  Status AppendLog(const std::string& job_id, const LogLine& line) override {
    return AppendLogs({{job_id, line}});
  }

  // The XADDs of `lines`; `*storage` holds the strings they point into.
  std::vector<std::vector<std::string_view>> LogCommands(
      const std::vector<std::pair<std::string, LogLine>>& lines,
      std::deque<std::string>* storage) const {
    const std::string& maxlen = storage->emplace_back(std::to_string(options_.log_max_len));
    std::vector<std::vector<std::string_view>> commands;
    commands.reserve(lines.size());
    for (const auto& [job_id, line] : lines) {
      const std::string& key = storage->emplace_back(keys_.Log(job_id));
      const std::string& time = storage->emplace_back(std::to_string(line.time_ms));
      commands.push_back({"XADD", key, "MAXLEN", "~", maxlen, "*", "time_ms", time, "task",
                          line.task_id, "worker", line.worker_id, "line", line.line});
    }
    return commands;
  }

  Status AppendLogsLater(const std::vector<std::pair<std::string, LogLine>>& lines) override {
    std::deque<std::string> storage;
    return SendLater(LogCommands(lines, &storage));
  }

  Status AppendLogs(const std::vector<std::pair<std::string, LogLine>>& lines) override {
    if (lines.empty()) return Status::OK();
    std::deque<std::string> storage;
    FAIRY_ASSIGN_OR_RETURN(std::vector<Reply> replies,
                           client_->Pipeline(LogCommands(lines, &storage)));
    for (const Reply& r : replies) {
      if (r.is_error()) return Status::FailedPrecondition("redis " + client_->endpoint() + ": XADD: " + r.str);
    }
    return Status::OK();
  }

  Result<std::vector<LogLine>> ReadLog(const std::string& job_id, const std::string& after_id,
                                       int max_count) override {
    FAIRY_RETURN_IF_ERROR(ParseStreamId(after_id).status());
    FAIRY_ASSIGN_OR_RETURN(Reply r, Range(keys_.Log(job_id), after_id, max_count));
    std::vector<LogLine> out;
    for (const auto& entry : r.elements) {
      if (entry.elements.size() != 2) continue;
      auto f = FieldMap(entry.elements[1]);
      out.push_back(LogLine{std::atoll(f["time_ms"].c_str()), f["task"], f["worker"], f["line"],
                            entry.elements[0].str});
    }
    return out;
  }

 private:
  // Unfenced and well-formed: may be merged with its unfenced neighbours of the same job.
  static bool Mergeable(const Mutation& m) {
    return !m.fence && !m.job_id.empty() && (!m.job || m.job->job_id == m.job_id);
  }
  // The mutations g[0], g[1], ... (same job, unfenced) as one: the last job record with the spec
  // and plan of the last one that wrote them, each task's last record, every event in order.
  static Mutation Merge(const std::vector<const Mutation*>& mutations, const std::vector<size_t>& g) {
    Mutation merged;
    merged.job_id = mutations[g.front()]->job_id;
    const JobRecord* spec_from = nullptr;
    const JobRecord* plan_from = nullptr;
    std::map<std::string, size_t> task_index;
    for (size_t i : g) {
      const Mutation& m = *mutations[i];
      if (m.job) {
        merged.job = m.job;
        if (m.include_spec) spec_from = &*m.job;
        if (m.include_plan) plan_from = &*m.job;
      }
      for (const TaskRecord& t : m.tasks) {
        auto [it, fresh] = task_index.emplace(t.task_id, merged.tasks.size());
        if (fresh) {
          merged.tasks.push_back(t);
        } else {
          merged.tasks[it->second] = t;
        }
      }
      merged.events.insert(merged.events.end(), m.events.begin(), m.events.end());
    }
    merged.include_spec = spec_from != nullptr;
    merged.include_plan = plan_from != nullptr;
    if (spec_from != nullptr) merged.job->spec = spec_from->spec;
    if (plan_from != nullptr) merged.job->shots = plan_from->shots;
    return merged;
  }

  // What this store last wrote successfully for a job: job-hash fields and its queue entry.
  struct Written {
    std::map<std::string, std::string, std::less<>> fields;
    std::string queue_op;  // "add" | "rem"
    std::string queue_score;
  };
  // A call's whole job record (every field of the mutation's JSON, sent or not) and queue entry.
  struct JobWrite {
    std::vector<std::pair<std::string, std::string>> fields;
    std::string queue_op;
    std::string queue_score;
  };

  // The apply script's keys and arguments for one mutation, and what it writes when it succeeds.
  struct ApplyCall {
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::string job_id;
    std::optional<JobWrite> job;  // nullopt: the mutation leaves the job record alone
  };

  // After a successful call. A finished job is forgotten (bounded memory; a retry writes whole).
  void Remember(const ApplyCall& c) {
    if (!c.job) return;
    if (c.job->queue_op == "rem") {
      written_.erase(c.job_id);
      return;
    }
    Written& w = written_[c.job_id];
    for (const auto& [field, value] : c.job->fields) w.fields[field] = value;  // spec/shots stay
    w.queue_op = c.job->queue_op;
    w.queue_score = c.job->queue_score;
  }

  // Job-hash fields (and the queue entry) written by the calls ahead in one pipeline.
  struct Touched {
    std::set<std::string> fields;
    bool queue = false;
  };

  // A call writes each field that differs from the state confirmed before the pipeline or that a
  // call ahead of it in the same pipeline writes: whatever became of those calls (a stale fence
  // writes nothing), Redis then holds this call's whole record.
  Status BuildApply(const Mutation& m, Touched* touched, ApplyCall* call) const {
    if (m.job_id.empty()) return Status::InvalidArgument("store: mutation without job_id");
    if (m.fence && m.fence->job_id != m.job_id) {
      return Status::InvalidArgument("store: mutation for job " + m.job_id + " is fenced on job " +
                                     m.fence->job_id);
    }
    std::vector<std::string>& args = call->args;
    args.push_back(m.fence ? m.fence->task_id : "");
    args.push_back(m.fence ? std::to_string(m.fence->attempt) : "");
    args.push_back(m.job_id);
    call->job_id = m.job_id;
    const auto known = written_.find(m.job_id);
    const Written* before = known == written_.end() ? nullptr : &known->second;
    if (m.job) {
      if (m.job->job_id != m.job_id)
        return Status::InvalidArgument("store: mutation for job " + m.job_id + " carries job " +
                                       m.job->job_id);
      JobWrite& w = call->job.emplace();
      w.queue_op = IsFinal(m.job->state) ? "rem" : "add";
      w.queue_score = std::to_string(
          static_cast<int64_t>(redis::QueueScore(m.job->priority, m.job->submit_ms)));
      const bool queue_same = before != nullptr && !touched->queue &&
                              before->queue_op == w.queue_op &&
                              before->queue_score == w.queue_score;
      touched->queue = touched->queue || !queue_same;
      args.push_back(queue_same ? "" : w.queue_op);
      args.push_back(w.queue_score);
    } else {
      args.push_back("");
      args.push_back("0");
    }
    args.push_back(std::to_string(options_.events_max_len));
    if (m.job) {
      std::vector<scheduler::RecordField> fields = m.job->Fields(m.include_spec, m.include_plan);
      const size_t count_at = args.size();
      args.push_back("");
      size_t changed = 0;
      call->job->fields.reserve(fields.size());
      for (scheduler::RecordField& f : fields) {
        const std::string field = f.key;
        std::string text;
        if (f.str == nullptr) {
          text = std::move(f.json);
        } else if (TextFields().count(field)) {
          text = *f.str;
        } else {
          scheduler::AppendJsonString(*f.str, &text);
        }
        bool same = false;
        if (before != nullptr && touched->fields.count(field) == 0) {
          auto it = before->fields.find(field);
          same = it != before->fields.end() && it->second == text;
        }
        if (!same) {
          touched->fields.insert(field);
          args.push_back(field);
          args.push_back(text);
          ++changed;
        }
        call->job->fields.emplace_back(field, std::move(text));
      }
      args[count_at] = std::to_string(changed);
    } else {
      args.push_back("0");
    }
    args.push_back(std::to_string(m.tasks.size()));
    for (const TaskRecord& t : m.tasks) {
      args.push_back(t.task_id);
      args.push_back(t.ToJsonText());
      args.push_back(std::to_string(IsLive(t.state) ? t.attempt : 0));
    }
    args.push_back(std::to_string(m.events.size()));
    for (const Event& e : m.events) {
      args.push_back(std::to_string(e.time_ms));
      args.push_back(e.type);
      args.push_back(e.job_id);
      args.push_back(e.task_id);
      args.push_back(e.worker_id);
      args.push_back(std::to_string(e.attempt));
      args.push_back(e.detail);
    }
    call->keys = {keys_.Job(m.job_id), keys_.Tasks(m.job_id), keys_.Attempts(m.job_id),
                  keys_.Queue(),         keys_.Events(),        keys_.Jobs()};
    return Status::OK();
  }

  Result<Reply> Range(const std::string& key, const std::string& after_id, int max_count) {
    const std::string start =
        after_id.empty() || after_id == "0" || after_id == "-" ? "-" : "(" + after_id;
    const std::string count = std::to_string(std::max(max_count, 0));
    if (max_count <= 0) return Reply{Reply::Type::kArray, "", 0, {}};
    return client_->Command({"XRANGE", key, start, "+", "COUNT", count});
  }

  Result<JobSnapshot> Decode(const std::string& job_id, const Reply& job_hash,
                             const Reply& tasks_hash) {
    if (job_hash.is_error()) {
      return Status::Corruption("store: " + keys_.Job(job_id) + ": " + job_hash.str);
    }
    if (tasks_hash.is_error()) {
      return Status::Corruption("store: " + keys_.Tasks(job_id) + ": " + tasks_hash.str);
    }
    if (job_hash.elements.empty())
      return Status::NotFound("store: job " + job_id + " is unknown (" + keys_.Job(job_id) + ")");
    json j = json::object();
    for (const auto& [field, value] : FieldMap(job_hash)) {
      if (TextFields().count(field)) {
        j[field] = value;
        continue;
      }
      json v = json::parse(value, nullptr, false);
      if (v.is_discarded()) {
        return Status::Corruption("store: " + keys_.Job(job_id) + " field " + field +
                                  " is not JSON: '" + value + "'");
      }
      j[field] = std::move(v);
    }
    auto rec = JobRecord::FromJson(j);
    if (!rec.ok()) return rec.status().WithContext("store: " + keys_.Job(job_id));
    JobSnapshot s;
    s.job = std::move(*rec);
    for (const auto& [task_id, value] : FieldMap(tasks_hash)) {
      json tj = json::parse(value, nullptr, false);
      auto t = scheduler::TaskRecord::FromJson(tj);
      if (!t.ok())
        return t.status().WithContext("store: " + keys_.Tasks(job_id) + " field " + task_id);
      s.tasks.push_back(std::move(*t));
    }
    return s;
  }

  std::unique_ptr<redis::RedisClient> client_;
  RedisStoreOptions options_;
  redis::FarmKeys keys_;
  std::unordered_map<std::string, Written> written_;  // by job id; unfinished jobs only
};

}  // namespace

std::unique_ptr<Store> NewRedisStore(std::unique_ptr<redis::RedisClient> client,
                                     RedisStoreOptions options) {
  return std::make_unique<RedisStore>(std::move(client), std::move(options));
}

}  // namespace fairy::store
