#include "worker/runner/worker.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "worker/runner/model_inventory.h"

namespace fairy::worker {
namespace {

std::string Key(const protocol::TaskRef& ref) { return ref.job_id + "/" + ref.task_id; }

bool Retryable(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
    case Status::Code::kUnsupported:
    case Status::Code::kPermissionDenied:
      return false;
    default:
      return true;
  }
}

}  // namespace

Worker::Worker(WorkerOptions options, TaskExecutor* executor)
    : options_(std::move(options)), executor_(executor) {}

Result<std::unique_ptr<Worker>> Worker::Start(WorkerOptions options, TaskExecutor* executor) {
  if (executor == nullptr) return Status::InvalidArgument("worker: no executor");
  if (options.slots < 1) return Status::InvalidArgument("worker: slots must be >= 1");
  std::unique_ptr<Worker> w(new Worker(std::move(options), executor));
  Worker* raw = w.get();
  if (!w->options_.models_dir.empty()) w->RescanModels();  // READY carries the first list
  FAIRY_ASSIGN_OR_RETURN(w->link_,
                         link::DealerLink::Start(
                             w->options_.link, [raw] { return raw->MakeReady(); },
                             [raw](protocol::Message m) { raw->OnMessage(std::move(m)); }));
  for (int i = 0; i < w->options_.slots; ++i) w->threads_.emplace_back([raw] { raw->TaskLoop(); });
  if (!w->options_.models_dir.empty()) w->threads_.emplace_back([raw] { raw->ScanLoop(); });
  FAIRY_LOG(kInfo, "worker") << "worker " << w->options_.link.worker_id << " ("
                             << w->options_.device << ", " << w->options_.slots
                             << " slot(s)) connecting to " << w->options_.link.endpoint;
  return w;
}

Worker::~Worker() { Drain(0); }

protocol::Ready Worker::MakeReady() {
  protocol::Ready r;
  r.worker_id = options_.link.worker_id;
  r.hostname = options_.hostname;
  r.device = options_.device;
  r.memory_bytes = options_.memory_bytes;
  r.tags = options_.tags;
  r.loaded_models = executor_->LoadedModels();
  if (!options_.models_dir.empty()) {
    std::lock_guard<std::mutex> lock(models_mutex_);
    r.installed_models = installed_models_;
  }
  r.capacity = options_.slots;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [key, a] : running_) {
    if (!a.cancel->load()) r.running.push_back(a.task.ref);
  }
  for (const auto& a : queue_) r.running.push_back(a.task.ref);
  return r;
}

void Worker::OnMessage(protocol::Message message) {
  if (auto* task = std::get_if<protocol::Task>(&message)) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_) {
      handed_back_.push_back(task->ref);
      return;
    }
    std::string key = Key(task->ref);
    auto it = running_.find(key);
    if (it != running_.end()) {
      if (it->second.task.ref.attempt == task->ref.attempt) return;  // duplicate delivery
      it->second.cancel->store(true);  // a newer attempt supersedes the one we run
    }
    for (auto q = queue_.begin(); q != queue_.end(); ++q) {
      if (Key(q->task.ref) == key) {
        queue_.erase(q);
        break;
      }
    }
    FAIRY_LOG(kInfo, "worker") << "got " << protocol::Describe(*task) << " frames ["
                               << task->frame_begin << ", " << task->frame_end << ")";
    Attempt a;
    a.task = std::move(*task);
    queue_.push_back(std::move(a));
    cv_.notify_all();  // Wait() shares cv_: notify_one could wake it instead of a task thread
  } else if (auto* cancel = std::get_if<protocol::Cancel>(&message)) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string key = Key(cancel->ref);
    for (auto q = queue_.begin(); q != queue_.end(); ++q) {
      if (Key(q->task.ref) == key && q->task.ref.attempt == cancel->ref.attempt) {
        queue_.erase(q);
        break;
      }
    }
    auto it = running_.find(key);
    if (it != running_.end() && it->second.task.ref.attempt == cancel->ref.attempt) {
      FAIRY_LOG(kInfo, "worker") << "cancelling " << key << " attempt " << cancel->ref.attempt
                                 << ": " << cancel->reason;
      it->second.cancel->store(true);
    }
  }
  // DISCONNECT: the link already reconnects and sends READY; HEARTBEAT never reaches us.
}

void Worker::TaskLoop() {
  while (true) {
    Attempt a;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stopped_ || (!draining_ && !queue_.empty()); });
      if (stopped_ || draining_) return;
      a = std::move(queue_.front());
      queue_.pop_front();
      running_[Key(a.task.ref)] = a;
      link_->SetRunning(static_cast<int64_t>(running_.size()));
    }
    RunAttempt(a);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = running_.find(Key(a.task.ref));
      if (it != running_.end() && it->second.task.ref.attempt == a.task.ref.attempt)
        running_.erase(it);
      link_->SetRunning(static_cast<int64_t>(running_.size()));
    }
    cv_.notify_all();
  }
}

void Worker::RunAttempt(const Attempt& a) {
  const protocol::TaskRef& ref = a.task.ref;
  auto start = std::chrono::steady_clock::now();
  auto settings = protocol::TaskSettingsFromJson(a.task.settings);
  if (!settings.ok()) {
    link_->Send(protocol::Failed{ref, settings.status().message(), false});
    return;
  }
  TaskContext ctx;
  ctx.task = &a.task;
  ctx.settings = &*settings;
  ctx.cancel = a.cancel.get();
  // Executors report every denoising step, so that a long step-only stretch (an anchor pass, one
  // batch of a large model) still shows the attempt is alive, and the coordinator can tell a
  // stuck task (no new step) from a slow one. A report with news (more frames, a log line, the
  // end) is sent at once; one without (new steps, model bytes) at most once per heartbeat interval.
  auto last_sent = std::make_shared<ProgressSent>();
  const auto pulse = std::chrono::milliseconds(options_.link.heartbeat_interval_ms);
  // frames < 0: no frame news (a model-bytes report): the frame count last sent goes again.
  auto send = [this, ref, last_sent, pulse](int64_t done, int64_t total, const std::string& line) {
    const auto now = std::chrono::steady_clock::now();
    protocol::Progress p{ref, 0, 0, line};
    {
      std::lock_guard<std::mutex> lock(last_sent->mutex);
      const bool frames = total >= 0;
      if (frames) done = std::min(done, total);
      const bool news = !line.empty() || last_sent->never ||
                        (frames && (done == total || done > last_sent->done));
      if (!news && now - last_sent->at < pulse) return;
      last_sent->never = false;
      if (frames) {
        last_sent->done = std::max(done, last_sent->done);
        last_sent->total = total;
      }
      last_sent->at = now;
      p.frames_total = last_sent->total;
      p.frames_done = std::min(last_sent->done, last_sent->total);
      p.steps_done = last_sent->steps;
      p.load_bytes_read = last_sent->load_read;
      p.load_bytes_total = last_sent->load_total;
    }
    link_->Send(std::move(p));
  };
  ctx.progress = send;
  ctx.step = [last_sent] {
    std::lock_guard<std::mutex> lock(last_sent->mutex);
    ++last_sent->steps;
  };
  ctx.loading = [last_sent, send](int64_t read, int64_t total) {
    {
      std::lock_guard<std::mutex> lock(last_sent->mutex);
      last_sent->load_total = std::max<int64_t>(0, total);
      last_sent->load_read = std::clamp<int64_t>(read, 0, last_sent->load_total);
    }
    send(0, -1, "");
  };
  Result<TaskOutcome> r = executor_->Run(ctx);
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count();
  if (r.ok()) {
    if (a.cancel->load()) {
      // Finished anyway; the coordinator decides (fencing) whether it still counts.
      FAIRY_LOG(kInfo, "worker") << Key(ref) << " finished after a cancel request";
    }
    link_->Send(protocol::Done{ref, r->output, r->frames, ms, r->cache_bytes});
    tasks_done_.fetch_add(1);
    FAIRY_LOG(kInfo, "worker") << "done " << Key(ref) << " attempt " << ref.attempt << ": "
                               << r->frames << " frame(s) in " << ms << " ms";
    return;
  }
  if (r.status().code() == Status::Code::kCancelled || a.cancel->load()) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_)
      handed_back_.push_back(ref);  // else: the coordinator cancelled it, nothing to say
    FAIRY_LOG(kInfo, "worker") << "stopped " << Key(ref) << " attempt " << ref.attempt;
    return;
  }
  FAIRY_LOG(kWarn, "worker") << "task " << Key(ref) << " attempt " << ref.attempt
                             << " failed: " << r.status().ToString();
  link_->Send(protocol::Failed{ref, r.status().ToString(), Retryable(r.status())});
}

bool Worker::RescanModels() {
  Result<std::vector<std::string>> scanned = ScanModels(options_.models_dir);
  std::vector<std::string> ids = scanned.ok() ? *scanned : std::vector<std::string>{};
  std::string error = scanned.ok() ? std::string() : scanned.status().ToString();
  std::lock_guard<std::mutex> lock(models_mutex_);
  if (error != models_error_ && !error.empty()) {
    FAIRY_LOG(kWarn, "worker") << "no models reported: " << error;
  }
  models_error_ = error;
  if (ids == installed_models_) return false;
  installed_models_ = std::move(ids);
  std::string list;
  for (const std::string& id : installed_models_) list += (list.empty() ? "" : ", ") + id;
  FAIRY_LOG(kInfo, "worker") << "models in " << options_.models_dir << ": "
                             << (list.empty() ? "none" : list);
  return true;
}

void Worker::ScanLoop() {
  const auto interval = std::chrono::milliseconds(std::max<int64_t>(1, options_.models_scan_interval_ms));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (cv_.wait_for(lock, interval, [this] { return stopped_ || draining_; })) return;
    }
    if (!RescanModels()) continue;
    protocol::Heartbeat beat;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      beat.running = static_cast<int64_t>(running_.size());
    }
    {
      std::lock_guard<std::mutex> lock(models_mutex_);
      beat.installed_models = installed_models_;
    }
    link_->Send(std::move(beat));  // after READY if disconnected now; READY has the list too
  }
}

void Worker::Drain(int64_t grace_ms) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopped_) return;
    draining_ = true;
    cv_.notify_all();  // the models thread stops at once
    for (const auto& a : queue_) handed_back_.push_back(a.task.ref);
    queue_.clear();
    FAIRY_LOG(kInfo, "worker") << "draining: " << running_.size() << " running task(s), grace "
                               << grace_ms << " ms";
    cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, grace_ms)),
                 [this] { return running_.empty(); });
    for (auto& [key, a] : running_) a.cancel->store(true);
    cv_.wait(lock, [this] { return running_.empty(); });
    stopped_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::vector<protocol::TaskRef> back;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    back = handed_back_;
  }
  protocol::Disconnect bye{"worker shutting down", back};
  link_->Stop(&bye, 2000);
  FAIRY_LOG(kInfo, "worker") << "stopped; handed back " << back.size() << " task(s)";
}

void Worker::Wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return stopped_; });
}

}  // namespace fairy::worker
