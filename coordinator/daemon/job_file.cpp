// ParseJobFile: fairy::jobs' parser and validator -> the coordinator's JobPlans.
#include <filesystem>

#include "coordinator/daemon/job_plan.h"
#include "jobs/job_parser.h"

namespace fairy::coordinator {

Result<std::vector<JobPlan>> ParseJobFile(const std::string& yaml, const std::string& source_name,
                                          const SubmitContext& context, std::optional<int> priority) {
  jobs::ParseOptions po;
  po.storage_roots = context.storage_roots;
  if (!context.default_model.empty()) po.default_model = context.default_model;
  jobs::ParseResult parsed = jobs::ParseJobText(yaml, source_name, po);
  if (!parsed.ok()) return parsed.ToStatus();
  std::vector<JobPlan> plans;
  for (const jobs::JobSpec& j : parsed.jobs) {
    JobPlan p;
    p.source_name = source_name;
    p.name = j.name;
    p.input = j.input;
    p.output = j.output;
    p.model = j.model;
    p.instruction = j.instruction;
    p.steps = j.edit.steps;
    p.guidance_text = j.edit.guidance_text;
    p.guidance_image = j.edit.guidance_image;
    p.seed = j.edit.seed;
    p.noise = j.edit.noise;
    p.scheduler = j.edit.scheduler;
    p.long_side = j.edit.resolution;
    p.anchors_per_shot = j.edit.anchors;
    p.batch = j.edit.batch;
    p.anchor_mode = jobs::AnchorModeName(j.edit.anchor_mode);
    p.chunk_frames = j.chunk_frames;
    p.priority = priority.value_or(j.priority);
    p.shot_threshold = j.shots.threshold;
    p.shot_min_length = j.shots.min_length;
    p.shot_max_length = j.shots.max_length;
    p.crf = j.encode.crf;
    p.preset = j.encode.preset;
    p.scale_to_source = j.encode.scale_to_source;
    p.copy_audio = j.encode.audio == "copy";
    p.tags = j.worker_tags;
    plans.push_back(std::move(p));
  }
  return plans;
}

}  // namespace fairy::coordinator
