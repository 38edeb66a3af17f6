// The `fairy` farm commands (the real binary) against a real control API server on loopback with a
// scripted handler: tables, --json, exit codes, token handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fstream>
#include <thread>

#include "coordinator/api/http_server.h"
#include "tests/support/shell.h"
#include "tests/support/test_paths.h"

namespace fairy {
namespace {

using nlohmann::json;

class ScriptedFarm : public api::ControlHandler {
 public:
  Result<json> Submit(const std::string& yaml, const std::string& source,
                      std::optional<int> priority) override {
    if (yaml.find("broken") != std::string::npos)
      return Status::InvalidArgument(source + ":2:3: edit.steps: must be between 1 and 200, got 0");
    submitted_priority = priority.value_or(-1);
    if (yaml.find("finishes") != std::string::npos) return json{{"jobs", {"job-done"}}};
    return json{{"jobs", {"job-1"}}};
  }
  Result<json> ListJobs(const std::vector<std::string>& states) override {
    last_states = states;
    json all = AllJobs();
    if (states.empty()) return all;
    json kept = json::array();
    for (const json& j : all["jobs"]) {
      if (std::find(states.begin(), states.end(), j["state"]) != states.end()) kept.push_back(j);
    }
    return json{{"jobs", kept}};
  }
  static json AllJobs() {
    return json{{"jobs",
                 {{{"id", "job-1"},
                   {"name", "sq010"},
                   {"state", "RUNNING"},
                   {"priority", 80},
                   {"frames_total", 160},
                   {"frames_done", 64},
                   {"tasks_total", 11},
                   {"tasks_done", 5},
                   {"tasks_failed", 0},
                   {"submit_ms", 1700000000000},
                   {"started_ms", 1700000001000},
                   {"finished_ms", 0},
                   {"frames_per_s", 2.5},
                   {"eta_s", 38.4}},
                  {{"id", "job-22"},
                   {"name", "a-much-longer-name"},
                   {"state", "QUEUED"},
                   {"priority", 5}}}}};
  }
  Result<json> JobStatus(const std::string& id) override {
    if (id == "job-done" || id == "job-failed") {
      return json{{"id", id},
                  {"state", id == "job-done" ? "DONE" : "FAILED"},
                  {"frames_done", 10},
                  {"frames_total", 10},
                  {"frames_per_s", 4.0},
                  {"error", id == "job-done" ? "" : "stitch: chunk missing"}};
    }
    if (id != "job-1") return Status::NotFound("no job '" + id + "'");
    json j = AllJobs()["jobs"][0];
    j["phase"] = "RENDER";
    j["shots"] = {{{"index", 0},
                   {"first_frame", 0},
                   {"frame_count", 60},
                   {"state", "DONE"},
                   {"frames_done", 60},
                   {"worker", "gpu01"},
                   {"attempt", 1}},
                  {{"index", 1},
                   {"first_frame", 60},
                   {"frame_count", 100},
                   {"state", "RUNNING"},
                   {"frames_done", 4},
                   {"worker", "gpu02"},
                   {"attempt", 2}}};
    j["tasks"] = {{{"id", "s001-anchor"},
                   {"kind", "ANCHOR"},
                   {"shot", 1},
                   {"frame_count", 100},
                   {"frames_total", 3},
                   {"frames_done", 3},
                   {"state", "DONE"},
                   {"worker", "gpu02"},
                   {"attempt", 1},
                   {"assigned_ms", 1700000010000},
                   {"started_ms", 1700000019000},
                   {"finished_ms", 1700000020000}},
                  {{"id", "s001-f000084-000107"},
                   {"kind", "FRAMES"},
                   {"shot", 1},
                   {"frame_count", 24},
                   {"frames_total", 24},
                   {"frames_done", 0},
                   {"state", "READY"},
                   {"worker", "gpu03"},
                   {"attempt", 1},
                   {"assigned_ms", 1700000030000},
                   {"finished_ms", 0},
                   {"error", "worker gpu03 gone"}}};
    return j;
  }
  Result<json> Control(const std::string& id, const std::string& op, int priority) override {
    if (id != "job-1") return Status::NotFound("no job '" + id + "'");
    last_op = op + ":" + std::to_string(priority);
    return json{
        {"id", id}, {"state", op == "cancel" ? "CANCELLED" : "RUNNING"}, {"priority", priority}};
  }
  Result<json> Workers() override {
    return json{{"workers",
                 {{{"id", "gpu01"},
                   {"host", "node1"},
                   {"device", "cuda:0"},
                   {"memory_mb", 81920},
                   {"slots", 1},
                   {"tags", {"a100"}},
                   {"models", {"/var/lib/fairy/models/ip2p"}},
                   {"installed_models", {"fairy-tiny", "ip2p"}},
                   {"running",
                    {{{"job_id", "job-1"}, {"task_id", "s001-f000060-000083"}, {"attempt", 2}}}}},
                  {{"id", "gpu02"},
                   {"host", "node2"},
                   {"device", "cuda:0"},
                   {"memory_mb", 81920},
                   {"slots", 4},
                   {"usable_slots", 1},
                   {"stalls", 2},
                   {"suspect", true},
                   {"tags", json::array()},
                   {"models", json::array()},
                   {"running", json::array()}}}}};
  }
  Result<json> Logs(const std::string&, const std::string&, const std::string&, int) override {
    return json{{"lines",
                 {{{"time_ms", 1700000000000},
                   {"task", "s000-anchor"},
                   {"worker", "gpu01"},
                   {"line", "anchor cache published"}}}},
                {"next", "1-0"},
                {"finished", true}};
  }
  Result<json> Events(const std::string&, int) override { return json{{"events", json::array()}}; }
  std::string Metrics() override { return ""; }

  int submitted_priority = -2;
  std::string last_op;
  std::vector<std::string> last_states;
};

struct Output {
  int exit_code = -1;
  std::string text;
};

class FarmCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api::HttpServerOptions o;
    o.port = 0;
    o.token = "cli-token";
    server_ = std::move(api::HttpServer::Start(io_, o, &farm_).value());
    thread_ = std::thread([this] { io_.run(); });
    dir_ = testing::MakeTempDir("fairy-cli");
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { server_.reset(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  Output Run(const std::string& args, const std::string& token = "cli-token") {
    std::string cmd = "FAIRY_API=http://127.0.0.1:" + std::to_string(server_->port()) +
                      " FAIRY_TOKEN=" + token + " " + testing::BinDir() + "/fairy " + args +
                      " 2>&1";
    testing::ShellResult result = testing::RunShell(cmd);
    return Output{result.exit_code, result.output};
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  ScriptedFarm farm_;  // touched only on the io thread while a command runs
  std::unique_ptr<api::HttpServer> server_;
  std::thread thread_;
  std::string dir_;
};

TEST_F(FarmCliTest, JobsPrintsAlignedColumns) {
  Output o = Run("jobs");
  ASSERT_EQ(o.exit_code, 0) << o.text;
  std::istringstream in(o.text);
  std::string header, row1, row2;
  std::getline(in, header);
  std::getline(in, row1);
  std::getline(in, row2);
  EXPECT_EQ(header.rfind("JOB", 0), 0u);
  // Columns line up: STATE starts at the same offset in the header and in both rows.
  size_t col = header.find("STATE");
  ASSERT_NE(col, std::string::npos);
  EXPECT_EQ(row1.substr(col, 7), "RUNNING");
  EXPECT_EQ(row2.substr(col, 6), "QUEUED");
  EXPECT_NE(row1.find("5/11"), std::string::npos);
  EXPECT_NE(row1.find("2.5"), std::string::npos);
}

TEST_F(FarmCliTest, JsonIsTheApiAnswer) {
  Output o = Run("jobs --json");
  ASSERT_EQ(o.exit_code, 0);
  auto j = json::parse(o.text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << o.text;
  EXPECT_EQ(j["jobs"].size(), 2u);
  Output w = Run("workers --json");
  ASSERT_EQ(w.exit_code, 0);
  EXPECT_EQ(json::parse(w.text)["workers"][0]["id"], "gpu01");
}

// `fairy workers`' output: its header and first two rows.
struct WorkersTable {
  std::string text, header, row1, row2;
};
WorkersTable ReadWorkersTable(const std::string& text) {
  WorkersTable t{text, "", "", ""};
  std::istringstream lines(text);
  std::getline(lines, t.header);
  std::getline(lines, t.row1);
  std::getline(lines, t.row2);
  return t;
}

TEST_F(FarmCliTest, WorkersShowsStallsAndSuspects) {
  Output o = Run("workers");
  ASSERT_EQ(o.exit_code, 0) << o.text;
  const auto [text, header, row1, row2] = ReadWorkersTable(o.text);
  const size_t state = header.find("STATE");
  ASSERT_NE(state, std::string::npos) << o.text;
  ASSERT_NE(header.find("STALLS"), std::string::npos) << o.text;
  EXPECT_EQ(row1.substr(state, 2), "up") << o.text;
  EXPECT_EQ(row2.substr(state, 7), "suspect") << o.text;
  EXPECT_NE(row2.find(" 1/4 "), std::string::npos) << "one slot usable of 4 claimed\n" << o.text;
}

TEST_F(FarmCliTest, WorkersShowsInstalledModelsAndWhichAreLoaded) {
  Output o = Run("workers");
  ASSERT_EQ(o.exit_code, 0) << o.text;
  const auto [text, header, row1, row2] = ReadWorkersTable(o.text);
  const size_t models = header.find("MODELS");
  ASSERT_NE(models, std::string::npos) << o.text;
  EXPECT_EQ(row1.substr(models, 16), "fairy-tiny,ip2p*") << o.text;
  EXPECT_EQ(row2.substr(models, 2), "? ") << "gpu02 does not report its models\n" << o.text;
}

TEST_F(FarmCliTest, JobsFilterByState) {
  Output running = Run("jobs --state running");
  ASSERT_EQ(running.exit_code, 0) << running.text;
  EXPECT_NE(running.text.find("job-1 "), std::string::npos) << running.text;
  EXPECT_EQ(running.text.find("job-22"), std::string::npos) << running.text;
  EXPECT_EQ(farm_.last_states, (std::vector<std::string>{"RUNNING"}))
      << "filtered by the coordinator";
  Output active = Run("jobs --active --json");
  ASSERT_EQ(active.exit_code, 0) << active.text;
  EXPECT_EQ(json::parse(active.text)["jobs"].size(), 2u);
  EXPECT_EQ(farm_.last_states, (std::vector<std::string>{"QUEUED", "RUNNING", "PAUSED"}));
  Output none = Run("jobs --active --state done --json");
  ASSERT_EQ(none.exit_code, 0) << none.text;
  EXPECT_TRUE(json::parse(none.text)["jobs"].empty());
  Output two = Run("jobs --state QUEUED --state DONE --json");
  ASSERT_EQ(two.exit_code, 0) << two.text;
  ASSERT_EQ(json::parse(two.text)["jobs"].size(), 1u);
  EXPECT_EQ(json::parse(two.text)["jobs"][0]["id"], "job-22");
  Output bad = Run("jobs --state sleeping");
  EXPECT_EQ(bad.exit_code, 2) << bad.text;
  EXPECT_NE(bad.text.find("sleeping"), std::string::npos) << bad.text;
}

TEST_F(FarmCliTest, StatusShowsThePerShotTable) {
  Output o = Run("status job-1");
  ASSERT_EQ(o.exit_code, 0) << o.text;
  EXPECT_NE(o.text.find("SHOT"), std::string::npos);
  EXPECT_NE(o.text.find("60-159"), std::string::npos);
  EXPECT_NE(o.text.find("gpu02"), std::string::npos);
  // Tasks: an anchor task counts its anchors and ran from its assignment (10 s, not the 1 s since
  // its first progress); a task waiting for its next attempt shows no start or runtime.
  Output tasks = Run("status job-1 --tasks");
  ASSERT_EQ(tasks.exit_code, 0) << tasks.text;
  std::string anchor_row = tasks.text.substr(tasks.text.find("s001-anchor"));
  anchor_row = anchor_row.substr(0, anchor_row.find('\n'));
  EXPECT_NE(anchor_row.find(" 3/3 "), std::string::npos) << anchor_row;
  EXPECT_NE(anchor_row.find(" 10s "), std::string::npos) << anchor_row;
  EXPECT_NE(anchor_row.find(" 0.3"), std::string::npos) << anchor_row;
  std::string ready_row = tasks.text.substr(tasks.text.find("s001-f000084-000107"));
  ready_row = ready_row.substr(0, ready_row.find('\n'));
  EXPECT_NE(ready_row.find(" 0/24 "), std::string::npos) << ready_row;
  EXPECT_EQ(ready_row.find(":"), std::string::npos) << "no start time: " << ready_row;
  EXPECT_NE(ready_row.find("worker gpu03 gone"), std::string::npos) << ready_row;
  Output missing = Run("status job-404");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.text.find("no job 'job-404'"), std::string::npos);
}

TEST_F(FarmCliTest, SubmitReportsValidationErrorsAndPassesPriority) {
  std::ofstream(dir_ + "/good.yaml") << "input: a.mp4\n";
  std::ofstream(dir_ + "/bad.yaml") << "broken: yes\n";
  Output ok = Run("submit " + dir_ + "/good.yaml --priority 70");
  ASSERT_EQ(ok.exit_code, 0) << ok.text;
  EXPECT_EQ(ok.text, "job-1\n");
  Output bad = Run("submit " + dir_ + "/bad.yaml");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.text.find("bad.yaml:2:3: edit.steps"), std::string::npos) << bad.text;
  EXPECT_EQ(Run("submit " + dir_ + "/good.yaml --priority 101").exit_code, 2) << "usage error";
}

TEST_F(FarmCliTest, ControlCommandsAndExitCodes) {
  EXPECT_EQ(Run("cancel job-1").exit_code, 0);
  EXPECT_EQ(Run("priority job-1 30").exit_code, 0);
  EXPECT_EQ(Run("retry job-1 --all").exit_code, 0);
  EXPECT_EQ(Run("pause job-9").exit_code, 1);
  Output denied = Run("jobs", "wrong");
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_NE(denied.text.find("wrong bearer token"), std::string::npos);
  Output down = Run("jobs --api http://127.0.0.1:1");
  EXPECT_EQ(down.exit_code, 3);
  EXPECT_NE(down.text.find("cannot reach the coordinator"), std::string::npos);
  Output logs = Run("logs job-1");
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_NE(logs.text.find("s000-anchor [gpu01] anchor cache published"), std::string::npos)
      << logs.text;
}

TEST_F(FarmCliTest, WatchAndWaitEndWithTheJobsOutcome) {
  Output done = Run("watch job-done");
  EXPECT_EQ(done.exit_code, 0) << done.text;
  EXPECT_NE(done.text.find("job-done DONE 10/10 frames 4.0 frames/s"), std::string::npos)
      << done.text;
  Output failed = Run("watch job-failed --json");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(json::parse(failed.text.substr(0, failed.text.find('\n')))["state"], "FAILED");
  std::ofstream(dir_ + "/finishes.yaml") << "finishes: soon\n";
  Output wait = Run("submit --wait " + dir_ + "/finishes.yaml");
  EXPECT_EQ(wait.exit_code, 0) << wait.text;
  EXPECT_NE(wait.text.find("job-done DONE"), std::string::npos) << wait.text;
}

}  // namespace
}  // namespace fairy
