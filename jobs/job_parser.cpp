#include "jobs/job_parser.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/edit_values.h"
#include "config/yaml_reader.h"
#include "jobs/storage_paths.h"

namespace fairy::jobs {
namespace fs = std::filesystem;
using config::Diagnostic;
using config::YamlReader;

bool IsModelId(std::string_view model) {
  return !model.empty() && model.find('/') == std::string_view::npos && model != "." && model != ".." &&
         model.front() != '~';
}

const char* AnchorModeName(AnchorMode mode) {
  return mode == AnchorMode::kCache ? "cache" : "recompute";
}

namespace {

const std::vector<std::string_view> kJobKeys = {
    "name",  "input", "output", "instruction", "model",        "priority",
    "edit",  "shots", "chunk_frames", "encode", "worker_tags"};
const std::vector<std::string_view> kEditKeys = {"resolution", "steps",   "guidance_text",
                                                 "guidance_image", "seed", "noise", "anchors",
                                                 "batch", "scheduler", "anchor_mode"};
const std::vector<std::string_view> kShotKeys = {"threshold", "min_length", "max_length"};
const std::vector<std::string_view> kEncodeKeys = {"codec", "crf", "preset", "scale_to_source",
                                                   "audio"};
const std::vector<std::string_view> kPresets = {"ultrafast", "superfast", "veryfast", "faster",
                                                "fast",      "medium",    "slow",     "slower",
                                                "veryslow"};
constexpr size_t kMaxInstructionChars = 1000;
constexpr int kClipTokens = 77;

// Reads, checks and resolves one job mapping.
class JobReader {
 public:
  JobReader(YamlReader* r, const ParseOptions& options) : r_(*r), options_(options) {}

  JobSpec Read(const YAML::Node& node, const std::string& path, int index) {
    JobSpec job;
    job.model = options_.default_model;
    job.origin.file = r_.file();
    job.origin.index = index;
    if (node.IsDefined() && !node.Mark().is_null()) job.origin.line = node.Mark().line + 1;
    if (!r_.CheckMap(node, path, kJobKeys)) return job;

    for (const char* key : {"input", "output", "instruction"}) {
      if (!YamlReader::Get(node, key).IsDefined()) {
        r_.Error(node, YamlReader::Join(path, key), "is required");
      }
    }
    ReadPath(node, path, "input", &job.input);
    ReadPath(node, path, "output", &job.output);
    ReadInstruction(node, path, &job.instruction);
    if (r_.ReadString(node, path, "model", &job.model) && !IsModelId(job.model)) {
      ReadPath(node, path, "model", &job.model);
    }
    r_.ReadInt(node, path, "priority", 0, 100, &job.priority);
    ReadEdit(YamlReader::Get(node, "edit"), YamlReader::Join(path, "edit"), &job.edit);
    ReadShots(YamlReader::Get(node, "shots"), YamlReader::Join(path, "shots"), &job.shots);
    r_.ReadInt(node, path, "chunk_frames", 1, 4096, &job.chunk_frames);
    ReadEncode(YamlReader::Get(node, "encode"), YamlReader::Join(path, "encode"), &job.encode);
    ReadTags(node, path, &job.worker_tags);
    ReadName(node, path, &job);
    CheckFiles(node, path, job);
    return job;
  }

 private:
  // A path field: resolved against the storage roots, confined to them.
  void ReadPath(const YAML::Node& node, const std::string& path, const char* key, std::string* out) {
    std::string raw;
    if (!r_.ReadString(node, path, key, &raw)) return;
    const std::string field = YamlReader::Join(path, key);
    auto resolved = ResolveStoragePath(raw, options_.storage_roots, options_.base_dir);
    if (!resolved.ok()) {
      r_.Error(YamlReader::Get(node, key), field, resolved.status().message(),
               resolved.status().code());
      return;
    }
    *out = *resolved;
    if (std::string_view(key) == "output") {
      const std::string ext = fs::path(*out).extension().string();
      if (ext != ".mp4" && ext != ".mov" && ext != ".mkv") {
        r_.Error(YamlReader::Get(node, key), field,
                 "must end in .mp4, .mov or .mkv (H.264 output), got \"" + raw + "\"");
      }
    }
  }

  void ReadInstruction(const YAML::Node& node, const std::string& path, std::string* out) {
    if (!r_.ReadString(node, path, "instruction", out)) return;
    const YAML::Node at = YamlReader::Get(node, "instruction");
    const std::string field = YamlReader::Join(path, "instruction");
    if (out->find_first_not_of(" \t\r\n") == std::string::npos) {
      r_.Error(at, field, "must not be empty (say what to change, e.g. \"turn the cat into a lion\")");
    } else if (out->size() > kMaxInstructionChars) {
      r_.Error(at, field,
               "must be at most " + std::to_string(kMaxInstructionChars) + " characters, got " +
                   std::to_string(out->size()));
    } else {
      std::istringstream words(*out);
      int count = 0;
      for (std::string w; words >> w;) ++count;
      if (count > kClipTokens - 2) {
        r_.Warning(at, field,
                   std::to_string(count) + " words exceed the text encoder's " +
                       std::to_string(kClipTokens) + " tokens; the end will be cut off");
      }
    }
  }

  void ReadEdit(const YAML::Node& node, const std::string& path, EditSettings* e) {
    if (!node.IsDefined() || !r_.CheckMap(node, path, kEditKeys)) return;
    if (r_.ReadInt(node, path, "resolution", 64, 2048, &e->resolution) && e->resolution % 8 != 0) {
      r_.Error(YamlReader::Get(node, "resolution"), YamlReader::Join(path, "resolution"),
               "must be a multiple of 8, got " + std::to_string(e->resolution));
      e->resolution = 512;
    }
    r_.ReadInt(node, path, "steps", 1, 200, &e->steps);
    r_.ReadDouble(node, path, "guidance_text", 0.0, 50.0, &e->guidance_text);
    r_.ReadDouble(node, path, "guidance_image", 0.0, 50.0, &e->guidance_image);
    r_.ReadUint64(node, path, "seed", &e->seed);
    r_.ReadEnum(node, path, "noise", edit_values::kNoise, &e->noise);
    r_.ReadInt(node, path, "anchors", 1, 16, &e->anchors);
    r_.ReadInt(node, path, "batch", 1, 256, &e->batch);
    r_.ReadEnum(node, path, "scheduler", edit_values::kScheduler, &e->scheduler);
    std::string mode;
    if (r_.ReadEnum(node, path, "anchor_mode", edit_values::kAnchorMode, &mode)) {
      e->anchor_mode = mode == "cache" ? AnchorMode::kCache : AnchorMode::kRecompute;
    }
  }

  void ReadShots(const YAML::Node& node, const std::string& path, ShotSettings* s) {
    if (!node.IsDefined() || !r_.CheckMap(node, path, kShotKeys)) return;
    r_.ReadDouble(node, path, "threshold", 0.0, 255.0, &s->threshold);
    const bool min_ok = r_.ReadInt(node, path, "min_length", 1, 100000, &s->min_length);
    const bool min_bad = YamlReader::Get(node, "min_length").IsDefined() && !min_ok;
    if (r_.ReadInt(node, path, "max_length", 0, 1000000, &s->max_length) && !min_bad &&
        s->max_length != 0 && s->max_length < s->min_length) {
      r_.Error(YamlReader::Get(node, "max_length"), YamlReader::Join(path, "max_length"),
               "must be 0 (never split) or at least shots.min_length (" +
                   std::to_string(s->min_length) + "), got " + std::to_string(s->max_length));
    }
  }

  void ReadEncode(const YAML::Node& node, const std::string& path, EncodeSettings* e) {
    if (!node.IsDefined() || !r_.CheckMap(node, path, kEncodeKeys)) return;
    r_.ReadEnum(node, path, "codec", {"h264"}, &e->codec);
    r_.ReadInt(node, path, "crf", 0, 51, &e->crf);
    r_.ReadEnum(node, path, "preset", kPresets, &e->preset);
    r_.ReadBool(node, path, "scale_to_source", &e->scale_to_source);
    r_.ReadEnum(node, path, "audio", {"copy", "none"}, &e->audio);
  }

  void ReadTags(const YAML::Node& node, const std::string& path, std::vector<std::string>* tags) {
    if (!r_.ReadStringList(node, path, "worker_tags", tags)) return;
    static const std::regex kTag(R"([A-Za-z0-9_.:-]{1,64})");
    const YAML::Node list = YamlReader::Get(node, "worker_tags");
    for (size_t i = 0; i < tags->size(); ++i) {
      if (!std::regex_match((*tags)[i], kTag)) {
        r_.Error(list[i], YamlReader::Join(path, "worker_tags") + "[" + std::to_string(i) + "]",
                 "must be 1..64 characters of A-Z a-z 0-9 _ . : -, got \"" + (*tags)[i] + "\"");
      }
    }
  }

  void ReadName(const YAML::Node& node, const std::string& path, JobSpec* job) {
    static const std::regex kName(R"([A-Za-z0-9._-]{1,64})");
    if (r_.ReadString(node, path, "name", &job->name)) {
      if (!std::regex_match(job->name, kName)) {
        r_.Error(YamlReader::Get(node, "name"), YamlReader::Join(path, "name"),
                 "must be 1..64 characters of A-Z a-z 0-9 . _ -, got \"" + job->name + "\"");
      }
      return;
    }
    // Default: the output's stem, made legal.
    std::string stem = fs::path(job->output).stem().string();
    for (char& c : stem) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    }
    if (stem.size() > 64) stem.resize(64);
    job->name = stem.empty() ? "job" : stem;
  }

  void CheckFiles(const YAML::Node& node, const std::string& path, const JobSpec& job) {
    if (!job.input.empty() && !job.output.empty() && job.input == job.output) {
      r_.Error(YamlReader::Get(node, "output"), YamlReader::Join(path, "output"),
               "must differ from input (" + job.input + ")");
    }
    if (!options_.check_files) return;
    std::error_code ec;
    if (!job.input.empty() && !fs::is_regular_file(job.input, ec)) {
      r_.Error(YamlReader::Get(node, "input"), YamlReader::Join(path, "input"),
               "file " + job.input + " does not exist", Status::Code::kNotFound);
    }
    const bool single_file = fs::path(job.model).extension() == ".safetensors" && fs::is_regular_file(job.model, ec);
    if (!IsModelId(job.model) && YamlReader::Get(node, "model").IsDefined() && !job.model.empty() && !single_file &&
        !fs::is_regular_file(fs::path(job.model) / "model_index.json", ec)) {
      r_.Error(YamlReader::Get(node, "model"), YamlReader::Join(path, "model"),
               job.model +
                   " is neither a diffusers model folder (no model_index.json) nor a .safetensors "
                   "checkpoint file",
               Status::Code::kNotFound);
    }
  }

  YamlReader& r_;
  const ParseOptions& options_;
};

}  // namespace

ParseResult ParseJobText(std::string_view text, const std::string& file_name,
                         const ParseOptions& options) {
  ParseResult result;
  YamlReader r(file_name, &result.diagnostics);
  r.set_isolated_parse_limit_ms(options.isolated_parse_limit_ms);
  auto root = r.Parse(text);
  if (!root) return result;
  JobReader reader(&r, options);
  std::vector<JobSpec> jobs;
  std::vector<YAML::Node> nodes;
  if (root->IsSequence()) {
    if (root->size() == 0) {
      r.Error(*root, "", "the list holds no jobs");
      return result;
    }
    for (size_t i = 0; i < root->size(); ++i) {
      nodes.push_back((*root)[i]);
      jobs.push_back(reader.Read(nodes.back(), "[" + std::to_string(i) + "]", static_cast<int>(i)));
    }
  } else if (root->IsMap()) {
    nodes.push_back(*root);
    jobs.push_back(reader.Read(*root, "", 0));
  } else {
    r.Error(*root, "", "a job file holds one job (a mapping) or a list of jobs, got " +
                           YamlReader::Describe(*root));
    return result;
  }
  // Jobs of one file must not collide.
  std::map<std::string, size_t> names, outputs;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const std::string prefix = root->IsSequence() ? "[" + std::to_string(i) + "]" : "";
    auto [n, new_name] = names.emplace(jobs[i].name, i);
    if (!new_name && !jobs[i].name.empty()) {
      r.Error(YamlReader::Get(nodes[i], "name").IsDefined() ? YamlReader::Get(nodes[i], "name") : nodes[i],
              YamlReader::Join(prefix, "name"),
              "job name \"" + jobs[i].name + "\" is already used by job [" +
                  std::to_string(n->second) + "]");
    }
    if (jobs[i].output.empty()) continue;
    auto [o, new_output] = outputs.emplace(jobs[i].output, i);
    if (!new_output) {
      r.Error(YamlReader::Get(nodes[i], "output"), YamlReader::Join(prefix, "output"),
              jobs[i].output + " is already the output of job [" + std::to_string(o->second) + "]");
    }
  }
  if (result.ok()) result.jobs = std::move(jobs);
  result.diagnostics.SortByPosition();
  return result;
}

ParseResult ParseJobFile(const std::string& path, const ParseOptions& options) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || fs::is_directory(path, ec)) {
    ParseResult result;
    result.diagnostics.Add(Diagnostic::FileError(
        path, "cannot read the job file (missing or not a file)", Status::Code::kNotFound));
    return result;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    ParseResult result;
    result.diagnostics.Add(Diagnostic::FileError(path, "read failed", Status::Code::kIOError));
    return result;
  }
  return ParseJobText(ss.str(), path, options);
}

}  // namespace fairy::jobs
