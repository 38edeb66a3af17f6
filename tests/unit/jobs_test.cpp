// Job files: every rule of docs/job-files.md, the exact error format, multi-error collection,
// did-you-mean, storage-root confinement (.., absolute, symlink), lists of jobs, JSON round trip.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <vector>

#include "jobs/job_json.h"
#include "jobs/job_parser.h"
#include "jobs/storage_paths.h"
#include "tests/support/test_paths.h"

namespace fairy::jobs {
namespace {
namespace fs = std::filesystem;

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::canonical(testing::MakeTempDir("fairy-jobs")).string();
    fs::create_directories(root_ + "/footage");
    std::ofstream(root_ + "/footage/cat.mp4") << "not really a video";
    options_.storage_roots = {root_};
  }

  ParseResult Parse(const std::string& text) { return ParseJobText(text, "t.yaml", options_); }

  // All diagnostics, one per line.
  static std::string Text(const ParseResult& r) {
    std::string out;
    for (const auto& d : r.diagnostics.items()) out += d.ToString() + "\n";
    return out;
  }

  static std::string Job(const std::string& extra = "") {
    return "input: footage/cat.mp4\noutput: renders/lion.mp4\ninstruction: turn the cat into a lion\n" +
           extra;
  }

  std::string root_;
  ParseOptions options_;
};

TEST_F(JobsTest, MinimalJobGetsEveryDefault) {
  ParseResult r = Parse(Job());
  ASSERT_TRUE(r.ok()) << Text(r);
  ASSERT_EQ(r.jobs.size(), 1u);
  const JobSpec& j = r.jobs[0];
  EXPECT_EQ(j.name, "lion");  // the output's stem
  EXPECT_EQ(j.input, root_ + "/footage/cat.mp4");
  EXPECT_EQ(j.output, root_ + "/renders/lion.mp4");
  EXPECT_EQ(j.instruction, "turn the cat into a lion");
  EXPECT_EQ(j.model, "fairy-tiny");
  EXPECT_EQ(j.priority, 50);
  EXPECT_EQ(j.edit.resolution, 512);
  EXPECT_EQ(j.edit.steps, 10);
  EXPECT_DOUBLE_EQ(j.edit.guidance_text, 7.5);
  EXPECT_DOUBLE_EQ(j.edit.guidance_image, 1.5);
  EXPECT_EQ(j.edit.seed, 0u);
  EXPECT_EQ(j.edit.noise, "per_frame");
  EXPECT_EQ(j.edit.anchors, 3);
  EXPECT_EQ(j.edit.scheduler, "euler_ancestral");
  EXPECT_EQ(j.edit.anchor_mode, AnchorMode::kCache);
  EXPECT_DOUBLE_EQ(j.shots.threshold, 27.0);
  EXPECT_EQ(j.shots.min_length, 15);
  EXPECT_EQ(j.shots.max_length, 0);
  EXPECT_EQ(j.chunk_frames, 16);
  EXPECT_EQ(j.encode.codec, "h264");
  EXPECT_EQ(j.encode.crf, 18);
  EXPECT_EQ(j.encode.preset, "medium");
  EXPECT_TRUE(j.encode.scale_to_source);
  EXPECT_EQ(j.encode.audio, "copy");
  EXPECT_TRUE(j.worker_tags.empty());
  EXPECT_EQ(j.origin.file, "t.yaml");
  EXPECT_EQ(j.origin.line, 1);
}

TEST_F(JobsTest, EveryFieldIsRead) {
  ParseResult r = Parse(Job(
      "name: big-cat\nmodel: fairy-tiny\npriority: 90\n"
      "edit: {resolution: 768, steps: 25, guidance_text: 9, guidance_image: 1.2, "
      "seed: 18446744073709551615, noise: shared, anchors: 5, batch: 8, scheduler: euler, "
      "anchor_mode: recompute}\n"
      "shots: {threshold: 30.5, min_length: 10, max_length: 300}\n"
      "chunk_frames: 8\n"
      "encode: {codec: h264, crf: 23, preset: slow, scale_to_source: false, audio: none}\n"
      "worker_tags: [gpu, a100]\n"));
  ASSERT_TRUE(r.ok()) << Text(r);
  const JobSpec& j = r.jobs[0];
  EXPECT_EQ(j.name, "big-cat");
  EXPECT_EQ(j.priority, 90);
  EXPECT_EQ(j.edit.resolution, 768);
  EXPECT_EQ(j.edit.steps, 25);
  EXPECT_DOUBLE_EQ(j.edit.guidance_text, 9.0);
  EXPECT_DOUBLE_EQ(j.edit.guidance_image, 1.2);
  EXPECT_EQ(j.edit.seed, 18446744073709551615ull);
  EXPECT_EQ(j.edit.noise, "shared");
  EXPECT_EQ(j.edit.scheduler, "euler");
  EXPECT_EQ(j.edit.anchors, 5);
  EXPECT_EQ(j.edit.batch, 8);
  EXPECT_EQ(j.edit.anchor_mode, AnchorMode::kRecompute);
  EXPECT_DOUBLE_EQ(j.shots.threshold, 30.5);
  EXPECT_EQ(j.shots.min_length, 10);
  EXPECT_EQ(j.shots.max_length, 300);
  EXPECT_EQ(j.chunk_frames, 8);
  EXPECT_EQ(j.encode.crf, 23);
  EXPECT_EQ(j.encode.preset, "slow");
  EXPECT_FALSE(j.encode.scale_to_source);
  EXPECT_EQ(j.encode.audio, "none");
  EXPECT_EQ(j.worker_tags, (std::vector<std::string>{"gpu", "a100"}));
}

TEST_F(JobsTest, ExactErrorFormat) {
  ParseResult r = Parse(
      "name: demo\ninput: footage/cat.mp4\noutput: out.mp4\ninstruction: x\nedit:\n  steps: 0\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Text(r), "t.yaml:6:10: edit.steps: must be between 1 and 200, got 0\n");
  EXPECT_EQ(r.ToStatus().ToString(),
            "InvalidArgument: t.yaml:6:10: edit.steps: must be between 1 and 200, got 0");
  EXPECT_TRUE(r.jobs.empty());
}

TEST_F(JobsTest, CollectsEveryErrorInFileOrder) {
  ParseResult r = Parse(
      "input: footage/cat.mp4\n"        // 1
      "output: out.txt\n"               // 2 bad extension
      "instruction: \"  \"\n"           // 3 empty
      "priority: 101\n"                 // 4
      "edit:\n"                         // 5
      "  resolution: 500\n"             // 6 not a multiple of 8
      "  steps: ten\n"                  // 7 type
      "  seed: -1\n"                    // 8 unsigned
      "  anchors: 17\n"                 // 9
      "  anchor_mode: cahce\n"          // 10 enum with hint
      "shots: {min_length: 20, max_length: 10}\n"  // 11
      "encode: {crf: 52, preset: fastest, scale_to_source: maybe, audio: aac}\n"  // 12
      "chunk_frames: 0\n"               // 13
      "worker_tags: gpu\n");            // 14 not a list
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Text(r),
            "t.yaml:2:9: output: must end in .mp4, .mov or .mkv (H.264 output), got \"out.txt\"\n"
            "t.yaml:3:14: instruction: must not be empty (say what to change, e.g. \"turn the cat into a lion\")\n"
            "t.yaml:4:11: priority: must be between 0 and 100, got 101\n"
            "t.yaml:6:15: edit.resolution: must be a multiple of 8, got 500\n"
            "t.yaml:7:10: edit.steps: must be an integer, got \"ten\"\n"
            "t.yaml:8:9: edit.seed: must be an integer between 0 and 18446744073709551615, got \"-1\"\n"
            "t.yaml:9:12: edit.anchors: must be between 1 and 16, got 17\n"
            "t.yaml:10:16: edit.anchor_mode: must be one of: cache, recompute; got \"cahce\" (did you mean \"cache\"?)\n"
            "t.yaml:11:37: shots.max_length: must be 0 (never split) or at least shots.min_length (20), got 10\n"
            "t.yaml:12:15: encode.crf: must be between 0 and 51, got 52\n"
            "t.yaml:12:27: encode.preset: must be one of: ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow; got \"fastest\" (did you mean \"faster\"?)\n"
            "t.yaml:12:53: encode.scale_to_source: must be true or false, got \"maybe\"\n"
            "t.yaml:12:67: encode.audio: must be one of: copy, none; got \"aac\"\n"
            "t.yaml:13:15: chunk_frames: must be between 1 and 4096, got 0\n"
            "t.yaml:14:14: worker_tags: must be a list of strings, got \"gpu\"\n");
  EXPECT_EQ(r.diagnostics.error_count(), 15);
}

TEST_F(JobsTest, UnknownKeysGetDidYouMean) {
  ParseResult r = Parse(Job("instructions: x\nedit:\n  stpes: 4\n  guidance: 3\nfoo: 1\n"));
  EXPECT_EQ(Text(r),
            "t.yaml:4:1: instructions: unknown key \"instructions\" (did you mean \"instruction\"?)\n"
            "t.yaml:6:3: edit.stpes: unknown key \"stpes\" (did you mean \"steps\"?)\n"
            "t.yaml:7:3: edit.guidance: unknown key \"guidance\"; expected one of: resolution, steps, "
            "guidance_text, guidance_image, seed, noise, anchors, batch, scheduler, anchor_mode\n"
            "t.yaml:8:1: foo: unknown key \"foo\"; expected one of: name, input, output, instruction, "
            "model, priority, edit, shots, chunk_frames, encode, worker_tags\n");
}

TEST_F(JobsTest, RequiredFieldsAndNullValues) {
  ParseResult r = Parse("name: a\nedit:\n  steps:\n");
  EXPECT_EQ(Text(r),
            "t.yaml:1:1: input: is required\n"
            "t.yaml:1:1: output: is required\n"
            "t.yaml:1:1: instruction: is required\n"
            "t.yaml:3:3: edit.steps: must be an integer, got null\n");
}

TEST_F(JobsTest, WrongShapes) {
  EXPECT_EQ(Text(Parse(Job("edit: [1, 2]\n"))),
            "t.yaml:4:7: edit: must be a mapping of keys to values, got a list\n");
  EXPECT_EQ(Text(Parse(Job("priority: 1.5\n"))), "t.yaml:4:11: priority: must be an integer, got \"1.5\"\n");
  EXPECT_EQ(Text(Parse(Job("instruction: {a: 1}\n"))).substr(0, 30), "t.yaml:4:1: instruction: dupli");
  EXPECT_EQ(Text(Parse(Job("worker_tags: [ok, \"bad tag\", [x]]\n"))),
            "t.yaml:4:30: worker_tags[2]: must be a string, got a list\n");
  EXPECT_EQ(Text(Parse(Job("worker_tags: [ok, \"bad tag\"]\n"))),
            "t.yaml:4:19: worker_tags[1]: must be 1..64 characters of A-Z a-z 0-9 _ . : -, got \"bad tag\"\n");
  EXPECT_EQ(Text(Parse(Job("name: \"a b\"\n"))),
            "t.yaml:4:7: name: must be 1..64 characters of A-Z a-z 0-9 . _ -, got \"a b\"\n");
  EXPECT_EQ(Text(Parse(Job("edit: {guidance_text: .nan}\n"))),
            "t.yaml:4:23: edit.guidance_text: must be a number, got \".nan\"\n");
  EXPECT_EQ(Text(Parse(Job("edit: {guidance_image: 51}\n"))),
            "t.yaml:4:24: edit.guidance_image: must be between 0 and 50, got 51\n");
}

TEST_F(JobsTest, InstructionLimits) {
  EXPECT_FALSE(Parse(Job("instruction: " + std::string(1001, 'a') + "\n")).ok());
  std::string words;
  for (int i = 0; i < 80; ++i) words += "word ";
  ParseResult r = Parse("input: footage/cat.mp4\noutput: o.mp4\ninstruction: " + words + "\n");
  EXPECT_TRUE(r.ok()) << Text(r);
  ASSERT_EQ(r.diagnostics.warning_count(), 1);
  EXPECT_NE(Text(r).find("t.yaml:3:14: warning: instruction: 80 words exceed"), std::string::npos);
}

TEST_F(JobsTest, ListOfJobsAndCollisions) {
  ParseResult ok = Parse("- " + std::string("input: footage/cat.mp4\n  output: a.mp4\n  instruction: x\n") +
                         "- input: footage/cat.mp4\n  output: b.mov\n  instruction: y\n  priority: 10\n");
  ASSERT_TRUE(ok.ok()) << Text(ok);
  ASSERT_EQ(ok.jobs.size(), 2u);
  EXPECT_EQ(ok.jobs[0].name, "a");
  EXPECT_EQ(ok.jobs[1].name, "b");
  EXPECT_EQ(ok.jobs[1].priority, 10);
  EXPECT_EQ(ok.jobs[1].origin.index, 1);
  EXPECT_EQ(ok.jobs[1].origin.line, 4);

  ParseResult bad = Parse(
      "- {name: a, input: footage/cat.mp4, output: a.mp4, instruction: x}\n"
      "- {name: a, input: footage/cat.mp4, output: a.mp4, instruction: x, edit: {steps: 0}}\n");
  EXPECT_EQ(Text(bad),
            "t.yaml:2:10: [1].name: job name \"a\" is already used by job [0]\n"
            "t.yaml:2:45: [1].output: " + root_ + "/a.mp4 is already the output of job [0]\n"
            "t.yaml:2:82: [1].edit.steps: must be between 1 and 200, got 0\n");
  EXPECT_TRUE(bad.jobs.empty());
}

TEST_F(JobsTest, DuplicateKeysAndInputEqualsOutput) {
  EXPECT_EQ(Text(Parse(Job("priority: 1\npriority: 2\n"))),
            "t.yaml:5:1: priority: duplicate key \"priority\" (each key may appear once)\n");
  EXPECT_EQ(Text(Parse("input: a.mp4\noutput: ./a.mp4\ninstruction: x\n")),
            "t.yaml:2:9: output: must differ from input (" + root_ + "/a.mp4)\n");
}

TEST_F(JobsTest, DocumentLevelErrors) {
  EXPECT_EQ(Text(Parse("")), "t.yaml: the file is empty\n");
  EXPECT_EQ(Text(Parse("just text\n")),
            "t.yaml:1:1: a job file holds one job (a mapping) or a list of jobs, got \"just text\"\n");
  EXPECT_EQ(Text(Parse("[]\n")), "t.yaml:1:1: the list holds no jobs\n");
  EXPECT_EQ(Text(Parse("- 3\n")), "t.yaml:1:3: [0]: must be a mapping of keys to values, got \"3\"\n");
  ParseResult syntax = Parse("input: a\n  output: [\n");
  ASSERT_EQ(syntax.diagnostics.error_count(), 1);
  EXPECT_EQ(syntax.diagnostics.items()[0].line, 2);
  EXPECT_NE(Text(syntax).find("YAML syntax error"), std::string::npos);
  EXPECT_NE(Text(Parse(Job() + "---\n" + Job())).find("one YAML document"), std::string::npos);
  // yaml-cpp 0.7 never returns on these (found by the fuzzer); they must fail fast instead.
  EXPECT_EQ(Text(Parse(", a: b\n")),
            "t.yaml:1:1: YAML syntax error: unexpected ',' outside a [list] or {mapping}\n");
  EXPECT_EQ(Text(Parse("# c\n--- , a\n")),
            "t.yaml:2:5: YAML syntax error: unexpected ',' outside a [list] or {mapping}\n");
  EXPECT_EQ(Text(Parse("'x' , b\n")),
            "t.yaml:1:5: YAML syntax error: unexpected ',' outside a [list] or {mapping}\n");
  EXPECT_EQ(Text(Parse("[a,\n b], c\n")),
            "t.yaml:2:4: YAML syntax error: unexpected ',' outside a [list] or {mapping}\n");
  EXPECT_EQ(Text(Parse(std::string("a: 1\nb: x\0y\n", 11))),
            "t.yaml:2:5: control character 0x00 in the file (YAML is text)\n");
  EXPECT_EQ(Text(Parse("&anchor, b\n")),
            "t.yaml:1:8: YAML syntax error: unexpected ',' outside a [list] or {mapping}\n");
  EXPECT_EQ(Text(Parse("- {a: 1}\n- 3\n  , {b: 2}\n")),
            "t.yaml:3:3: YAML syntax error: unexpected ',' outside a [list] or {mapping}\n");
  // ... but a ',' inside quotes, flow collections and block scalars is fine.
  ParseResult fine = Parse(
      "input: footage/cat.mp4\noutput: o.mp4\ninstruction: |-\n  turn it's cat\n  , into a lion\n"
      "name: \"it's\"\nworker_tags: [a\n  , b]\nedit: {steps: 3\n  , seed: 1}\n");
  EXPECT_EQ(Text(fine), "t.yaml:6:7: name: must be 1..64 characters of A-Z a-z 0-9 . _ -, got \"it's\"\n");
}

TEST_F(JobsTest, IsolatedParseStopsYamlCppHangs) {
  // An input (found by the fuzzer) on which yaml-cpp 0.7 never returns and that the pre-scan
  // does not catch: with isolation it is a syntax error after the time limit.
  std::ifstream in(testing::SourceDir() + "/tests/unit/jobs_hang_input.yaml", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  options_.isolated_parse_limit_ms = 500;
  const auto start = std::chrono::steady_clock::now();
  ParseResult hung = Parse(text);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // Over the time limit or over the child's memory cap, whichever comes first.
  EXPECT_EQ(Text(hung).rfind("t.yaml: YAML syntax error: the YAML parser ", 0), 0u) << Text(hung);
  EXPECT_EQ(hung.diagnostics.error_count(), 1);
  // Good and ordinarily bad files are unaffected by isolation.
  EXPECT_TRUE(Parse(Job()).ok());
  EXPECT_EQ(Text(Parse(Job("priority: 101\n"))), "t.yaml:4:11: priority: must be between 0 and 100, got 101\n");
}

TEST_F(JobsTest, PathsEscapingTheRootsAreDenied) {
  fs::create_directories(root_ + "/inside");
  const std::string outside = fs::canonical(testing::MakeTempDir("fairy-outside")).string();
  fs::create_directory_symlink(outside, root_ + "/inside/link");

  ParseResult dots = Parse("input: footage/../../etc/passwd.mp4\noutput: o.mp4\ninstruction: x\n");
  ASSERT_EQ(dots.diagnostics.error_count(), 1);
  const config::Diagnostic& d = dots.diagnostics.items()[0];
  EXPECT_EQ(d.field, "input");
  EXPECT_EQ(d.code, Status::Code::kPermissionDenied);
  EXPECT_EQ(d.line, 1);
  EXPECT_EQ(dots.ToStatus().code(), Status::Code::kPermissionDenied);
  const std::string parent = fs::path(root_).parent_path().string();
  EXPECT_EQ(d.message, "\"footage/../../etc/passwd.mp4\" resolves to " + parent +
                           "/etc/passwd.mp4, outside the storage roots (" + root_ + ")");

  ParseResult absolute = Parse("input: /etc/hosts\noutput: o.mp4\ninstruction: x\n");
  ASSERT_EQ(absolute.diagnostics.error_count(), 1);
  EXPECT_EQ(absolute.diagnostics.items()[0].code, Status::Code::kPermissionDenied);

  ParseResult link = Parse("input: footage/cat.mp4\noutput: inside/link/o.mp4\ninstruction: x\n");
  ASSERT_EQ(link.diagnostics.error_count(), 1) << Text(link);
  EXPECT_EQ(link.diagnostics.items()[0].field, "output");
  EXPECT_NE(link.diagnostics.items()[0].message.find("resolves to " + outside + "/o.mp4"),
            std::string::npos);

  ParseResult model = Parse(Job("model: ../models/x\n"));
  ASSERT_EQ(model.diagnostics.error_count(), 1);
  EXPECT_EQ(model.diagnostics.items()[0].field, "model");

  ParseResult root_itself = Parse("input: footage/cat.mp4\noutput: .\ninstruction: x\n");
  EXPECT_EQ(root_itself.diagnostics.items()[0].code, Status::Code::kPermissionDenied);

  // Inside after normalisation is fine; an absolute path inside is kept.
  ParseResult fine = Parse("input: inside/../footage/./cat.mp4\noutput: " + root_ +
                           "/renders/x.mp4\ninstruction: x\n");
  ASSERT_TRUE(fine.ok()) << Text(fine);
  EXPECT_EQ(fine.jobs[0].input, root_ + "/footage/cat.mp4");
  EXPECT_EQ(fine.jobs[0].output, root_ + "/renders/x.mp4");
}

TEST_F(JobsTest, RelativePathsUseTheRootWhereTheyExist) {
  const std::string second = fs::canonical(testing::MakeTempDir("fairy-root2")).string();
  std::ofstream(second + "/only_here.mp4") << "x";
  options_.storage_roots = {root_, second};
  ParseResult r = Parse("input: only_here.mp4\noutput: out.mp4\ninstruction: x\n");
  ASSERT_TRUE(r.ok()) << Text(r);
  EXPECT_EQ(r.jobs[0].input, second + "/only_here.mp4");
  EXPECT_EQ(r.jobs[0].output, root_ + "/out.mp4");  // new files go to the first root
}

TEST_F(JobsTest, NoRootsResolvesAgainstBaseDir) {
  options_.storage_roots.clear();
  options_.base_dir = root_ + "/footage";
  ParseResult r = Parse("input: cat.mp4\noutput: /anywhere/o.mp4\ninstruction: x\n");
  ASSERT_TRUE(r.ok()) << Text(r);
  EXPECT_EQ(r.jobs[0].input, root_ + "/footage/cat.mp4");
  EXPECT_EQ(r.jobs[0].output, "/anywhere/o.mp4");
}

TEST_F(JobsTest, CheckFiles) {
  options_.check_files = true;
  fs::create_directories(root_ + "/models/empty");
  ParseResult r = Parse("input: footage/dog.mp4\noutput: o.mp4\ninstruction: x\nmodel: models/empty\n");
  EXPECT_EQ(Text(r),
            "t.yaml:1:8: input: file " + root_ + "/footage/dog.mp4 does not exist\n"
            "t.yaml:4:8: model: " + root_ +
                "/models/empty is neither a diffusers model folder (no model_index.json) nor a .safetensors "
                "checkpoint file\n");
  EXPECT_EQ(r.ToStatus().code(), Status::Code::kNotFound);
  std::ofstream(root_ + "/models/empty/model_index.json") << "{}";
  EXPECT_TRUE(Parse(Job("model: models/empty\n")).ok());
  // An original-layout single file by path; a model id is resolved by the workers, not here.
  std::ofstream(root_ + "/models/ip2p.safetensors") << "x";
  ParseResult file = Parse(Job("model: models/ip2p.safetensors\n"));
  ASSERT_TRUE(file.ok()) << Text(file);
  EXPECT_EQ(file.jobs[0].model, root_ + "/models/ip2p.safetensors");
  ParseResult id = Parse(Job("model: instruct-pix2pix\n"));
  ASSERT_TRUE(id.ok()) << Text(id);
  EXPECT_EQ(id.jobs[0].model, "instruct-pix2pix");
  ParseResult missing = Parse(Job("model: ./instruct-pix2pix\n"));
  ASSERT_EQ(missing.diagnostics.error_count(), 1) << Text(missing);
  EXPECT_NE(missing.diagnostics.items()[0].message.find("nor a .safetensors checkpoint file"), std::string::npos);
}

TEST_F(JobsTest, MissingFile) {
  ParseResult r = ParseJobFile(root_ + "/nope.yaml", options_);
  EXPECT_EQ(Text(r), root_ + "/nope.yaml: cannot read the job file (missing or not a file)\n");
  EXPECT_EQ(r.ToStatus().code(), Status::Code::kNotFound);
  EXPECT_FALSE(ParseJobFile(root_, options_).ok());  // a folder
}

TEST_F(JobsTest, ExampleFilesAreValid) {
  options_.storage_roots.clear();
  for (const char* name : {"demo.yaml", "full.yaml", "batch.yaml"}) {
    const std::string path = testing::SourceDir() + "/examples/" + name;
    options_.base_dir = fs::path(path).parent_path().string();
    ParseResult r = ParseJobFile(path, options_);
    EXPECT_TRUE(r.ok()) << name << "\n" << Text(r);
    EXPECT_FALSE(r.jobs.empty()) << name;
  }
}

TEST_F(JobsTest, JsonRoundTrip) {
  ParseResult r = Parse(Job("edit: {seed: 18446744073709551615, noise: shared, scheduler: euler, anchor_mode: recompute}\n"
                            "worker_tags: [gpu]\nshots: {max_length: 100}\n"));
  ASSERT_TRUE(r.ok()) << Text(r);
  const nlohmann::json j = JobSpecToJson(r.jobs[0]);
  EXPECT_EQ(j["edit"]["anchor_mode"], "recompute");
  EXPECT_EQ(j["edit"]["noise"], "shared");
  EXPECT_EQ(j["edit"]["scheduler"], "euler");
  auto back = JobSpecFromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(JobSpecToJson(*back), j);
  EXPECT_EQ(back->edit.seed, 18446744073709551615ull);
  auto bad = JobSpecFromJson(nlohmann::json{{"edit", {{"steps", "x"}}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("edit.steps"), std::string::npos);
  const std::vector<std::tuple<const char*, const char*, const char*>> enums = {
      {"noise", "random", "edit.noise: must be per_frame or shared, got random"},
      {"scheduler", "ddim", "edit.scheduler: must be euler_ancestral or euler, got ddim"},
      {"anchor_mode", "network", "edit.anchor_mode: must be cache or recompute, got network"}};
  for (const auto& [key, value, message] : enums) {
    bad = JobSpecFromJson(nlohmann::json{{"edit", {{key, value}}}});
    ASSERT_FALSE(bad.ok()) << key;
    EXPECT_NE(bad.status().message().find(message), std::string::npos) << bad.status().message();
  }
  EXPECT_FALSE(JobSpecFromJson(nlohmann::json::array()).ok());
}

TEST(StoragePathsTest, IsUnderComparesComponents) {
  EXPECT_TRUE(IsUnder("/srv/fairy/a.mp4", "/srv/fairy"));
  EXPECT_TRUE(IsUnder("/srv/fairy/a.mp4", "/srv/fairy/"));
  EXPECT_FALSE(IsUnder("/srv/fairy2/a.mp4", "/srv/fairy"));
  EXPECT_FALSE(IsUnder("/srv", "/srv/fairy"));
  EXPECT_TRUE(IsUnder("/x", "/"));
}

TEST(DidYouMeanTest, EditDistanceAndHints) {
  EXPECT_EQ(config::EditDistance("steps", "stpes"), 1);  // transposition
  EXPECT_EQ(config::EditDistance("", "abc"), 3);
  EXPECT_EQ(config::EditDistance("kitten", "sitting"), 3);
  EXPECT_EQ(config::DidYouMean("Steps", {"seed", "steps"}), "steps");
  EXPECT_EQ(config::DidYouMean("chunk_frame", {"chunk_frames", "name"}), "chunk_frames");
  EXPECT_EQ(config::DidYouMean("zzz", {"chunk_frames", "name"}), "");
}

}  // namespace
}  // namespace fairy::jobs
