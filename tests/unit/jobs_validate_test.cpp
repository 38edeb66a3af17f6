// `fairy validate` end to end through the real binary: every error of every file, exit codes,
// --config storage roots, --json schema.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_paths.h"

namespace {
namespace fs = std::filesystem;

struct CliRun {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fs::canonical(fairy::testing::MakeTempDir("fairy-validate")).string(); }

  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return name;
  }

  // Runs `fairy validate ARGS` in dir_.
  CliRun Validate(const std::string& args) {
    const std::string cmd = "cd '" + dir_ + "' && '" + fairy::testing::BinDir() + "/fairy' validate " +
                            args + " >'" + dir_ + "/out.txt' 2>'" + dir_ + "/err.txt'";
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = Slurp(dir_ + "/out.txt");
    r.err = Slurp(dir_ + "/err.txt");
    return r;
  }

  std::string dir_;
};

TEST_F(ValidateTest, PrintsEveryErrorOfEveryFile) {
  Write("good.yaml", "input: in.mp4\noutput: out.mp4\ninstruction: x\n");
  Write("a.yaml", "input: in.mp4\noutput: out.mp4\ninstruction: x\nedit:\n  steps: 0\n  sead: 1\n");
  Write("b.yaml", "- input: in.mp4\n  output: o.mkv\n  instruction: \"\"\n");
  CliRun r = Validate("good.yaml a.yaml b.yaml missing.yaml");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "good.yaml: ok (1 job)\n");
  EXPECT_EQ(r.err,
            "a.yaml:5:10: edit.steps: must be between 1 and 200, got 0\n"
            "a.yaml:6:3: edit.sead: unknown key \"sead\" (did you mean \"seed\"?)\n"
            "b.yaml:3:16: [0].instruction: must not be empty (say what to change, e.g. \"turn the cat into a lion\")\n"
            "missing.yaml: cannot read the job file (missing or not a file)\n"
            "4 errors in 4 files\n");
}

TEST_F(ValidateTest, ExitCodes) {
  Write("good.yaml", "input: in.mp4\noutput: out.mp4\ninstruction: x\n");
  EXPECT_EQ(Validate("good.yaml").code, 0);
  EXPECT_EQ(Validate("").code, 2);                     // no files
  EXPECT_EQ(Validate("--bogus good.yaml").code, 2);    // unknown flag
  EXPECT_EQ(Validate("--storage-root nowhere good.yaml").code, 2);
  CliRun help = Validate("--help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--json"), std::string::npos);
}

TEST_F(ValidateTest, ConfigStorageRootsConfineJobs) {
  fs::create_directories(dir_ + "/storage");
  Write("cluster.yaml", "storage_roots: [storage]\n");
  Write("escape.yaml", "input: ../escape.yaml\noutput: out.mp4\ninstruction: x\n");
  CliRun r = Validate("--config cluster.yaml escape.yaml");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "escape.yaml:1:8: input: \"../escape.yaml\" resolves to " + dir_ +
                       "/escape.yaml, outside the storage roots (" + dir_ + "/storage)\n1 error in 1 file\n");
  Write("bad_cluster.yaml", "storage_roots: [nope]\n");
  CliRun c = Validate("--config bad_cluster.yaml escape.yaml");
  EXPECT_EQ(c.code, 1);
  EXPECT_NE(c.err.find("bad_cluster.yaml:1:17: storage_roots[0]: folder " + dir_ + "/nope does not exist"),
            std::string::npos) << c.err;
}

TEST_F(ValidateTest, JsonSchema) {
  Write("good.yaml", "input: in.mp4\noutput: out.mp4\ninstruction: x\n");
  Write("bad.yaml", "input: in.mp4\noutput: out.mp4\ninstruction: x\npriority: -1\n");
  CliRun r = Validate("--json good.yaml bad.yaml");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "");
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema"], "fairy.validate/1");
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error_count"], 1);
  EXPECT_EQ(j["warning_count"], 0);
  EXPECT_TRUE(j["config"].is_null());
  ASSERT_EQ(j["files"].size(), 2u);
  EXPECT_EQ(j["files"][0]["file"], "good.yaml");
  EXPECT_EQ(j["files"][0]["ok"], true);
  EXPECT_EQ(j["files"][0]["jobs"][0]["input"], dir_ + "/in.mp4");
  EXPECT_EQ(j["files"][0]["jobs"][0]["edit"]["steps"], 10);
  const nlohmann::json& d = j["files"][1]["diagnostics"][0];
  EXPECT_EQ(d["severity"], "error");
  EXPECT_EQ(d["file"], "bad.yaml");
  EXPECT_EQ(d["line"], 4);
  EXPECT_EQ(d["column"], 11);
  EXPECT_EQ(d["field"], "priority");
  EXPECT_EQ(d["code"], "InvalidArgument");
  EXPECT_EQ(d["message"], "must be between 0 and 100, got -1");
  EXPECT_EQ(d["text"], "bad.yaml:4:11: priority: must be between 0 and 100, got -1");
  EXPECT_TRUE(j["files"][1]["jobs"].empty());
}

}  // namespace
