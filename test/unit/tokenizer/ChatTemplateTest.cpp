//===- ChatTemplateTest.cpp - Chat formats by kind ------------------------===//
#include "kvrt/Tokenizer.h"

#include <gtest/gtest.h>

using kvrt::ChatMessage;
using kvrt::ChatTemplateKind;

namespace {

// SmolLM2-135M-Instruct's template, as its GGUF stores it.
const char *kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] "
    "!= 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant "
    "named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif "
    "%}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

TEST(TokenizerChatTemplate, RecognisesSmolLM2) {
  auto t = kvrt::detectChatTemplate(kSmolLM2, "m.gguf");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, ChatTemplateKind::ChatML);
  EXPECT_EQ(t->defaultSystemPrompt,
            "You are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face");
  EXPECT_EQ(kvrt::applyChatTemplate(*t, {{"user", "Hi!"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
            "trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi!"
            "<|im_end|>\n<|im_start|>assistant\n");
  // A system message of the conversation replaces the default one.
  EXPECT_EQ(kvrt::applyChatTemplate(
                *t,
                {{"system", "Be terse."}, {"user", "2+2?"}, {"assistant", "4"}},
                false),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\n2+2?"
            "<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n");
  EXPECT_EQ(kvrt::applyChatTemplate(*t, {}, true), "<|im_start|>assistant\n");
}

TEST(TokenizerChatTemplate, DefaultPromptOnlyFromLiterals) {
  // Qwen-style escaped newline inside the Jinja string literal.
  auto t = kvrt::detectChatTemplate(
      "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>' }}"
      "{{ '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}",
      "x");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->defaultSystemPrompt, "You are Qwen.");
  t = kvrt::detectChatTemplate(
      "{{'<|im_start|>' + message['role'] + '\n' + message['content']}}", "x");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->defaultSystemPrompt, "");
  EXPECT_EQ(kvrt::applyChatTemplate(*t, {{"user", "a"}}, false),
            "<|im_start|>user\na<|im_end|>\n");
}

TEST(TokenizerChatTemplate, Llama3) {
  auto t = kvrt::detectChatTemplate(
      "{% set content = '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}",
      "x");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, ChatTemplateKind::Llama3);
  t->bosText = "<|begin_of_text|>";
  EXPECT_EQ(kvrt::applyChatTemplate(*t, {{"user", " \n Hello \t"}}, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
            "Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(TokenizerChatTemplate, UnknownTemplatesAreErrorsNotCode) {
  auto t = kvrt::detectChatTemplate("{% for m in messages %}[INST] {{ m }}",
                                    "m/tokenizer_config.json");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.status().message(),
            "m/tokenizer_config.json: the chat template is not one the "
            "runtime recognises (ChatML, Llama 3); templates are never "
            "executed");
  t = kvrt::detectChatTemplate(
      "<|start_header_id|>system<|end_header_id|>Cutting Knowledge Date:", "x");
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().message().find("Llama 3.1+"), std::string::npos);
  t = kvrt::detectChatTemplate("", "x");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, ChatTemplateKind::None);
  EXPECT_EQ(kvrt::applyChatTemplate(*t, {{"user", "a"}}, true), "");
}

} // namespace
