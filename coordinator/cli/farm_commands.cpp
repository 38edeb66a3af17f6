#include "coordinator/cli/farm_commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "coordinator/api/http_client.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/table.h"

namespace fairy::cli {
namespace {

using nlohmann::json;

struct Connection {
  std::string api_url;
  std::string token;
  std::string token_file;
};

struct FarmOptions {
  Connection conn;
  bool json_output = false;
  std::vector<std::string> files;
  int priority = -1;
  bool wait = false;
  std::string job;
  int new_priority = 0;
  std::string task;
  bool follow = false;
  bool all = false;    // retry: the whole job, not only the failed tasks
  bool tasks = false;  // status: one row per task instead of per shot
  double interval_s = 1.0;
  std::vector<std::string> states;  // jobs: only these states
  bool active = false;              // jobs: only unfinished jobs
};

int ExitFor(const Status& s) {
  if (s.code() == Status::Code::kUnavailable) return kExitUnavailable;
  return kExitFailure;
}

int Fail(const Status& s) {
  std::cerr << "fairy: " << s.message() << "\n";
  return ExitFor(s);
}

Result<api::HttpClient> MakeClient(const Connection& c, int64_t timeout_ms = 60000) {
  std::string url = c.api_url;
  if (url.empty()) {
    const char* env = std::getenv("FAIRY_API");
    url = env != nullptr ? env : "http://127.0.0.1:8765";
  }
  FAIRY_ASSIGN_OR_RETURN(api::ApiEndpoint ep, api::ParseApiUrl(url));
  std::string token = c.token;
  if (token.empty() && !c.token_file.empty()) {
    std::ifstream in(c.token_file);
    if (!in) return Status::NotFound("cannot read the token file '" + c.token_file + "'");
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  }
  if (token.empty()) {
    if (const char* env = std::getenv("FAIRY_TOKEN")) token = env;
  }
  return api::HttpClient(ep, token, timeout_ms);
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}

double Num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsFinalState(const std::string& state) {
  return state == "DONE" || state == "FAILED" || state == "CANCELLED";
}

std::string Runtime(int64_t start_ms, int64_t end_ms) {
  if (start_ms <= 0) return "-";
  int64_t end = end_ms > 0 ? end_ms : NowMs();
  return FormatDuration(static_cast<double>(end - start_ms) / 1000.0);
}

std::string JobsTable(const json& jobs) {
  Table t({"JOB", "NAME", "STATE", "PRI", "FRAMES", "DONE", "TASKS", "FAILED", "SUBMITTED",
           "RUNTIME", "FPS", "ETA"},
          {false, false, false, true, true, true, true, true, false, true, true, true});
  for (const auto& j : jobs) {
    t.AddRow({Str(j, "id"), Str(j, "name"), Str(j, "state"), std::to_string(Int(j, "priority")),
              std::to_string(Int(j, "frames_total")), std::to_string(Int(j, "frames_done")),
              std::to_string(Int(j, "tasks_done")) + "/" + std::to_string(Int(j, "tasks_total")),
              std::to_string(Int(j, "tasks_failed")), FormatTime(Int(j, "submit_ms")),
              Runtime(Int(j, "started_ms"), Int(j, "finished_ms")),
              FormatRate(Num(j, "frames_per_s")),
              IsFinalState(Str(j, "state")) ? "-" : FormatDuration(Num(j, "eta_s"))});
  }
  return t.Render();
}

std::string ShotsTable(const json& job) {
  Table t(
      {"SHOT", "FRAMES", "RANGE", "STATE", "DONE", "WORKER", "ATTEMPT", "START", "RUNTIME", "FPS"},
      {true, true, false, false, true, false, true, false, true, true});
  for (const auto& s : job.value("shots", json::array())) {
    int64_t first = Int(s, "first_frame");
    int64_t count = Int(s, "frame_count");
    t.AddRow(
        {std::to_string(Int(s, "index")), std::to_string(count),
         std::to_string(first) + "-" + std::to_string(first + count - 1), Str(s, "state"),
         std::to_string(Int(s, "frames_done")), Str(s, "worker").empty() ? "-" : Str(s, "worker"),
         std::to_string(Int(s, "attempt")), FormatTime(Int(s, "started_ms")),
         Runtime(Int(s, "started_ms"), Int(s, "finished_ms")), FormatRate(Num(s, "frames_per_s"))});
  }
  return t.Render();
}

std::string TasksTable(const json& job) {
  Table t({"TASK", "KIND", "SHOT", "FRAMES", "STATE", "WORKER", "ATTEMPT", "START", "RUNTIME",
           "FPS", "ERROR"},
          {false, false, true, true, false, false, true, false, true, true, false});
  for (const auto& k : job.value("tasks", json::array())) {
    // An attempt runs from when it was sent (a worker starts what it gets) until it ended; a task
    // waiting for its first or next attempt shows none.
    const std::string state = Str(k, "state");
    const bool live = state == "ASSIGNED" || state == "RUNNING";
    const int64_t started = live || Int(k, "finished_ms") > 0 ? Int(k, "assigned_ms") : 0;
    const int64_t ended = live ? NowMs() : Int(k, "finished_ms");
    const double secs = started > 0 ? static_cast<double>(ended - started) / 1000.0 : 0;
    const double fps = secs > 0 ? static_cast<double>(Int(k, "frames_done")) / secs : 0;
    const int64_t total =
        k.contains("frames_total") ? Int(k, "frames_total") : Int(k, "frame_count");
    t.AddRow({Str(k, "id"), Str(k, "kind"), std::to_string(Int(k, "shot")),
              std::to_string(Int(k, "frames_done")) + "/" + std::to_string(total), state,
              Str(k, "worker").empty() ? "-" : Str(k, "worker"), std::to_string(Int(k, "attempt")),
              FormatTime(started), started > 0 ? FormatDuration(secs) : "-", FormatRate(fps),
              Str(k, "error")});
  }
  return t.Render();
}

std::string JobHeader(const json& j) {
  std::ostringstream out;
  out << "job " << Str(j, "id") << " (" << Str(j, "name") << "): " << Str(j, "state") << " / "
      << Str(j, "phase") << ", priority " << Int(j, "priority") << ", " << Int(j, "frames_done")
      << "/" << Int(j, "frames_total") << " frames, " << Int(j, "tasks_done") << "/"
      << Int(j, "tasks_total") << " tasks";
  if (Int(j, "tasks_failed") > 0) out << ", " << Int(j, "tasks_failed") << " failed";
  out << "\n";
  if (!Str(j, "output").empty()) out << "output " << Str(j, "output") << "\n";
  if (!Str(j, "error").empty()) out << "error: " << Str(j, "error") << "\n";
  return out.str();
}

void PrintJson(const json& j) { std::cout << j.dump(2) << "\n"; }

// Waits until every job is final; returns kExitOk only when all ended DONE.
int WaitForJobs(const api::HttpClient& client, const std::vector<std::string>& ids,
                double interval_s, bool quiet) {
  std::set<std::string> pending(ids.begin(), ids.end());
  bool all_done = true;
  while (!pending.empty()) {
    for (auto it = pending.begin(); it != pending.end();) {
      auto r = client.Json("GET", "/v1/jobs/" + api::UrlEncode(*it));
      if (!r.ok()) return Fail(r.status());
      std::string state = Str(*r, "state");
      if (IsFinalState(state)) {
        if (!quiet)
          std::cout << *it << " " << state
                    << (Str(*r, "error").empty() ? "" : ": " + Str(*r, "error")) << "\n";
        all_done = all_done && state == "DONE";
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    if (!pending.empty())
      std::this_thread::sleep_for(
          std::chrono::milliseconds(static_cast<int64_t>(interval_s * 1000)));
  }
  return all_done ? kExitOk : kExitFailure;
}

int RunSubmit(const FarmOptions& o) {
  auto client = MakeClient(o.conn);
  if (!client.ok()) return Fail(client.status());
  std::vector<std::string> ids;
  json answers = json::array();
  bool any_error = false;
  for (const auto& file : o.files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "fairy: cannot read '" << file << "'\n";
      any_error = true;
      continue;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    std::string target = "/v1/jobs?name=" + api::UrlEncode(file);
    if (o.priority >= 0) target += "&priority=" + std::to_string(o.priority);
    auto r = client->Json("POST", target, buf.str(), "application/yaml");
    if (!r.ok()) {
      if (r.status().code() == Status::Code::kUnavailable) return Fail(r.status());
      std::cerr << "fairy: " << r.status().message() << "\n";
      any_error = true;
      continue;
    }
    answers.push_back(*r);
    for (const auto& id : r->value("jobs", json::array())) {
      ids.push_back(id.get<std::string>());
      if (!o.json_output) std::cout << id.get<std::string>() << "\n";
    }
  }
  if (o.json_output) PrintJson(json{{"submitted", answers}});
  if (any_error) return kExitFailure;
  if (o.wait) return WaitForJobs(*client, ids, o.interval_s, o.json_output);
  return kExitOk;
}

int RunJobs(const FarmOptions& o) {
  auto client = MakeClient(o.conn);
  if (!client.ok()) return Fail(client.status());
  // The coordinator filters (?state=A,B); --active is every unfinished state.
  std::vector<std::string> states = o.states;
  if (o.active) {
    if (states.empty()) states = {"QUEUED", "RUNNING", "PAUSED"};
    std::erase_if(states, [](const std::string& s) { return IsFinalState(s); });
    if (states.empty()) {  // --active with finished states only: nothing can match
      if (o.json_output) return PrintJson(json{{"jobs", json::array()}}), kExitOk;
      std::cout << JobsTable(json::array());
      return kExitOk;
    }
  }
  std::string target = "/v1/jobs";
  for (size_t i = 0; i < states.size(); ++i) {
    target += (i == 0 ? "?state=" : ",") + api::UrlEncode(states[i]);
  }
  auto r = client->Json("GET", target);
  if (!r.ok()) return Fail(r.status());
  if (o.json_output) return PrintJson(*r), kExitOk;
  std::cout << JobsTable(r->value("jobs", json::array()));
  return kExitOk;
}

int RunStatus(const FarmOptions& o) {
  auto client = MakeClient(o.conn);
  if (!client.ok()) return Fail(client.status());
  auto r = client->Json("GET", "/v1/jobs/" + api::UrlEncode(o.job));
  if (!r.ok()) return Fail(r.status());
  if (o.json_output) return PrintJson(*r), kExitOk;
  std::cout << JobHeader(*r) << "\n" << (o.tasks ? TasksTable(*r) : ShotsTable(*r));
  return kExitOk;
}

int RunWatch(const FarmOptions& o) {
  auto client = MakeClient(o.conn);
  if (!client.ok()) return Fail(client.status());
  bool tty = isatty(STDOUT_FILENO) != 0 && !o.json_output;
  int drawn_lines = 0;
  std::string last_line;
  while (true) {
    auto r = client->Json("GET", "/v1/jobs/" + api::UrlEncode(o.job));
    if (!r.ok()) return Fail(r.status());
    const json& j = *r;
    std::string state = Str(j, "state");
    if (o.json_output) {
      std::cout << json{{"time_ms", NowMs()},
                        {"id", Str(j, "id")},
                        {"state", state},
                        {"frames_done", Int(j, "frames_done")},
                        {"frames_total", Int(j, "frames_total")},
                        {"frames_per_s", Num(j, "frames_per_s")},
                        {"eta_s", Num(j, "eta_s")}}
                       .dump()
                << std::endl;
    } else if (tty) {
      std::ostringstream frame;
      frame << JobHeader(j);
      frame << "total  " << ProgressBar(Int(j, "frames_done"), Int(j, "frames_total"), 40) << " "
            << FormatRate(Num(j, "frames_per_s")) << " frames/s  ETA "
            << (IsFinalState(state) ? "-" : FormatDuration(Num(j, "eta_s"))) << "\n";
      for (const auto& s : j.value("shots", json::array())) {
        char label[32];
        std::snprintf(label, sizeof(label), "shot %-3lld", static_cast<long long>(Int(s, "index")));
        frame << label << " " << ProgressBar(Int(s, "frames_done"), Int(s, "frame_count"), 40)
              << " " << Int(s, "frames_done") << "/" << Int(s, "frame_count") << " "
              << Str(s, "state") << "\n";
      }
      std::string text = frame.str();
      if (drawn_lines > 0) std::cout << "\x1b[" << drawn_lines << "A\x1b[J";
      std::cout << text << std::flush;
      drawn_lines = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    } else {
      std::ostringstream line;
      line << Str(j, "id") << " " << state << " " << Int(j, "frames_done") << "/"
           << Int(j, "frames_total") << " frames " << FormatRate(Num(j, "frames_per_s"))
           << " frames/s ETA " << (IsFinalState(state) ? "-" : FormatDuration(Num(j, "eta_s")));
      // A line per change of state or frames done (the ETA alone ticks every poll).
      const std::string key = state + " " + std::to_string(Int(j, "frames_done"));
      if (key != last_line) std::cout << line.str() << std::endl;
      last_line = key;
    }
    if (IsFinalState(state)) return state == "DONE" ? kExitOk : kExitFailure;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<int64_t>(o.interval_s * 1000)));
  }
}

int RunWorkers(const FarmOptions& o) {
  auto client = MakeClient(o.conn);
  if (!client.ok()) return Fail(client.status());
  auto r = client->Json("GET", "/v1/workers");
  if (!r.ok()) return Fail(r.status());
  if (o.json_output) return PrintJson(*r), kExitOk;
  // SLOTS: claimed (capped by workers.max_slots); "1/4": it gets one task at a time until it has
  // shown progress. MODELS: installed model ids ("*": loaded). STATE: up, draining, or suspect
  // (repeated stalled attempts).
  Table t({"WORKER", "HOST", "DEVICE", "MEM_MB", "SLOTS", "RUNNING", "TAGS", "MODELS", "LAST_SEEN",
           "STALLS", "STATE"},
          {false, false, false, true, true, false, false, false, false, true, false});
  for (const auto& w : r->value("workers", json::array())) {
    std::string running, tags, models;
    for (const auto& k : w.value("running", json::array())) {
      running += (running.empty() ? "" : ",") + Str(k, "job_id") + "/" + Str(k, "task_id") + "#" +
                 std::to_string(Int(k, "attempt"));
    }
    for (const auto& s : w.value("tags", json::array()))
      tags += (tags.empty() ? "" : ",") + s.get<std::string>();
    // MODELS: the model ids in its models folder, "*" marking one loaded now; "?" for a worker
    // that does not report them (older), then what it has loaded.
    std::vector<std::string> loaded;
    for (const auto& s : w.value("models", json::array())) loaded.push_back(s.get<std::string>());
    const auto installed = w.find("installed_models");
    if (installed != w.end() && installed->is_array()) {
      for (const auto& s : *installed) {
        const std::string id = s.get<std::string>();
        const bool in_memory = std::any_of(loaded.begin(), loaded.end(), [&](const std::string& l) {
          return l == id || (l.size() > id.size() && l.ends_with("/" + id));
        });
        models += (models.empty() ? "" : ",") + id + (in_memory ? "*" : "");
      }
    } else {
      models = "?";
      for (const std::string& l : loaded) models += "," + l;
    }
    const int64_t slots = Int(w, "slots");
    const int64_t usable = w.contains("usable_slots") ? Int(w, "usable_slots") : slots;
    std::string state = "up";
    if (w.value("suspect", false)) state = "suspect";
    if (w.value("draining", false)) state = "draining";
    t.AddRow({Str(w, "id"), Str(w, "host"), Str(w, "device"), std::to_string(Int(w, "memory_mb")),
              usable == slots ? std::to_string(slots)
                              : std::to_string(usable) + "/" + std::to_string(slots),
              running.empty() ? "-" : running, tags.empty() ? "-" : tags,
              models.empty() ? "-" : models, FormatTime(Int(w, "last_seen_ms")),
              std::to_string(Int(w, "stalls")), state});
  }
  std::cout << t.Render();
  return kExitOk;
}

int RunControl(const FarmOptions& o, const std::string& op) {
  auto client = MakeClient(o.conn);
  if (!client.ok()) return Fail(client.status());
  std::string target = "/v1/jobs/" + api::UrlEncode(o.job) + "/" + op;
  if (op == "retry") target += o.all ? "?scope=job" : "?scope=failed";
  if (op == "priority") target += "?value=" + std::to_string(o.new_priority);
  auto r = client->Json("POST", target);
  if (!r.ok()) return Fail(r.status());
  if (o.json_output) return PrintJson(*r), kExitOk;
  std::cout << Str(*r, "id") << " " << Str(*r, "state") << " priority " << Int(*r, "priority")
            << "\n";
  return kExitOk;
}

int RunLogs(const FarmOptions& o) {
  // A follow request long-polls for up to 25 s; the client's timeout must outlast it.
  auto client = MakeClient(o.conn, 60000);
  if (!client.ok()) return Fail(client.status());
  std::string after;
  while (true) {
    std::string target = "/v1/jobs/" + api::UrlEncode(o.job) + "/logs?limit=1000";
    if (!o.task.empty()) target += "&task=" + api::UrlEncode(o.task);
    if (!after.empty()) target += "&after=" + api::UrlEncode(after);
    if (o.follow) target += "&wait_ms=25000";
    auto r = client->Json("GET", target);
    if (!r.ok()) return Fail(r.status());
    const auto& lines = r->value("lines", json::array());
    for (const auto& l : lines) {
      if (o.json_output) {
        std::cout << l.dump() << "\n";
      } else {
        std::string task = Str(l, "task").empty() ? "job" : Str(l, "task");
        std::string worker = Str(l, "worker").empty() ? "coordinator" : Str(l, "worker");
        std::cout << FormatTime(Int(l, "time_ms")) << " " << task << " [" << worker << "] "
                  << Str(l, "line") << "\n";
      }
    }
    std::cout << std::flush;
    if (!Str(*r, "next").empty()) after = Str(*r, "next");
    if (!o.follow) {
      if (lines.size() < 1000) return kExitOk;
      continue;  // more pages
    }
    if (lines.empty() && r->value("finished", false)) return kExitOk;
  }
}

void AddConnection(CLI::App* cmd, FarmOptions* o) {
  cmd->add_option("--api", o->conn.api_url,
                  "Control API URL (default $FAIRY_API or http://127.0.0.1:8765)");
  cmd->add_option("--token", o->conn.token, "API bearer token (default $FAIRY_TOKEN)");
  cmd->add_option("--token-file", o->conn.token_file, "Read the API token from this file");
  cmd->add_flag("--json", o->json_output, "Print the API's JSON instead of a table");
}

}  // namespace

void AddFarmCommands(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<FarmOptions>();
  auto add = [&](const char* name, const char* help, std::function<int()> run) {
    CLI::App* cmd = app.add_subcommand(name, help);
    AddConnection(cmd, o.get());
    cmd->callback([exit_code, run] { *exit_code = run(); });
    return cmd;
  };

  auto* submit = add("submit", "Submit job files to the farm; prints the new job ids",
                     [o] { return RunSubmit(*o); });
  submit->add_option("files", o->files, "Job YAML files")->required()->check(CLI::ExistingFile);
  submit
      ->add_option("--priority", o->priority, "Priority 0..100 for every job (overrides the file)")
      ->check(CLI::Range(0, 100));
  submit->add_flag("--wait", o->wait, "Wait until the jobs end; exit 0 only if all are DONE");

  auto* jobs = add("jobs", "List jobs (finished ones too, for finished_job_ttl_ms)",
                   [o] { return RunJobs(*o); });
  jobs->add_option("--state", o->states, "Only jobs in this state (repeatable)")
      ->transform(CLI::IsMember({"QUEUED", "RUNNING", "PAUSED", "DONE", "FAILED", "CANCELLED"},
                                CLI::ignore_case));
  jobs->add_flag("--active", o->active, "Only unfinished jobs (not DONE, FAILED or CANCELLED)");

  auto* status = add("status", "Show a job with its per-shot table", [o] { return RunStatus(*o); });
  status->add_option("job", o->job, "Job id")->required();
  status->add_flag("--tasks", o->tasks, "One row per task instead of per shot");

  auto* watch = add("watch", "Follow a job with live progress bars, frames/s and ETA",
                    [o] { return RunWatch(*o); });
  watch->add_option("job", o->job, "Job id")->required();
  watch->add_option("--interval", o->interval_s, "Seconds between refreshes (default 1)")
      ->check(CLI::Range(0.05, 3600.0));

  add("workers", "List connected workers", [o] { return RunWorkers(*o); });

  for (const char* op : {"cancel", "pause", "resume"}) {
    std::string help = std::string(op) + " a job";
    help[0] = static_cast<char>(std::toupper(help[0]));
    auto* cmd = add(op, help.c_str(), [o, op] { return RunControl(*o, op); });
    cmd->add_option("job", o->job, "Job id")->required();
  }
  auto* retry = add("retry", "Retry a job's failed tasks (--all: the whole job)",
                    [o] { return RunControl(*o, "retry"); });
  retry->add_option("job", o->job, "Job id")->required();
  retry->add_flag("--all", o->all, "Retry the whole job from the start");

  auto* priority =
      add("priority", "Change a job's priority", [o] { return RunControl(*o, "priority"); });
  priority->add_option("job", o->job, "Job id")->required();
  priority->add_option("value", o->new_priority, "New priority 0..100")
      ->required()
      ->check(CLI::Range(0, 100));

  auto* logs = add("logs", "Print a job's task log lines", [o] { return RunLogs(*o); });
  logs->add_option("job", o->job, "Job id")->required();
  logs->add_option("--task", o->task, "Only this task's lines");
  logs->add_flag("--follow,-f", o->follow, "Keep printing new lines until the job ends");
}

}  // namespace fairy::cli
