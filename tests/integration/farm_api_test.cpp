// The control API server and client over real loopback HTTP, with a fake handler.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "coordinator/api/http_client.h"
#include "coordinator/api/http_server.h"

namespace fairy::api {
namespace {

using nlohmann::json;

class FakeHandler : public ControlHandler {
 public:
  Result<json> Submit(const std::string& yaml, const std::string& source, std::optional<int> priority) override {
    if (yaml.find("bad") != std::string::npos) {
      return Status::InvalidArgument(source + ":3:7: edit.steps: expected an integer");
    }
    last_priority = priority;
    return json{{"jobs", json::array({"job-1"})}};
  }
  Result<json> ListJobs(const std::vector<std::string>& states) override {
    last_states = states;
    return json{{"jobs", json::array()}};
  }
  Result<json> JobStatus(const std::string& id) override {
    if (id != "job-1") return Status::NotFound("no job '" + id + "'");
    return json{{"id", id}};
  }
  Result<json> Control(const std::string& id, const std::string& op, int priority) override {
    last_op = op;
    last_op_priority = priority;
    if (id != "job-1") return Status::NotFound("no job '" + id + "'");
    if (op == "resume") return Status::FailedPrecondition("job job-1 is RUNNING, not PAUSED");
    return json{{"id", id}, {"op", op}};
  }
  Result<json> Workers() override { return json{{"workers", json::array()}}; }
  Result<json> Logs(const std::string&, const std::string& task, const std::string& after, int) override {
    ++log_calls;
    json lines = json::array();
    if (log_ready) lines.push_back({{"line", "hello"}, {"task", task}, {"after", after}});
    return json{{"lines", lines}, {"next", "1-0"}, {"finished", false}};
  }
  Result<json> Events(const std::string&, int) override { return json{{"events", json::array()}, {"next", "0"}}; }
  std::string Metrics() override { return "# TYPE fairy_jobs gauge\nfairy_jobs{state=\"QUEUED\"} 1\n"; }

  std::optional<int> last_priority;
  std::vector<std::string> last_states;
  std::string last_op;
  int last_op_priority = -1;
  bool log_ready = false;  // touched on the io thread only
  int log_calls = 0;
};

class FarmApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.port = 0;
    o.token = "s3cret";
    o.poll_interval_ms = 20;
    o.max_body_bytes = 4096;
    auto s = HttpServer::Start(io_, o, &handler_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { server_.reset(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  HttpClient Client(const std::string& token = "s3cret") {
    return HttpClient(ApiEndpoint{"127.0.0.1", server_->port()}, token, 10000);
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  FakeHandler handler_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(FarmApiTest, EveryRouteRequiresTheToken) {
  for (const char* target : {"/metrics", "/v1/jobs", "/v1/jobs/job-1", "/v1/workers", "/v1/health",
                             "/v1/events", "/v1/jobs/job-1/logs", "/nowhere"}) {
    for (const std::string& token : {std::string(), std::string("wrong"), std::string("s3cre")}) {
      auto r = Client(token).Request("GET", target);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->status, 401) << target << " token='" << token << "'";
      EXPECT_NE(r->body.find(token.empty() ? "missing bearer token" : "wrong bearer token"), std::string::npos);
    }
  }
  auto post = Client("wrong").Request("POST", "/v1/jobs/job-1/cancel");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 401);
  EXPECT_EQ(handler_.last_op, "");  // the handler never saw it
  auto ok = Client().Request("GET", "/v1/health");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST_F(FarmApiTest, SubmitPassesNameAndPriorityAndReportsValidationErrors) {
  auto r = Client().Json("POST", "/v1/jobs?priority=80&name=shot%20a.yaml", "input: x", "application/yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["jobs"][0], "job-1");
  EXPECT_EQ(handler_.last_priority, 80);
  auto bad = Client().Request("POST", "/v1/jobs?name=shot%20a.yaml", "bad: yes");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("shot a.yaml:3:7: edit.steps"), std::string::npos) << bad->body;
  auto err = Client().Json("POST", "/v1/jobs?priority=101", "input: x");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(err.status().message().find("priority"), std::string::npos);
  auto big = Client().Request("POST", "/v1/jobs", std::string(10000, 'x'));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->status, 413);
}

TEST_F(FarmApiTest, JobListPassesTheStateFilter) {
  ASSERT_TRUE(Client().Json("GET", "/v1/jobs?state=RUNNING%2CDONE,,PAUSED").ok());
  EXPECT_EQ(handler_.last_states, (std::vector<std::string>{"RUNNING", "DONE", "PAUSED"}));
  ASSERT_TRUE(Client().Json("GET", "/v1/jobs").ok());
  EXPECT_TRUE(handler_.last_states.empty());
}

TEST_F(FarmApiTest, ControlRoutesMapStatusCodes) {
  auto c = Client();
  ASSERT_TRUE(c.Json("POST", "/v1/jobs/job-1/cancel").ok());
  EXPECT_EQ(handler_.last_op, "cancel");
  ASSERT_TRUE(c.Json("POST", "/v1/jobs/job-1/retry?scope=job").ok());
  EXPECT_EQ(handler_.last_op, "retry-job");
  ASSERT_TRUE(c.Json("POST", "/v1/jobs/job-1/retry").ok());
  EXPECT_EQ(handler_.last_op, "retry-failed");
  ASSERT_TRUE(c.Json("POST", "/v1/jobs/job-1/priority", R"({"priority": 7})").ok());
  EXPECT_EQ(handler_.last_op_priority, 7);
  ASSERT_TRUE(c.Json("POST", "/v1/jobs/job-1/priority?value=9").ok());
  EXPECT_EQ(handler_.last_op_priority, 9);
  EXPECT_EQ(c.Json("POST", "/v1/jobs/job-1/priority", "{}").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(c.Json("POST", "/v1/jobs/job-1/resume").status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(c.Json("GET", "/v1/jobs/nope").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(c.Json("DELETE", "/v1/jobs").status().code(), Status::Code::kInvalidArgument);  // 405
  auto m = c.Request("GET", "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->content_type.find("text/plain"), std::string::npos);
  EXPECT_NE(m->body.find("fairy_jobs{state=\"QUEUED\"} 1"), std::string::npos);
}

TEST_F(FarmApiTest, LogsLongPollWaitsForLines) {
  // Nothing yet: a short wait comes back empty after about wait_ms.
  auto t0 = std::chrono::steady_clock::now();
  auto empty = Client().Json("GET", "/v1/jobs/job-1/logs?wait_ms=200");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE((*empty)["lines"].empty());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(190));
  // Lines appear while the request waits.
  std::thread later([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    boost::asio::post(io_, [this] { handler_.log_ready = true; });
  });
  auto got = Client().Json("GET", "/v1/jobs/job-1/logs?wait_ms=5000&task=s000-anchor&after=5-0");
  later.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ((*got)["lines"].size(), 1u);
  EXPECT_EQ((*got)["lines"][0]["task"], "s000-anchor");
  EXPECT_EQ((*got)["lines"][0]["after"], "5-0");
  EXPECT_EQ(Client().Json("GET", "/v1/jobs/job-1/logs?wait_ms=-1").status().code(),
            Status::Code::kInvalidArgument);
}

TEST_F(FarmApiTest, UnreachableCoordinatorIsUnavailable) {
  HttpClient c(ApiEndpoint{"127.0.0.1", 1}, "x", 2000);
  auto r = c.Json("GET", "/v1/jobs");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(r.status().message().find("127.0.0.1:1"), std::string::npos);
  EXPECT_FALSE(ParseApiUrl("ftp://x").ok());
  EXPECT_FALSE(ParseApiUrl("http://host:99999").ok());
  auto ep = ParseApiUrl("http://farm.local:8080/v1");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->host, "farm.local");
  EXPECT_EQ(ep->port, 8080);
}

}  // namespace
}  // namespace fairy::api
