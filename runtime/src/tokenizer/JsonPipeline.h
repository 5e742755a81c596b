//===- JsonPipeline.h - Recognising tokenizer.json components ---*- C++ -*-===//
//
// A tokenizer.json spells its pipeline as a tree of components (normalizer,
// pre_tokenizer, decoder, post_processor). The runtime implements a fixed
// set of pipelines; this maps the tree onto one of them, or says which
// component is not supported.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_JSONPIPELINE_H
#define KVRT_TOKENIZER_JSONPIPELINE_H

#include "kvrt/Tokenizer.h"
#include "runtime/src/tokenizer/JsonFields.h"

#include <optional>

namespace kvrt::tokenizer {

/// The pipeline a tokenizer.json declares, in spec terms.
struct JsonPipeline {
  TokenizerModelKind model = TokenizerModelKind::ByteLevelBpe;
  PreTokenizerKind preTokenizer = PreTokenizerKind::None;
  bool addSpacePrefix = false;
  /// What the post-processor puts before and after the text.
  std::optional<int64_t> bosId;
  std::optional<int64_t> eosId;
};

/// Recognises the components of the document `root`. `byteFallback` is the
/// model's flag, which the decoder must undo.
StatusOr<JsonPipeline> readJsonPipeline(const json::Value &root,
                                        bool byteFallback,
                                        const JsonFields &fields);

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_JSONPIPELINE_H
