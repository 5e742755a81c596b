//===- Decoder.cpp - Token pieces back to text ----------------------------===//
#include "runtime/src/tokenizer/Decoder.h"

#include "kvrt/Json.h"
#include "runtime/src/tokenizer/ByteLevel.h"
#include "runtime/src/tokenizer/Unicode.h"

namespace kvrt::tokenizer {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// The byte of a "<0xNN>" token as the ByteFallback decoder reads it: six
/// bytes, and NN parsed like Rust's u8::from_str_radix (which also takes
/// "+N").
int fallbackByte(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>')
    return -1;
  if (token[3] == '+')
    return hexDigit(token[4]);
  int hi = hexDigit(token[3]), lo = hexDigit(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

} // namespace

DecodePiece PieceDecoder::makePiece(std::string_view tokenText) const {
  DecodePiece piece;
  if (byteLevel_) {
    piece.text = byteLevelDecode(tokenText);
    return piece;
  }
  for (size_t pos = 0; pos < tokenText.size();) {
    size_t found = tokenText.find(kMetaspace, pos);
    if (found == std::string_view::npos) {
      piece.text.append(tokenText.substr(pos));
      break;
    }
    piece.text.append(tokenText.substr(pos, found - pos));
    piece.text += ' ';
    pos = found + kMetaspace.size();
  }
  piece.byte = static_cast<int16_t>(fallbackByte(piece.text));
  return piece;
}

std::string
PieceDecoder::decode(const std::vector<const DecodePiece *> &pieces) const {
  std::string out;
  if (byteLevel_) {
    for (const DecodePiece *p : pieces)
      out += p->text;
    return json::isValidUtf8(out) ? out : toValidUtf8(out);
  }
  std::string bytes;
  auto flushBytes = [&] {
    if (json::isValidUtf8(bytes)) {
      out += bytes;
    } else {
      for (size_t i = 0; i < bytes.size(); ++i)
        appendUtf8(out, kReplacementChar);
    }
    bytes.clear();
  };
  for (const DecodePiece *p : pieces) {
    if (p->byte >= 0) {
      bytes += static_cast<char>(p->byte);
      continue;
    }
    flushBytes();
    out += p->text;
  }
  flushBytes();
  if (stripLeadingSpace_ && !out.empty() && out[0] == ' ')
    out.erase(0, 1);
  return out;
}

bool PieceDecoder::endsInsideCharacter(
    const std::vector<const DecodePiece *> &pieces) const {
  // Byte-level: all bytes run together. Metaspace: only the trailing run of
  // <0xNN> tokens can be unfinished. Either way four bytes decide.
  std::string tail;
  for (size_t i = pieces.size(); i > 0 && tail.size() < 4; --i) {
    const DecodePiece &p = *pieces[i - 1];
    if (byteLevel_)
      tail.insert(0, p.text);
    else if (p.byte >= 0)
      tail.insert(tail.begin(), static_cast<char>(p.byte));
    else
      break;
  }
  return tokenizer::endsInsideCharacter(tail);
}

} // namespace kvrt::tokenizer
