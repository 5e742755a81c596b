//===- Passkey.cpp --------------------------------------------------------===//
#include "tools/kvopt/Passkey.h"
#include "tools/kvopt/RemoveOnExit.h"

#include <algorithm>
#include <cmath>

namespace kvopt::cli {

namespace {
// The wording follows the common template of the passkey literature
// (introduction, repeated filler, the key said twice, a question the answer
// completes), in sentences of our own. Every piece after the first starts
// with a space or a newline and ends with a full stop, so that for
// byte-level tokenizers the pieces tokenize as the whole text would.
constexpr const char *kIntroduction =
    "A pass key is hidden somewhere in the long text below, among many "
    "sentences that do not matter. Find it and remember it: you will be "
    "asked for it at the end.";
constexpr const char *kFiller[] = {
    " The river runs past the old mill.",
    " The hills are green in the spring.",
    " The wind moves over the quiet fields.",
    " Here we walk, and then we walk back again.",
};
constexpr const char *kQuestion = "\n\nWhat is the pass key?";
constexpr const char *kAnswerStart = "The pass key is";

std::string needle(const std::string &key) {
  return " The pass key is " + key + ". Remember it. " + key +
         " is the pass key.";
}

/// Five digits, the first not zero.
std::string passkey(uint64_t seed, uint64_t index) {
  return std::to_string(10000 + kvrt::randomBits(seed, index) % 90000);
}

void append(std::vector<int32_t> &to, const std::vector<int32_t> &ids) {
  to.insert(to.end(), ids.begin(), ids.end());
}
} // namespace

kvrt::StatusOr<std::vector<PasskeyTrial>>
passkeyTrials(const kvrt::Tokenizer &tokenizer, const PasskeyOptions &options,
              const std::string &artifactName) {
  // The prompt is head, filler with the key's sentence among it, tail.
  std::string headText = kIntroduction;
  std::string tailText = kQuestion + std::string(" ") + kAnswerStart;
  std::vector<int32_t> head;
  if (options.chat) {
    const kvrt::ChatTemplate &chat = tokenizer.chatTemplate();
    if (chat.kind == kvrt::ChatTemplateKind::None)
      return kvrt::Status::error(artifactName +
                                 " has no chat template; use --template plain");
    // The template around a marker gives the text before and after the
    // user's message.
    const std::string marker = "\x01passkey\x01";
    std::string wrapped =
        kvrt::applyChatTemplate(chat, {{"user", marker}}, true);
    size_t at = wrapped.find(marker);
    headText = wrapped.substr(0, at) + kIntroduction;
    tailText = kQuestion + wrapped.substr(at + marker.size()) + kAnswerStart;
  } else if (tokenizer.spec().addBos && tokenizer.bosId() >= 0) {
    head.push_back(tokenizer.bosId());
  }
  append(head, tokenizer.encode(headText, /*addSpecial=*/false));
  std::vector<int32_t> tail = tokenizer.encode(tailText, false);
  std::vector<std::vector<int32_t>> filler;
  for (const char *sentence : kFiller)
    filler.push_back(tokenizer.encode(sentence, false));

  std::vector<PasskeyTrial> trials;
  uint64_t index = 0;
  for (size_t l = 0; l < options.lengths.size(); ++l) {
    int64_t budget = options.lengths[l] - kPasskeyAnswerTokens;
    for (size_t d = 0; d < options.depths.size(); ++d) {
      for (int64_t t = 0; t < options.trials; ++t) {
        PasskeyTrial trial{l, d, passkey(options.seed, index++), {}};
        std::vector<int32_t> key = tokenizer.encode(needle(trial.key), false);
        int64_t used = int64_t(head.size() + key.size() + tail.size());
        // Whole filler sentences, as many as fit; at least one.
        size_t sentences = 0;
        while (used + int64_t(filler[sentences % filler.size()].size()) <=
               budget)
          used += int64_t(filler[sentences++ % filler.size()].size());
        if (sentences == 0)
          return kvrt::Status::error(
              "--lengths " + std::to_string(options.lengths[l]) +
              " is too short for the passkey prompt of " + artifactName +
              " (at least " +
              std::to_string(used + int64_t(filler[0].size()) +
                             kPasskeyAnswerTokens) +
              " tokens)");
        size_t keyAt =
            size_t(std::lround(options.depths[d] * double(sentences)));
        trial.prompt = head;
        for (size_t s = 0; s <= sentences; ++s) {
          if (s == keyAt)
            append(trial.prompt, key);
          if (s < sentences)
            append(trial.prompt, filler[s % filler.size()]);
        }
        append(trial.prompt, tail);
        trials.push_back(std::move(trial));
      }
    }
  }
  return trials;
}

bool isPasskeyAnswer(const std::string &key, const std::string &answer) {
  auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
  auto begin = std::find_if(answer.begin(), answer.end(), isDigit);
  auto end = std::find_if_not(begin, answer.end(), isDigit);
  return begin != answer.end() && std::string(begin, end) == key;
}

namespace {
/// Whether the answer can no longer change what isPasskeyAnswer says: its
/// first run of digits has ended.
bool answerComplete(const std::string &text) {
  auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
  auto begin = std::find_if(text.begin(), text.end(), isDigit);
  return std::find_if_not(begin, text.end(), isDigit) != text.end() &&
         begin != text.end();
}

struct Running {
  size_t trial;
  kvrt::SequenceId sequence;
  std::vector<int32_t> answer;
  bool prefilled = false;
};

} // namespace

kvrt::StatusOr<std::vector<PasskeyAnswer>>
answerPasskeys(kvrt::Engine &engine, const kvrt::Tokenizer &tokenizer,
               const std::vector<PasskeyTrial> &trials, unsigned batch,
               const std::function<void(size_t)> &onStep) {
  std::vector<PasskeyAnswer> answers(trials.size());
  std::vector<Running> running;
  RemoveOnExit<Running> remove{engine, running};
  size_t started = 0, answered = 0;
  while (started < trials.size() || !running.empty()) {
    while (running.size() < batch && started < trials.size()) {
      kvrt::StatusOr<kvrt::SequenceId> sequence = engine.addSequence();
      if (!sequence)
        return sequence.status();
      running.push_back({started++, *sequence, {}});
    }
    // A new trial prefills its prompt; the others take one decode step with
    // the token they generated last.
    std::vector<kvrt::SequenceTokens> entries;
    for (const Running &r : running)
      entries.push_back({r.sequence,
                         r.prefilled ? std::vector<int32_t>{r.answer.back()}
                                     : trials[r.trial].prompt,
                         false});
    // Greedy answers, picked where the logits are (on the GPU, the device).
    kvrt::StatusOr<std::vector<int32_t>> next = engine.prefillGreedy(entries);
    if (!next)
      return next.status();
    std::vector<Running> stillRunning;
    for (size_t i = 0; i < running.size(); ++i) {
      Running &r = running[i];
      r.prefilled = true;
      const int32_t token = (*next)[i];
      bool done = tokenizer.isSpecial(token) || token == tokenizer.eosId();
      if (!done)
        r.answer.push_back(token);
      std::string text = tokenizer.decode(r.answer, /*skipSpecial=*/true);
      done = done || answerComplete(text) ||
             int64_t(r.answer.size()) >= kPasskeyAnswerTokens;
      if (!done) {
        stillRunning.push_back(std::move(r));
        continue;
      }
      answers[r.trial] = {text, isPasskeyAnswer(trials[r.trial].key, text)};
      ++answered;
      KVRT_RETURN_IF_ERROR(engine.removeSequence(r.sequence));
    }
    running = std::move(stillRunning);
    if (onStep)
      onStep(answered);
  }
  return answers;
}

} // namespace kvopt::cli
