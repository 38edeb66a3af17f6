#include "worker/executor/engine_executor.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/anchor_store/anchor_store.h"
#include "common/frame_plan/frame_plan.h"
#include "common/log.h"
#include "common/media/chunk.h"
#include "common/media/frame_reader.h"
#include "common/media/probe.h"
#include "common/redis/redis_client.h"
#include "worker/engine/engine_info.h"
#include "worker/engine/frames/frame_tensors.h"
#include "worker/engine/pipeline.h"
#include "worker/engine/weights.h"

namespace fairy::worker {
namespace {

using engine::DecodeFrames;
using frame_plan::FramePassGroups;
using frame_plan::GroupsTouching;
using engine::TensorToFrame;

// A shot's anchors: the cache and (when computed here) the anchors' edited images.
struct ShotAnchors {
  std::string key;
  std::vector<int64_t> indices;
  engine::AnchorCache cache;
  torch::Tensor outputs;  // [K, H, W, 3] in [0, 1] on the CPU; undefined when fetched from Redis
  int64_t cache_bytes = 0;
};

std::string SourceIdentity(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return path;
  return path + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// What identifies a model's contents in anchor cache keys, the same on every worker that has
// the same files wherever its models_dir is: XXH64 of every .json file (configs, scheduler,
// tokenizer; sorted relative paths included) and the sizes of the other files. A folder whose
// configs change (architecture, noise schedule, tokenizer) gets new keys; retrained weights of the
// same shapes do not (the weights are not read a second time to hash them).
// A single-file model: its safetensors header (every tensor's name, dtype, shape and offsets) and
// its size.
std::string ModelDigest(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    anchor::XxHash64State hash;
    std::ifstream in(dir, std::ios::binary);
    uint64_t header_size = 0;
    in.read(reinterpret_cast<char*>(&header_size), sizeof header_size);
    std::string header(static_cast<size_t>(std::min<uint64_t>(header_size, 100u << 20)), '\0');
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    header += "\n" + std::to_string(fs::file_size(dir, ec));
    hash.Update(header.data(), header.size());
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash.Digest()));
    return hex;
  }
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  anchor::XxHash64State hash;
  for (const fs::path& file : files) {
    std::string rel = file.lexically_relative(dir).generic_string() + "\n";
    hash.Update(rel.data(), rel.size());
    if (file.extension() == ".json") {
      std::ifstream in(file, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      hash.Update(text.data(), text.size());
    } else {
      std::string size = std::to_string(fs::file_size(file, ec)) + "\n";
      hash.Update(size.data(), size.size());
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash.Digest()));
  return hex;
}

bool UnderRoots(const std::string& path, const std::vector<std::string>& roots) {
  if (roots.empty()) return true;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  if (ec) p = std::filesystem::path(path).lexically_normal();
  for (const auto& root : roots) {
    std::filesystem::path rel = p.lexically_relative(root);
    if (!rel.empty() && *rel.begin() != "..") return true;
  }
  return false;
}

bool IsAnchor(const std::vector<int64_t>& anchors, int64_t i) {
  return std::binary_search(anchors.begin(), anchors.end(), i);
}

}  // namespace

struct EngineExecutor::State {
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;
  mutable std::mutex mutex;
  struct LoadedModel {
    std::shared_ptr<engine::Model> model;
    std::string digest;  // ModelDigest of its folder when it was loaded
  };
  std::map<std::string, LoadedModel> models;  // GUARDED_BY(mutex)
  std::shared_ptr<ShotAnchors> last;          // GUARDED_BY(mutex)
  std::atomic<int64_t> steps_run{0};          // for fault_hang_at_step
};

EngineExecutor::EngineExecutor(EngineExecutorOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {}

EngineExecutor::~EngineExecutor() = default;

Result<std::unique_ptr<EngineExecutor>> EngineExecutor::Create(EngineExecutorOptions options) {
  FAIRY_ASSIGN_OR_RETURN(torch::Device device, engine::ParseDevice(options.device));
  FAIRY_ASSIGN_OR_RETURN(torch::ScalarType dtype, engine::ParseScalarType(options.dtype));
  // The same process-wide numerics as fairy-engine edit (thread count, denormals flushed), so a
  // farm edit is bit-identical to the single-process one.
  engine::ConfigureTorchThreads();
  at::globalContext().setFlushDenormal(true);
  std::unique_ptr<EngineExecutor> e(new EngineExecutor(std::move(options)));
  e->state_->device = device;
  e->state_->dtype = dtype;
  return e;
}

std::vector<std::string> EngineExecutor::LoadedModels() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  std::vector<std::string> out;
  for (const auto& [dir, model] : state_->models) out.push_back(dir);
  return out;
}

namespace {

// Thrown from a denoising step's callback when the attempt is cancelled: a pass stops between
// steps, not only between batches (one batch of a large model can take minutes on a CPU, and an
// anchor pass is one long stretch of steps). Caught in Run(); every engine type on the way is RAII.
struct AttemptCancelled {};

void StopIfCancelled(const TaskContext& ctx) {
  if (ctx.cancel != nullptr && ctx.cancel->load()) throw AttemptCancelled{};
}

// After every denoising step: stop if cancelled, count the step (TaskContext::step).
void StepDone(const TaskContext& ctx, std::atomic<int64_t>* steps_run, int64_t hang_at_step) {
  StopIfCancelled(ctx);
  if (ctx.step) ctx.step();
  if (hang_at_step > 0 && steps_run->fetch_add(1) + 1 == hang_at_step) {
    FAIRY_LOG(kWarn, "worker") << "fault injection: denoising step " << hang_at_step
                               << " of this worker hangs for ever (--fault-hang-at-step)";
    while (true) std::this_thread::sleep_for(std::chrono::hours(1));
  }
}

struct RunState {
  const TaskContext* ctx;
  const protocol::TaskSettings* s;
  engine::Model* model;
  engine::EditSettings edit;
  media::FrameReader* reader;
  std::string key;
};

Result<std::shared_ptr<ShotAnchors>> ComputeAnchors(RunState& r,
                                                    const engine::StepCallback& on_step) {
  auto a = std::make_shared<ShotAnchors>();
  a->key = r.key;
  a->indices = r.s->anchor_frames;
  FAIRY_ASSIGN_OR_RETURN(torch::Tensor images, DecodeFrames(*r.reader, a->indices));
  FAIRY_ASSIGN_OR_RETURN(
      a->outputs, engine::RunAnchorPass(*r.model, images, a->indices, r.edit, &a->cache, on_step));
  a->cache_bytes = a->cache.ByteSize();
  return a;
}

// The shot's cache from Redis, checked end to end: part sizes and checksums (Fetch), the tensors
// (Deserialize), and that it has this model's layers and the job's steps.
Result<std::shared_ptr<ShotAnchors>> FetchAnchors(anchor::AnchorStore& store, const RunState& r,
                                                  const torch::Device& device) {
  FAIRY_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, store.Fetch(r.key));
  auto a = std::make_shared<ShotAnchors>();
  FAIRY_ASSIGN_OR_RETURN(a->cache, engine::AnchorCache::Deserialize(bytes, device));
  FAIRY_RETURN_IF_ERROR(
      a->cache.CheckUsableFor(r.model->unet().SelfAttentionLayers(), static_cast<int>(r.s->steps)));
  a->key = r.key;
  a->indices = r.s->anchor_frames;
  a->cache_bytes = static_cast<int64_t>(bytes.size());
  return a;
}

Status WriteAnchorOutputs(const protocol::TaskSettings& s, const ShotAnchors& a) {
  std::error_code ec;
  std::filesystem::create_directories(s.work_dir, ec);
  if (ec) return Status::IOError("cannot create '" + s.work_dir + "': " + ec.message());
  for (size_t k = 0; k < a.indices.size(); ++k) {
    media::RgbFrame frame = TensorToFrame(a.outputs[static_cast<int64_t>(k)], a.indices[k]);
    media::ChunkWriterOptions o;
    o.width = frame.width;
    o.height = frame.height;
    o.first_index = a.indices[k];
    FAIRY_ASSIGN_OR_RETURN(
        auto writer,
        media::ChunkWriter::Create(protocol::AnchorOutputPath(s.work_dir, a.indices[k]), o));
    FAIRY_RETURN_IF_ERROR(writer->Append(frame));
    FAIRY_RETURN_IF_ERROR(writer->Finish());
  }
  return Status::OK();
}

Result<media::RgbFrame> ReadAnchorOutput(const std::string& work_dir, int64_t index) {
  std::string path = protocol::AnchorOutputPath(work_dir, index);
  FAIRY_ASSIGN_OR_RETURN(auto reader, media::ChunkReader::Open(path));
  media::RgbFrame frame;
  FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame));
  if (!got) return Status::Corruption(path + ": empty anchor output");
  frame.index = index;
  return frame;
}

}  // namespace

Result<TaskOutcome> EngineExecutor::Run(const TaskContext& ctx) {
  try {
    // MXCSR is per thread: task threads flush denormals too (and pass it on to the threads they
    // start).
    at::globalContext().setFlushDenormal(true);
    c10::InferenceMode inference;
    const protocol::TaskSettings& s = *ctx.settings;
    const protocol::Task& task = *ctx.task;
    const bool cache_mode = s.anchor_mode == "cache" && !options_.redis_url.empty();
    // Progress counts the frames this attempt edits: an anchor task's anchors, a frames task's
    // range.
    const int64_t total = task.kind == protocol::TaskKind::kAnchor
                              ? static_cast<int64_t>(s.anchor_frames.size())
                              : task.frame_end - task.frame_begin;

    for (const std::string* path : {&s.input, &s.work_dir}) {
      if (!UnderRoots(*path, options_.storage_roots)) {
        return Status::PermissionDenied("'" + *path + "' is outside this worker's storage roots");
      }
    }
    const std::string model_dir =
        std::filesystem::path(s.model).is_absolute() || options_.models_dir.empty()
            ? s.model
            : (std::filesystem::path(options_.models_dir) / s.model).string();
    std::shared_ptr<engine::Model> model;
    std::string model_digest;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      auto it = state_->models.find(model_dir);
      if (it != state_->models.end()) {
        model = it->second.model;
        model_digest = it->second.digest;
      }
    }
    if (!model) {
      ctx.progress(0, total, "loading model " + model_dir);
      engine::ModelOptions mo;
      mo.device = state_->device;
      mo.dtype = state_->dtype;
      mo.variant = options_.model_variant;
      mo.on_load_progress = [&ctx](int64_t read, int64_t all) {
        if (ctx.loading) ctx.loading(read, all);
      };
      FAIRY_ASSIGN_OR_RETURN(model, engine::Model::Load(model_dir, mo));
      model_digest = ModelDigest(model_dir);
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->models.emplace(model_dir, State::LoadedModel{model, model_digest});
    }

    RunState r{&ctx, &s, model.get(), {}, nullptr, {}};
    r.edit.instruction = s.instruction;
    r.edit.steps = static_cast<int>(s.steps);
    r.edit.guidance_text = s.guidance_text;
    r.edit.guidance_image = s.guidance_image;
    r.edit.seed = s.seed;
    FAIRY_ASSIGN_OR_RETURN(r.edit.noise, engine::ParseNoiseMode(s.noise));
    FAIRY_ASSIGN_OR_RETURN(r.edit.sampler, engine::ParseSampler(s.scheduler));
    r.edit.fp16_cache = options_.fp16_cache;
    FAIRY_RETURN_IF_ERROR(r.edit.Validate());

    FAIRY_ASSIGN_OR_RETURN(media::VideoInfo info, media::Probe(s.input));
    media::DecodeOptions decode;
    decode.long_side = static_cast<int>(s.long_side);
    decode.multiple_of = static_cast<int>(model->frame_multiple());
    FAIRY_ASSIGN_OR_RETURN(auto reader, media::FrameReader::Open(s.input, decode, &info));
    r.reader = reader.get();

    anchor::AnchorKeyFields kf;
    kf.model_id = s.model;  // as the job names it: workers may keep their models in other folders
    kf.model_digest = model_digest;
    kf.instruction = s.instruction;
    kf.width = reader->output_width();
    kf.height = reader->output_height();
    kf.steps = s.steps;
    kf.guidance_text = s.guidance_text;
    kf.guidance_image = s.guidance_image;
    kf.seed = s.seed;
    kf.noise = s.noise;
    kf.scheduler = s.scheduler;
    kf.anchor_frames = s.anchor_frames;
    kf.source_identity = SourceIdentity(s.input);
    kf.dtype = options_.dtype + (options_.fp16_cache ? "/fp16-cache" : "");
    kf.engine_version = "fairy-anchor-cache/1 " + options_.device;
    r.key = anchor::AnchorCacheKey(kf);

    std::unique_ptr<redis::RedisClient> redis_client;
    std::unique_ptr<anchor::AnchorStore> anchors_store;
    auto store = [&]() -> Result<anchor::AnchorStore*> {
      if (!anchors_store) {
        FAIRY_ASSIGN_OR_RETURN(redis::RedisOptions ro, redis::ParseRedisUrl(options_.redis_url));
        if (!options_.redis_password.empty()) ro.password = options_.redis_password;
        FAIRY_ASSIGN_OR_RETURN(redis_client, redis::RedisClient::Connect(ro));
        anchor::AnchorStoreOptions ao;
        ao.key_prefix = options_.key_prefix;
        ao.max_part_bytes = options_.max_part_bytes;
        anchors_store = std::make_unique<anchor::AnchorStore>(redis_client.get(), ao);
      }
      return anchors_store.get();
    };

    if (task.kind == protocol::TaskKind::kAnchor) {
      auto on_step = [&](int step, int steps) {
        StepDone(ctx, &state_->steps_run, options_.fault_hang_at_step);
        ctx.progress(step == steps ? total : 0, total, "");
      };
      FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ShotAnchors> a, ComputeAnchors(r, on_step));
      FAIRY_RETURN_IF_ERROR(WriteAnchorOutputs(s, *a));
      TaskOutcome out;
      out.frames = total;
      out.output = r.key;
      if (cache_mode) {
        std::vector<uint8_t> bytes = a->cache.Serialize();
        anchor::AnchorManifest manifest;
        manifest.model_id = model_dir;
        manifest.dtype = kf.dtype;
        manifest.steps = s.steps;
        manifest.layers = static_cast<int64_t>(a->cache.layer_names().size());
        manifest.job_id = task.ref.job_id;
        Result<anchor::AnchorStore*> st = store();
        Result<anchor::AnchorManifest> stored =
            st.ok() ? (*st)->Publish(
                          r.key, task.ref.job_id, manifest, bytes,
                          anchor::PublishFence{task.ref.job_id, task.ref.task_id, task.ref.attempt})
                    : Result<anchor::AnchorManifest>(st.status());
        if (stored.ok()) {
          out.cache_bytes = static_cast<int64_t>(stored->byte_size);
          ctx.progress(
              total, total,
              "anchor cache " + std::to_string(stored->byte_size) + " bytes published as " + r.key);
        } else if (stored.status().code() == Status::Code::kFailedPrecondition) {
          return stored.status();  // a stale attempt: its result no longer counts
        } else {
          // The cache only saves work: the anchors' outputs are written, and a frames task that
          // finds no cache recomputes the same anchors (bit-identical). Redis full or down must
          // not fail the shot.
          ctx.progress(total, total,
                       "anchor cache not published (" + stored.status().ToString() +
                           "); the shot's frames tasks will recompute the anchors");
        }
      }
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->last = a;
      return out;
    }

    // ---- frames task ----
    std::shared_ptr<ShotAnchors> a;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      if (state_->last && state_->last->key == r.key) a = state_->last;
    }
    if (!a && cache_mode) {
      Result<anchor::AnchorStore*> st = store();
      Result<std::shared_ptr<ShotAnchors>> fetched =
          st.ok() ? FetchAnchors(**st, r, state_->device)
                  : Result<std::shared_ptr<ShotAnchors>>(st.status());
      if (fetched.ok()) {
        a = *fetched;
        ctx.progress(0, total,
                     "fetched the anchor cache (" + std::to_string(a->cache_bytes) + " bytes)");
      } else {
        // Absent (expired, never published), unreadable or corrupt: the anchors are recomputed,
        // bit-identical to the cache, rather than failing every attempt of the task.
        ctx.progress(0, total,
                     "anchor cache " + r.key +
                         (fetched.status().code() == Status::Code::kNotFound
                              ? " not in Redis"
                              : " unusable (" + fetched.status().ToString() + ")") +
                         "; recomputing the anchors");
      }
    }
    if (!a) {
      FAIRY_ASSIGN_OR_RETURN(a, ComputeAnchors(r, [&](int, int) {
                               StepDone(ctx, &state_->steps_run, options_.fault_hang_at_step);
                               ctx.progress(0, total, "");
                             }));
    }
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->last = a;
    }
    FAIRY_RETURN_IF_ERROR(
        a->cache.CheckUsableFor(model->unet().SelfAttentionLayers(), static_cast<int>(s.steps)));

    // Exactly the engine's UNet batches that touch this task's range (frame_groups.h).
    std::map<int64_t, media::RgbFrame> edited;
    int64_t done = 0;
    const auto groups =
        GroupsTouching(FramePassGroups(s.shot_first, s.shot_count, s.anchor_frames, s.batch),
                       task.frame_begin, task.frame_end);
    for (const std::vector<int64_t>& group : groups) {
      if (ctx.cancel->load()) return Status::Cancelled("task cancelled");
      FAIRY_ASSIGN_OR_RETURN(torch::Tensor images, DecodeFrames(*reader, group));
      FAIRY_ASSIGN_OR_RETURN(
          torch::Tensor out,
          engine::RunFramePass(*model, a->cache, images, group, r.edit, s.batch, [&](int, int) {
            StepDone(ctx, &state_->steps_run, options_.fault_hang_at_step);
            ctx.progress(done, total, "");
          }));
      for (size_t j = 0; j < group.size(); ++j) {
        if (group[j] >= task.frame_begin && group[j] < task.frame_end) {
          edited[group[j]] = TensorToFrame(out[static_cast<int64_t>(j)], group[j]);
          ++done;
        }
      }
      ctx.progress(done, total, "");
    }
    if (ctx.cancel->load()) return Status::Cancelled("task cancelled");

    std::error_code ec;
    std::filesystem::create_directories(s.work_dir, ec);
    const std::string path = protocol::ChunkPath(s.work_dir, task.ref.task_id);
    media::ChunkWriterOptions co;
    co.width = reader->output_width();
    co.height = reader->output_height();
    co.first_index = task.frame_begin;
    co.frame_rate = info.frame_rate.valid() ? info.frame_rate : media::Rational{25, 1};
    FAIRY_ASSIGN_OR_RETURN(auto writer, media::ChunkWriter::Create(path, co));
    for (int64_t i = task.frame_begin; i < task.frame_end; ++i) {
      if (IsAnchor(s.anchor_frames, i)) {
        if (a->outputs.defined()) {
          auto k = std::lower_bound(a->indices.begin(), a->indices.end(), i) - a->indices.begin();
          FAIRY_RETURN_IF_ERROR(writer->Append(TensorToFrame(a->outputs[k], i)));
        } else {
          FAIRY_ASSIGN_OR_RETURN(media::RgbFrame frame, ReadAnchorOutput(s.work_dir, i));
          FAIRY_RETURN_IF_ERROR(writer->Append(frame));
        }
        ++done;
        continue;
      }
      auto it = edited.find(i);
      if (it == edited.end())
        return Status::Internal("frame " + std::to_string(i) + " was not edited");
      FAIRY_RETURN_IF_ERROR(writer->Append(it->second));
    }
    FAIRY_RETURN_IF_ERROR(writer->Finish());
    ctx.progress(total, total, "");
    TaskOutcome out;
    out.output = path;
    out.frames = total;
    return out;
  } catch (const AttemptCancelled&) {
    return Status::Cancelled("task cancelled");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("engine: ") + e.what());
  }
}

}  // namespace fairy::worker
