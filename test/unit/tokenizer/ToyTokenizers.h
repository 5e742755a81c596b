//===- ToyTokenizers.h - Small tokenizer.json files ------------*- C++ -*-===//
//
// Two tiny vocabularies in tokenizer.json form, one per model kind. The
// expected ids in the tests come from the Python `tokenizers` package given
// the same files.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TEST_UNIT_TOKENIZER_TOYTOKENIZERS_H
#define KVOPT_TEST_UNIT_TOKENIZER_TOYTOKENIZERS_H

#include "kvrt/Tokenizer.h"
#include "runtime/src/tokenizer/ByteLevel.h"

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace toy {

/// `text` as a JSON string literal.
inline std::string quote(const std::string &text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

/// One added_tokens entry.
inline std::string added(int id, const std::string &content, bool special,
                         bool normalized = false, bool lstrip = false,
                         bool rstrip = false, bool singleWord = false) {
  auto flag = [](bool b) { return b ? "true" : "false"; };
  return "{\"id\": " + std::to_string(id) + ", \"content\": " + quote(content) +
         ", \"special\": " + flag(special) +
         ", \"normalized\": " + flag(normalized) +
         ", \"lstrip\": " + flag(lstrip) + ", \"rstrip\": " + flag(rstrip) +
         ", \"single_word\": " + flag(singleWord) + "}";
}

inline std::string joined(const std::vector<std::string> &items) {
  std::string out;
  for (const std::string &item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

/// Vocabulary "<unk>" 0, "<s>" 1, "</s>" 2, "<0x00>".."<0xFF>" 3..258, then
/// "▁" 259, "a" 260, "b" 261, "c" 262, "▁a" 263, "ab" 264, "▁ab" 265,
/// "abc" 266; merges "a b", "▁ a", "▁a b", "ab c"; Llama-2's normalizer and
/// decoder; BOS added.
inline std::string metaspaceJson() {
  std::vector<std::string> vocab = {"\"<unk>\": 0", "\"<s>\": 1",
                                    "\"</s>\": 2"};
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof(name), "\"<0x%02X>\": %d", b, 3 + b);
    vocab.push_back(name);
  }
  int id = 259;
  for (const char *piece :
       {"\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "abc"})
    vocab.push_back(quote(piece) + ": " + std::to_string(id++));
  return R"({"version": "1.0", "added_tokens": [)" +
         joined({added(0, "<unk>", true), added(1, "<s>", true),
                 added(2, "</s>", true)}) +
         R"(],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "▁"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
    "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
    "merges": ["a b", "▁ a", "▁a b", "ab c"],
    "vocab": {)" +
         joined(vocab) + "}}}";
}

/// Vocabulary: the 256 byte characters by byte value, then "Ġt" 256, "he"
/// 257, "the" 258, "Ġthe" 259, "<m>" 260 (special, lstrip, rstrip), "<r>"
/// 261 (rstrip), "<w>" 262 (single word); merges "Ġ t", "h e", "t he",
/// "Ġt he"; the GPT-2 pre-tokenizer.
inline std::string byteLevelJson() {
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b)
    vocab.push_back(
        quote(kvrt::tokenizer::byteLevelText(static_cast<uint8_t>(b))) + ": " +
        std::to_string(b));
  int id = 256;
  for (const char *piece :
       {"\u0120t", "he", "the", "\u0120the", "<m>", "<r>", "<w>"})
    vocab.push_back(quote(piece) + ": " + std::to_string(id++));
  return R"({"version": "1.0", "added_tokens": [)" +
         joined({added(260, "<m>", true, false, true, true),
                 added(261, "<r>", false, false, false, true),
                 added(262, "<w>", false, false, false, false, true)}) +
         R"(],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                    "trim_offsets": true, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "merges": ["Ġ t", "h e", "t he", "Ġt he"],
    "vocab": {)" +
         joined(vocab) + "}}}";
}

/// The tokenizer a tokenizer.json builds; fails the test when it does not.
inline kvrt::Tokenizer load(const std::string &json,
                            const std::string &config = "") {
  auto spec = kvrt::tokenizerSpecFromJson(json, config, "toy/tokenizer.json");
  if (!spec)
    throw std::runtime_error(spec.status().message());
  auto tokenizer = kvrt::Tokenizer::create(std::move(*spec));
  if (!tokenizer)
    throw std::runtime_error(tokenizer.status().message());
  return std::move(*tokenizer);
}

} // namespace toy

#endif // KVOPT_TEST_UNIT_TOKENIZER_TOYTOKENIZERS_H
