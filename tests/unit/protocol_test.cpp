#include "common/protocol/protocol.h"

#include <gtest/gtest.h>

#include <random>

namespace fairy::protocol {
namespace {

TaskRef Ref() { return TaskRef{"job-1", "s0-f0", 3}; }

std::vector<Message> AllMessages() {
  Ready ready;
  ready.worker_id = "w1";
  ready.hostname = "gpu01";
  ready.device = "cuda:0";
  ready.memory_bytes = int64_t{80} << 30;
  ready.tags = {"a100", "studio"};
  ready.loaded_models = {"pix2pix-tiny"};
  ready.capacity = 2;
  ready.running = {Ref(), TaskRef{"job-2", "s1-anchor", 1}};
  Ready with_models = ready;
  with_models.installed_models = std::vector<std::string>{"ip2p", "sd15-ip2p.safetensors"};
  Ready no_models = ready;
  no_models.installed_models = std::vector<std::string>{};
  Heartbeat models_changed{1, std::vector<std::string>{"ip2p"}};
  Task task;
  task.ref = Ref();
  task.kind = TaskKind::kAnchor;
  task.shot = 4;
  task.frame_begin = 10;
  task.frame_end = 30;
  task.settings = {{"instruction", "turn the cat into a lion"}, {"steps", 10}};
  return {ready,
          with_models,
          no_models,
          models_changed,
          task,
          Progress{Ref(), 4, 20, "batch 1"},
          Progress{Ref(), 0, 20, "", 37, 1 << 20, int64_t{5} << 30},  // steps and model bytes
          Done{Ref(), "/tmp/chunk.mkv", 20, 1234, 0},
          Failed{Ref(), "decode failed: in.mp4 frame 12", false},
          Heartbeat{2, std::nullopt},
          Cancel{Ref(), "job cancelled"},
          Disconnect{"SIGTERM", {Ref()}}};
}

TEST(ProtocolTest, EveryMessageRoundTripsInBothEncodings) {
  for (Encoding enc : {Encoding::kJson, Encoding::kMsgPack}) {
    for (const Message& m : AllMessages()) {
      auto frames = Encode(m, enc);
      ASSERT_EQ(frames.size(), 5u);
      EXPECT_EQ(frames[0], "FAIRY");
      EXPECT_EQ(frames[1], std::to_string(kProtocolVersion));
      EXPECT_EQ(frames[2], CommandName(CommandOf(m)));
      auto decoded = Decode(frames);
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      EXPECT_EQ(*decoded, m) << Describe(m);
    }
  }
}

TEST(ProtocolTest, ProgressFromAnOlderWorkerHasNoStepCount) {
  auto m = FromJson(Command::kProgress,
                    nlohmann::json::parse(
                        R"({"job":"j","task":"t","attempt":1,"frames_done":1,"frames_total":4})"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const auto& p = std::get<Progress>(*m);
  EXPECT_EQ(p.steps_done, -1);
  EXPECT_EQ(p.load_bytes_total, 0);
  EXPECT_FALSE(ToJson(p).contains("steps_done")) << "not counted: left out, as an old worker does";
}

TEST(ProtocolTest, InstalledModelsAreOptionalAndAnEmptyListIsNotAbsence) {
  const char* ready = R"({"worker_id":"w","device":"cpu","tags":[],"loaded_models":[]})";
  auto old = FromJson(Command::kReady, nlohmann::json::parse(ready));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(std::get<Ready>(*old).installed_models.has_value()) << "older worker: does not say";
  EXPECT_FALSE(ToJson(*old).contains("installed_models"));

  nlohmann::json body = nlohmann::json::parse(ready);
  body["installed_models"] = nlohmann::json::array();
  auto none = FromJson(Command::kReady, body);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  ASSERT_TRUE(std::get<Ready>(*none).installed_models.has_value());
  EXPECT_TRUE(std::get<Ready>(*none).installed_models->empty());

  body["installed_models"] = nlohmann::json::array({"ip2p", 3});
  auto bad = FromJson(Command::kReady, body);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("installed_models"), std::string::npos)
      << bad.status().ToString();

  auto beat = FromJson(Command::kHeartbeat, nlohmann::json::parse(R"({"running":1})"));
  ASSERT_TRUE(beat.ok()) << beat.status().ToString();
  EXPECT_FALSE(std::get<Heartbeat>(*beat).installed_models.has_value()) << "unchanged";
  auto bad_beat =
      FromJson(Command::kHeartbeat, nlohmann::json::parse(R"({"installed_models":"ip2p"})"));
  ASSERT_FALSE(bad_beat.ok());
  EXPECT_NE(bad_beat.status().message().find("HEARTBEAT field 'installed_models'"),
            std::string::npos)
      << bad_beat.status().ToString();
}

TEST(ProtocolTest, MsgPackIsMoreCompactThanJson) {
  Message m = AllMessages()[0];
  EXPECT_LT(Encode(m, Encoding::kMsgPack)[4].size(), Encode(m, Encoding::kJson)[4].size());
}

TEST(ProtocolTest, WrongVersionIsUnsupportedAndNamesBothVersions) {
  auto frames = Encode(Heartbeat{});
  frames[1] = "2";
  auto r = Decode(frames);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos);
  EXPECT_NE(r.status().message().find("version 1"), std::string::npos);
  frames[1] = "1x";
  EXPECT_EQ(Decode(frames).status().code(), Status::Code::kInvalidArgument);
  frames[1] = "";
  EXPECT_FALSE(Decode(frames).ok());
}

TEST(ProtocolTest, StructuralErrorsAreRejected) {
  auto good = Encode(Done{Ref(), "x", 1, 0, 0});
  auto frames = good;
  frames.pop_back();
  EXPECT_NE(Decode(frames).status().message().find("expected 5 frames"), std::string::npos);
  frames = good;
  frames[0] = "MDPW01";
  EXPECT_NE(Decode(frames).status().message().find("signature"), std::string::npos);
  frames = good;
  frames[2] = "EXPLODE";
  EXPECT_NE(Decode(frames).status().message().find("unknown command 'EXPLODE'"), std::string::npos);
  frames = good;
  frames[3] = "xml";
  EXPECT_NE(Decode(frames).status().message().find("encoding"), std::string::npos);
  frames = good;
  frames[4] = "{not json";
  EXPECT_NE(Decode(frames).status().message().find("not valid json"), std::string::npos);
  frames = good;
  frames[4] = "[1,2]";
  EXPECT_FALSE(Decode(frames).ok());
  EXPECT_TRUE(Decode(good).ok());
}

TEST(ProtocolTest, FieldErrorsNameTheCommandAndField) {
  auto check = [](Command c, const char* body, const char* expect) {
    auto r = FromJson(c, nlohmann::json::parse(body));
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_NE(r.status().message().find(expect), std::string::npos)
        << body << " -> " << r.status().message();
  };
  check(Command::kDone, R"({"job":"j","task":"t","attempt":1})", "DONE field 'frames': missing");
  check(Command::kDone, R"({"job":"j","task":"t","attempt":"1","frames":1})",
        "field 'attempt': expected an integer");
  check(Command::kDone, R"({"job":"j","task":"t","attempt":0,"frames":1})", "outside [1,");
  check(Command::kTask,
        R"({"job":"j","task":"t","attempt":1,"kind":"paint","shot":0,"frame_begin":0,"frame_end":1})",
        "expected 'anchor' or 'frames'");
  check(Command::kTask,
        R"({"job":"j","task":"t","attempt":1,"kind":"frames","shot":0,"frame_begin":5,"frame_end":5})",
        "frame_end");
  check(Command::kTask,
        R"({"job":"j","task":"t","attempt":1,"kind":"frames","shot":0,"frame_begin":0,"frame_end":1,"settings":[1]})",
        "settings");
  check(Command::kReady, R"({"worker_id":"","device":"cpu"})", "worker_id");
  check(Command::kReady, R"({"worker_id":"w","device":"cpu","tags":[1]})", "tags");
  check(Command::kReady, R"({"worker_id":"w","device":"cpu","running":[{"job":"j"}]})",
        "running[0].task");
  check(Command::kProgress, R"({"job":"j","task":"t","attempt":1,"frames_done":5,"frames_total":4})",
        "exceeds");
  check(Command::kProgress,
        R"({"job":"j","task":"t","attempt":1,"frames_done":0,"frames_total":4,"steps_done":-2})",
        "steps_done");
  check(Command::kProgress,
        R"({"job":"j","task":"t","attempt":1,"frames_done":0,"frames_total":4,)"
        R"("load_bytes_read":9,"load_bytes_total":8})",
        "load_bytes_read");
  check(Command::kFailed, R"({"job":"","task":"t","attempt":1,"error":"x"})", "must not be empty");
  check(Command::kHeartbeat, R"({"running":-1})", "running");
}

TEST(ProtocolTest, DeeplyNestedBodiesAreRejectedWithoutRecursion) {
  auto frames = Encode(Task{Ref(), TaskKind::kFrames, 0, 0, 1, {}});
  std::string deep_json = R"({"job":"j","task":"t","attempt":1,"kind":"frames","shot":0,)"
                          R"("frame_begin":0,"frame_end":1,"settings":{"x":)" +
                          std::string(200000, '[') + std::string(200000, ']') + "}}";
  frames[4] = deep_json;
  auto r = Decode(frames);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested"), std::string::npos);
  // MessagePack: 1M nested one-element arrays (0x91) would overflow a recursive reader.
  frames[3] = "msgpack";
  frames[4] = std::string(1000000, '\x91') + '\x01';
  EXPECT_FALSE(Decode(frames).ok());
}

TEST(ProtocolTest, RandomGarbageNeverCrashes) {
  std::mt19937 rng(42);
  auto base = AllMessages();
  int rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    auto frames = Encode(base[i % base.size()], i % 2 ? Encoding::kMsgPack : Encoding::kJson);
    std::string& body = frames[4];
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips && !body.empty(); ++f) {
      size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0: body[at] = static_cast<char>(rng()); break;
        case 1: body.erase(at, 1 + rng() % 8); break;
        default: body.insert(at, 1, static_cast<char>(rng())); break;
      }
    }
    if (!Decode(frames).ok()) ++rejected;
  }
  EXPECT_GT(rejected, 1000);  // most mutations must be caught, none may crash
}

}  // namespace
}  // namespace fairy::protocol

#include "common/protocol/task_settings.h"

namespace fairy::protocol {
namespace {

TEST(TaskSettingsTest, RoundTripsAndNamesBadFields) {
  TaskSettings s;
  s.input = "/media/in.mp4";
  s.work_dir = "/farm/work/j1";
  s.model = "/models/tiny";
  s.instruction = "turn it into winter";
  s.seed = 18446744073709551615ull;
  s.shot_first = 100;
  s.shot_count = 50;
  s.anchor_frames = {108, 124, 141};
  s.batch = 8;
  s.noise = "shared";
  s.scheduler = "euler";
  auto back = TaskSettingsFromJson(ToJson(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);

  auto j = ToJson(s);
  j["anchor_frames"] = {99, 124};
  EXPECT_NE(TaskSettingsFromJson(j).status().message().find("settings.anchor_frames"), std::string::npos);
  j = ToJson(s);
  j["anchor_mode"] = "network";
  EXPECT_NE(TaskSettingsFromJson(j).status().message().find("'cache' or 'recompute'"), std::string::npos);
  j = ToJson(s);
  j["batch"] = 0;
  EXPECT_NE(TaskSettingsFromJson(j).status().message().find("settings.batch"), std::string::npos);
  j.erase("batch");  // from a coordinator older than the field
  EXPECT_EQ(TaskSettingsFromJson(j)->batch, 4);
  j = ToJson(s);
  j["noise"] = "random";
  EXPECT_NE(TaskSettingsFromJson(j).status().message().find("settings.noise"), std::string::npos);
  j.erase("noise");  // from a coordinator older than the field
  EXPECT_EQ(TaskSettingsFromJson(j)->noise, "per_frame");
  j = ToJson(s);
  j["scheduler"] = "ddim";
  EXPECT_NE(TaskSettingsFromJson(j).status().message().find("settings.scheduler"),
            std::string::npos);
  j.erase("scheduler");  // from a coordinator older than the field
  EXPECT_EQ(TaskSettingsFromJson(j)->scheduler, "euler_ancestral");
  j = ToJson(s);
  j.erase("model");
  EXPECT_NE(TaskSettingsFromJson(j).status().message().find("settings.model: missing"), std::string::npos);
  EXPECT_EQ(ChunkPath("/w", "s000-f000000-000023"), "/w/s000-f000000-000023.mkv");
}

}  // namespace
}  // namespace fairy::protocol
