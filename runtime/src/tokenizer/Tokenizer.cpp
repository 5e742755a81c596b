//===- Tokenizer.cpp - Encoding and decoding with a TokenizerSpec ---------===//
//
// The pipeline of `tokenizers`: cut out added tokens matched on the raw
// text, normalize the rest, cut out added tokens matched on the normalized
// text, pre-tokenize into words, run BPE on each word, add BOS/EOS.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include "kvrt/Json.h"
#include "runtime/src/tokenizer/AddedTokens.h"
#include "runtime/src/tokenizer/Bpe.h"
#include "runtime/src/tokenizer/ByteLevel.h"
#include "runtime/src/tokenizer/Decoder.h"
#include "runtime/src/tokenizer/PreTokenizer.h"
#include "runtime/src/tokenizer/SpecCheck.h"
#include "runtime/src/tokenizer/Unicode.h"

#include <array>
#include <cstdio>

namespace kvrt {

using namespace tokenizer;

struct Tokenizer::Impl {
  TokenizerSpec spec;
  bool byteLevel = true;
  /// The BPE model's vocabulary, viewing spec.tokens.
  VocabMap vocab;
  MergeTable merges;
  /// Byte-level: the id of each byte's character. Metaspace: the id of each
  /// <0xNN> token. -1 where the vocabulary has none.
  std::array<int32_t, 256> byteIds;
  AddedTokenMatcher rawMatcher;
  AddedTokenMatcher normalizedMatcher;
  std::vector<bool> special;
  PieceDecoder decoder;
  std::vector<DecodePiece> pieces;

  explicit Impl(TokenizerSpec s) : spec(std::move(s)) {}
  void build();

  std::string normalize(std::string_view text) const;
  void encodePlain(std::string_view text, std::vector<int32_t> &ids) const;
  void encodeByteLevelWord(std::string_view word,
                           std::vector<int32_t> &ids) const;
  void encodeMetaspaceWord(std::string_view word,
                           std::vector<int32_t> &ids) const;
  /// The decode pieces of the ids that decode() keeps.
  std::vector<const DecodePiece *> piecesOf(const std::vector<int32_t> &ids,
                                            bool skipSpecial) const;
};

void Tokenizer::Impl::build() {
  byteLevel = spec.model == TokenizerModelKind::ByteLevelBpe;
  size_t n = spec.tokens.size();

  std::vector<bool> inModel(n, true);
  for (const AddedTokenSpec &t : spec.addedTokens)
    inModel[t.id] = t.inModel;
  vocab.reserve(n);
  for (size_t i = 0; i < n; ++i)
    if (inModel[i]) // Later duplicates win, as in llama.cpp's token_to_id.
      vocab[spec.tokens[i]] = static_cast<int32_t>(i);

  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto &[left, right] = spec.merges[rank];
    merges.add(vocab.at(left), vocab.at(right), static_cast<uint32_t>(rank),
               vocab.at(left + right));
  }

  for (int b = 0; b < 256; ++b) {
    std::string text;
    if (byteLevel) {
      text = byteLevelText(static_cast<uint8_t>(b));
    } else {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      text = name;
    }
    auto it = vocab.find(text);
    byteIds[b] = it == vocab.end() ? -1 : it->second;
  }

  special.assign(n, false);
  for (size_t i = 0; i < n; ++i)
    special[i] = spec.tokenTypes[i] == TokenType::Control;
  decoder = PieceDecoder(byteLevel, !byteLevel && spec.addSpacePrefix);
  pieces.reserve(n);
  for (size_t i = 0; i < n; ++i)
    pieces.push_back(decoder.makePiece(spec.tokens[i]));

  std::vector<AddedPattern> raw, normalized;
  for (const AddedTokenSpec &t : spec.addedTokens) {
    if (t.special)
      special[t.id] = true;
    AddedPattern p{t.content, t.id, t.lstrip, t.rstrip, t.singleWord};
    if (t.normalized) {
      // tokenizers matches these in their normalized form, and decodes them
      // from it too.
      p.text = normalize(t.content);
      pieces[t.id] = decoder.makePiece(p.text);
      normalized.push_back(std::move(p));
    } else {
      raw.push_back(std::move(p));
    }
  }
  rawMatcher = AddedTokenMatcher(std::move(raw));
  normalizedMatcher = AddedTokenMatcher(std::move(normalized));
}

std::string Tokenizer::Impl::normalize(std::string_view text) const {
  if (byteLevel || text.empty())
    return std::string(text);
  std::string out;
  out.reserve(text.size() + text.size() / 2 + kMetaspace.size());
  if (spec.addSpacePrefix)
    out += kMetaspace;
  for (char c : text) {
    if (c == ' ')
      out += kMetaspace;
    else
      out += c;
  }
  return out;
}

void Tokenizer::Impl::encodeByteLevelWord(std::string_view word,
                                          std::vector<int32_t> &ids) const {
  if (spec.ignoreMerges) {
    std::string mapped;
    for (char c : word)
      mapped += byteLevelText(static_cast<uint8_t>(c));
    auto it = vocab.find(mapped);
    if (it != vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  SymbolBuilder builder(symbols, spec.unkId, spec.fuseUnknown);
  for (char c : word) {
    int32_t id = byteIds[static_cast<uint8_t>(c)];
    if (id >= 0)
      builder.addKnown(id);
    else
      builder.addUnknown();
  }
  builder.finish();
  merges.apply(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
}

void Tokenizer::Impl::encodeMetaspaceWord(std::string_view word,
                                          std::vector<int32_t> &ids) const {
  if (spec.model == TokenizerModelKind::MetaspaceScoreBpe) {
    std::vector<std::pair<size_t, size_t>> found;
    scoreMerge(word, vocab, spec.scores, found);
    for (auto [begin, end] : found) {
      auto it = vocab.find(word.substr(begin, end - begin));
      if (it != vocab.end()) {
        ids.push_back(it->second);
        continue;
      }
      // llama.cpp writes what no piece covers as byte tokens.
      for (size_t k = begin; k < end; ++k) {
        int32_t id = byteIds[static_cast<uint8_t>(word[k])];
        if (id >= 0)
          ids.push_back(id);
        else if (spec.unkId >= 0)
          ids.push_back(spec.unkId);
      }
    }
    return;
  }
  if (spec.ignoreMerges) {
    auto it = vocab.find(word);
    if (it != vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  SymbolBuilder builder(symbols, spec.unkId, spec.fuseUnknown);
  for (size_t pos = 0; pos < word.size();) {
    char32_t c;
    size_t len = decodeUtf8(word, pos, c);
    auto it = vocab.find(word.substr(pos, len));
    if (it != vocab.end()) {
      builder.addKnown(it->second);
    } else {
      bool covered = spec.byteFallback;
      for (size_t k = 0; covered && k < len; ++k)
        covered = byteIds[static_cast<uint8_t>(word[pos + k])] >= 0;
      if (covered) {
        for (size_t k = 0; k < len; ++k)
          builder.addByte(byteIds[static_cast<uint8_t>(word[pos + k])]);
      } else {
        builder.addUnknown();
      }
    }
    pos += len;
  }
  builder.finish();
  merges.apply(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
}

void Tokenizer::Impl::encodePlain(std::string_view text,
                                  std::vector<int32_t> &ids) const {
  if (!byteLevel) {
    encodeMetaspaceWord(text, ids);
    return;
  }
  std::vector<WordRange> pieces;
  if (spec.preTokenizer == PreTokenizerKind::SmolLM)
    splitDigits(text, pieces);
  else
    pieces.emplace_back(0, text.size());
  std::string prefixed;
  std::vector<WordRange> words;
  for (auto [begin, end] : pieces) {
    std::string_view piece = text.substr(begin, end - begin);
    if (piece.empty())
      continue;
    // ByteLevel's add_prefix_space works on each piece it is given.
    if (spec.addSpacePrefix && piece[0] != ' ') {
      prefixed = " ";
      prefixed += piece;
      piece = prefixed;
    }
    words.clear();
    splitWords(spec.preTokenizer, piece, words);
    for (auto [wordBegin, wordEnd] : words)
      encodeByteLevelWord(piece.substr(wordBegin, wordEnd - wordBegin), ids);
  }
}

StatusOr<Tokenizer> Tokenizer::create(TokenizerSpec spec) {
  KVRT_RETURN_IF_ERROR(
      checkTokenizerSpec(spec, "tokenizer spec", kSpecFieldNames));
  auto impl = std::make_shared<Impl>(std::move(spec));
  impl->build();
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text,
                                       bool addSpecial) const {
  const Impl &m = *impl_;
  std::string repaired;
  if (!json::isValidUtf8(text)) {
    repaired = toValidUtf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  if (addSpecial && m.spec.addBos)
    ids.push_back(m.spec.bosId);
  std::vector<TextPiece> rawPieces, normalizedPieces;
  m.rawMatcher.split(text, rawPieces);
  for (const TextPiece &raw : rawPieces) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    std::string normalized =
        m.normalize(text.substr(raw.begin, raw.end - raw.begin));
    normalizedPieces.clear();
    m.normalizedMatcher.split(normalized, normalizedPieces);
    for (const TextPiece &piece : normalizedPieces) {
      if (piece.id >= 0)
        ids.push_back(piece.id);
      else
        m.encodePlain(std::string_view(normalized)
                          .substr(piece.begin, piece.end - piece.begin),
                      ids);
    }
  }
  if (addSpecial && m.spec.addEos)
    ids.push_back(m.spec.eosId);
  return ids;
}

std::vector<const DecodePiece *>
Tokenizer::Impl::piecesOf(const std::vector<int32_t> &ids,
                          bool skipSpecial) const {
  std::vector<const DecodePiece *> out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces.size())
      continue;
    if (skipSpecial && special[id])
      continue;
    out.push_back(&pieces[id]);
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids,
                              bool skipSpecial) const {
  return impl_->decoder.decode(impl_->piecesOf(ids, skipSpecial));
}

bool Tokenizer::endsInsideCharacter(const std::vector<int32_t> &ids,
                                    bool skipSpecial) const {
  return impl_->decoder.endsInsideCharacter(impl_->piecesOf(ids, skipSpecial));
}

int32_t Tokenizer::bosId() const { return impl_->spec.bosId; }
int32_t Tokenizer::eosId() const { return impl_->spec.eosId; }
int32_t Tokenizer::unkId() const { return impl_->spec.unkId; }
int32_t Tokenizer::padId() const { return impl_->spec.padId; }
size_t Tokenizer::vocabSize() const { return impl_->spec.tokens.size(); }

const std::string &Tokenizer::tokenText(int32_t id) const {
  static const std::string empty;
  if (id < 0 || static_cast<size_t>(id) >= impl_->spec.tokens.size())
    return empty;
  return impl_->spec.tokens[id];
}

bool Tokenizer::isSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() &&
         impl_->special[id];
}

const TokenizerSpec &Tokenizer::spec() const { return impl_->spec; }

} // namespace kvrt
