#include "worker/engine/train/model_parts.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "worker/engine/train/checkpoint.h"

namespace fairy::engine::train {
namespace {

namespace fs = std::filesystem;

bool Exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

}  // namespace

Result<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::NotFound("cannot open " + path);
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
}

Result<torch::Tensor> ModelParts::TokenIds(const std::vector<std::string>& texts) const {
  if (tokenizer == nullptr) return Status::FailedPrecondition("ModelParts: no tokenizer loaded");
  torch::Tensor ids = torch::empty({static_cast<int64_t>(texts.size()), 77}, torch::kInt64);
  for (size_t i = 0; i < texts.size(); ++i) {
    FAIRY_ASSIGN_OR_RETURN(Tokenized t, tokenizer->Tokenize(texts[i], 77));
    std::copy(t.input_ids.begin(), t.input_ids.end(), ids[static_cast<int64_t>(i)].data_ptr<int64_t>());
  }
  return ids;
}

Result<ModelParts> ModelParts::Load(const std::string& dir, const torch::Device& device, uint64_t seed,
                                    const std::string& tokenizer_dir) {
  ModelParts p;
  p.source_dir = dir;
  p.tokenizer_dir = tokenizer_dir.empty() ? dir + "/tokenizer" : tokenizer_dir;
  FAIRY_ASSIGN_OR_RETURN(p.unet_config, ReadJson(dir + "/unet/config.json"));
  FAIRY_ASSIGN_OR_RETURN(p.vae_config, ReadJson(dir + "/vae/config.json"));
  FAIRY_ASSIGN_OR_RETURN(p.text_config, ReadJson(dir + "/text_encoder/config.json"));
  FAIRY_ASSIGN_OR_RETURN(p.scheduler_config, ReadJson(dir + "/scheduler/scheduler_config.json"));
  FAIRY_ASSIGN_OR_RETURN(UNetConfig unet_config, UNetConfig::FromJson(p.unet_config, dir + "/unet/config.json"));
  FAIRY_ASSIGN_OR_RETURN(VAEConfig vae_config, VAEConfig::FromJson(p.vae_config, dir + "/vae/config.json"));
  FAIRY_ASSIGN_OR_RETURN(CLIPTextConfig text_config,
                         CLIPTextConfig::FromJson(p.text_config, dir + "/text_encoder/config.json"));
  FAIRY_ASSIGN_OR_RETURN(p.schedule,
                         NoiseSchedule::FromConfig(p.scheduler_config, dir + "/scheduler/scheduler_config.json"));
  FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<CLIPTokenizer> tokenizer, CLIPTokenizer::Load(p.tokenizer_dir));
  p.tokenizer = std::move(tokenizer);
  if (unet_config.in_channels != 2 * vae_config.latent_channels || unet_config.out_channels != vae_config.latent_channels) {
    return Status::InvalidArgument(dir + "/unet/config.json: an InstructPix2Pix UNet needs in_channels = 2 x and "
                                   "out_channels = the VAE's latent_channels (" +
                                   std::to_string(vae_config.latent_channels) + ")");
  }
  if (unet_config.cross_attention_dim != text_config.hidden_size) {
    return Status::InvalidArgument(dir + "/unet/config.json: \"cross_attention_dim\" must equal the text encoder's "
                                   "hidden_size (" + std::to_string(text_config.hidden_size) + ")");
  }
  torch::manual_seed(seed);
  p.unet = UNet(unet_config);
  p.vae = AutoencoderKL(vae_config);
  p.text_encoder = CLIPTextModel(text_config);
  std::string unet_w = dir + "/unet/diffusion_pytorch_model.safetensors";
  std::string vae_w = dir + "/vae/diffusion_pytorch_model.safetensors";
  std::string text_w = dir + "/text_encoder/model.safetensors";
  if ((p.unet_loaded = Exists(unet_w))) FAIRY_RETURN_IF_ERROR(LoadModuleWeights(*p.unet, unet_w));
  if ((p.vae_loaded = Exists(vae_w))) FAIRY_RETURN_IF_ERROR(LoadModuleWeights(*p.vae, vae_w));
  if ((p.text_loaded = Exists(text_w))) FAIRY_RETURN_IF_ERROR(LoadModuleWeights(*p.text_encoder, text_w));
  p.unet->to(device);
  p.vae->to(device);
  p.text_encoder->to(device);
  p.unet->train();
  p.vae->train();
  p.text_encoder->train();
  return p;
}

void ModelParts::set_scaling_factor(double s) {
  vae_config["scaling_factor"] = s;
  vae->set_scaling_factor(s);
}

Status ModelParts::Save(const std::string& dir) {
  for (const char* sub : {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}) {
    std::error_code ec;
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return Status::IOError("cannot create " + dir + "/" + sub + ": " + ec.message());
  }
  FAIRY_RETURN_IF_ERROR(WriteJsonFile(dir + "/model_index.json", InstructPix2PixModelIndex()));
  FAIRY_RETURN_IF_ERROR(WriteJsonFile(dir + "/unet/config.json", unet_config));
  nlohmann::json vae_json = vae->config().ToJson();
  FAIRY_RETURN_IF_ERROR(WriteJsonFile(dir + "/vae/config.json", vae_json));
  FAIRY_RETURN_IF_ERROR(WriteJsonFile(dir + "/text_encoder/config.json", text_encoder->config().ToJson()));
  FAIRY_RETURN_IF_ERROR(WriteJsonFile(dir + "/scheduler/scheduler_config.json", scheduler_config));
  std::map<std::string, std::string> meta = {{"format", "pt"}};
  FAIRY_RETURN_IF_ERROR(SaveModuleWeights(*unet, dir + "/unet/diffusion_pytorch_model.safetensors", torch::kFloat32, meta));
  FAIRY_RETURN_IF_ERROR(SaveModuleWeights(*vae, dir + "/vae/diffusion_pytorch_model.safetensors", torch::kFloat32, meta));
  FAIRY_RETURN_IF_ERROR(SaveModuleWeights(*text_encoder, dir + "/text_encoder/model.safetensors", torch::kFloat32, meta));
  std::error_code ec;
  if (!fs::equivalent(fs::path(tokenizer_dir), fs::path(dir) / "tokenizer", ec)) {
    FAIRY_RETURN_IF_ERROR(CopyFolderFiles(tokenizer_dir, dir + "/tokenizer"));
  }
  return Status::OK();
}

}  // namespace fairy::engine::train
