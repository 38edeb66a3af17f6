// Check kind of the tokenizer: tokenize (procedure defined in the fixture's golden/README.md).
#include <string>
#include <vector>

#include "worker/engine/tokenizer.h"
#include "worker/engine/verify/check.h"

namespace fairy::engine::verify {
namespace {

Result<std::shared_ptr<CLIPTokenizer>> GetTokenizer(CheckContext& ctx) {
  return ctx.models().GetOrLoad<CLIPTokenizer>(
      "tokenizer", [&]() -> Result<std::shared_ptr<CLIPTokenizer>> {
        FAIRY_ASSIGN_OR_RETURN(std::shared_ptr<ModelSource> source, ctx.source());
        FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<CLIPTokenizer> tok, CLIPTokenizer::FromFiles(source->tokenizer));
        return std::shared_ptr<CLIPTokenizer>(std::move(tok));
      });
}

// tokenize: every prompt -> input_ids (P, max_length); debug tokens, length, untruncated_length.
// ftfy.fix_text is not implemented: a check with ftfy true is Unsupported (SKIP when optional).
Status RunTokenize(CheckContext& ctx) {
  FAIRY_ASSIGN_OR_RETURN(bool ftfy, ctx.BoolArg("ftfy", false));
  if (ftfy) {
    return Status::Unsupported("check \"" + ctx.name() +
                               "\": ftfy.fix_text is not implemented (the engine tokenizes as "
                               "transformers does without ftfy)");
  }
  FAIRY_ASSIGN_OR_RETURN(std::vector<std::string> prompts, ctx.StringListArg("prompts"));
  int64_t max_length = 77;
  if (ctx.HasParam("max_length") || ctx.HasInput("max_length")) {
    FAIRY_ASSIGN_OR_RETURN(max_length, ctx.IntArg("max_length"));
  }
  FAIRY_ASSIGN_OR_RETURN(auto tokenizer, GetTokenizer(ctx));
  const auto P = static_cast<int64_t>(prompts.size());
  torch::Tensor ids = torch::empty({P, max_length}, torch::kInt64);
  torch::Tensor lengths = torch::empty({P}, torch::kInt64);
  torch::Tensor untruncated = torch::empty({P}, torch::kInt64);
  nlohmann::json tokens = nlohmann::json::array();
  for (int64_t p = 0; p < P; ++p) {
    Result<Tokenized> t = tokenizer->Tokenize(prompts[static_cast<size_t>(p)], max_length);
    if (!t.ok())
      return t.status().WithContext("check \"" + ctx.name() + "\": prompt " + std::to_string(p));
    std::copy(t->input_ids.begin(), t->input_ids.end(), ids[p].data_ptr<int64_t>());
    lengths[p] = t->length;
    untruncated[p] = t->untruncated_length;
    tokens.push_back(t->tokens);
  }
  ctx.Output("input_ids", ids);
  ctx.DebugStrings("tokens", tokens);
  ctx.Debug("length", lengths);
  ctx.Debug("untruncated_length", untruncated);
  return Status::OK();
}

}  // namespace

void RegisterTokenizeCheckKinds() { RegisterCheckKind("tokenize", RunTokenize); }

}  // namespace fairy::engine::verify
