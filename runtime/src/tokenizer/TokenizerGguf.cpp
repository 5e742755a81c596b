//===- TokenizerGguf.cpp - TokenizerSpec from GGUF metadata ---------------===//
//
// Reads the tokenizer.ggml.* fields the way llama.cpp does: "gpt2" is
// byte-level BPE with merges and a pre-tokenizer named by
// tokenizer.ggml.pre; "llama" is SentencePiece BPE merged by score with
// byte fallback. Control and user-defined tokens are matched verbatim.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include "kvrt/Quote.h"
#include "runtime/src/tokenizer/SpecCheck.h"

namespace kvrt {

using namespace tokenizer;

namespace {

constexpr SpecFieldNames kGgufFieldNames = {
    "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores", "tokenizer.ggml.merges",
    "control, unknown and user-defined tokens"};

/// The pre-tokenizer llama.cpp uses for a tokenizer.ggml.pre value.
Status readPre(const GgufTokenizerFields &g, const std::string &source,
               TokenizerSpec &spec) {
  if (g.pre == "gpt-2") {
    spec.preTokenizer = PreTokenizerKind::Gpt2;
  } else if (g.pre == "llama3" || g.pre == "llama-v3" || g.pre == "llama-bpe") {
    spec.preTokenizer = PreTokenizerKind::Llama3;
    // llama.cpp: Llama-3 emits whole words found in the vocabulary as they
    // are, and starts with BOS unless the file says otherwise.
    spec.ignoreMerges = true;
    spec.addBos = true;
  } else if (g.pre == "qwen2") {
    spec.preTokenizer = PreTokenizerKind::Qwen2;
  } else if (g.pre == "smollm") {
    spec.preTokenizer = PreTokenizerKind::SmolLM;
  } else {
    return Status::error(source + ": tokenizer.ggml.pre is " + quote(g.pre) +
                         "; supported: gpt-2, llama3 (llama-bpe), qwen2, "
                         "smollm");
  }
  return Status::ok();
}

/// A special token id from the file, range-checked; `fallback` when absent.
Status readSpecialId(const std::optional<int64_t> &id, int32_t fallback,
                     const char *key, size_t vocabSize,
                     const std::string &source, int32_t &out) {
  if (!id) {
    out = static_cast<size_t>(fallback) < vocabSize ? fallback : -1;
    return Status::ok();
  }
  if (*id < 0 || static_cast<uint64_t>(*id) >= vocabSize)
    return Status::error(source + ": " + key + " is " + std::to_string(*id) +
                         ", outside the " + std::to_string(vocabSize) +
                         " token vocabulary");
  out = static_cast<int32_t>(*id);
  return Status::ok();
}

Status readTokens(const GgufTokenizerFields &g, const std::string &source,
                  TokenizerSpec &spec) {
  size_t n = g.tokens.size();
  if (n == 0 || n > kMaxVocabSize)
    return Status::error(source + ": tokenizer.ggml.tokens has " +
                         std::to_string(n) + " entries; 1 to " +
                         std::to_string(kMaxVocabSize) + " are supported");
  spec.tokens = g.tokens;
  if (!g.tokenTypes.empty() && g.tokenTypes.size() != n)
    return Status::error(source + ": tokenizer.ggml.token_type has " +
                         std::to_string(g.tokenTypes.size()) + " entries for " +
                         std::to_string(n) + " tokens");
  spec.tokenTypes.assign(n, TokenType::Normal);
  for (size_t i = 0; i < g.tokenTypes.size(); ++i) {
    int32_t t = g.tokenTypes[i];
    if (t < 1 || t > 6)
      return Status::error(source + ": tokenizer.ggml.token_type[" +
                           std::to_string(i) + "] is " + std::to_string(t) +
                           "; token types are 1 to 6");
    spec.tokenTypes[i] = static_cast<TokenType>(t);
    // The tokens llama.cpp matches verbatim in the text.
    if (spec.tokenTypes[i] == TokenType::Control ||
        spec.tokenTypes[i] == TokenType::UserDefined ||
        spec.tokenTypes[i] == TokenType::Unknown) {
      AddedTokenSpec added;
      added.id = static_cast<int32_t>(i);
      added.content = g.tokens[i];
      added.special = spec.tokenTypes[i] != TokenType::UserDefined;
      // llama.cpp cannot match an empty text; such tokens stay ids only.
      if (!added.content.empty())
        spec.addedTokens.push_back(std::move(added));
    }
  }
  return Status::ok();
}

Status readMerges(const GgufTokenizerFields &g, const std::string &source,
                  TokenizerSpec &spec) {
  spec.merges.reserve(g.merges.size());
  for (size_t i = 0; i < g.merges.size(); ++i) {
    const std::string &m = g.merges[i];
    // As llama.cpp: the separator is the first space after the first byte.
    size_t space = m.find(' ', 1);
    if (space == std::string::npos)
      return Status::error(source + ": tokenizer.ggml.merges[" +
                           std::to_string(i) + "] " + quote(m) +
                           " is not two tokens separated by a space");
    spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  return Status::ok();
}

} // namespace

StatusOr<TokenizerSpec>
tokenizerSpecFromGgufMetadata(const GgufTokenizerFields &g,
                              const std::string &sourceName) {
  TokenizerSpec spec;
  KVRT_RETURN_IF_ERROR(readTokens(g, sourceName, spec));
  size_t n = spec.tokens.size();
  // llama.cpp's defaults where the file is silent.
  int32_t defaultBos = -1, defaultEos = -1, defaultUnk = -1;
  if (g.model == "gpt2") {
    spec.model = TokenizerModelKind::ByteLevelBpe;
    KVRT_RETURN_IF_ERROR(readPre(g, sourceName, spec));
    KVRT_RETURN_IF_ERROR(readMerges(g, sourceName, spec));
  } else if (g.model == "llama") {
    spec.model = TokenizerModelKind::MetaspaceScoreBpe;
    spec.byteFallback = true;
    spec.addSpacePrefix = g.addSpacePrefix.value_or(true);
    spec.addBos = true;
    defaultUnk = 0;
    defaultBos = 1;
    defaultEos = 2;
    if (!g.scores.empty() && g.scores.size() != n)
      return Status::error(sourceName + ": tokenizer.ggml.scores has " +
                           std::to_string(g.scores.size()) + " entries for " +
                           std::to_string(n) + " tokens");
    spec.scores = g.scores.empty() ? std::vector<float>(n, 0.0f) : g.scores;
  } else {
    return Status::error(sourceName + ": tokenizer.ggml.model is " +
                         quote(g.model) +
                         "; supported: gpt2 (byte-level BPE), llama "
                         "(SentencePiece BPE)");
  }
  KVRT_RETURN_IF_ERROR(readSpecialId(g.bosId, defaultBos,
                                     "tokenizer.ggml.bos_token_id", n,
                                     sourceName, spec.bosId));
  KVRT_RETURN_IF_ERROR(readSpecialId(g.eosId, defaultEos,
                                     "tokenizer.ggml.eos_token_id", n,
                                     sourceName, spec.eosId));
  KVRT_RETURN_IF_ERROR(readSpecialId(g.unknownId, defaultUnk,
                                     "tokenizer.ggml.unknown_token_id", n,
                                     sourceName, spec.unkId));
  KVRT_RETURN_IF_ERROR(readSpecialId(g.paddingId, -1,
                                     "tokenizer.ggml.padding_token_id", n,
                                     sourceName, spec.padId));
  spec.addBos = g.addBosToken.value_or(spec.addBos);
  spec.addEos = g.addEosToken.value_or(false);
  if (!g.chatTemplate.empty()) {
    StatusOr<ChatTemplate> detected = detectChatTemplate(
        g.chatTemplate, sourceName + ": tokenizer.chat_template");
    if (!detected)
      return detected.status();
    spec.chatTemplate = std::move(*detected);
    if (spec.chatTemplate.kind == ChatTemplateKind::Llama3 && spec.bosId >= 0)
      spec.chatTemplate.bosText = spec.tokens[spec.bosId];
  }
  KVRT_RETURN_IF_ERROR(checkTokenizerSpec(spec, sourceName, kGgufFieldNames));
  return spec;
}

} // namespace kvrt
