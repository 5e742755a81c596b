//===- Tokenizer.h - Text to token ids and back -----------------*- C++ -*-===//
//
// The runtime's tokenizer. A TokenizerSpec is the neutral description the
// compiler stores in its artifact; it comes from a Hugging Face
// tokenizer.json (+ tokenizer_config.json) or from GGUF metadata. Tokenizer
// rebuilds from it and encodes exactly as the Python `tokenizers` package
// does for the two supported model kinds: byte-level BPE (GPT-2, Llama-3,
// Qwen2, SmolLM) and SentencePiece-style BPE with byte fallback (Llama-2,
// TinyLlama). Chat templates are recognised by kind, never executed.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_H
#define KVRT_TOKENIZER_H

#include "kvrt/Status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvrt {

/// How a word becomes token ids.
enum class TokenizerModelKind : uint8_t {
  /// GPT-2 style: every byte of the text is first written as one printable
  /// character, then adjacent pairs merge by rank.
  ByteLevelBpe,
  /// SentencePiece BPE as tokenizer.json describes it: spaces become U+2581,
  /// pairs merge by rank, characters outside the vocabulary become <0xNN>
  /// byte tokens when byteFallback is set.
  MetaspaceBpe,
  /// llama.cpp's "llama" vocabulary: like MetaspaceBpe, but the adjacent pair
  /// whose concatenation has the highest score merges first.
  MetaspaceScoreBpe,
};

/// How byte-level text is cut into words before BPE.
enum class PreTokenizerKind : uint8_t {
  /// The whole text between added tokens is one word.
  None,
  /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
  /// Llama-3: case-insensitive contractions, a letter run may take one
  /// leading non-letter, digits in runs of at most three, newlines apart.
  Llama3,
  /// Llama-3's regex with every digit alone (Qwen2).
  Qwen2,
  /// Every digit (Unicode N*) alone, then the GPT-2 regex (SmolLM).
  SmolLM,
};

/// What a vocabulary entry is; the values are GGUF's token_type.
enum class TokenType : uint8_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

/// A token matched verbatim in the input before pre-tokenization, as
/// `tokenizers` matches its added tokens (leftmost, then longest).
struct AddedTokenSpec {
  int32_t id = 0;
  std::string content;
  /// Dropped by decode(..., skipSpecial = true).
  bool special = false;
  /// The match also takes the whitespace before the token.
  bool lstrip = false;
  /// The match also takes the whitespace after the token.
  bool rstrip = false;
  /// Matched in the normalized text (spaces already U+2581), not the raw one.
  bool normalized = false;
  /// Only matched when no word character touches it on either side.
  bool singleWord = false;
  /// False when the BPE model itself does not know the token (a
  /// tokenizer.json added token absent from model.vocab): BPE never emits it.
  bool inModel = true;
};

/// Chat formats the runtime writes itself.
enum class ChatTemplateKind : uint8_t {
  /// The model declares no chat template.
  None,
  /// <|im_start|>role\ncontent<|im_end|>\n (SmolLM2, Qwen).
  ChatML,
  /// <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (Llama 3.0).
  Llama3,
};

/// A recognised chat template and the constants it carries.
struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::None;
  /// System message the template inserts when the conversation has none;
  /// empty when it inserts none.
  std::string defaultSystemPrompt;
  /// Text the template writes before the first message (Llama 3's BOS).
  std::string bosText;
};

/// One message of a conversation.
struct ChatMessage {
  std::string role;
  std::string content;
};

/// Everything needed to rebuild a tokenizer; plain data, so the artifact can
/// store it field by field.
struct TokenizerSpec {
  TokenizerModelKind model = TokenizerModelKind::ByteLevelBpe;
  PreTokenizerKind preTokenizer = PreTokenizerKind::None;
  /// Token text indexed by id (ids 0 to N-1, no gaps); byte-level tokens in
  /// their printable form.
  std::vector<std::string> tokens;
  /// One per token.
  std::vector<TokenType> tokenTypes;
  /// One per token for MetaspaceScoreBpe; empty otherwise.
  std::vector<float> scores;
  /// Merges by rank (MetaspaceScoreBpe has none).
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<AddedTokenSpec> addedTokens;
  /// Metaspace models: every piece of text between added tokens starts with
  /// U+2581, and decode drops the first space. Byte-level models: every word
  /// that does not start with a space gets one (ByteLevel add_prefix_space).
  bool addSpacePrefix = false;
  /// Characters outside the vocabulary become <0xNN> tokens.
  bool byteFallback = false;
  /// Consecutive unknown characters make a single unknown token.
  bool fuseUnknown = false;
  /// A word that is itself in the vocabulary is emitted without merging.
  bool ignoreMerges = false;
  /// encode(..., addSpecial = true) starts with bosId / ends with eosId.
  bool addBos = false;
  bool addEos = false;
  /// -1 where the model has none.
  int32_t bosId = -1;
  int32_t eosId = -1;
  int32_t unkId = -1;
  int32_t padId = -1;
  ChatTemplate chatTemplate;
};

/// Reads a Hugging Face tokenizer.json and, when not empty, the
/// tokenizer_config.json beside it (special token names, chat template).
/// What encode adds follows the post_processor, as in `tokenizers`;
/// tokenizer_config's add_bos_token is not read. Errors name `sourceName`
/// and the field at fault.
StatusOr<TokenizerSpec>
tokenizerSpecFromJson(std::string_view tokenizerJson,
                      std::string_view tokenizerConfigJson,
                      const std::string &sourceName);

/// The tokenizer fields of a GGUF file, already decoded by the GGUF reader.
struct GgufTokenizerFields {
  /// tokenizer.ggml.model: "gpt2" or "llama".
  std::string model;
  /// tokenizer.ggml.pre; empty when absent.
  std::string pre;
  std::vector<std::string> tokens;
  /// tokenizer.ggml.token_type; empty when absent.
  std::vector<int32_t> tokenTypes;
  /// tokenizer.ggml.scores; empty when absent.
  std::vector<float> scores;
  /// tokenizer.ggml.merges, each "left right".
  std::vector<std::string> merges;
  std::optional<int64_t> bosId;
  std::optional<int64_t> eosId;
  std::optional<int64_t> unknownId;
  std::optional<int64_t> paddingId;
  std::optional<bool> addBosToken;
  std::optional<bool> addEosToken;
  std::optional<bool> addSpacePrefix;
  /// tokenizer.chat_template; empty when absent.
  std::string chatTemplate;
};

/// Builds a spec from GGUF metadata the way llama.cpp reads it. Errors name
/// `sourceName` and the GGUF key at fault.
StatusOr<TokenizerSpec>
tokenizerSpecFromGgufMetadata(const GgufTokenizerFields &fields,
                              const std::string &sourceName);

namespace schema {
class Tokenizer;
} // namespace schema

/// The spec of the tokenizer an artifact stores (Hugging Face files or a
/// GGUF vocabulary); errors name `artifactName`.
StatusOr<TokenizerSpec>
tokenizerSpecFromArtifact(const schema::Tokenizer &stored,
                          const std::string &artifactName);

/// Recognises a Jinja chat template by the markers it writes; an unknown
/// template is an error, never executed.
StatusOr<ChatTemplate> detectChatTemplate(std::string_view templateText,
                                          const std::string &sourceName);

/// Writes `messages` in the template's format, ending with the assistant
/// header when `addGenerationPrompt`. Encode the result with
/// addSpecial = false: the text already holds what the model expects first.
/// An empty string for ChatTemplateKind::None.
std::string applyChatTemplate(const ChatTemplate &chatTemplate,
                              const std::vector<ChatMessage> &messages,
                              bool addGenerationPrompt);

/// An immutable tokenizer; copies share their tables and may be used from
/// several threads at once.
class Tokenizer {
public:
  /// Checks `spec` (ids in range, merges naming known tokens, ...) and
  /// builds the lookup tables.
  static StatusOr<Tokenizer> create(TokenizerSpec spec);

  /// Token ids of `text`. Added tokens are always recognised; `addSpecial`
  /// adds BOS/EOS as the spec says. Malformed UTF-8 is read as U+FFFD.
  std::vector<int32_t> encode(std::string_view text, bool addSpecial) const;

  /// The text of `ids`; ids out of range are skipped, as are special tokens
  /// when `skipSpecial`. Always valid UTF-8. As in `tokenizers` 0.23, an
  /// added token matched in normalized text decodes from its normalized
  /// form (a space before it); unlike 0.23, skipSpecial drops such tokens
  /// too.
  std::string decode(const std::vector<int32_t> &ids, bool skipSpecial) const;

  /// True when the bytes of `ids` (as decode() sees them) end inside a
  /// UTF-8 character that later ids could complete: a stream should wait.
  bool endsInsideCharacter(const std::vector<int32_t> &ids,
                           bool skipSpecial) const;

  int32_t bosId() const;
  int32_t eosId() const;
  int32_t unkId() const;
  int32_t padId() const;
  /// Number of ids.
  size_t vocabSize() const;
  /// The vocabulary entry of `id` (byte-level tokens in printable form).
  const std::string &tokenText(int32_t id) const;
  /// True for control and special added tokens.
  bool isSpecial(int32_t id) const;
  const TokenizerSpec &spec() const;
  const ChatTemplate &chatTemplate() const { return spec().chatTemplate; }

private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl)
      : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// Turns generated ids into text as they come, emitting only complete UTF-8
/// characters. The concatenated output equals decode() of all ids; the one
/// exception is a metaspace model whose <0xNN> tokens first form a character
/// and then, with more byte tokens, invalid UTF-8 (decode() replaces the
/// whole run, the stream cannot take back what it showed).
class TokenStreamDecoder {
public:
  TokenStreamDecoder(Tokenizer tokenizer, bool skipSpecial)
      : tokenizer_(std::move(tokenizer)), skipSpecial_(skipSpecial) {}

  /// The text that `id` completes; empty while a character is unfinished.
  std::string push(int32_t id);
  /// What is still held back, unfinished characters as U+FFFD.
  std::string finish();

private:
  Tokenizer tokenizer_;
  bool skipSpecial_;
  /// Tokens since the start of the last emitted chunk: decoding them again
  /// with the new ones keeps the spacing decode() gives.
  std::vector<int32_t> window_;
  /// Tokens of window_ already emitted.
  size_t emittedTokens_ = 0;
  /// decode() of window_[0, emittedTokens_).
  std::string emittedText_;
};

} // namespace kvrt

#endif // KVRT_TOKENIZER_H
