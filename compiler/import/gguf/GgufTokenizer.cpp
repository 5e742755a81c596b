//===- GgufTokenizer.cpp - A GGUF file's tokenizer metadata ---------------===//
#include "compiler/import/gguf/GgufTokenizer.h"

namespace kvopt::formats {

kvrt::StatusOr<kvrt::GgufTokenizerFields>
readGgufTokenizerFields(const GgufFile &f) {
  kvrt::GgufTokenizerFields t;
  KVRT_ASSIGN_OR_RETURN(t.model, f.getString("tokenizer.ggml.model"));
  if (f.has("tokenizer.ggml.pre"))
    KVRT_ASSIGN_OR_RETURN(t.pre, f.getString("tokenizer.ggml.pre"));
  KVRT_ASSIGN_OR_RETURN(t.tokens, f.getStringArray("tokenizer.ggml.tokens"));
  if (f.has("tokenizer.ggml.merges"))
    KVRT_ASSIGN_OR_RETURN(t.merges, f.getStringArray("tokenizer.ggml.merges"));
  if (f.has("tokenizer.ggml.scores"))
    KVRT_ASSIGN_OR_RETURN(t.scores, f.getFloatArray("tokenizer.ggml.scores"));
  if (f.has("tokenizer.ggml.token_type"))
    KVRT_ASSIGN_OR_RETURN(t.tokenTypes,
                          f.getInt32Array("tokenizer.ggml.token_type"));
  if (f.has("tokenizer.chat_template"))
    KVRT_ASSIGN_OR_RETURN(t.chatTemplate,
                          f.getString("tokenizer.chat_template"));
  for (auto [key, field] : {std::pair{"tokenizer.ggml.bos_token_id", &t.bosId},
                            {"tokenizer.ggml.eos_token_id", &t.eosId},
                            {"tokenizer.ggml.unknown_token_id", &t.unknownId},
                            {"tokenizer.ggml.padding_token_id", &t.paddingId}})
    if (f.has(key))
      KVRT_ASSIGN_OR_RETURN(*field, f.getInt(key));
  for (auto [key, field] :
       {std::pair{"tokenizer.ggml.add_bos_token", &t.addBosToken},
        {"tokenizer.ggml.add_eos_token", &t.addEosToken},
        {"tokenizer.ggml.add_space_prefix", &t.addSpacePrefix}})
    if (f.has(key))
      KVRT_ASSIGN_OR_RETURN(*field, f.getBool(key));
  return t;
}

} // namespace kvopt::formats
