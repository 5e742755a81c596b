//===- IdentityTool.cpp - The C++ side of the tokenizer identity test -----===//
//
// tokenizer_identity.py writes texts and reference tokenizers, runs this
// tool, and compares its output with the Python `tokenizers` package;
// sentencepiece_identity.py does the same with the tokenizer a compiled
// artifact stores and the Python `sentencepiece` package.
//
//   encode (--json FILE [--config FILE] | --gguf-fields FILE |
//           --artifact FILE) --texts FILE --out FILE
//       per text: ids with BOS/EOS, their decode(skipSpecial = false) and
//       decode(skipSpecial = true), the text streamed through
//       TokenStreamDecoder, ids without BOS/EOS and their decode
//   split --kind gpt2|llama3|qwen2|smollm --texts FILE --out FILE
//       per text: the pre-tokenizer's words
//   classes --out FILE
//       the runs of \p{L}, \p{N} and \s over all code points
//
// Files of texts and results are sequences of little-endian uint32 lengths
// followed by that many bytes (or int32 ids).
//
//===----------------------------------------------------------------------===//
#include "kvrt/Artifact.h"
#include "kvrt/Json.h"
#include "kvrt/Tokenizer.h"
#include "runtime/src/tokenizer/PreTokenizer.h"
#include "runtime/src/tokenizer/Unicode.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

namespace {

using namespace kvrt;

[[noreturn]] void die(const std::string &message) {
  std::cerr << "identity-tool: " << message << "\n";
  std::exit(2);
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    die("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> readTexts(const std::string &path) {
  std::string data = readFile(path);
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < data.size();) {
    uint32_t n;
    if (data.size() - pos < 4)
      die(path + " is truncated");
    std::memcpy(&n, data.data() + pos, 4);
    pos += 4;
    if (data.size() - pos < n)
      die(path + " is truncated");
    texts.push_back(data.substr(pos, n));
    pos += n;
  }
  return texts;
}

void putU32(std::string &out, uint32_t n) {
  out.append(reinterpret_cast<const char *>(&n), 4);
}

void putBytes(std::string &out, std::string_view bytes) {
  putU32(out, static_cast<uint32_t>(bytes.size()));
  out.append(bytes);
}

void writeFile(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out)
    die("cannot write " + path);
}

/// GgufTokenizerFields from the JSON dump tokenizer_identity.py writes.
GgufTokenizerFields readGgufFields(const std::string &path) {
  StatusOr<json::Value> doc = json::parse(readFile(path), path);
  if (!doc)
    die(doc.status().message());
  GgufTokenizerFields g;
  auto str = [&](const char *key) {
    const json::Value *v = doc->find(key);
    return v && v->isString() ? v->asString() : std::string();
  };
  auto id = [&](const char *key) -> std::optional<int64_t> {
    const json::Value *v = doc->find(key);
    return v && v->isNumber() ? v->asInt() : std::nullopt;
  };
  auto flag = [&](const char *key) -> std::optional<bool> {
    const json::Value *v = doc->find(key);
    return v && v->isBool() ? std::optional<bool>(v->asBool()) : std::nullopt;
  };
  g.model = str("model");
  g.pre = str("pre");
  g.chatTemplate = str("chat_template");
  if (const json::Value *v = doc->find("tokens"))
    for (const json::Value &t : v->items())
      g.tokens.push_back(t.asString());
  if (const json::Value *v = doc->find("token_type"))
    for (const json::Value &t : v->items())
      g.tokenTypes.push_back(static_cast<int32_t>(t.asInt().value_or(0)));
  if (const json::Value *v = doc->find("merges"))
    for (const json::Value &m : v->items())
      g.merges.push_back(m.asString());
  g.bosId = id("bos_token_id");
  g.eosId = id("eos_token_id");
  g.unknownId = id("unknown_token_id");
  g.paddingId = id("padding_token_id");
  g.addBosToken = flag("add_bos_token");
  g.addEosToken = flag("add_eos_token");
  return g;
}

int encodeMode(std::map<std::string, std::string> &args) {
  StatusOr<TokenizerSpec> spec = Status::error("no tokenizer given");
  if (args.count("--json"))
    spec = tokenizerSpecFromJson(
        readFile(args["--json"]),
        args.count("--config") ? readFile(args["--config"]) : "",
        args["--json"]);
  else if (args.count("--gguf-fields"))
    spec = tokenizerSpecFromGgufMetadata(readGgufFields(args["--gguf-fields"]),
                                         args["--gguf-fields"]);
  else if (args.count("--artifact")) {
    StatusOr<std::shared_ptr<const Artifact>> artifact =
        Artifact::open(args["--artifact"]);
    if (!artifact)
      die(artifact.status().message());
    spec = tokenizerSpecFromArtifact((*artifact)->manifest().tokenizer(),
                                     args["--artifact"]);
  }
  if (!spec)
    die(spec.status().message());
  StatusOr<Tokenizer> tokenizer = Tokenizer::create(std::move(*spec));
  if (!tokenizer)
    die(tokenizer.status().message());
  std::string out;
  auto putIds = [&](const std::vector<int32_t> &ids) {
    putU32(out, static_cast<uint32_t>(ids.size()));
    out.append(reinterpret_cast<const char *>(ids.data()), ids.size() * 4);
  };
  for (const std::string &text : readTexts(args["--texts"])) {
    std::vector<int32_t> ids = tokenizer->encode(text, /*addSpecial=*/true);
    putIds(ids);
    putBytes(out, tokenizer->decode(ids, /*skipSpecial=*/false));
    putBytes(out, tokenizer->decode(ids, /*skipSpecial=*/true));
    TokenStreamDecoder stream(*tokenizer, /*skipSpecial=*/false);
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = stream.push(id);
      if (!json::isValidUtf8(piece))
        die("the stream decoder emitted broken UTF-8");
      streamed += piece;
    }
    streamed += stream.finish();
    putBytes(out, streamed);
    std::vector<int32_t> plain = tokenizer->encode(text, /*addSpecial=*/false);
    putIds(plain);
    putBytes(out, tokenizer->decode(plain, /*skipSpecial=*/false));
  }
  writeFile(args["--out"], out);
  return 0;
}

int splitMode(std::map<std::string, std::string> &args) {
  static const std::map<std::string, PreTokenizerKind> kinds = {
      {"gpt2", PreTokenizerKind::Gpt2},
      {"llama3", PreTokenizerKind::Llama3},
      {"qwen2", PreTokenizerKind::Qwen2},
      {"smollm", PreTokenizerKind::SmolLM}};
  auto kind = kinds.find(args["--kind"]);
  if (kind == kinds.end())
    die("unknown --kind " + args["--kind"]);
  std::string out;
  for (const std::string &text : readTexts(args["--texts"])) {
    std::vector<tokenizer::WordRange> pieces, words;
    if (kind->second == PreTokenizerKind::SmolLM)
      tokenizer::splitDigits(text, pieces);
    else
      pieces.emplace_back(0, text.size());
    for (auto [begin, end] : pieces) {
      size_t before = words.size();
      tokenizer::splitWords(kind->second,
                            std::string_view(text).substr(begin, end - begin),
                            words);
      for (size_t k = before; k < words.size(); ++k) {
        words[k].first += begin;
        words[k].second += begin;
      }
    }
    putU32(out, static_cast<uint32_t>(words.size()));
    for (auto [begin, end] : words)
      putBytes(out, std::string_view(text).substr(begin, end - begin));
  }
  writeFile(args["--out"], out);
  return 0;
}

int classesMode(std::map<std::string, std::string> &args) {
  std::ostringstream out;
  for (uint8_t bit :
       {tokenizer::kLetter, tokenizer::kNumber, tokenizer::kSpace}) {
    bool inside = false;
    for (char32_t cp = 0; cp <= 0x110000; ++cp) {
      bool member = cp < 0x110000 && (tokenizer::charClasses(cp) & bit);
      if (member != inside)
        out << static_cast<uint32_t>(cp) << (member ? " " : "\n");
      inside = member;
    }
    out << "end\n";
  }
  writeFile(args["--out"], out.str());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2)
    die("usage: identity-tool encode|split|classes [--option value]...");
  std::string mode = argv[1];
  std::map<std::string, std::string> args;
  for (int i = 2; i + 1 < argc; i += 2)
    args[argv[i]] = argv[i + 1];
  if (mode == "encode")
    return encodeMode(args);
  if (mode == "split")
    return splitMode(args);
  if (mode == "classes")
    return classesMode(args);
  die("unknown mode " + mode);
}
