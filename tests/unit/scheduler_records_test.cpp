// Records: names, JSON round trips, and errors that name the field on damaged input.
#include <gtest/gtest.h>

#include "coordinator/scheduler/records.h"
#include "coordinator/scheduler/scheduler.h"

namespace fairy::scheduler {
namespace {

TEST(RecordsTest, StateNamesRoundTrip) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kPaused, JobState::kDone,
                     JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(*ParseJobState(Name(s)), s);
  }
  for (TaskState s :
       {TaskState::kPending, TaskState::kReady, TaskState::kAssigned, TaskState::kRunning,
        TaskState::kDone, TaskState::kFailed, TaskState::kCancelled}) {
    EXPECT_EQ(*ParseTaskState(Name(s)), s);
  }
  EXPECT_STREQ(Name(JobState::kCancelled), "CANCELLED");
  auto bad = ParseTaskState("running");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("RUNNING"), std::string::npos) << "lists the valid names";
  EXPECT_EQ(*ParseControlOp("retry"), ControlOp::kRetryFailed);
  EXPECT_EQ(*ParseControlOp("retry-job"), ControlOp::kRetryJob);
  EXPECT_FALSE(ParseControlOp("explode").ok());
}

TEST(RecordsTest, DamagedJsonNamesTheField) {
  TaskRecord t;
  t.job_id = "j";
  t.task_id = "s000-anchor";
  nlohmann::json j = t.ToJson();
  j.erase("attempt");
  auto missing = TaskRecord::FromJson(j);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kCorruption);
  EXPECT_NE(missing.status().message().find("'attempt' is missing"), std::string::npos)
      << missing.status().message();
  j = t.ToJson();
  j["state"] = "SLEEPING";
  auto state = TaskRecord::FromJson(j);
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("'state'"), std::string::npos)
      << state.status().message();
  j = t.ToJson();
  j["shot"] = "three";
  auto type = TaskRecord::FromJson(j);
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find("'shot' has the wrong type"), std::string::npos)
      << type.status().message();
  EXPECT_FALSE(TaskRecord::FromJson(nlohmann::json::array()).ok());
  EXPECT_FALSE(JobRecord::FromJson(nlohmann::json{{"job_id", "j"}}).ok());
  EXPECT_FALSE(WorkerRecord::FromJson(nlohmann::json{{"host", "h"}}).ok());
}

TEST(RecordsTest, JobJsonLeavesOutSpecAndPlanOnRequest) {
  JobRecord r;
  r.job_id = "j";
  r.spec = "yaml";
  r.shots = {{0, 0, 10, {0, 9}}};
  r.frame_batch = 6;
  auto full = r.ToJson();
  EXPECT_EQ(full["spec"], "yaml");
  EXPECT_EQ(full["shots"].size(), 1u);
  auto lean = r.ToJson(false, false);
  EXPECT_FALSE(lean.contains("spec"));
  EXPECT_FALSE(lean.contains("shots"));
  auto back = JobRecord::FromJson(full);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->shots.at(0).anchor_frames, (std::vector<int64_t>{0, 9}));
  EXPECT_EQ(back->frame_batch, 6);
  full.erase("frame_batch");  // a record written before the field existed
  EXPECT_EQ(JobRecord::FromJson(full)->frame_batch, 4);
}

TEST(RecordsTest, TaskIdsAreSortableAndInclusive) {
  EXPECT_EQ(AnchorTaskId(7), "s007-anchor");
  EXPECT_EQ(FramesTaskId(7, 120, 24), "s007-f000120-000143");
}

}  // namespace
}  // namespace fairy::scheduler
