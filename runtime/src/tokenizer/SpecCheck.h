//===- SpecCheck.h - Is a TokenizerSpec usable? -----------------*- C++ -*-===//
//
// A spec comes from a tokenizer.json, GGUF metadata or an artifact: all
// outside data. One check serves the three, naming each field the way its
// source spells it.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_SPECCHECK_H
#define KVRT_TOKENIZER_SPECCHECK_H

#include "kvrt/Tokenizer.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace kvrt::tokenizer {

/// Largest vocabulary accepted; ids stay far from int32 overflow.
constexpr size_t kMaxVocabSize = size_t(1) << 24;

/// Longest added token accepted: matching costs up to this many steps per
/// input byte.
constexpr size_t kMaxAddedTokenBytes = 1024;

/// How a source spells the spec's fields in its error messages.
struct SpecFieldNames {
  const char *tokens;
  const char *tokenTypes;
  const char *scores;
  const char *merges;
  const char *addedTokens;
};

/// Field names of a spec read back from an artifact.
constexpr SpecFieldNames kSpecFieldNames = {"tokens", "tokenTypes", "scores",
                                            "merges", "addedTokens"};

/// Ok when `spec` is complete and consistent; otherwise one sentence that
/// starts with `source` and names the field.
Status checkTokenizerSpec(const TokenizerSpec &spec, const std::string &source,
                          const SpecFieldNames &names);

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_SPECCHECK_H
