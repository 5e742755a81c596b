//===- SentencePieceModel.h - tokenizer.model files -------------*- C++ -*-===//
//
// A SentencePiece model file (the ModelProto of a Hugging Face folder's
// tokenizer.model) read into the GGUF "llama" vocabulary that llama.cpp's
// converter writes for it; the artifact stores it in that form and the
// runtime tokenizes it with its SentencePiece-BPE path. Links no
// libsentencepiece: the schema subset is compiled here.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_SENTENCEPIECE_SENTENCEPIECEMODEL_H
#define KVOPT_COMPILER_IMPORT_SENTENCEPIECE_SENTENCEPIECEMODEL_H

#include "compiler/import/formats/FileBytes.h"
#include "kvrt/Tokenizer.h"

#include <cstddef>
#include <cstdint>

namespace kvopt::formats {

/// Largest tokenizer.model accepted (real ones are under 5 MB).
constexpr uint64_t kMaxSentencePieceModelBytes = uint64_t(64) << 20;
/// Most pieces accepted (real vocabularies have up to 256k).
constexpr size_t kMaxSentencePieces = size_t(1) << 20;
/// Longest piece accepted, in bytes.
constexpr size_t kMaxSentencePieceBytes = 1024;

/// The vocabulary of the BPE model in `file`: pieces, scores and types, the
/// unknown piece, and the BOS, EOS and padding ids where the trainer's
/// bos/eos/pad pieces are control pieces of the model (unset where they are
/// not: a caller must not pass the fields on with bosId or eosId unset,
/// which GGUF readers take as llama.cpp's default ids). addBosToken,
/// addEosToken and chatTemplate are left to tokenizer_config.json.
/// A model the runtime would tokenize differently from SentencePiece is
/// refused: a unigram, word or char model, a normalization rule other than
/// identity, folded or unescaped whitespace, no byte fallback, user-defined
/// or unused pieces. Errors are one sentence naming the file and the field.
kvrt::StatusOr<kvrt::GgufTokenizerFields>
readSentencePieceModel(const FileBytes &file);

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_SENTENCEPIECE_SENTENCEPIECEMODEL_H
