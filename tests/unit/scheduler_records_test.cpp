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

TEST(RecordsTest, WorkerSupervisionFieldsRoundTrip) {
  WorkerRecord w;
  w.info.worker_id = "gpu03";
  w.proven = true;
  w.stalls = 2;
  w.suspect = true;
  w.step_ms = {{"m|512|k3|b4|FRAMES", 212.5}};
  auto back = WorkerRecord::FromJson(w.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->proven);
  EXPECT_EQ(back->stalls, 2);
  EXPECT_TRUE(back->suspect);
  EXPECT_EQ(back->step_ms, w.step_ms);
  // Records written before these fields: a worker without stalls, not yet proven.
  auto old = WorkerRecord::FromJson(nlohmann::json{{"worker_id", "w"}});
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(old->suspect);
  EXPECT_EQ(old->stalls, 0);
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

// The store writes the text forms (TaskRecord::ToJsonText, JobRecord::Fields) and reads them
// back as JSON: they must say exactly what ToJson says, strings with every kind of character
// included.
TEST(RecordsTest, TextFormsSayWhatToJsonSays) {
  const std::string awkward = std::string("quote\" back\\ nl\n tab\t bell\x07 nul") + '\0' +
                              " del\x7f e\xc3\xa9 euro\xe2\x82\xac clef\xf0\x9d\x84\x9e /slash";
  const TaskRecord t{.job_id = "j-1",
                     .task_id = FramesTaskId(3, 120, 24),
                     .kind = TaskKind::kAnchor,
                     .shot = 3,
                     .first_frame = 120,
                     .frame_count = 24,
                     .state = TaskState::kRunning,
                     .attempt = 7,
                     .failures = 2,
                     .worker_id = "gpu-\xc3\xa9",
                     .ready_at_ms = 1,
                     .assigned_ms = 1700000000123,
                     .started_ms = 3,
                     .progress_ms = 4,
                     .finished_ms = -5,
                     .frames_done = 9,
                     .result = "/farm/chunks/a b.mkv",
                     .last_error = awkward};
  EXPECT_EQ(nlohmann::json::parse(t.ToJsonText()), t.ToJson()) << t.ToJsonText();
  EXPECT_EQ(nlohmann::json::parse(TaskRecord().ToJsonText()), TaskRecord().ToJson());

  JobRecord r;
  r.job_id = "j-1";
  r.name = awkward;
  r.spec = "input: a.mp4\ninstruction: \"make it \\\"sepia\\\"\"\n";
  r.output = "/out/\xc3\xa9.mp4";
  r.model = awkward;
  r.priority = 90;
  r.state = JobState::kPaused;
  r.phase = JobPhase::kStitch;
  r.frames_wait_for_anchor = false;
  r.shots = {{0, 0, 10, {0, 9}}, {1, 10, 5, {12}}};
  r.tasks_total = 40;
  r.error = "bad \"thing\"";
  for (int variant = 0; variant < 3; ++variant) {
    if (variant == 2) {  // a model id alone must leave the short form for requirements
      r.requirements = {};
      r.requirements.model_id = "ip2p.safetensors";
    }
    if (variant == 1) {
      r.requirements = {{"a100", "\"x\""}, "cuda", 24000, ""};
      r.worker_failures = {{"w1", 2}, {"w\"2", 1}};
      r.worker_stalls = {{"w1", 1}};
      r.step_profile = "models/x|512|k3|b4";
    }
    for (bool spec : {false, true}) {
      for (bool plan : {false, true}) {
        const nlohmann::json want = r.ToJson(spec, plan);
        nlohmann::json got = nlohmann::json::object();
        for (const RecordField& f : r.Fields(spec, plan)) {
          ASSERT_FALSE(got.contains(f.key)) << f.key << " twice";
          got[f.key] = f.str != nullptr ? nlohmann::json(*f.str) : nlohmann::json::parse(f.json);
        }
        EXPECT_EQ(got, want) << "variant " << variant << " spec " << spec << " plan " << plan;
      }
    }
  }
}

TEST(RecordsTest, JsonStringsReplaceInvalidUtf8) {
  std::string out;
  AppendJsonString(
      "a\xff"
      "b\xc3"
      "c\xed\xa0\x80"
      "d\xc0\xaf",
      &out);  // stray, cut, surrogate, overlong
  const nlohmann::json back = nlohmann::json::parse(out);
  EXPECT_EQ(back.get<std::string>(),
            "a\xef\xbf\xbd"
            "b\xef\xbf\xbd"
            "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
            "d\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(RecordsTest, TaskIdsAreSortableAndInclusive) {
  EXPECT_EQ(AnchorTaskId(7), "s007-anchor");
  EXPECT_EQ(FramesTaskId(7, 120, 24), "s007-f000120-000143");
}

}  // namespace
}  // namespace fairy::scheduler
