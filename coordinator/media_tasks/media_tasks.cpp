#include "coordinator/media_tasks/media_tasks.h"

#include <filesystem>
#include <system_error>

#include "common/media/encoder.h"
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "common/media/shots.h"

namespace fairy::coordinator {

namespace fs = std::filesystem;

Result<AnalyzeResult> Analyze(const JobPlan& plan) {
  std::error_code ec;
  // A model named by id (e.g. the embedded "fairy-tiny") is resolved by each worker's models_dir.
  const fs::path model(plan.model);
  if (model.is_absolute() && !fs::exists(model / "model_index.json", ec) &&
      !(model.extension() == ".safetensors" && fs::is_regular_file(model, ec))) {
    return Status::NotFound("model '" + plan.model +
                            "' is neither a diffusers folder (no model_index.json) nor a .safetensors checkpoint file");
  }
  FAIRY_ASSIGN_OR_RETURN(media::VideoInfo info, media::Probe(plan.input));
  media::ShotOptions so;
  so.threshold = plan.shot_threshold;
  so.min_length = plan.shot_min_length;
  so.max_length = plan.shot_max_length;
  so.anchors_per_shot = plan.anchors_per_shot;
  FAIRY_ASSIGN_OR_RETURN(media::ShotList list, media::DetectShots(plan.input, so));
  if (list.frames <= 0 || list.shots.empty()) {
    return Status::Corruption(plan.input + ": no decodable video frames");
  }
  AnalyzeResult out;
  media::DecodeOptions decode;
  decode.long_side = static_cast<int>(plan.long_side);
  decode.multiple_of = kFrameMultiple;
  media::ComputeOutputSize(info.display_width, info.display_height, decode, &out.working_width, &out.working_height);
  out.frames = list.frames;
  out.fps = list.fps.ToDouble();
  for (size_t i = 0; i < list.shots.size(); ++i) {
    const media::Shot& s = list.shots[i];
    scheduler::ShotPlan p;
    p.index = static_cast<int>(i);
    p.first_frame = s.start;
    p.frame_count = s.end - s.start;
    p.anchor_frames = s.anchors;
    out.shots.push_back(std::move(p));
  }
  fs::create_directories(plan.work_dir, ec);
  if (ec) return Status::IOError("cannot create the work folder '" + plan.work_dir + "': " + ec.message());
  return out;
}

Result<StitchResult> Stitch(const JobPlan& plan, const std::vector<std::string>& chunks) {
  if (chunks.empty()) return Status::FailedPrecondition("stitch: the job has no chunks");
  for (const auto& c : chunks) {
    std::error_code ec;
    if (c.empty() || !fs::exists(c, ec)) return Status::NotFound("stitch: chunk '" + c + "' is missing");
  }
  std::error_code ec;
  fs::create_directories(fs::path(plan.output).parent_path(), ec);
  media::EncodeOptions eo;
  eo.crf = plan.crf;
  eo.preset = plan.preset;
  eo.scale_to_source = plan.scale_to_source;
  eo.copy_audio = plan.copy_audio;
  FAIRY_ASSIGN_OR_RETURN(media::EncodeReport report, media::EncodeFinal(plan.input, chunks, plan.output, eo));
  StitchResult out;
  out.frames = report.frames;
  out.audio_streams = report.audio_streams_copied + report.audio_streams_reencoded;
  return out;
}

}  // namespace fairy::coordinator
