//===- Decoder.h - Token pieces back to text --------------------*- C++ -*-===//
//
// The decoder chains of the two model kinds:
//  - byte-level: each token's characters back to bytes (ByteLevel decoder);
//  - metaspace: U+2581 back to spaces, runs of <0xNN> tokens back to UTF-8
//    (U+FFFD per byte when they do not form it), joined, and the space the
//    normalizer prepended dropped (Replace, ByteFallback, Fuse, Strip).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_DECODER_H
#define KVRT_TOKENIZER_DECODER_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvrt::tokenizer {

/// What one token contributes to decoded text, computed once per id.
struct DecodePiece {
  /// Bytes (byte-level) or text with U+2581 as spaces (metaspace).
  std::string text;
  /// The byte of a <0xNN> token (metaspace only), or -1.
  int16_t byte = -1;
};

/// The decoder chain of a model kind.
class PieceDecoder {
public:
  PieceDecoder() = default;
  PieceDecoder(bool byteLevel, bool stripLeadingSpace)
      : byteLevel_(byteLevel), stripLeadingSpace_(stripLeadingSpace) {}

  /// The piece of a token whose vocabulary text is `tokenText`.
  DecodePiece makePiece(std::string_view tokenText) const;

  /// The text of `pieces` in order; always valid UTF-8.
  std::string decode(const std::vector<const DecodePiece *> &pieces) const;

  /// True when the bytes of `pieces` end inside a UTF-8 character that
  /// further pieces could complete.
  bool
  endsInsideCharacter(const std::vector<const DecodePiece *> &pieces) const;

private:
  bool byteLevel_ = true;
  bool stripLeadingSpace_ = false;
};

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_DECODER_H
