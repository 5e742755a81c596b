//===- ChatTemplate.cpp - Chat formats by kind, never executed ------------===//
//
// A model's chat template is Jinja code from outside; the runtime does not
// run it. It recognises the format by the markers the template writes and
// writes that format itself, with the constants the template carries (the
// default system prompt).
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include "runtime/src/tokenizer/Unicode.h"

namespace kvrt {
namespace {

constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";
constexpr std::string_view kStartHeader = "<|start_header_id|>";
constexpr std::string_view kEndHeader = "<|end_header_id|>";
constexpr std::string_view kEotId = "<|eot_id|>";

/// The system prompt a ChatML template writes as a literal when the
/// conversation has none: the text between "<|im_start|>system" plus a
/// newline (written or escaped) and "<|im_end|>", when it holds no template
/// syntax. Empty when the template has no such literal.
std::string chatmlDefaultSystemPrompt(std::string_view text) {
  const std::string_view head = "<|im_start|>system";
  for (size_t at = text.find(head); at != text.npos;
       at = text.find(head, at + 1)) {
    size_t begin = at + head.size();
    if (text.substr(begin, 1) == "\n")
      begin += 1;
    else if (text.substr(begin, 2) == "\\n")
      begin += 2;
    else
      continue;
    size_t end = text.find(kImEnd, begin);
    if (end == text.npos)
      continue;
    std::string_view prompt = text.substr(begin, end - begin);
    if (!prompt.empty() && prompt.find_first_of("{}'\"\\") == prompt.npos)
      return std::string(prompt);
  }
  return {};
}

/// Python's str.isspace, which Jinja's trim filter strips: White_Space and
/// the four separator controls U+001C to U+001F.
bool isPythonSpace(char32_t c) {
  return (c >= 0x1C && c <= 0x1F) || tokenizer::isSpace(c);
}

/// `text` without leading and trailing whitespace, as Jinja's trim.
std::string_view trim(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    char32_t c;
    size_t n = tokenizer::decodeUtf8(text, begin, c);
    if (!isPythonSpace(c))
      break;
    begin += n;
  }
  text.remove_prefix(begin);
  while (!text.empty() && isPythonSpace(tokenizer::lastChar(text))) {
    size_t last = text.size() - 1;
    while (last > 0 && (static_cast<uint8_t>(text[last]) & 0xC0) == 0x80)
      --last;
    text.remove_suffix(text.size() - last);
  }
  return text;
}

void appendChatml(std::string &out, std::string_view role,
                  std::string_view content) {
  out.append(kImStart).append(role).append("\n").append(content);
  out.append(kImEnd).append("\n");
}

} // namespace

StatusOr<ChatTemplate> detectChatTemplate(std::string_view templateText,
                                          const std::string &sourceName) {
  ChatTemplate result;
  if (templateText.empty())
    return result;
  if (templateText.find(kImStart) != templateText.npos) {
    result.kind = ChatTemplateKind::ChatML;
    result.defaultSystemPrompt = chatmlDefaultSystemPrompt(templateText);
    return result;
  }
  if (templateText.find(kStartHeader) != templateText.npos) {
    // Llama 3.1 and later add a dated system header and tool calls.
    if (templateText.find("Cutting Knowledge Date") != templateText.npos)
      return Status::error(sourceName + ": the Llama 3.1+ template (dated "
                                        "system header, tools) is not "
                                        "supported; Llama 3.0's is");
    result.kind = ChatTemplateKind::Llama3;
    return result;
  }
  return Status::error(sourceName + ": the chat template is not one the "
                                    "runtime recognises (ChatML, Llama 3); "
                                    "templates are never executed");
}

std::string applyChatTemplate(const ChatTemplate &chatTemplate,
                              const std::vector<ChatMessage> &messages,
                              bool addGenerationPrompt) {
  std::string out;
  switch (chatTemplate.kind) {
  case ChatTemplateKind::None:
    return out;
  case ChatTemplateKind::ChatML:
    // As SmolLM2's template: the default system message goes before the
    // first message when that one is not a system message.
    if (!messages.empty() && messages[0].role != "system" &&
        !chatTemplate.defaultSystemPrompt.empty())
      appendChatml(out, "system", chatTemplate.defaultSystemPrompt);
    for (const ChatMessage &m : messages)
      appendChatml(out, m.role, m.content);
    if (addGenerationPrompt)
      out.append(kImStart).append("assistant\n");
    return out;
  case ChatTemplateKind::Llama3:
    if (!messages.empty())
      out += chatTemplate.bosText;
    for (const ChatMessage &m : messages) {
      out.append(kStartHeader).append(m.role).append(kEndHeader);
      out.append("\n\n").append(trim(m.content)).append(kEotId);
    }
    if (addGenerationPrompt)
      out.append(kStartHeader)
          .append("assistant")
          .append(kEndHeader)
          .append("\n\n");
    return out;
  }
  return out;
}

} // namespace kvrt
