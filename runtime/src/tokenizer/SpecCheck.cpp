//===- SpecCheck.cpp - Is a TokenizerSpec usable? -------------------------===//
#include "runtime/src/tokenizer/SpecCheck.h"

#include "kvrt/Json.h"
#include "kvrt/Quote.h"

#include <cmath>
#include <unordered_set>

namespace kvrt::tokenizer {

namespace {

bool idInRange(int32_t id, size_t size) {
  return id >= 0 && static_cast<size_t>(id) < size;
}

Status checkEnums(const TokenizerSpec &spec, const std::string &source) {
  if (spec.model > TokenizerModelKind::MetaspaceScoreBpe)
    return Status::error(source + ": the model kind is unknown");
  if (spec.preTokenizer > PreTokenizerKind::SmolLM)
    return Status::error(source + ": the pre-tokenizer kind is unknown");
  if (spec.chatTemplate.kind > ChatTemplateKind::Llama3)
    return Status::error(source + ": the chat template kind is unknown");
  bool byteLevel = spec.model == TokenizerModelKind::ByteLevelBpe;
  if (!byteLevel && spec.preTokenizer != PreTokenizerKind::None)
    return Status::error(source + ": a metaspace model takes no "
                                  "pre-tokenizer regex (it splits nothing)");
  if (byteLevel && spec.byteFallback)
    return Status::error(source + ": byte fallback is only for metaspace "
                                  "models; byte-level models cover every "
                                  "byte already");
  if (byteLevel && spec.addSpacePrefix &&
      (spec.preTokenizer == PreTokenizerKind::Llama3 ||
       spec.preTokenizer == PreTokenizerKind::Qwen2))
    return Status::error(source + ": a space prefix is only supported with "
                                  "the GPT-2 and SmolLM pre-tokenizers");
  return Status::ok();
}

Status checkTokens(const TokenizerSpec &spec, const std::string &source,
                   const SpecFieldNames &names) {
  size_t n = spec.tokens.size();
  if (n == 0)
    return Status::error(source + ": " + names.tokens + " is empty");
  if (n > kMaxVocabSize)
    return Status::error(source + ": " + names.tokens + " has " +
                         std::to_string(n) + " entries; at most " +
                         std::to_string(kMaxVocabSize) + " are supported");
  for (size_t i = 0; i < n; ++i)
    if (!json::isValidUtf8(spec.tokens[i]))
      return Status::error(source + ": " + names.tokens + "[" +
                           std::to_string(i) + "] is not valid UTF-8");
  if (spec.tokenTypes.size() != n)
    return Status::error(source + ": " + names.tokenTypes + " has " +
                         std::to_string(spec.tokenTypes.size()) +
                         " entries for " + std::to_string(n) + " tokens");
  for (size_t i = 0; i < n; ++i) {
    auto t = static_cast<uint8_t>(spec.tokenTypes[i]);
    if (t < 1 || t > 6)
      return Status::error(source + ": " + names.tokenTypes + "[" +
                           std::to_string(i) + "] is " + std::to_string(t) +
                           "; token types are 1 to 6");
  }
  bool needScores = spec.model == TokenizerModelKind::MetaspaceScoreBpe;
  if (spec.scores.size() != n && (needScores || !spec.scores.empty()))
    return Status::error(source + ": " + names.scores + " has " +
                         std::to_string(spec.scores.size()) + " entries for " +
                         std::to_string(n) + " tokens");
  for (size_t i = 0; i < spec.scores.size(); ++i)
    if (!std::isfinite(spec.scores[i]))
      return Status::error(source + ": " + names.scores + "[" +
                           std::to_string(i) + "] is not a finite number");
  return Status::ok();
}

Status checkMerges(const TokenizerSpec &spec, const std::string &source,
                   const SpecFieldNames &names) {
  if (spec.model == TokenizerModelKind::MetaspaceScoreBpe) {
    if (!spec.merges.empty())
      return Status::error(source + ": " + names.merges +
                           " must be empty for a score-merged vocabulary");
    return Status::ok();
  }
  std::unordered_set<std::string_view> vocab;
  std::unordered_set<int32_t> outsideModel;
  for (const AddedTokenSpec &t : spec.addedTokens)
    if (!t.inModel)
      outsideModel.insert(t.id);
  for (size_t i = 0; i < spec.tokens.size(); ++i)
    if (!outsideModel.count(static_cast<int32_t>(i)))
      vocab.insert(spec.tokens[i]);
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    const auto &[left, right] = spec.merges[i];
    auto fail = [&](const char *problem, std::string_view token) {
      return Status::error(source + ": " + names.merges + "[" +
                           std::to_string(i) + "] (" + quote(left) + " " +
                           quote(right) + ") " + problem + " " + quote(token) +
                           ", which is not in the vocabulary");
    };
    if (!vocab.count(left))
      return fail("names", left);
    if (!vocab.count(right))
      return fail("names", right);
    if (!vocab.count(left + right))
      return fail("makes", left + right);
  }
  return Status::ok();
}

Status checkAddedTokens(const TokenizerSpec &spec, const std::string &source,
                        const SpecFieldNames &names) {
  std::unordered_set<int32_t> seen;
  for (size_t i = 0; i < spec.addedTokens.size(); ++i) {
    const AddedTokenSpec &t = spec.addedTokens[i];
    std::string field =
        std::string(names.addedTokens) + "[" + std::to_string(i) + "]";
    if (!idInRange(t.id, spec.tokens.size()))
      return Status::error(source + ": " + field + " has id " +
                           std::to_string(t.id) + ", outside the " +
                           std::to_string(spec.tokens.size()) +
                           " token vocabulary");
    if (t.content.empty() || t.content.size() > kMaxAddedTokenBytes)
      return Status::error(
          source + ": " + field + " has " + std::to_string(t.content.size()) +
          " bytes of content; 1 to " + std::to_string(kMaxAddedTokenBytes) +
          " are supported");
    if (t.content != spec.tokens[t.id])
      return Status::error(source + ": " + field + " is " + quote(t.content) +
                           " but token " + std::to_string(t.id) + " is " +
                           quote(spec.tokens[t.id]));
    if (!seen.insert(t.id).second)
      return Status::error(source + ": " + field + " repeats id " +
                           std::to_string(t.id));
  }
  return Status::ok();
}

Status checkSpecialIds(const TokenizerSpec &spec, const std::string &source) {
  const std::pair<const char *, int32_t> ids[] = {{"BOS", spec.bosId},
                                                  {"EOS", spec.eosId},
                                                  {"unknown", spec.unkId},
                                                  {"padding", spec.padId}};
  for (const auto &[name, id] : ids)
    if (id != -1 && !idInRange(id, spec.tokens.size()))
      return Status::error(source + ": the " + name + " token id " +
                           std::to_string(id) + " is outside the " +
                           std::to_string(spec.tokens.size()) +
                           " token vocabulary");
  if (spec.addBos && spec.bosId < 0)
    return Status::error(source + ": BOS is to be added but there is no BOS "
                                  "token");
  if (spec.addEos && spec.eosId < 0)
    return Status::error(source + ": EOS is to be added but there is no EOS "
                                  "token");
  return Status::ok();
}

} // namespace

Status checkTokenizerSpec(const TokenizerSpec &spec, const std::string &source,
                          const SpecFieldNames &names) {
  KVRT_RETURN_IF_ERROR(checkEnums(spec, source));
  KVRT_RETURN_IF_ERROR(checkTokens(spec, source, names));
  KVRT_RETURN_IF_ERROR(checkAddedTokens(spec, source, names));
  KVRT_RETURN_IF_ERROR(checkMerges(spec, source, names));
  return checkSpecialIds(spec, source);
}

} // namespace kvrt::tokenizer
