//===- SentencePieceModel.cpp - tokenizer.model files ---------------------===//
//
// SentencePiece's BPE encoder starts from the characters of the normalized
// text and merges, highest score first and leftmost on ties, the adjacent
// pair whose concatenation is a piece; a character no piece covers becomes
// its <0xNN> byte pieces under byte fallback. The runtime's "llama"
// vocabulary does the same, with two differences this reader guards
// against: it may merge into (or start from) any piece, where SentencePiece
// only uses normal ones, and it writes one <unk> per byte where
// SentencePiece writes one per run of unknown characters.
//
//===----------------------------------------------------------------------===//
#include "compiler/import/sentencepiece/SentencePieceModel.h"
#include "compiler/import/formats/Quote.h"
#include "compiler/import/sentencepiece/proto/sentencepiece_model.pb.h"

#include "kvrt/Json.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <unordered_map>

namespace kvopt::formats {

namespace {

namespace spm = kvopt::sentencepiece;

/// ModelProto.SentencePiece.Type, numbered as GGUF's token_type is.
enum PieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

/// TrainerSpec.ModelType.
enum ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

/// U+2581, which SentencePiece writes for a space.
constexpr std::string_view kMetaspace = "\xE2\x96\x81";

const char *pieceTypeName(int32_t type) {
  static constexpr const char *kNames[] = {"NORMAL",       "UNKNOWN", "CONTROL",
                                           "USER_DEFINED", "UNUSED",  "BYTE"};
  return type >= kNormal && type <= kByte ? kNames[type - 1] : "?";
}

/// Builds one-sentence errors: "<file>: <field> <problem>".
class Errors {
public:
  explicit Errors(const std::string &source) : source_(source) {}
  kvrt::Status operator()(const std::string &field,
                          const std::string &problem) const {
    return kvrt::Status::error(source_ + ": " + field + " " + problem);
  }

private:
  const std::string &source_;
};

std::string pieceField(size_t index) {
  return "pieces[" + std::to_string(index) + "]";
}

kvrt::Status checkTrainerSpec(const spm::TrainerSpec &trainer,
                              const Errors &error) {
  switch (trainer.model_type()) {
  case kBpe:
    break;
  case kUnigram:
    return error("trainer_spec.model_type",
                 "is UNIGRAM; kvopt tokenizes SentencePiece BPE models only "
                 "(a unigram model picks the likeliest segmentation, which "
                 "the runtime's merging does not reproduce)");
  case kWord:
  case kChar:
    return error("trainer_spec.model_type",
                 std::string("is ") +
                     (trainer.model_type() == kWord ? "WORD" : "CHAR") +
                     "; kvopt tokenizes SentencePiece BPE models only");
  default:
    return error("trainer_spec.model_type",
                 "is " + std::to_string(trainer.model_type()) +
                     ", which is no SentencePiece model type");
  }
  if (trainer.treat_whitespace_as_suffix())
    return error("trainer_spec.treat_whitespace_as_suffix",
                 "is true; the runtime puts the space marker before words");
  if (!trainer.byte_fallback())
    return error("trainer_spec.byte_fallback",
                 "is false; the runtime writes an unknown character as one "
                 "<unk> per byte, SentencePiece as one per run, so only "
                 "models with byte fallback are supported");
  return kvrt::Status::ok();
}

/// Refuses Unicode normalization and whitespace handling that the runtime
/// does not apply. `field` is "normalizer_spec" or "denormalizer_spec".
kvrt::Status checkNormalizer(const spm::NormalizerSpec &spec,
                             const std::string &field, const Errors &error) {
  if (!spec.precompiled_charsmap().empty())
    return error(field + ".precompiled_charsmap",
                 "is not empty (rule " + quote(spec.name()) +
                     "); the runtime applies no Unicode normalization, so "
                     "only the identity rule is supported");
  if (!spec.normalization_rule_tsv().empty())
    return error(field + ".normalization_rule_tsv",
                 "holds custom normalization rules, which the runtime does "
                 "not apply; only the identity rule is supported");
  if (field != "normalizer_spec")
    return kvrt::Status::ok();
  if (spec.remove_extra_whitespaces())
    return error(field + ".remove_extra_whitespaces",
                 "is true; SentencePiece then folds runs of spaces, which "
                 "the runtime keeps");
  if (!spec.escape_whitespaces())
    return error(field + ".escape_whitespaces",
                 "is false; the runtime always writes spaces as U+2581");
  return kvrt::Status::ok();
}

/// 0-255 for a piece spelled <0xNN> as SentencePiece writes byte pieces.
int byteOfPiece(const std::string &piece) {
  unsigned value = 0;
  char check[8];
  if (piece.size() != 6 || std::sscanf(piece.c_str(), "<0x%2X>", &value) != 1)
    return -1;
  std::snprintf(check, sizeof(check), "<0x%02X>", value);
  return piece == check ? int(value) : -1;
}

/// The end of the UTF-8 character that starts at `pos` in valid UTF-8.
size_t characterEnd(std::string_view text, size_t pos) {
  ++pos;
  while (pos < text.size() && (uint8_t(text[pos]) & 0xC0) == 0x80)
    ++pos;
  return pos;
}

/// True when the runtime could emit `piece` for text: it starts from single
/// characters found in the vocabulary and merges any two symbols (single
/// characters or pieces) whose concatenation is a piece.
bool runtimeCanReach(std::string_view piece,
                     const std::unordered_map<std::string_view, int32_t> &ids) {
  auto isSymbol = [&](std::string_view s) {
    return ids.count(s) || characterEnd(s, 0) == s.size();
  };
  if (characterEnd(piece, 0) == piece.size())
    return true;
  for (size_t split = characterEnd(piece, 0); split < piece.size();
       split = characterEnd(piece, split))
    if (isSymbol(piece.substr(0, split)) && isSymbol(piece.substr(split)))
      return true;
  return false;
}

kvrt::Status readPieces(const spm::ModelProto &model, const Errors &error,
                        kvrt::GgufTokenizerFields &out) {
  size_t n = size_t(model.pieces_size());
  if (n == 0 || n > kMaxSentencePieces)
    return error("pieces", "has " + std::to_string(n) + " entries; 1 to " +
                               std::to_string(kMaxSentencePieces) +
                               " are supported");
  out.tokens.reserve(n);
  out.tokenTypes.reserve(n);
  out.scores.reserve(n);
  std::unordered_map<std::string_view, int32_t> ids;
  std::array<bool, 256> bytesSeen{};
  for (size_t i = 0; i < n; ++i) {
    const spm::ModelProto::SentencePiece &p = model.pieces(int(i));
    const std::string &text = p.piece();
    int32_t type = p.type();
    if (text.empty() || text.size() > kMaxSentencePieceBytes)
      return error(pieceField(i) + ".piece",
                   "has " + std::to_string(text.size()) + " bytes; 1 to " +
                       std::to_string(kMaxSentencePieceBytes) +
                       " are supported");
    if (!kvrt::json::isValidUtf8(text))
      return error(pieceField(i) + ".piece",
                   quote(text) + " is not valid UTF-8");
    if (type < kNormal || type > kByte)
      return error(pieceField(i) + ".type",
                   "is " + std::to_string(type) +
                       "; piece types are 1 (NORMAL) to 6 (BYTE)");
    if (!std::isfinite(p.score()))
      return error(pieceField(i) + ".score", "is not a finite number");
    if (type == kUserDefined || type == kUnused)
      return error(pieceField(i) + ".type",
                   std::string("of ") + quote(text) + " is " +
                       pieceTypeName(type) +
                       (type == kUserDefined
                            ? "; SentencePiece matches user-defined pieces in "
                              "normalized text, the runtime in raw text, so "
                              "their ids would differ"
                            : "; SentencePiece splits unused pieces again, "
                              "the runtime would emit them"));
    if (type == kByte) {
      int byte = byteOfPiece(text);
      if (byte < 0)
        return error(pieceField(i) + ".piece",
                     quote(text) + " is a BYTE piece not spelled <0xNN>");
      bytesSeen[size_t(byte)] = true;
    }
    if (type == kUnknown) {
      if (out.unknownId)
        return error(pieceField(i) + ".type",
                     "is UNKNOWN, and so is pieces[" +
                         std::to_string(*out.unknownId) +
                         "]; a model has exactly one");
      out.unknownId = int64_t(i);
    }
    if (!ids.emplace(text, int32_t(i)).second)
      return error(pieceField(i) + ".piece", quote(text) + " repeats pieces[" +
                                                 std::to_string(ids[text]) +
                                                 "]");
    out.tokens.push_back(text);
    out.tokenTypes.push_back(type);
    out.scores.push_back(p.score());
  }
  if (!out.unknownId)
    return error("pieces", "has no UNKNOWN piece; SentencePiece models have "
                           "exactly one");
  for (size_t b = 0; b < bytesSeen.size(); ++b)
    if (!bytesSeen[b]) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", unsigned(b));
      return error("pieces", std::string("has no BYTE piece ") + name +
                                 ", which byte fallback needs");
    }
  // Pieces SentencePiece never produces from text must stay out of the
  // runtime's reach too. Control and unknown pieces without a space are
  // matched verbatim before merging, so only the rest can be reached.
  for (size_t i = 0; i < n; ++i) {
    int32_t type = out.tokenTypes[i];
    const std::string &text = out.tokens[i];
    bool verbatim = (type == kControl || type == kUnknown) &&
                    text.find(kMetaspace) == std::string::npos;
    if (type != kNormal && !verbatim && runtimeCanReach(text, ids))
      return error(pieceField(i) + ".piece",
                   quote(text) + " is a " + pieceTypeName(type) +
                       " piece that merging could produce; SentencePiece "
                       "never does, the runtime would");
  }
  return kvrt::Status::ok();
}

/// The id of the control piece `text`, as SentencePiece's bos_id() and
/// friends find it; unset when there is none.
std::optional<int64_t> controlPieceId(const kvrt::GgufTokenizerFields &fields,
                                      const std::string &text) {
  for (size_t i = 0; i < fields.tokens.size(); ++i)
    if (fields.tokens[i] == text)
      return fields.tokenTypes[i] == kControl ? std::optional<int64_t>(i)
                                              : std::nullopt;
  return std::nullopt;
}

} // namespace

kvrt::StatusOr<kvrt::GgufTokenizerFields>
readSentencePieceModel(const FileBytes &file) {
  Errors error(file.name());
  if (file.size() > kMaxSentencePieceModelBytes)
    return error("the file", "has " + std::to_string(file.size()) +
                                 " bytes; SentencePiece models of at most " +
                                 std::to_string(kMaxSentencePieceModelBytes) +
                                 " bytes are supported");
  spm::ModelProto model;
  if (!model.ParseFromArray(file.data(), int(file.size())))
    return error("the file", "is not a SentencePiece model: its ModelProto "
                             "does not parse");
  KVRT_RETURN_IF_ERROR(checkTrainerSpec(model.trainer_spec(), error));
  KVRT_RETURN_IF_ERROR(
      checkNormalizer(model.normalizer_spec(), "normalizer_spec", error));
  KVRT_RETURN_IF_ERROR(
      checkNormalizer(model.denormalizer_spec(), "denormalizer_spec", error));
  kvrt::GgufTokenizerFields fields;
  fields.model = "llama";
  KVRT_RETURN_IF_ERROR(readPieces(model, error, fields));
  const spm::TrainerSpec &trainer = model.trainer_spec();
  fields.bosId = controlPieceId(fields, trainer.bos_piece());
  fields.eosId = controlPieceId(fields, trainer.eos_piece());
  fields.paddingId = controlPieceId(fields, trainer.pad_piece());
  fields.addSpacePrefix = model.normalizer_spec().add_dummy_prefix();
  return fields;
}

} // namespace kvopt::formats
