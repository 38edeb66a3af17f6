#include "coordinator/daemon/job_plan.h"

#include "common/edit_values.h"
#include "jobs/job_spec.h"

namespace fairy::coordinator {

using nlohmann::json;

json JobPlan::ToJson() const {
  return json{{"source_name", source_name},
              {"name", name},
              {"input", input},
              {"output", output},
              {"work_dir", work_dir},
              {"model", model},
              {"instruction", instruction},
              {"steps", steps},
              {"guidance_text", guidance_text},
              {"guidance_image", guidance_image},
              {"seed", seed},
              {"noise", noise},
              {"scheduler", scheduler},
              {"long_side", long_side},
              {"anchors_per_shot", anchors_per_shot},
              {"batch", batch},
              {"anchor_mode", anchor_mode},
              {"chunk_frames", chunk_frames},
              {"priority", priority},
              {"shot_threshold", shot_threshold},
              {"shot_min_length", shot_min_length},
              {"shot_max_length", shot_max_length},
              {"crf", crf},
              {"preset", preset},
              {"scale_to_source", scale_to_source},
              {"copy_audio", copy_audio},
              {"tags", tags},
              {"device", device},
              {"min_memory_mb", min_memory_mb}};
}

Result<JobPlan> JobPlan::FromJson(const json& j) {
  if (!j.is_object()) return Status::Corruption("job spec: not a JSON object");
  JobPlan p;
  try {
    p.source_name = j.value("source_name", "");
    p.name = j.at("name").get<std::string>();
    p.input = j.at("input").get<std::string>();
    p.output = j.at("output").get<std::string>();
    p.work_dir = j.at("work_dir").get<std::string>();
    p.model = j.at("model").get<std::string>();
    p.instruction = j.at("instruction").get<std::string>();
    p.steps = j.at("steps").get<int64_t>();
    p.guidance_text = j.at("guidance_text").get<double>();
    p.guidance_image = j.at("guidance_image").get<double>();
    p.seed = j.at("seed").get<uint64_t>();
    // Absent in records written before they existed: the defaults then.
    p.noise = j.value("noise", std::string(edit_values::kNoise[0]));
    p.scheduler = j.value("scheduler", std::string(edit_values::kScheduler[0]));
    p.long_side = j.at("long_side").get<int64_t>();
    p.anchors_per_shot = j.at("anchors_per_shot").get<int>();
    p.batch = j.value("batch", int64_t{4});  // absent in records written before it existed
    p.anchor_mode = j.at("anchor_mode").get<std::string>();
    p.chunk_frames = j.at("chunk_frames").get<int64_t>();
    p.priority = j.at("priority").get<int>();
    p.shot_threshold = j.at("shot_threshold").get<double>();
    p.shot_min_length = j.at("shot_min_length").get<int>();
    p.shot_max_length = j.at("shot_max_length").get<int>();
    p.crf = j.at("crf").get<int>();
    p.preset = j.at("preset").get<std::string>();
    p.scale_to_source = j.value("scale_to_source", true);
    p.copy_audio = j.value("copy_audio", true);
    p.tags = j.value("tags", std::vector<std::string>{});
    p.device = j.value("device", "");
    p.min_memory_mb = j.value("min_memory_mb", int64_t{0});
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("job spec: ") + e.what());
  }
  return p;
}

scheduler::JobSubmission JobPlan::Submission(const std::string& job_id) const {
  scheduler::JobSubmission s;
  s.job_id = job_id;
  s.name = name;
  s.output = output;
  s.priority = priority;
  s.requirements.tags = tags;
  s.requirements.device = device;
  s.requirements.min_memory_mb = min_memory_mb;
  // A model named by id must be installed on the worker; a path is the job parser's to check.
  if (jobs::IsModelId(model)) s.requirements.model_id = model;
  s.chunk_frames = chunk_frames;
  s.frame_batch = batch;
  // With recompute every frames task computes its shot's anchors itself.
  s.frames_wait_for_anchor = anchor_mode != "recompute";
  // What one denoising step costs depends on: the model, the edit size, the frames per UNet call
  // (anchors in the anchor pass, `batch` in the frame pass, which also attends to the anchors).
  // Jobs alike in these share the workers' measured step times (progress supervision).
  s.step_profile = model + "|" + std::to_string(long_side) + "|k" +
                   std::to_string(anchors_per_shot) + "|b" + std::to_string(batch);
  return s;
}

protocol::TaskSettings JobPlan::Settings(const scheduler::ShotPlan& shot) const {
  protocol::TaskSettings t;
  t.input = input;
  t.work_dir = work_dir;
  t.model = model;
  t.instruction = instruction;
  t.steps = steps;
  t.guidance_text = guidance_text;
  t.guidance_image = guidance_image;
  t.seed = seed;
  t.noise = noise;
  t.scheduler = scheduler;
  t.long_side = long_side;
  t.anchor_mode = anchor_mode;
  t.batch = batch;
  t.shot_first = shot.first_frame;
  t.shot_count = shot.frame_count;
  t.anchor_frames = shot.anchor_frames;
  return t;
}

}  // namespace fairy::coordinator
