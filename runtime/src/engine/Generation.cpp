//===- Generation.cpp -----------------------------------------------------===//
#include "kvrt/Generation.h"

#include "kvrt/Artifact.h"

#include <limits>
#include <string>

namespace kvrt {
namespace {
std::string str(int64_t v) { return std::to_string(v); }
} // namespace

Generation::Generation(std::vector<int32_t> prompt, Sampler sampler,
                       std::unordered_set<int32_t> stops, int64_t minNewTokens,
                       int64_t maxNewTokens, int64_t context, bool greedy)
    : prompt_(std::move(prompt)), history_(prompt_),
      sampler_(std::move(sampler)), stops_(std::move(stops)),
      minNewTokens_(minNewTokens), maxNewTokens_(maxNewTokens),
      context_(context), greedy_(greedy) {}

StatusOr<Generation> Generation::create(const Artifact &artifact,
                                        std::vector<int32_t> prompt,
                                        const GenerateOptions &options) {
  if (prompt.empty())
    return Status::error("generate needs a prompt of at least one token");
  const auto &model = artifact.manifest().model();
  int64_t context = model.max_positions();
  if (int64_t(prompt.size()) >= context)
    return Status::error("the prompt has " + str(int64_t(prompt.size())) +
                         " tokens but the model's context is " + str(context));
  // Named by its place in the prompt, which forward() would call a batch row.
  const int64_t vocab = model.vocab_size();
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      return Status::error("the prompt's token " + str(int64_t(i)) + " is id " +
                           str(prompt[i]) + ", outside the vocabulary of " +
                           str(vocab) + " tokens");
  StatusOr<Sampler> sampler = Sampler::create(options.sampling);
  if (!sampler)
    return sampler.status();
  if (options.minNewTokens < 0 || options.minNewTokens > options.maxNewTokens)
    return Status::error("the minimum of " + str(options.minNewTokens) +
                         " new tokens is not between 0 and the maximum of " +
                         str(options.maxNewTokens));
  std::unordered_set<int32_t> stops(options.stopTokens.begin(),
                                    options.stopTokens.end());
  if (options.stopAtEos)
    for (int64_t eos : model.eos_token_ids())
      stops.insert(int32_t(eos));
  const bool greedy = options.sampling.temperature == 0.0f &&
                      options.sampling.unpenalised() &&
                      (options.minNewTokens == 0 || stops.empty());
  return Generation(std::move(prompt), std::move(*sampler), std::move(stops),
                    options.minNewTokens, options.maxNewTokens, context,
                    greedy);
}

int32_t Generation::sample(const float *logits, size_t vocab) {
  if (int64_t(generated_.size()) >= minNewTokens_ || stops_.empty())
    return sampler_.sample(logits, vocab, history_, prompt_.size());
  // Too early to stop: the stop tokens cannot be drawn.
  masked_.assign(logits, logits + vocab);
  for (int32_t stop : stops_)
    if (stop >= 0 && size_t(stop) < vocab)
      masked_[size_t(stop)] = -std::numeric_limits<float>::infinity();
  return sampler_.sample(masked_.data(), vocab, history_, prompt_.size());
}

std::optional<StopReason> Generation::stopsAt(int32_t token) const {
  if (stops_.count(token))
    return StopReason::StopToken;
  return std::nullopt;
}

std::optional<StopReason> Generation::record(int32_t token) {
  generated_.push_back(token);
  history_.push_back(token);
  if (int64_t(generated_.size()) >= maxNewTokens_)
    return StopReason::MaxTokens;
  if (int64_t(history_.size()) >= context_)
    return StopReason::ContextFull;
  return std::nullopt;
}

} // namespace kvrt
