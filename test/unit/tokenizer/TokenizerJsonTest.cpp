//===- TokenizerJsonTest.cpp - Hostile tokenizer.json files ---------------===//
//
// A tokenizer.json is outside data: every defect must give one sentence that
// names the file and the field, never a crash.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include <gtest/gtest.h>

namespace {

const char *kVocab = R"({"a": 0, "b": 1, "ab": 2})";
const char *kMerges = R"(["a b"])";
const char *kPipeline =
    R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
       "decoder": {"type": "ByteLevel"})";

/// A byte-level tokenizer.json with the given parts.
std::string document(const std::string &vocab = kVocab,
                     const std::string &merges = kMerges,
                     const std::string &rest = kPipeline,
                     const std::string &model = R"("type": "BPE")") {
  return "{\"model\": {" + model + ", \"vocab\": " + vocab +
         ", \"merges\": " + merges + "}, " + rest + "}";
}

/// The error for `json` (+ `config`); empty when it was accepted.
std::string errorOf(const std::string &json, const std::string &config = "") {
  auto spec = kvrt::tokenizerSpecFromJson(json, config, "m/tokenizer.json");
  return spec ? "" : spec.status().message();
}

void expectError(const std::string &json, const std::string &expected,
                 const std::string &config = "") {
  std::string message = errorOf(json, config);
  EXPECT_NE(message.find(expected), std::string::npos)
      << "message: " << message << "\nexpected: " << expected;
}

TEST(TokenizerJson, AcceptsMinimalDocument) {
  EXPECT_EQ(errorOf(document()), "");
  auto spec = kvrt::tokenizerSpecFromJson(document(), "", "m/tokenizer.json");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->tokens, (std::vector<std::string>{"a", "b", "ab"}));
  EXPECT_EQ(spec->preTokenizer, kvrt::PreTokenizerKind::Gpt2);
}

TEST(TokenizerJson, RejectsBrokenJson) {
  expectError("{\"model\": ", "m/tokenizer.json: invalid JSON at byte");
  expectError("{\"model\": \"\xFF\"}", "not valid UTF-8");
  expectError("[]", "m/tokenizer.json: the document is a array");
}

TEST(TokenizerJson, RejectsMissingOrForeignModel) {
  expectError(std::string("{") + kPipeline + "}",
              "m/tokenizer.json: model is missing");
  expectError(document(kVocab, kMerges, kPipeline, R"("type": "WordPiece")"),
              "model.type is 'WordPiece'; only BPE models are supported");
  expectError(
      document(kVocab, kMerges, kPipeline, R"("type": "BPE", "dropout": 0.1)"),
      "model.dropout is set");
  expectError(document("[1, 2]"), "model.vocab is a array, expected a object");
  expectError(document(kVocab, "null"), "model.merges is missing");
}

TEST(TokenizerJson, RejectsBadIds) {
  expectError(document(R"({"a": -1, "b": 1, "ab": 2})"),
              "model.vocab['a'] is -1; ids are 0 to");
  expectError(document(R"({"a": 0, "b": 1, "ab": 9000000000000})"),
              "model.vocab['ab'] is 9000000000000");
  expectError(document(R"({"a": 0, "b": 1.5, "ab": 2})"),
              "model.vocab['b'] must be an integer id");
  expectError(document(R"({"a": 0, "b": 0, "ab": 2})"),
              "model.vocab gives id 0 to both 'a' and 'b'");
  expectError(document(R"({"a": 0, "b": 1, "ab": 5})"),
              "ids must run from 0 without gaps");
  expectError(document(R"({})", "[]"), "model.vocab is empty");
}

TEST(TokenizerJson, RejectsBadMerges) {
  expectError(document(kVocab, R"(["a z"])"),
              "m/tokenizer.json: model.merges[0] ('a' 'z') names 'z', which "
              "is not in the vocabulary");
  expectError(document(R"({"a": 0, "b": 1, "ba": 2})"),
              "model.merges[0] ('a' 'b') makes 'ab', which is not in the "
              "vocabulary");
  expectError(document(kVocab, R"(["a b c"])"),
              "model.merges[0] 'a b c' is not two tokens separated by one "
              "space");
  expectError(document(kVocab, R"([["a"]])"),
              "model.merges[0] must be a \"left right\" string or a pair");
}

TEST(TokenizerJson, RejectsBadAddedTokens) {
  std::string pipeline = std::string(kPipeline) + ", \"added_tokens\": ";
  expectError(
      document(kVocab, kMerges, pipeline + R"([{"id": 3, "content": "a"}])"),
      "added_tokens[0] 'a' has id 3 but model.vocab gives it id 0");
  expectError(
      document(kVocab, kMerges, pipeline + R"([{"id": 1, "content": "<x>"}])"),
      "added_tokens[0] gives id 1 to '<x>' but model.vocab gives it "
      "to 'b'");
  expectError(
      document(kVocab, kMerges, pipeline + R"([{"id": -4, "content": "<x>"}])"),
      "added_tokens[0].id is -4");
  expectError(document(kVocab, kMerges, pipeline + R"([{"id": 3}])"),
              "added_tokens[0].content is missing or empty");
  expectError(
      document(kVocab, kMerges, pipeline + R"([{"id": 3, "content": "<x>",
                                       "special": "yes"}])"),
      "added_tokens[0].special is a string, expected a boolean");
  // Added tokens may extend the vocabulary, without gaps.
  EXPECT_EQ(errorOf(document(kVocab, kMerges,
                             pipeline + R"([{"id": 3, "content": "<x>"}])")),
            "");
  expectError(
      document(kVocab, kMerges, pipeline + R"([{"id": 4, "content": "<x>"}])"),
      "without gaps");
}

TEST(TokenizerJson, RejectsUnsupportedComponents) {
  expectError(
      document(kVocab, kMerges,
               std::string(kPipeline) + R"(, "normalizer": {"type": "NFC"})"),
      "normalizer ('NFC') is not supported");
  expectError(document(kVocab, kMerges,
                       R"("pre_tokenizer": {"type": "Whitespace"},
                          "decoder": {"type": "ByteLevel"})"),
              "pre_tokenizer ('Whitespace') is not supported");
  expectError(document(kVocab, kMerges,
                       R"("pre_tokenizer": {"type": "Sequence",
                            "pretokenizers": [
                              {"type": "Split", "pattern": {"Regex": "\\s+"},
                               "behavior": "Isolated", "invert": false},
                              {"type": "ByteLevel", "use_regex": false}]},
                          "decoder": {"type": "ByteLevel"})"),
              "pre_tokenizer.pretokenizers[0].pattern.Regex '\\s+' is not "
              "the GPT-2, Llama-3 or Qwen2 regex");
  expectError(document(kVocab, kMerges,
                       R"("pre_tokenizer": {"type": "ByteLevel"},
                          "decoder": null)"),
              "decoder must be ByteLevel for a byte-level model");
  expectError(document(kVocab, kMerges,
                       R"("normalizer": {"type": "Replace",
                            "pattern": {"String": " "}, "content": "▁"},
                          "decoder": {"type": "Fuse"})"),
              "decoder must be Replace('\u2581', ' '), Fuse to undo");
  expectError(document(kVocab, kMerges,
                       std::string(kPipeline) +
                           R"(, "post_processor": {"type": "BertProcessing"})"),
              "post_processor ('BertProcessing') is not supported");
  expectError(document(kVocab, kMerges,
                       std::string(kPipeline) +
                           R"(, "post_processor": {
                             "type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>"}},
                                        {"Sequence": {"id": "A"}}],
                             "special_tokens": {}})"),
              "post_processor.single[0].SpecialToken names '<s>', which "
              "special_tokens does not give as one integer id");
}

TEST(TokenizerJson, ReadsConfig) {
  std::string json =
      document(kVocab, kMerges,
               std::string(kPipeline) +
                   R"(, "added_tokens": [{"id": 3, "content": "<|im_end|>",
                                 "special": true, "normalized": false}])");
  auto spec = kvrt::tokenizerSpecFromJson(
      json,
      R"({"eos_token": {"content": "<|im_end|>"}, "pad_token": "a",
          "chat_template": "{{ '<|im_start|>' + message['role'] }}"})",
      "m/tokenizer.json");
  ASSERT_TRUE(spec) << spec.status().message();
  EXPECT_EQ(spec->eosId, 3);
  EXPECT_EQ(spec->padId, 0);
  EXPECT_EQ(spec->bosId, -1);
  EXPECT_FALSE(spec->addBos);
  EXPECT_EQ(spec->chatTemplate.kind, kvrt::ChatTemplateKind::ChatML);
  EXPECT_EQ(spec->tokenTypes[3], kvrt::TokenType::Control);

  expectError(json,
              "m/tokenizer_config.json: bos_token names '<x>', which "
              "is not in the vocabulary",
              R"({"bos_token": "<x>"})");
  expectError(json, "m/tokenizer_config.json: invalid JSON", "{");
  expectError(
      json,
      "m/tokenizer_config.json: chat_template: the chat template is "
      "not one the runtime recognises",
      R"({"chat_template": "{% for m in messages %}{{ m }}{% endfor %}"})");
}

TEST(TokenizerSpec, CreateRejectsInconsistentSpecs) {
  auto spec = kvrt::tokenizerSpecFromJson(document(), "", "m/tokenizer.json");
  ASSERT_TRUE(spec);
  auto errorAfter = [&](auto change) {
    kvrt::TokenizerSpec copy = *spec;
    change(copy);
    auto t = kvrt::Tokenizer::create(std::move(copy));
    return t ? std::string() : t.status().message();
  };
  EXPECT_EQ(errorAfter([](kvrt::TokenizerSpec &) {}), "");
  EXPECT_NE(errorAfter([](auto &s) {
              s.tokenTypes.pop_back();
            }).find("tokenizer spec: tokenTypes has 2 entries for 3 tokens"),
            std::string::npos);
  EXPECT_NE(errorAfter([](auto &s) {
              s.bosId = 7;
            }).find("the BOS token id 7 is outside the 3 token vocabulary"),
            std::string::npos);
  EXPECT_NE(errorAfter([](auto &s) {
              s.addEos = true;
            }).find("EOS is to be added but there is no EOS token"),
            std::string::npos);
  EXPECT_NE(errorAfter([](auto &s) {
              s.tokens[1] = "\xC3";
            }).find("tokens[1] is not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(errorAfter([](auto &s) {
              s.model = static_cast<kvrt::TokenizerModelKind>(9);
            }).find("the model kind is unknown"),
            std::string::npos);
  EXPECT_NE(errorAfter([](auto &s) {
              s.byteFallback = true;
            }).find("byte fallback is only for metaspace models"),
            std::string::npos);
}

} // namespace
