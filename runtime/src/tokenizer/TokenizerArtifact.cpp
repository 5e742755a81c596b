//===- TokenizerArtifact.cpp - The tokenizer stored in an artifact --------===//
//
// The artifact keeps the tokenizer as its source described it (the Hugging
// Face files verbatim, or the GGUF vocabulary field by field), so the same
// readers that the compiler checks it with rebuild it here.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"
#include "runtime/schema/kvpkg.pb.h"

namespace kvrt {

StatusOr<TokenizerSpec>
tokenizerSpecFromArtifact(const schema::Tokenizer &stored,
                          const std::string &artifactName) {
  switch (stored.source_case()) {
  case schema::Tokenizer::kHf:
    return tokenizerSpecFromJson(stored.hf().tokenizer_json(),
                                 stored.hf().tokenizer_config_json(),
                                 artifactName + ": tokenizer.hf");
  case schema::Tokenizer::kGguf: {
    const schema::GgufVocabulary &v = stored.gguf();
    GgufTokenizerFields g;
    g.model = v.model();
    g.pre = v.pre();
    g.tokens.assign(v.tokens().begin(), v.tokens().end());
    g.tokenTypes.assign(v.token_types().begin(), v.token_types().end());
    g.scores.assign(v.scores().begin(), v.scores().end());
    g.merges.assign(v.merges().begin(), v.merges().end());
    if (v.has_bos_id())
      g.bosId = v.bos_id();
    if (v.has_eos_id())
      g.eosId = v.eos_id();
    if (v.has_unk_id())
      g.unknownId = v.unk_id();
    if (v.has_pad_id())
      g.paddingId = v.pad_id();
    if (v.has_add_bos())
      g.addBosToken = v.add_bos();
    if (v.has_add_eos())
      g.addEosToken = v.add_eos();
    if (v.has_add_space_prefix())
      g.addSpacePrefix = v.add_space_prefix();
    g.chatTemplate = stored.chat_template();
    return tokenizerSpecFromGgufMetadata(g, artifactName + ": tokenizer.gguf");
  }
  case schema::Tokenizer::SOURCE_NOT_SET:
    break;
  }
  return Status::error(artifactName +
                       " has no tokenizer; give token ids instead of text");
}

} // namespace kvrt
