#include "worker/engine/train/triple_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "worker/engine/train/frame_pool.h"

namespace fairy::engine::train {
namespace {

namespace fs = std::filesystem;

std::string SizeString(const torch::Tensor& image) {
  return std::to_string(image.size(2)) + "x" + std::to_string(image.size(1));
}

}  // namespace

Result<std::shared_ptr<TripleFolder>> TripleFolder::Load(const std::string& dir,
                                                         const PairGeneratorOptions& data,
                                                         int decode_long_side) {
  const std::string list = (fs::path(dir) / "triples.jsonl").string();
  std::ifstream in(list);
  if (!in) return Status::NotFound(list + ": cannot open (a triples folder needs triples.jsonl)");
  if (decode_long_side <= 0) decode_long_side = static_cast<int>(2 * data.resolution);
  std::shared_ptr<TripleFolder> folder(new TripleFolder());
  folder->options_ = data;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = list + ":" + std::to_string(number);
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(where + ": not a JSON object");
    std::string paths[2];
    const char* keys[2] = {"source", "target"};
    for (int k = 0; k < 2; ++k) {
      if (!j.contains(keys[k]) || !j[keys[k]].is_string() || j[keys[k]].get<std::string>().empty()) {
        return Status::InvalidArgument(where + ": \"" + keys[k] + "\" must be a non-empty string (an image path)");
      }
      fs::path p = j[keys[k]].get<std::string>();
      paths[k] = (p.is_absolute() ? p : fs::path(dir) / p).string();
    }
    if (!j.contains("instruction") || !j["instruction"].is_string() ||
        j["instruction"].get<std::string>().find_first_not_of(" \t\r\n") == std::string::npos) {
      return Status::InvalidArgument(where + ": \"instruction\" must be a non-empty string");
    }
    torch::Tensor images[2];
    for (int k = 0; k < 2; ++k) {
      auto image = LoadStillImage(paths[k], decode_long_side);
      if (!image.ok()) return image.status().WithContext(where + ": " + keys[k]);
      images[k] = *image;
    }
    if (images[0].sizes() != images[1].sizes()) {
      return Status::InvalidArgument(where + ": source " + paths[0] + " is " + SizeString(images[0]) + ", target " +
                                     paths[1] + " is " + SizeString(images[1]) + "; they must match");
    }
    folder->sources_.push_back(images[0]);
    folder->targets_.push_back(images[1]);
    folder->instructions_.push_back(j["instruction"].get<std::string>());
  }
  if (folder->sources_.empty()) return Status::InvalidArgument(list + ": no triples");
  return folder;
}

std::shared_ptr<TripleFolder> TripleFolder::WithSeed(uint64_t seed) const {
  auto copy = std::make_shared<TripleFolder>(*this);
  copy->options_.seed = seed;
  return copy;
}

std::pair<torch::Tensor, torch::Tensor> TripleFolder::Crop(size_t index, at::Generator& gen) const {
  const torch::Tensor& source = sources_[index];
  const SquareWindow window = RandomSquareWindow(source.size(1), source.size(2), options_.min_crop_fraction, gen);
  return {CutSquare(source, window, options_.resolution), CutSquare(targets_[index], window, options_.resolution)};
}

TrainingBatch TripleFolder::Next(int64_t batch_size, uint64_t step) const {
  at::Generator gen = BatchGenerator(options_.seed, step);
  TrainingBatch batch;
  std::vector<torch::Tensor> sources, targets;
  for (int64_t i = 0; i < batch_size; ++i) {
    const auto index = static_cast<size_t>(UniformIndex(gen, static_cast<int64_t>(sources_.size())));
    auto [source, target] = Crop(index, gen);
    sources.push_back(source);
    targets.push_back(target);
    batch.instructions.push_back(instructions_[index]);
  }
  batch.source = torch::stack(sources);
  batch.target = torch::stack(targets);
  return batch;
}

torch::Tensor TripleFolder::NextImages(int64_t batch_size, uint64_t step) const {
  at::Generator gen = BatchGenerator(options_.seed, step);
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < batch_size; ++i) {
    const auto index = static_cast<size_t>(UniformIndex(gen, static_cast<int64_t>(sources_.size())));
    auto [source, target] = Crop(index, gen);
    images.push_back(UniformDouble(gen) < 0.5 ? source : target);
  }
  return torch::stack(images);
}

}  // namespace fairy::engine::train
