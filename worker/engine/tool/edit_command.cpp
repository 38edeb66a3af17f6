// fairy-engine edit: a whole video in one process (shots, anchors, frames, stitch). This is also
// the reference the farm's output is compared to: the same per-shot anchor pass and per-frame
// noise, so a frame comes out the same whichever worker edits it.
//
// Built only with the media layer (not in FAIRY_ENGINE_ONLY builds).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/frame_plan/frame_plan.h"
#include "common/log.h"
#include "common/media/chunk.h"
#include "common/media/encoder.h"
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "common/media/shots.h"
#include "worker/engine/engine_info.h"
#include "worker/engine/frames/frame_tensors.h"
#include "worker/engine/pipeline.h"
#include "worker/engine/tool/args.h"
#include "worker/engine/tool/commands.h"
#include "worker/engine/weights.h"

namespace fairy::engine::tool {
namespace {

using Clock = std::chrono::steady_clock;

struct EditOptions {
  std::string model_dir, input, output;
  EditSettings settings;
  int anchors = 3;
  int long_side = 512;
  int64_t batch = 4;
  media::ShotOptions shots;
  media::EncodeOptions encode;
  ModelOptions model;
  bool progress = true;
};

// "[#########...........]  45/120 frames  1.9 frames/s  ETA 39 s" on stderr, redrawn in place.
class ProgressBar {
 public:
  ProgressBar(int64_t total, bool enabled)
      : total_(total), enabled_(enabled && isatty(2)), start_(Clock::now()) {}
  void Update(int64_t done) {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const int width = 30;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::fprintf(stderr, "\r[%s] %" PRId64 "/%" PRId64 " frames  %.2f frames/s  ETA %.0f s   ",
                 bar.c_str(), done, total_, rate,
                 rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0);
    std::fflush(stderr);
  }
  void Finish() {
    if (enabled_) std::fprintf(stderr, "\n");
  }

 private:
  int64_t total_;
  bool enabled_;
  Clock::time_point start_;
};

Status EditShot(Model& model, media::FrameReader& reader, const media::Shot& shot,
                const EditOptions& o, const std::string& chunk_path, int64_t* frames_done,
                ProgressBar* bar) {
  // Counts a call's frames as done after its last denoising step.
  auto on_last_step = [&](int64_t frames_in_call) -> StepCallback {
    return [frames_in_call, frames_done, bar](int step, int total) {
      if (step != total) return;
      *frames_done += frames_in_call;
      bar->Update(*frames_done);
    };
  };
  auto anchor_slot = [&](int64_t i) -> int64_t {
    auto a = std::find(shot.anchors.begin(), shot.anchors.end(), i);
    return a == shot.anchors.end() ? -1 : a - shot.anchors.begin();
  };
  // Anchor pass.
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor anchor_images, DecodeFrames(reader, shot.anchors));
  AnchorCache cache;
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor anchor_out,
                         RunAnchorPass(model, anchor_images, shot.anchors, o.settings, &cache,
                                       on_last_step(static_cast<int64_t>(shot.anchors.size()))));
  FAIRY_LOG(kDebug, "edit") << "shot [" << shot.start << ", " << shot.end << "): anchors "
                            << ShapeString(anchor_images.sizes()) << ", anchor cache "
                            << cache.ByteSize() << " bytes";
  media::ChunkWriterOptions chunk_options;
  chunk_options.width = static_cast<int>(anchor_out.size(2));
  chunk_options.height = static_cast<int>(anchor_out.size(1));
  chunk_options.first_index = shot.start;
  FAIRY_ASSIGN_OR_RETURN(auto writer, media::ChunkWriter::Create(chunk_path, chunk_options));

  // Non-anchor frames go through the frame pass in groups of o.batch; frames are written in
  // order as soon as every frame before them is edited.
  std::map<int64_t, torch::Tensor> edited;
  int64_t next_to_write = shot.start;
  auto write_upto = [&](int64_t end) -> Status {
    for (; next_to_write < end; ++next_to_write) {
      const int64_t slot = anchor_slot(next_to_write);
      torch::Tensor image = slot >= 0 ? anchor_out[slot] : edited.at(next_to_write);
      FAIRY_RETURN_IF_ERROR(writer->Append(TensorToFrame(image, next_to_write)));
      edited.erase(next_to_write);
    }
    return Status::OK();
  };
  // The same UNet batches as the farm's frames tasks (frame_plan.h): bit-identical frames.
  for (const std::vector<int64_t>& group :
       frame_plan::FramePassGroups(shot.start, shot.end - shot.start, shot.anchors, o.batch)) {
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor images, DecodeFrames(reader, group));
    FAIRY_ASSIGN_OR_RETURN(torch::Tensor out,
                           RunFramePass(model, cache, images, group, o.settings, o.batch,
                                        on_last_step(static_cast<int64_t>(group.size()))));
    for (size_t j = 0; j < group.size(); ++j) edited[group[j]] = out[static_cast<int64_t>(j)];
    FAIRY_RETURN_IF_ERROR(write_upto(group.back() + 1));
  }
  FAIRY_RETURN_IF_ERROR(write_upto(shot.end));
  if (writer->frames_written() != shot.end - shot.start) {
    return Status::Internal("shot [" + std::to_string(shot.start) + ", " +
                            std::to_string(shot.end) + "): wrote " +
                            std::to_string(writer->frames_written()) + " frames");
  }
  return writer->Finish();
}

Status RunEdit(const EditOptions& o) {
  FAIRY_RETURN_IF_ERROR(o.settings.Validate());
  FAIRY_ASSIGN_OR_RETURN(media::VideoInfo info, media::Probe(o.input));
  if (info.frame_count <= 0) return Status::InvalidArgument(o.input + ": no video frames");
  FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, Model::Load(o.model_dir, o.model));
  media::DecodeOptions decode;
  decode.long_side = o.long_side;
  decode.multiple_of = static_cast<int>(model->frame_multiple());
  FAIRY_ASSIGN_OR_RETURN(auto reader, media::FrameReader::Open(o.input, decode, &info));
  std::fprintf(stderr, "fairy-engine edit: working size %dx%d (%s: %dx%d, resolution %d)\n",
               reader->output_width(), reader->output_height(), o.input.c_str(), info.display_width,
               info.display_height, o.long_side);
  media::ShotOptions shot_options = o.shots;
  shot_options.anchors_per_shot = o.anchors;
  FAIRY_ASSIGN_OR_RETURN(media::ShotList shots, media::DetectShots(o.input, shot_options));
  std::fprintf(stderr, "fairy-engine edit: %s: %" PRId64 " frames, %zu shot(s), K=%d, %d steps\n",
               o.input.c_str(), shots.frames, shots.shots.size(), o.anchors, o.settings.steps);

  const std::filesystem::path out_dir = std::filesystem::absolute(o.output).parent_path();
  const std::filesystem::path work = out_dir / (".fairy-edit-" + std::to_string(getpid()));
  std::error_code ec;
  std::filesystem::create_directories(work, ec);
  if (ec) return Status::IOError(work.string() + ": " + ec.message());
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{work};

  ProgressBar bar(shots.frames, o.progress);
  int64_t frames_done = 0;
  std::vector<std::string> chunks;
  const auto start = Clock::now();
  c10::InferenceMode inference;
  for (size_t s = 0; s < shots.shots.size(); ++s) {
    const std::string chunk = (work / ("shot" + std::to_string(s) + ".mkv")).string();
    Status st = EditShot(*model, *reader, shots.shots[s], o, chunk, &frames_done, &bar);
    if (!st.ok()) {
      bar.Finish();
      return st.WithContext("shot " + std::to_string(s));
    }
    chunks.push_back(chunk);
  }
  bar.Finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  FAIRY_ASSIGN_OR_RETURN(media::EncodeReport report,
                         media::EncodeFinal(o.input, chunks, o.output, o.encode));
  std::fprintf(stderr,
               "fairy-engine edit: wrote %s (%" PRId64
               " frames, %dx%d) in %.1f s of editing (%.2f frames/s)\n",
               o.output.c_str(), report.frames, report.width, report.height, seconds,
               static_cast<double>(shots.frames) / seconds);
  return Status::OK();
}

void PrintHelp() {
  std::printf(
      "Usage: fairy-engine edit --model MODEL --input IN --output OUT --instruction TEXT "
      "[options]\n\n"
      "Edits a whole video in one process: shot detection, per shot the anchor pass then every\n"
      "frame attending to the anchors, lossless chunks, H.264 encode with the source's audio.\n"
      "MODEL is a diffusers folder or an original-layout .safetensors file (converted in memory,\n"
      "architecture inferred; see fairy-engine info). The first line gives the working size.\n\n"
      "  --steps N              denoising steps (default 10)\n"
      "  --guidance-text G      text guidance scale (default 7.5)\n"
      "  --guidance-image G     image guidance scale (default 1.5)\n"
      "  --seed S               job seed (default 0); frame i uses its own generator from (S, i)\n"
      "  --noise M              per_frame (default): noise from (S, i); shared: from (S, 0) for\n"
      "                         every frame, so the noise's residue does not flicker\n"
      "  --scheduler NAME       euler_ancestral (default; fresh noise at every step) or euler\n"
      "                         (deterministic after the initial noise)\n"
      "  --anchors K            anchor frames per shot (default 3)\n"
      "  --resolution L         longer side of the edited frames in pixels (default 512); both\n"
      "                         sides are rounded to multiples of 8, the aspect ratio is kept\n"
      "  --variant V            the model folder's weights variant (fp16)\n"
      "  --config DIR           a single-file MODEL's configs and tokenizer (a diffusers folder;\n"
      "                         default: inferred from the tensor shapes)\n"
      "  --batch N              frames per UNet call (x3 guidance branches; default 4)\n"
      "  --device D             cpu (default), cuda, cuda:N\n"
      "  --dtype T              float32 (default), float16, bfloat16 (CUDA)\n"
      "  --fp16-cache           keep the anchor cache in float16\n"
      "  --shot-threshold X     shot detection threshold (default 27)\n"
      "  --max-shot N           split shots longer than N frames (default 0: never)\n"
      "  --crf N                x264 quality (default 18)\n"
      "  --no-progress          no progress bar\n");
}

}  // namespace

int RunEditCommand(int argc, char** argv) {
  Args args(argc, argv, 1);
  if (args.Flag("--help") || args.Flag("-h")) {
    PrintHelp();
    return kExitOk;
  }
  EditOptions o;
  o.model_dir = args.Value("--model");
  o.model.variant = args.Value("--variant");
  o.model.config_dir = args.Value("--config");
  o.input = args.Value("--input");
  o.output = args.Value("--output");
  o.settings.instruction = args.Value("--instruction");
  o.settings.fp16_cache = args.Flag("--fp16-cache");
  o.progress = !args.Flag("--no-progress");
  const std::string device = args.Value("--device", "cpu");
  const std::string dtype = args.Value("--dtype", "float32");
  std::string error;
  try {
    o.settings.steps = std::stoi(args.Value("--steps", "10"));
    o.settings.guidance_text = std::stod(args.Value("--guidance-text", "7.5"));
    o.settings.guidance_image = std::stod(args.Value("--guidance-image", "1.5"));
    o.settings.seed = std::stoull(args.Value("--seed", "0"));
    if (auto noise = ParseNoiseMode(args.Value("--noise", "per_frame")); noise.ok()) {
      o.settings.noise = *noise;
    } else {
      error = "--" + noise.status().message();
    }
    if (auto sampler = ParseSampler(args.Value("--scheduler", "euler_ancestral")); sampler.ok()) {
      o.settings.sampler = *sampler;
    } else if (error.empty()) {
      error = "--" + sampler.status().message();
    }
    o.anchors = std::stoi(args.Value("--anchors", "3"));
    o.long_side = std::stoi(args.Value("--resolution", "512"));
    o.batch = std::stoll(args.Value("--batch", "4"));
    o.shots.threshold = std::stod(args.Value("--shot-threshold", "27"));
    o.shots.max_length = std::stoi(args.Value("--max-shot", "0"));
    o.encode.crf = std::stoi(args.Value("--crf", "18"));
  } catch (const std::exception&) {
    error = "a numeric option has a non-numeric value";
  }
  if (!args.Finish(&error) || !error.empty()) {
    std::fprintf(stderr, "fairy-engine edit: %s (see --help)\n", error.c_str());
    return kExitUsage;
  }
  if (o.model_dir.empty() || o.input.empty() || o.output.empty()) {
    std::fprintf(stderr,
                 "fairy-engine edit: --model, --input and --output are required (see --help)\n");
    return kExitUsage;
  }
  if (o.anchors < 1 || o.long_side < 8 || o.batch < 1) {
    std::fprintf(stderr, "fairy-engine edit: --anchors >= 1, --resolution >= 8, --batch >= 1\n");
    return kExitUsage;
  }
  auto parsed_device = ParseDevice(device);
  auto parsed_dtype = ParseScalarType(dtype);
  if (!parsed_device.ok() || !parsed_dtype.ok()) {
    const Status& s = !parsed_device.ok() ? parsed_device.status() : parsed_dtype.status();
    std::fprintf(stderr, "fairy-engine edit: %s\n", s.ToString().c_str());
    return kExitUsage;
  }
  o.model.device = *parsed_device;
  o.model.dtype = *parsed_dtype;
  ConfigureTorchThreads();
  at::globalContext().setFlushDenormal(true);
  Status st = RunEdit(o);
  if (!st.ok()) {
    std::fprintf(stderr, "fairy-engine edit: %s\n", st.ToString().c_str());
    const bool usage = st.code() == Status::Code::kInvalidArgument ||
                       st.code() == Status::Code::kNotFound ||
                       st.code() == Status::Code::kUnsupported;
    return usage ? kExitUsage : kExitFailed;
  }
  return kExitOk;
}

}  // namespace fairy::engine::tool
