#include "coordinator/daemon/coordinator.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "common/log.h"
#include "coordinator/media_tasks/media_tasks.h"

namespace fairy::coordinator {

namespace net = boost::asio;
using scheduler::Actions;
using scheduler::RunningTask;

namespace {

scheduler::WorkerInfo InfoFrom(const protocol::Ready& r) {
  scheduler::WorkerInfo info;
  info.worker_id = r.worker_id;
  info.host = r.hostname;
  info.device = r.device;
  info.memory_mb = r.memory_bytes >> 20;
  info.tags = r.tags;
  info.models = r.loaded_models;
  info.reports_models = r.installed_models.has_value();
  if (r.installed_models) info.installed_models = *r.installed_models;
  info.slots = static_cast<int>(std::max<int64_t>(1, r.capacity));
  return info;
}

RunningTask RunningFrom(const protocol::TaskRef& ref) {
  return RunningTask{ref.job_id, ref.task_id, ref.attempt};
}

bool IsStale(const Status& s) { return s.code() == Status::Code::kFailedPrecondition; }

// What a write made without waiting (Store::AppendLogsLater, PutWorkersLater) returns: the first
// error of any such earlier write, so it cannot say which one failed.
void WarnIfWriteLaterFailed(const Status& s) {
  if (!s.ok()) {
    FAIRY_LOG(kWarn, "coordinator")
        << "log lines or worker records (not waited for): " << s.ToString();
  }
}

// Media work (probing, shot detection, encoding) runs at a lower CPU priority than the event loop
// and the worker link, so a stitch never delays the assignments of other jobs' tasks.
void LowerThisThreadsPriority() {
  static thread_local const bool lowered = [] {
    return setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10) == 0;
  }();
  (void)lowered;
}

// Job state has no expiry: a Redis that may evict any key when its memory is full could drop a
// job, a task or an attempt number silently. Only keys with a TTL may go (edited shots' anchor
// caches, upload staging parts, worker entries: each is recomputed or rewritten).
Status CheckEvictionPolicy(redis::RedisClient& client, const redis::RedisOptions& where) {
  auto info = client.Command({"INFO", "memory"});
  if (!info.ok() || info->is_error()) {
    FAIRY_LOG(kWarn, "coordinator") << "Redis INFO memory failed; eviction policy not checked: "
                                    << (info.ok() ? info->str : info.status().ToString());
    return Status::OK();
  }
  const std::optional<std::string> policy = redis::InfoField(info->str, "maxmemory_policy");
  if (!policy || policy->rfind("allkeys-", 0) != 0) return Status::OK();
  return Status::FailedPrecondition(
      "Redis at " + where.host + ":" + std::to_string(where.port) + " has maxmemory-policy " +
      *policy +
      ": it may evict the farm's job state when its memory is full. Set maxmemory-policy to "
      "volatile-ttl (only keys with an expiry go, finished shots' anchor caches first) or "
      "noeviction (docs/operations.md, \"Redis memory\")");
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)),
      media_pool_(static_cast<size_t>(std::max(1, options_.media_threads))) {}

Coordinator::~Coordinator() {
  if (link_) link_->Stop();
  media_pool_.stop();
  media_pool_.join();
}

Result<std::unique_ptr<Coordinator>> Coordinator::Start(CoordinatorOptions options) {
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options)));
  FAIRY_RETURN_IF_ERROR(c->Init());
  return c;
}

Status Coordinator::Init() {
  if (options_.redis_url.empty()) {
    FAIRY_LOG(kWarn, "coordinator")
        << "no redis_url: using the in-memory store (state is lost on exit)";
    store_ = store::NewMemoryStore(&clock_);
  } else {
    FAIRY_ASSIGN_OR_RETURN(redis::RedisOptions ro, redis::ParseRedisUrl(options_.redis_url));
    if (!options_.redis_password.empty()) ro.password = options_.redis_password;
    FAIRY_ASSIGN_OR_RETURN(auto client, redis::RedisClient::Connect(ro));
    FAIRY_RETURN_IF_ERROR(client->Ping());
    FAIRY_RETURN_IF_ERROR(CheckEvictionPolicy(*client, ro));
    store::RedisStoreOptions so;
    so.key_prefix = options_.key_prefix;
    store_ = store::NewRedisStore(std::move(client), so);
    FAIRY_ASSIGN_OR_RETURN(anchor_redis_, redis::RedisClient::Connect(ro));
    anchor::AnchorStoreOptions ao;
    ao.key_prefix = options_.key_prefix;
    anchors_ = std::make_unique<anchor::AnchorStore>(anchor_redis_.get(), ao);
  }
  // The link first: what it receives waits in io_ until Run(), and recovery may already send.
  link::RouterOptions lo;
  lo.bind_endpoint = options_.worker_bind;
  lo.heartbeat_interval_ms = options_.scheduler.heartbeat_interval_ms;
  lo.liveness = options_.scheduler.heartbeat_liveness;
  FAIRY_ASSIGN_OR_RETURN(link_, link::RouterLink::Start(
                                    lo,
                                    [this](const std::string& peer, protocol::Message m) {
                                      bool first = false;
                                      {
                                        std::lock_guard<std::mutex> lock(inbox_mutex_);
                                        first = inbox_.empty();
                                        inbox_.emplace_back(peer, std::move(m));
                                      }
                                      if (first) net::post(io_, [this] { OnWorkerMessages(); });
                                    },
                                    [](const std::string& peer, const Status& why) {
                                      // Already logged by the link; nothing else to do but count
                                      // (link_->rejected()).
                                      (void)peer;
                                      (void)why;
                                    }));
  worker_endpoint_ = link_->endpoint();
  FAIRY_RETURN_IF_ERROR(Reload());
  FAIRY_ASSIGN_OR_RETURN(api_, api::HttpServer::Start(io_, options_.api, this));
  ScheduleTick();
  return Status::OK();
}

Status Coordinator::Reload() {
  // Finished jobs too: they stay listed, with their logs, and retryable until
  // finished_job_ttl_ms has passed (PurgeFinishedJobs).
  FAIRY_ASSIGN_OR_RETURN(std::vector<scheduler::JobSnapshot> snapshots,
                         store_->LoadAll(/*unfinished_only=*/false));
  scheduler_ = std::make_unique<scheduler::Scheduler>(options_.scheduler, &clock_);
  plans_.clear();
  shot_settings_.clear();
  for (const auto& snap : snapshots) {
    nlohmann::json spec = nlohmann::json::parse(snap.job.spec, nullptr, false);
    auto plan = JobPlan::FromJson(spec);
    if (!plan.ok()) {
      FAIRY_LOG(kError, "coordinator")
          << "job " << snap.job.job_id << ": stored spec unreadable: " << plan.status().ToString();
      continue;
    }
    plans_[snap.job.job_id] = std::move(plan).value();
  }
  Actions actions;
  FAIRY_RETURN_IF_ERROR(scheduler_->Recover(snapshots, &actions));
  const auto unfinished = std::count_if(
      snapshots.begin(), snapshots.end(),
      [](const scheduler::JobSnapshot& s) { return !scheduler::IsFinal(s.job.state); });
  if (!snapshots.empty()) {
    FAIRY_LOG(kInfo, "coordinator")
        << "resumed " << unfinished << " unfinished job(s) from the store ("
        << snapshots.size() - unfinished << " finished)";
  }
  Execute(std::move(actions));
  PurgeFinishedJobs();
  return Status::OK();
}

void Coordinator::PurgeFinishedJobs() {
  const int64_t ttl = options_.finished_job_ttl_ms;
  const int64_t now = clock_.NowMs();
  next_purge_ms_ = now + std::clamp<int64_t>(ttl / 10, options_.tick_ms, 60000);
  if (ttl <= 0) return;
  std::vector<std::string> expired;
  for (const scheduler::JobRecord* j : scheduler_->Jobs()) {
    const int64_t ended = j->finished_ms > 0 ? j->finished_ms : j->submit_ms;
    if (scheduler::IsFinal(j->state) && now - ended >= ttl) expired.push_back(j->job_id);
  }
  for (const std::string& id : expired) {
    Status s = store_->DeleteJob(id);
    if (!s.ok()) {
      FAIRY_LOG(kWarn, "coordinator")
          << "deleting finished job " << id << ": " << s.ToString() << " (tried again later)";
      return;
    }
    (void)scheduler_->Forget(id);
    plans_.erase(id);
    std::erase_if(shot_settings_, [&](const auto& e) { return e.first.first == id; });
    FAIRY_LOG(kInfo, "coordinator")
        << "job " << id << " deleted: finished more than finished_job_ttl_ms=" << ttl << " ago";
  }
}

void Coordinator::Run() {
  auto guard = net::make_work_guard(io_);
  io_.run();
}

void Coordinator::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  net::post(io_, [this] {
    FAIRY_LOG(kInfo, "coordinator") << "shutting down";
    if (api_) api_->Stop();
    if (link_) link_->Stop();
    tick_timer_.cancel();
    io_.stop();
  });
}

void Coordinator::ScheduleTick() {
  tick_timer_.expires_after(std::chrono::milliseconds(options_.tick_ms));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || shutting_down_.load()) return;
    Actions actions;
    scheduler_->Tick(&actions);
    ExecuteAndDispatch(std::move(actions));
    RecordRate();
    if (clock_.NowMs() >= next_purge_ms_) PurgeFinishedJobs();
    ScheduleTick();
  });
}

const JobPlan* Coordinator::Plan(const std::string& job_id) {
  auto it = plans_.find(job_id);
  return it == plans_.end() ? nullptr : &it->second;
}

void Coordinator::Log(const std::string& job_id, const std::string& task_id,
                      const std::string& worker_id, const std::string& line) {
  scheduler::LogLine l;
  l.time_ms = clock_.NowMs();
  l.task_id = task_id;
  l.worker_id = worker_id;
  l.line = line;
  WarnIfWriteLaterFailed(store_->AppendLogsLater({{job_id, l}}));
}

void Coordinator::OnWorkerMessages() {
  std::deque<std::pair<std::string, protocol::Message>> batch;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    batch.swap(inbox_);
  }
  if (shutting_down_.load()) return;
  Actions actions;
  std::vector<std::pair<std::string, scheduler::LogLine>> logs;
  for (auto& [peer, message] : batch)
    HandleWorkerMessage(peer, std::move(message), &actions, &logs);
  ExecuteAndDispatch(std::move(actions));
  // Log lines are written after the actions and the dispatch, without waiting for Redis's
  // answer: they are not on the DONE -> TASK path.
  WarnIfWriteLaterFailed(store_->AppendLogsLater(logs));
}

void Coordinator::HandleWorkerMessage(
    const std::string& peer, protocol::Message message, Actions* out,
    std::vector<std::pair<std::string, scheduler::LogLine>>* logs) {
  Actions& actions = *out;
  auto Log = [&](const std::string& job, const std::string& task, const std::string& w,
                 std::string line) {
    logs->push_back({job, scheduler::LogLine{clock_.NowMs(), task, w, std::move(line), ""}});
  };
  const std::string& worker = peer;  // workers use their id as the routing id
  auto ask_ready = [&] {
    link_->Send(peer, protocol::Disconnect{"unknown worker: send READY", {}});
  };
  if (auto* r = std::get_if<protocol::Ready>(&message)) {
    if (r->worker_id != peer) {
      FAIRY_LOG(kWarn, "coordinator") << "READY from routing id '" << peer << "' names worker '"
                                      << r->worker_id << "'; dropped";
      return;
    }
    std::vector<RunningTask> running;
    for (const auto& ref : r->running) running.push_back(RunningFrom(ref));
    Status s = scheduler_->OnWorkerHello(InfoFrom(*r), running, &actions);
    if (!s.ok()) {
      FAIRY_LOG(kWarn, "coordinator") << "worker " << worker << " hello: " << s.ToString();
    }
    worker_peers_[worker] = peer;
    FAIRY_LOG(kInfo, "coordinator")
        << "worker " << worker << " ready (" << r->device << ", " << r->capacity << " slot(s), "
        << r->running.size() << " running)";
    const int cap = options_.scheduler.max_worker_slots;
    if (cap > 0 && r->capacity > cap) {
      FAIRY_LOG(kWarn, "coordinator") << "worker " << worker << " claims " << r->capacity
                                      << " slots; workers.max_slots allows it " << cap;
    }
  } else if (auto* h = std::get_if<protocol::Heartbeat>(&message)) {
    const std::vector<std::string>* models = h->installed_models ? &*h->installed_models : nullptr;
    if (models != nullptr) {
      FAIRY_LOG(kInfo, "coordinator")
          << "worker " << worker << " now has " << models->size() << " model(s)";
    }
    Status s = scheduler_->OnHeartbeat(worker, &actions, models);
    if (s.code() == Status::Code::kNotFound) ask_ready();
  } else if (auto* p = std::get_if<protocol::Progress>(&message)) {
    Status s = scheduler_->OnTaskProgress(
        RunningFrom(p->ref), worker,
        scheduler::ProgressReport{p->frames_done, p->steps_done, p->load_bytes_read,
                                  p->load_bytes_total},
        &actions);
    if (s.code() == Status::Code::kNotFound && scheduler_->FindWorker(worker) == nullptr) {
      ask_ready();
    } else if (IsStale(s)) {
      link_->Send(peer, protocol::Cancel{p->ref, "stale attempt: " + s.message()});
    } else if (s.ok() && !p->message.empty()) {
      Log(p->ref.job_id, p->ref.task_id, worker, p->message);
    }
  } else if (auto* d = std::get_if<protocol::Done>(&message)) {
    Status s = scheduler_->OnTaskDone(RunningFrom(d->ref), worker, d->output, &actions);
    if (s.ok()) {
      cache_bytes_published_ += d->cache_bytes;
      if (const auto* t = scheduler_->FindTask(d->ref.job_id, d->ref.task_id)) {
        if (t->kind == scheduler::TaskKind::kAnchor && d->cache_bytes == 0) {
          const scheduler::JobRecord* job = scheduler_->FindJob(d->ref.job_id);
          // anchor_mode cache, but the worker could not publish
          if (job != nullptr && job->frames_wait_for_anchor) ++anchor_caches_unpublished_;
        }
        if (t->finished_ms > 0 && t->assigned_ms > 0) {
          double seconds = static_cast<double>(t->finished_ms - t->assigned_ms) / 1000.0;
          for (size_t i = 0; i < std::size(kDurationBuckets); ++i)
            duration_counts_[i] += seconds <= kDurationBuckets[i];
          ++duration_count_;
          duration_sum_s_ += seconds;
        }
      }
      Log(d->ref.job_id, d->ref.task_id, worker,
          "done: " + std::to_string(d->frames) + " frame(s) in " + std::to_string(d->duration_ms) +
              " ms");
    } else {
      FAIRY_LOG(kInfo, "coordinator") << "ignored " << protocol::Describe(message) << " from "
                                      << worker << ": " << s.ToString();
    }
  } else if (auto* f = std::get_if<protocol::Failed>(&message)) {
    Status s =
        scheduler_->OnTaskFailed(RunningFrom(f->ref), worker, f->error, f->retryable, &actions);
    if (s.ok()) Log(f->ref.job_id, f->ref.task_id, worker, "failed: " + f->error);
  } else if (auto* g = std::get_if<protocol::Disconnect>(&message)) {
    FAIRY_LOG(kInfo, "coordinator") << "worker " << worker << " leaves: " << g->reason;
    Status s = scheduler_->OnWorkerGone(worker, &actions);
    (void)s;
    worker_peers_.erase(worker);
  } else {
    FAIRY_LOG(kWarn, "coordinator")
        << "worker " << worker << " sent " << protocol::Describe(message)
        << ", which only the coordinator sends; dropped";
  }
}

void Coordinator::ExecuteAndDispatch(Actions actions) {
  for (const auto* w : scheduler_->Workers()) {
    if (w->draining) continue;
    int n = w->info.slots - static_cast<int>(w->running.size());
    if (n <= 0 || !worker_peers_.count(w->info.worker_id)) continue;
    Status s = scheduler_->OnWorkerReady(w->info.worker_id, n, &actions);
    if (!s.ok() && s.code() != Status::Code::kNotFound) {
      FAIRY_LOG(kWarn, "coordinator")
          << "assigning to " << w->info.worker_id << ": " << s.ToString();
    }
  }
  Execute(std::move(actions));
}

void Coordinator::Execute(Actions actions) {
  // Every job/task write of the list goes to the store in one batch (one Redis round trip), before
  // any action is executed; the actions then run in order up to the first failed write, and the
  // state is reloaded from the store (writes after the failed one may have landed: recovery treats
  // their tasks like tasks that were out when a coordinator restarted).
  std::vector<const scheduler::Mutation*> writes;
  for (const auto& action : actions) {
    if (const auto* p = std::get_if<scheduler::PersistAction>(&action))
      writes.push_back(&p->mutation);
  }
  const std::vector<Status> written =
      writes.empty() ? std::vector<Status>() : store_->ApplyAll(writes);
  size_t next_write = 0;
  // Worker registry writes are informational (recovery relies on the workers' READY), so they go
  // after the sends, and the loop does not wait for them (32 heartbeats at once were 32 round
  // trips in a row).
  std::vector<const scheduler::PersistWorkerAction*> worker_writes;
  for (auto& action : actions) {
    if (auto* p = std::get_if<scheduler::PersistAction>(&action)) {
      const Status& s = written[next_write++];
      if (!s.ok()) {
        FAIRY_LOG(kError, "coordinator") << "persisting job " << p->mutation.job_id << " failed ("
                                         << s.ToString() << "); reloading state from the store";
        Status r = Reload();
        if (!r.ok()) {
          FAIRY_LOG(kError, "coordinator") << "reload failed: " << r.ToString();
        }
        return;  // the rest of this list depended on the failed write
      }
    } else if (auto* w = std::get_if<scheduler::PersistWorkerAction>(&action)) {
      worker_writes.push_back(w);
    } else if (auto* dw = std::get_if<scheduler::DeleteWorkerAction>(&action)) {
      Status s = store_->DeleteWorker(dw->worker_id);
      if (!s.ok()) {
        FAIRY_LOG(kWarn, "coordinator") << "worker record: " << s.ToString();
      }
    } else if (auto* a = std::get_if<scheduler::AnalyzeAction>(&action)) {
      StartAnalyze(a->job_id);
    } else if (auto* as = std::get_if<scheduler::AssignAction>(&action)) {
      const scheduler::TaskRecord& t = as->task;
      const JobPlan* plan = Plan(t.job_id);
      const scheduler::JobRecord* job = scheduler_->FindJob(t.job_id);
      if (plan == nullptr || job == nullptr || t.shot < 0 ||
          t.shot >= static_cast<int>(job->shots.size())) {
        FAIRY_LOG(kError, "coordinator")
            << "cannot build TASK " << t.job_id << "/" << t.task_id << ": job plan or shot missing";
        continue;
      }
      protocol::Task task;
      task.ref = {t.job_id, t.task_id, t.attempt};
      task.kind = t.kind == scheduler::TaskKind::kAnchor ? protocol::TaskKind::kAnchor
                                                         : protocol::TaskKind::kFrames;
      task.shot = t.shot;
      task.frame_begin = t.first_frame;
      task.frame_end = t.first_frame + t.frame_count;
      task.settings = TaskSettings(*plan, t.job_id, job->shots[t.shot]);
      auto peer = worker_peers_.find(as->worker_id);
      link_->Send(peer == worker_peers_.end() ? as->worker_id : peer->second, std::move(task));
    } else if (auto* c = std::get_if<scheduler::CancelTaskAction>(&action)) {
      auto peer = worker_peers_.find(c->worker_id);
      link_->Send(peer == worker_peers_.end() ? c->worker_id : peer->second,
                  protocol::Cancel{{c->job_id, c->task_id, c->attempt}, c->reason});
      if (c->reason.rfind("stalled", 0) == 0) {
        FAIRY_LOG(kWarn, "coordinator")
            << "worker " << c->worker_id << ": " << c->job_id << "/" << c->task_id << " attempt "
            << c->attempt << " " << c->reason << "; requeued";
        Log(c->job_id, c->task_id, c->worker_id,
            "attempt " + std::to_string(c->attempt) + " " + c->reason +
                "; requeued, the worker is told to cancel it");
      }
    } else if (auto* st = std::get_if<scheduler::StitchAction>(&action)) {
      StartStitch(st->job_id);
    } else if (auto* dc = std::get_if<scheduler::DropAnchorCacheAction>(&action)) {
      if (dc->key.empty()) {
        DropAnchorCache(dc->job_id, dc->delete_now);
      } else {
        ReleaseAnchorCacheEntry(dc->job_id, dc->key);
      }
    }
  }
  if (!worker_writes.empty()) {
    std::vector<std::pair<const scheduler::WorkerRecord*, int64_t>> workers;
    workers.reserve(worker_writes.size());
    for (const auto* w : worker_writes) workers.emplace_back(&w->worker, w->ttl_ms);
    WarnIfWriteLaterFailed(store_->PutWorkersLater(workers));
  }
}

const nlohmann::json& Coordinator::TaskSettings(const JobPlan& plan, const std::string& job_id,
                                                const scheduler::ShotPlan& shot) {
  constexpr size_t kMaxShots = 4096;  // about 1 KB each
  auto key = std::make_pair(job_id, shot.index);
  auto it = shot_settings_.find(key);
  if (it != shot_settings_.end() && it->second.shot == shot) return it->second.settings;
  if (shot_settings_.size() >= kMaxShots) shot_settings_.clear();
  ShotSettings& entry = shot_settings_[key];
  entry.shot = shot;
  entry.settings = protocol::ToJson(plan.Settings(shot));
  return entry.settings;
}

void Coordinator::StartAnalyze(const std::string& job_id) {
  const JobPlan* plan = Plan(job_id);
  if (plan == nullptr) {
    Actions actions;
    (void)scheduler_->OnAnalyzeFailed(job_id, "the job's stored spec is unreadable", &actions);
    Execute(std::move(actions));
    return;
  }
  Log(job_id, "", "", "analyze: probing " + plan->input + " and detecting shots");
  net::post(media_pool_, [this, job_id, plan = *plan] {
    LowerThisThreadsPriority();
    Result<AnalyzeResult> r = Analyze(plan);
    net::post(io_, [this, job_id, r = std::move(r)] {
      Actions actions;
      Status s;
      if (r.ok()) {
        Log(job_id, "", "",
            "analyze: " + std::to_string(r->frames) + " frames, " +
                std::to_string(r->shots.size()) + " shot(s), working size " +
                std::to_string(r->working_width) + "x" + std::to_string(r->working_height));
        s = scheduler_->OnAnalyzeDone(job_id, r->shots, &actions);
      } else {
        Log(job_id, "", "", "analyze failed: " + r.status().ToString());
        s = scheduler_->OnAnalyzeFailed(job_id, r.status().ToString(), &actions);
      }
      if (!s.ok()) {
        FAIRY_LOG(kWarn, "coordinator") << "job " << job_id << " analyze result: " << s.ToString();
      }
      ExecuteAndDispatch(std::move(actions));
    });
  });
}

void Coordinator::StartStitch(const std::string& job_id) {
  const JobPlan* plan = Plan(job_id);
  std::vector<std::pair<int64_t, std::string>> chunks;
  for (const auto* t : scheduler_->Tasks(job_id)) {
    if (t->kind == scheduler::TaskKind::kFrames) chunks.emplace_back(t->first_frame, t->result);
  }
  std::sort(chunks.begin(), chunks.end());
  std::vector<std::string> paths;
  for (auto& c : chunks) paths.push_back(c.second);
  if (plan == nullptr) {
    Actions actions;
    (void)scheduler_->OnStitchFailed(job_id, "the job's stored spec is unreadable", &actions);
    Execute(std::move(actions));
    return;
  }
  Log(job_id, "", "",
      "stitch: encoding " + std::to_string(paths.size()) + " chunk(s) to " + plan->output);
  net::post(media_pool_, [this, job_id, plan = *plan, paths] {
    LowerThisThreadsPriority();
    Result<StitchResult> r = Stitch(plan, paths);
    net::post(io_, [this, job_id, output = plan.output, work_dir = plan.work_dir,
                    r = std::move(r)] {
      Actions actions;
      Status s;
      if (r.ok()) {
        Log(job_id, "", "", "stitch: wrote " + std::to_string(r->frames) + " frames to " + output);
        s = scheduler_->OnStitchDone(job_id, output, &actions);
      } else {
        Log(job_id, "", "", "stitch failed: " + r.status().ToString());
        s = scheduler_->OnStitchFailed(job_id, r.status().ToString(), &actions);
      }
      if (!s.ok()) {
        FAIRY_LOG(kWarn, "coordinator") << "job " << job_id << " stitch result: " << s.ToString();
      }
      ExecuteAndDispatch(std::move(actions));
      const scheduler::JobRecord* job = scheduler_->FindJob(job_id);
      if (r.ok() && job != nullptr && job->state == scheduler::JobState::kDone) {
        net::post(media_pool_, [work_dir] {
          std::error_code ec;
          std::filesystem::remove_all(work_dir, ec);
        });
      }
    });
  });
}

void Coordinator::DropAnchorCache(const std::string& job_id, bool delete_now) {
  if (!anchors_) return;
  auto r = delete_now ? anchors_->DeleteJob(job_id)
                      : anchors_->ExpireJob(job_id, options_.anchor_cache_ttl_ms);
  if (!r.ok()) {
    FAIRY_LOG(kWarn, "coordinator")
        << "job " << job_id << ": anchor cache " << (delete_now ? "delete" : "expire")
        << " failed: " << r.status().ToString();
  } else if (*r > 0) {
    FAIRY_LOG(kInfo, "coordinator")
        << "job " << job_id << ": " << (delete_now ? "deleted " : "expiring ") << *r
        << " anchor cache entr" << (*r == 1 ? "y" : "ies");
  }
}

void Coordinator::ReleaseAnchorCacheEntry(const std::string& job_id, const std::string& key) {
  if (!anchors_) return;
  auto r = anchors_->Release(key, job_id, options_.anchor_cache_ttl_ms);
  if (!r.ok()) {
    FAIRY_LOG(kWarn, "coordinator")
        << "job " << job_id << ": anchor cache " << key
        << " release failed (it expires with the job): " << r.status().ToString();
  } else if (*r) {
    Log(job_id, "", "",
        "anchor cache " + key + " expires in " +
            std::to_string(options_.anchor_cache_ttl_ms / 1000) + " s: its shot is edited");
  }
}

}  // namespace fairy::coordinator
