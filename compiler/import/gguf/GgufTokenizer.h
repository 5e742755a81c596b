//===- GgufTokenizer.h - A GGUF file's tokenizer metadata -------*- C++ -*-===//
//
// The tokenizer.* keys of a GGUF file, typed as the runtime reads them
// (kvrt::tokenizerSpecFromGgufMetadata builds the tokenizer). Without
// MLIR, so that the GGUF fuzzer reaches the tokenizer too.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_IMPORT_GGUF_GGUFTOKENIZER_H
#define KVOPT_IMPORT_GGUF_GGUFTOKENIZER_H

#include "compiler/import/gguf/GgufFile.h"

#include "kvrt/Tokenizer.h"

namespace kvopt::formats {

/// The tokenizer fields of `file`; tokenizer.ggml.model and .tokens are
/// required, the others optional. A key of the wrong type is an error
/// naming the file and the key.
kvrt::StatusOr<kvrt::GgufTokenizerFields>
readGgufTokenizerFields(const GgufFile &file);

} // namespace kvopt::formats

#endif // KVOPT_IMPORT_GGUF_GGUFTOKENIZER_H
