// Models by id: a job whose model is an id goes only to workers that have it installed (as they
// report it in READY and in HEARTBEATs when it changes); workers that do not report their models
// (older) are not checked; a job naming its model by path goes anywhere.
#include <gtest/gtest.h>

#include "tests/unit/scheduler_test_util.h"

namespace fairy::scheduler {
namespace {

using testing::Collected;

class SchedulerModelsTest : public testing::SchedulerFixture {
 protected:
  void HelloWithModels(const std::string& worker, std::vector<std::string> installed) {
    WorkerInfo info{worker, "host-" + worker, "cpu", 8000, {}, {}, 1, {}, false};
    info.installed_models = std::move(installed);
    info.reports_models = true;
    Actions out;
    Status st = sched_->OnWorkerHello(info, {}, &out);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  Collected Heartbeat(const std::string& worker, const std::vector<std::string>* installed) {
    Actions out;
    Status st = sched_->OnHeartbeat(worker, &out, installed);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return Collected(std::move(out));
  }

  static WorkerRequirements NeedsModel(const std::string& id) {
    WorkerRequirements req;
    req.model_id = id;
    return req;
  }
};

TEST_F(SchedulerModelsTest, OnlyWorkersWithTheModelIdGetTheJob) {
  SubmitPlanned("j", 50, {10}, 10, NeedsModel("ip2p"));
  HelloWithModels("empty", {});
  HelloWithModels("other", {"fairy-tiny", "ip2p.safetensors"});
  HelloWithModels("has", {"fairy-tiny", "ip2p"});
  EXPECT_TRUE(Ready("empty").assigns.empty());
  EXPECT_TRUE(Ready("other").assigns.empty()) << "ip2p.safetensors is another id than ip2p";
  Collected c = Ready("has");
  ASSERT_EQ(c.assigns.size(), 1u);
  EXPECT_EQ(c.assigns[0].task.job_id, "j");
}

TEST_F(SchedulerModelsTest, WorkersThatDoNotReportModelsAreNotChecked) {
  SubmitPlanned("j", 50, {10}, 10, NeedsModel("ip2p"));
  Hello("old");  // no installed_models on the wire
  EXPECT_FALSE(sched_->FindWorker("old")->info.reports_models);
  EXPECT_EQ(Ready("old").assigns.size(), 1u);
}

TEST_F(SchedulerModelsTest, AJobNamingItsModelByPathGoesToAnyWorker) {
  SubmitPlanned("j", 50, {10}, 10);  // model_id "": a path, or no model named
  HelloWithModels("empty", {});
  EXPECT_EQ(Ready("empty").assigns.size(), 1u);
}

TEST_F(SchedulerModelsTest, AJobWaitsQueuedUntilAWorkerHasItsModel) {
  SubmitPlanned("j", 50, {10, 10}, 10, NeedsModel("ip2p"));
  HelloWithModels("w1", {"fairy-tiny"});
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(1000);
    Heartbeat("w1", nullptr);
    Tick();
    EXPECT_TRUE(Ready("w1").assigns.empty());
  }
  EXPECT_EQ(JobStateOf("j"), JobState::kQueued) << "waits, as for unmatched tags; not failed";

  // A studio copies the model in: the worker's next heartbeat carries the new list.
  const std::vector<std::string> now = {"ip2p", "fairy-tiny"};
  Collected beat = Heartbeat("w1", &now);
  ASSERT_EQ(beat.workers.size(), 1u);
  EXPECT_EQ(beat.workers[0].worker.info.installed_models,
            (std::vector<std::string>{"fairy-tiny", "ip2p"}))
      << "persisted, sorted";
  Collected c = Ready("w1");
  ASSERT_EQ(c.assigns.size(), 1u);
  Done(c.assigns[0]);

  // The model is removed again: the job's remaining tasks wait.
  const std::vector<std::string> removed = {"fairy-tiny"};
  Heartbeat("w1", &removed);
  EXPECT_TRUE(Ready("w1").assigns.empty());
  EXPECT_EQ(JobStateOf("j"), JobState::kRunning);
}

TEST_F(SchedulerModelsTest, TheModelRuleAppliesAfterACoordinatorRestart) {
  SubmitPlanned("j", 50, {10}, 10, NeedsModel("ip2p"));
  // What a restarted coordinator reads back from the store.
  JobSnapshot snap;
  snap.job = *sched_->FindJob("j");
  for (const TaskRecord* t : sched_->Tasks("j")) snap.tasks.push_back(*t);
  auto stored = JobRecord::FromJson(snap.job.ToJson());
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  snap.job = *stored;
  EXPECT_EQ(snap.job.requirements.model_id, "ip2p");
  Reset(options_);
  Actions out;
  ASSERT_TRUE(sched_->Recover({snap}, &out).ok());
  HelloWithModels("empty", {});
  HelloWithModels("has", {"ip2p"});
  EXPECT_TRUE(Ready("empty").assigns.empty());
  EXPECT_EQ(Ready("has").assigns.size(), 1u);
}

TEST(RecordsModelsTest, InstalledModelsRoundTripAndOldRecordsDoNotReport) {
  WorkerRecord w;
  w.info.worker_id = "gpu03";
  w.info.installed_models = {"fairy-tiny", "ip2p.safetensors"};
  w.info.reports_models = true;
  auto back = WorkerRecord::FromJson(w.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->info.installed_models, w.info.installed_models);
  EXPECT_TRUE(back->info.reports_models);
  auto old = WorkerRecord::FromJson(nlohmann::json{{"worker_id", "w"}});
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(old->info.reports_models);
  EXPECT_TRUE(HasModel(old->info, "anything"));
  EXPECT_FALSE(HasModel(w.info, "ip2p"));
  EXPECT_TRUE(HasModel(w.info, "ip2p.safetensors"));
  EXPECT_TRUE(HasModel(w.info, ""));
}

}  // namespace
}  // namespace fairy::scheduler
