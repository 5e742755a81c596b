//===- HfTokenizer.h - The tokenizer files of a Hugging Face folder -*- C++
//-*-===//
#ifndef KVOPT_COMPILER_IMPORT_HF_HFTOKENIZER_H
#define KVOPT_COMPILER_IMPORT_HF_HFTOKENIZER_H

#include "compiler/import/Importer.h"

namespace kvopt::import {

/// The tokenizer of the folder `dir`. tokenizer.json wins when present: it
/// is what transformers loads first, and it spells out the added tokens and
/// what encode adds. Otherwise a SentencePiece BPE tokenizer.model is read
/// into the artifact's GGUF-style vocabulary, with add_bos_token,
/// add_eos_token, bos_token, eos_token, pad_token and chat_template taken
/// from tokenizer_config.json when it has them (BOS added and EOS not, as
/// transformers' LlamaTokenizer and llama.cpp do, when it does not).
kvrt::StatusOr<TokenizerSource> readHfTokenizer(const std::string &dir);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_HF_HFTOKENIZER_H
