// Worker (task queue, task threads, drain) against a real RouterLink on loopback, with a scripted
// executor: heartbeats keep flowing while a task blocks, CANCEL stops an attempt, SIGTERM-style
// drain hands queued work back.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "coordinator/link/router_link.h"
#include "worker/runner/worker.h"

namespace fairy::worker {
namespace {

using namespace std::chrono_literals;
using Received = std::pair<std::string, protocol::Message>;

class Recorder {
 public:
  void Push(Received r) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_back(std::move(r));
    cv_.notify_all();
  }
  template <typename M>
  std::optional<M> Wait(std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::optional<M> out;
    cv_.wait_for(lock, timeout, [&] {
      for (auto it = items_.begin(); it != items_.end(); ++it) {
        if (auto* m = std::get_if<M>(&it->second)) {
          out = *m;
          items_.erase(it);
          return true;
        }
      }
      return false;
    });
    return out;
  }
  template <typename M>
  std::vector<M> All() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<M> out;
    for (const Received& r : items_) {
      if (const auto* m = std::get_if<M>(&r.second)) out.push_back(*m);
    }
    return out;
  }
  template <typename M>
  size_t Count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::count_if(items_.begin(), items_.end(), [](const Received& r) { return std::holds_alternative<M>(r.second); });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Received> items_;
};

// Runs each task for `frames` steps of `step` each, reporting progress, honouring cancel.
class ScriptedExecutor : public TaskExecutor {
 public:
  std::vector<std::string> LoadedModels() const override { return {"scripted"}; }
  Result<TaskOutcome> Run(const TaskContext& ctx) override {
    started.fetch_add(1);
    int64_t total = ctx.task->frame_end - ctx.task->frame_begin;
    for (int64_t k = 1; k <= load_chunks; ++k) {  // a model read in chunks of 1 MiB
      ctx.loading(k << 20, load_chunks << 20);
      std::this_thread::sleep_for(step);
    }
    for (int64_t i = 0; i < total; ++i) {
      if (ctx.cancel->load()) return Status::Cancelled("cancelled");
      for (int k = 0; k < pulses; ++k) {  // denoising steps: no new frame yet
        ctx.step();
        ctx.progress(i, total, "");
        std::this_thread::sleep_for(step / pulses);
      }
      if (pulses == 0) std::this_thread::sleep_for(step);
      ctx.progress(i + 1, total, "");
    }
    if (fail) return Status::InvalidArgument("input.mp4: bad frame");
    return TaskOutcome{"/chunks/" + ctx.task->ref.task_id + ".mkv", total, 0};
  }
  std::chrono::milliseconds step{10};
  int pulses = 0;  // step-only progress reports per frame
  int64_t load_chunks = 0;  // model loading before the frames, one chunk per `step`
  bool fail = false;
  std::atomic<int> started{0};
};

protocol::Task MakeTask(const std::string& id, int64_t frames, int64_t attempt = 1) {
  protocol::TaskSettings s;
  s.input = "/in.mp4";
  s.work_dir = "/work";
  s.model = "/model";
  s.instruction = "make it snow";
  s.shot_first = 0;
  s.shot_count = 100;
  s.anchor_frames = {10, 50, 90};
  return protocol::Task{{"job", id, attempt}, protocol::TaskKind::kFrames, 0, 0, frames, protocol::ToJson(s)};
}

struct Farm {
  Recorder in;
  std::unique_ptr<link::RouterLink> router;
  ScriptedExecutor executor;
  std::unique_ptr<Worker> worker;

  Farm() {
    link::RouterOptions ro;
    ro.bind_endpoint = "tcp://127.0.0.1:*";
    ro.heartbeat_interval_ms = 50;
    router = std::move(link::RouterLink::Start(ro, [this](const std::string& p, protocol::Message m) {
                         in.Push({p, std::move(m)});
                       }).value());
  }
  void StartWorker() {
    WorkerOptions wo;
    wo.link.endpoint = router->endpoint();
    wo.link.worker_id = "w1";
    wo.link.heartbeat_interval_ms = 50;
    wo.link.reconnect_initial_ms = 20;
    worker = std::move(Worker::Start(wo, &executor).value());
  }
};

TEST(FarmWorkerTest, RunsATaskWithProgressAndDone) {
  Farm f;
  f.StartWorker();
  auto ready = f.in.Wait<protocol::Ready>();
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->loaded_models, std::vector<std::string>{"scripted"});
  f.router->Send("w1", MakeTask("t1", 5));
  auto done = f.in.Wait<protocol::Done>();
  ASSERT_TRUE(done);
  EXPECT_EQ(done->ref.task_id, "t1");
  EXPECT_EQ(done->frames, 5);
  EXPECT_EQ(done->output, "/chunks/t1.mkv");
  EXPECT_EQ(f.in.Count<protocol::Progress>(), 5u);
}

// Executors report every denoising step; the worker sends each new frame count at once and a
// step without news at most once per heartbeat interval (50 ms here), so a long stretch of steps
// still shows the attempt alive without flooding the coordinator.
TEST(FarmWorkerTest, StepProgressIsSentAtMostOncePerHeartbeatInterval) {
  Farm f;
  f.executor.step = std::chrono::milliseconds(120);
  f.executor.pulses = 24;  // one every 5 ms
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  const auto start = std::chrono::steady_clock::now();
  f.router->Send("w1", MakeTask("t1", 3));
  ASSERT_TRUE(f.in.Wait<protocol::Done>());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  std::vector<int64_t> done;
  for (const protocol::Progress& p : f.in.All<protocol::Progress>()) done.push_back(p.frames_done);
  // The first report and 3 new frame counts; pulses no closer than 50 ms (so at most
  // elapsed / 50 ms of them), at least one per frame (each frame's steps last >= 120 ms).
  // Sending every step would be 3 x 25 = 75 reports.
  const size_t most_pulses = static_cast<size_t>(elapsed / 50ms);
  EXPECT_GE(done.size(), 1u + 3u + 3u);
  EXPECT_LE(done.size(), 1u + 3u + most_pulses) << "in " << (elapsed / 1ms) << " ms";
  EXPECT_LT(done.size(), 40u);
  EXPECT_TRUE(std::is_sorted(done.begin(), done.end()));
  EXPECT_EQ(std::count(done.begin(), done.end(), 3), 1);
}

// The coordinator supervises attempts by their steps and model bytes: the reports carry both,
// counted by the worker, at most once per heartbeat interval.
TEST(FarmWorkerTest, ProgressCarriesStepsRunAndModelBytesRead) {
  Farm f;
  f.executor.step = std::chrono::milliseconds(60);
  f.executor.pulses = 4;
  f.executor.load_chunks = 5;
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  f.router->Send("w1", MakeTask("t1", 3));
  ASSERT_TRUE(f.in.Wait<protocol::Done>());
  std::vector<protocol::Progress> reports = f.in.All<protocol::Progress>();
  ASSERT_FALSE(reports.empty());
  int64_t steps = -1, bytes = -1;
  int loading_reports = 0;
  for (const protocol::Progress& p : reports) {
    EXPECT_GE(p.steps_done, steps) << "steps only grow";
    EXPECT_GE(p.load_bytes_read, bytes) << "bytes only grow";
    steps = p.steps_done;
    bytes = p.load_bytes_read;
    if (p.load_bytes_total > 0 && p.steps_done == 0) {
      ++loading_reports;
      EXPECT_EQ(p.load_bytes_total, 5 << 20);
    }
  }
  EXPECT_GE(loading_reports, 2) << "a load of 5 x 60 ms, reports at most every 50 ms";
  EXPECT_EQ(reports.back().steps_done, 3 * 4) << "the last report has every step";
  EXPECT_EQ(reports.back().load_bytes_read, 5 << 20);
  EXPECT_EQ(reports.back().frames_done, 3);
}

TEST(FarmWorkerTest, HeartbeatsFlowWhileATaskBlocks) {
  Farm f;
  f.executor.step = 400ms;  // one "batch" far longer than the heartbeat interval
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  f.router->Send("w1", MakeTask("slow", 2));
  std::this_thread::sleep_for(350ms);
  auto before = f.in.Count<protocol::Heartbeat>();
  std::this_thread::sleep_for(300ms);
  EXPECT_GE(f.in.Count<protocol::Heartbeat>(), before + 3);  // ~6 expected at 50 ms
  EXPECT_EQ(f.in.Count<protocol::Done>(), 0u);
  EXPECT_TRUE(f.in.Wait<protocol::Done>(3000ms));
}

TEST(FarmWorkerTest, CancelStopsTheAttemptWithoutAReport) {
  Farm f;
  f.executor.step = 50ms;
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  f.router->Send("w1", MakeTask("c1", 100));
  ASSERT_TRUE(f.in.Wait<protocol::Progress>());
  f.router->Send("w1", protocol::Cancel{{"job", "c1", 1}, "job cancelled"});
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(f.in.Count<protocol::Done>() + f.in.Count<protocol::Failed>(), 0u);
  // The slot is free again: the next task runs.
  f.router->Send("w1", MakeTask("c2", 2));
  auto done = f.in.Wait<protocol::Done>();
  ASSERT_TRUE(done);
  EXPECT_EQ(done->ref.task_id, "c2");
}

TEST(FarmWorkerTest, BadSettingsAndBadInputFailWithoutRetry) {
  Farm f;
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  auto t = MakeTask("bad", 2);
  t.settings["steps"] = 0;
  f.router->Send("w1", t);
  auto failed = f.in.Wait<protocol::Failed>();
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->retryable);
  EXPECT_NE(failed->error.find("settings.steps"), std::string::npos) << failed->error;
  f.executor.fail = true;
  f.router->Send("w1", MakeTask("bad2", 1));
  failed = f.in.Wait<protocol::Failed>();
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->retryable);
  EXPECT_NE(failed->error.find("input.mp4"), std::string::npos);
}

TEST(FarmWorkerTest, DrainFinishesTheRunningTaskAndHandsBackTheQueue) {
  Farm f;
  f.executor.step = 40ms;
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  f.router->Send("w1", MakeTask("run", 5));
  f.router->Send("w1", MakeTask("queued", 5));
  ASSERT_TRUE(f.in.Wait<protocol::Progress>());
  f.worker->Drain(5000);
  auto done = f.in.Wait<protocol::Done>();
  ASSERT_TRUE(done);
  EXPECT_EQ(done->ref.task_id, "run");
  auto bye = f.in.Wait<protocol::Disconnect>();
  ASSERT_TRUE(bye);
  ASSERT_EQ(bye->handed_back.size(), 1u);
  EXPECT_EQ(bye->handed_back[0].task_id, "queued");
  EXPECT_EQ(f.executor.started.load(), 1);
}

TEST(FarmWorkerTest, DrainPastTheGraceCancelsAndHandsBack) {
  Farm f;
  f.executor.step = 50ms;
  f.StartWorker();
  ASSERT_TRUE(f.in.Wait<protocol::Ready>());
  f.router->Send("w1", MakeTask("long", 1000));
  ASSERT_TRUE(f.in.Wait<protocol::Progress>());
  f.worker->Drain(100);
  auto bye = f.in.Wait<protocol::Disconnect>();
  ASSERT_TRUE(bye);
  ASSERT_EQ(bye->handed_back.size(), 1u);
  EXPECT_EQ(bye->handed_back[0].task_id, "long");
  EXPECT_EQ(f.in.Count<protocol::Done>(), 0u);
}

}  // namespace
}  // namespace fairy::worker
