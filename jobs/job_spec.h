// JobSpec: one validated job of a job file, as plain data for the farm and the engine.
//
// Produced only by ParseJobFile/ParseJobText (job_parser.h), so every JobSpec satisfies the rules
// documented in docs/job-files.md: ranges checked, paths absolute, normalised and under the
// storage roots (when roots were given). Defaults below are the job file's defaults.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fairy::jobs {

// The model every job uses unless it names another: the project's embedded tiny model.
inline constexpr const char* kEmbeddedModel = "fairy-tiny";

// A job's model is an id or a path. An id (no '/', not "." or "..", not starting with '~'):
// "fairy-tiny", "ip2p", "instruct-pix2pix-00-22000.safetensors" names a diffusers folder or an
// original-layout .safetensors file under each worker's models_dir. Anything else is a path
// (relative to the job file) to such a folder or file.
bool IsModelId(std::string_view model);

enum class AnchorMode {
  kCache,      // the anchor task publishes the anchor features; frame tasks fetch them (default)
  kRecompute,  // every frame task recomputes the anchor pass itself (no Redis traffic)
};
const char* AnchorModeName(AnchorMode mode);  // "cache", "recompute"

struct EditSettings {
  int resolution = 512;        // longer side of the edited frames in pixels, multiple of 8, 64..2048
  int steps = 10;              // denoising steps, 1..200
  double guidance_text = 7.5;  // text guidance scale s_text, 0..50
  double guidance_image = 1.5; // image guidance scale s_img, 0..50
  uint64_t seed = 0;           // noise of frame i is drawn from a generator seeded by (seed, i)
  std::string noise = "per_frame";  // per_frame: (seed, i); shared: (seed, 0) for every frame
  int anchors = 3;             // anchor frames K per shot, 1..16
  int batch = 4;               // frames per UNet call of the frame pass, 1..256; part of the job
                               // because results are bit-identical only for equal batches
  std::string scheduler = "euler_ancestral";  // sampler: euler_ancestral | euler (deterministic)
  AnchorMode anchor_mode = AnchorMode::kCache;
};

struct ShotSettings {
  double threshold = 27.0;  // ContentDetector threshold (HSV difference), 0..255
  int min_length = 15;      // shortest shot in frames, 1..100000
  int max_length = 0;       // longer shots are split into equal parts; 0 = never split,
                            // otherwise >= min_length
};

struct EncodeSettings {
  std::string codec = "h264";     // the only codec (libx264, yuv420p)
  int crf = 18;                   // 0..51
  std::string preset = "medium";  // x264 preset, ultrafast..veryslow
  bool scale_to_source = true;    // scale the edited frames back to the source size
  std::string audio = "copy";     // copy (re-encoded only when the container needs it) | none
};

// Where a job came from (for messages that a later stage, e.g. the coordinator, reports).
struct JobOrigin {
  std::string file;  // the job file as the user named it
  int line = 0;      // 1-based line of the job's mapping
  int index = 0;     // position in the file's list (0 for a single job)
};

struct JobSpec {
  std::string name;         // [A-Za-z0-9._-]{1,64}; default: the output file's stem
  std::string input;        // absolute, normalised path of the source video
  std::string output;       // absolute, normalised path of the result (.mp4, .mov, .mkv)
  std::string instruction;  // the edit, non-empty, at most 1000 characters
  std::string model = kEmbeddedModel;  // a model id (IsModelId), or an absolute path
  int priority = 50;        // 0..100, higher runs first
  EditSettings edit;
  ShotSettings shots;
  int chunk_frames = 16;    // frames per FRAMES task, 1..4096 (rounded up to whole edit.batch)
  EncodeSettings encode;
  std::vector<std::string> worker_tags;  // a worker needs every tag; [A-Za-z0-9_.:-]{1,64} each
  JobOrigin origin;
};

}  // namespace fairy::jobs
