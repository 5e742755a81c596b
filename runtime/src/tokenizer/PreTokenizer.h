//===- PreTokenizer.h - Cutting byte-level text into words ------*- C++ -*-===//
//
// The pre-tokenizer regexes of GPT-2, Llama-3 and Qwen2, written by hand:
// each alternative is tried in order at the current character, with the
// backtracking Oniguruma would do, so the words are the same as `tokenizers`
// gets from its regex engine.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_PRETOKENIZER_H
#define KVRT_TOKENIZER_PRETOKENIZER_H

#include "kvrt/Tokenizer.h"

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace kvrt::tokenizer {

/// A word as byte offsets [first, second) into the text it came from.
using WordRange = std::pair<size_t, size_t>;

/// Appends the words of well-formed UTF-8 `text` to `words`, cut by
/// `kind`'s regex (PreTokenizerKind::SmolLM cuts by the GPT-2 regex here;
/// splitDigits() does its first step). None yields the whole text.
void splitWords(PreTokenizerKind kind, std::string_view text,
                std::vector<WordRange> &words);

/// Appends the pieces of `text` with every number character (Unicode N*)
/// alone, as the Digits(individual_digits) pre-tokenizer does.
void splitDigits(std::string_view text, std::vector<WordRange> &pieces);

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_PRETOKENIZER_H
