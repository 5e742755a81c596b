//===- ByteLevel.h - GPT-2's bytes as printable characters ------*- C++ -*-===//
//
// Byte-level BPE vocabularies spell every byte as one printable character
// (space is 'Ġ', newline 'Ċ'), so that any byte string is a sequence of
// vocabulary characters. This is GPT-2's bytes_to_unicode table.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_BYTELEVEL_H
#define KVRT_TOKENIZER_BYTELEVEL_H

#include <cstdint>
#include <string>
#include <string_view>

namespace kvrt::tokenizer {

/// The character that stands for byte `b`.
char32_t byteLevelChar(uint8_t b);

/// The byte `c` stands for, or -1 when `c` stands for none.
int byteLevelByte(char32_t c);

/// The UTF-8 of byteLevelChar(b), precomputed.
const std::string &byteLevelText(uint8_t b);

/// The bytes a byte-level token stands for; `token` itself when one of its
/// characters stands for no byte (as the ByteLevel decoder does).
std::string byteLevelDecode(std::string_view token);

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_BYTELEVEL_H
