// The worker <-> coordinator wire protocol (Paranoid Pirate / Majordomo style).
//
// Transport: a worker's ZeroMQ DEALER talks to the coordinator's ROUTER. Every message is a list of
// frames (the ROUTER additionally sees the routing id in front; the link strips it):
//
//   frame 0  "FAIRY"            protocol signature; anything else is rejected
//   frame 1  "<version>"        decimal protocol version (kProtocolVersion); a mismatch is rejected
//   frame 2  "<COMMAND>"        READY, TASK, PROGRESS, DONE, FAILED, HEARTBEAT, CANCEL, DISCONNECT
//   frame 3  "json" | "msgpack" body encoding
//   frame 4  body               a JSON object (or the same object as MessagePack, more compact)
//
// Decoding is strict: a wrong frame count, signature, version, command, encoding, an unparsable
// body, a missing or mistyped field, or an out-of-range value yields a failed Status that names the
// problem. Callers log and drop such messages; nothing here asserts or throws.
//
// Thread-safety: everything here is a pure function of its arguments.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

namespace fairy::protocol {

inline constexpr int kProtocolVersion = 1;
inline constexpr const char* kSignature = "FAIRY";
// Upper bound on a body (bulk data never travels on ZeroMQ; bigger bodies are rejected).
inline constexpr size_t kMaxBodyBytes = 4 << 20;

enum class Command { kReady, kTask, kProgress, kDone, kFailed, kHeartbeat, kCancel, kDisconnect };
const char* CommandName(Command command);

enum class Encoding { kJson, kMsgPack };

enum class TaskKind { kAnchor, kFrames };
const char* TaskKindName(TaskKind kind);

// Identifies one attempt of one task. A result counts only while its attempt is the current one.
struct TaskRef {
  std::string job_id;
  std::string task_id;
  int64_t attempt = 0;  // >= 1
  bool operator==(const TaskRef&) const = default;
};

// Worker -> coordinator: "I exist, this is what I can do, and this is what I am still running".
// Sent on every (re)connect; the coordinator answers nothing (work comes as TASK messages).
struct Ready {
  std::string worker_id;  // stable across reconnects (the DEALER routing id)
  std::string hostname;
  std::string device;             // "cpu", "cuda:0", ...
  int64_t memory_bytes = 0;       // device memory (or host memory for cpu)
  std::vector<std::string> tags;  // matched against a job's worker tags
  std::vector<std::string> loaded_models;
  // Model ids the worker can load (the entries of its models folder that are diffusers folders or
  // .safetensors files). nullopt: the worker does not say (older than the field; absent on the
  // wire): the coordinator does not check models against it.
  std::optional<std::vector<std::string>> installed_models;
  int64_t capacity = 1;          // tasks it may run at once, >= 1
  std::vector<TaskRef> running;  // tasks still running (re-adopted after a coordinator restart)
  bool operator==(const Ready&) const = default;
};

// Coordinator -> worker: run this attempt.
struct Task {
  TaskRef ref;
  TaskKind kind = TaskKind::kFrames;
  int64_t shot = 0;         // shot index within the job
  int64_t frame_begin = 0;  // first frame (inclusive), video frame index
  int64_t frame_end = 0;    // last frame (exclusive); frame_end > frame_begin
  // Everything else the worker needs (input path, chunk output path, model, instruction, edit
  // settings, anchor indices, cache key, anchor_mode): a JSON object the worker validates.
  nlohmann::json settings = nlohmann::json::object();
  bool operator==(const Task&) const = default;
};

// Worker -> coordinator: progress of a running attempt: at once for news (a frame, a log line),
// otherwise (a denoising step, model bytes read) at most once per heartbeat interval. The
// coordinator supervises attempts by it: only a new frame, step or byte count is progress.
struct Progress {
  TaskRef ref;
  int64_t frames_done = 0;
  int64_t frames_total = 0;
  std::string message;  // a log line for the job's log, may be empty
  // Denoising steps the attempt has run (every UNet pass of every batch); -1 = not counted (a
  // worker older than the field; absent on the wire).
  int64_t steps_done = -1;
  int64_t load_bytes_read = 0;   // a model being loaded: weight bytes read so far
  int64_t load_bytes_total = 0;  // and in all; 0 = no model being loaded (absent on the wire)
  bool operator==(const Progress&) const = default;
};

// Worker -> coordinator: the attempt finished; its outputs are in place (renamed atomically).
struct Done {
  TaskRef ref;
  std::string output;  // chunk path (frames) or anchor cache key (anchor)
  int64_t frames = 0;  // frames written
  int64_t duration_ms = 0;
  int64_t cache_bytes = 0;  // anchor tasks: bytes published to the cache
  bool operator==(const Done&) const = default;
};

// Worker -> coordinator: the attempt failed.
struct Failed {
  TaskRef ref;
  std::string error;      // human-readable, names file/field/key
  bool retryable = true;  // false: retrying on any worker would fail the same way
  bool operator==(const Failed&) const = default;
};

// Both directions. Carries liveness (and, from a worker, its running task count and, when its
// models folder changed since it last said, its model ids).
struct Heartbeat {
  int64_t running = 0;
  // Worker -> coordinator: the new list of model ids (Ready::installed_models); nullopt: unchanged
  // (absent on the wire).
  std::optional<std::vector<std::string>> installed_models;
  bool operator==(const Heartbeat&) const = default;
};

// Coordinator -> worker: stop this attempt (job cancelled, task reassigned, timeout).
struct Cancel {
  TaskRef ref;
  std::string reason;
  bool operator==(const Cancel&) const = default;
};

// Both directions: "I am going away" (worker shutdown, coordinator rejecting a worker).
struct Disconnect {
  std::string reason;
  std::vector<TaskRef> handed_back;  // worker -> coordinator: attempts it stopped unfinished
  bool operator==(const Disconnect&) const = default;
};

using Message = std::variant<Ready, Task, Progress, Done, Failed, Heartbeat, Cancel, Disconnect>;

Command CommandOf(const Message& message);

// The message's body as a JSON object (also used for logging).
nlohmann::json ToJson(const Message& message);
// Builds a message of `command` from a body object; strict (see file comment).
Result<Message> FromJson(Command command, const nlohmann::json& body);

// Encodes to frames 0..4 (without routing id or delimiter).
std::vector<std::string> Encode(const Message& message, Encoding encoding = Encoding::kJson);
// Decodes frames 0..4 (the caller strips the routing id). Never throws.
Result<Message> Decode(const std::vector<std::string>& frames);

// A short human description for logs: "DONE job=j1 task=s0-f0 attempt=2".
std::string Describe(const Message& message);

}  // namespace fairy::protocol
