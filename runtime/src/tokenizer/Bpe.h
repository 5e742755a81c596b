//===- Bpe.h - Merging a word's symbols into tokens -------------*- C++ -*-===//
//
// The two BPE algorithms: merges by rank (tokenizers' BPE model, used for
// tokenizer.json and GGUF "gpt2" vocabularies) and merges by score
// (llama.cpp's SentencePiece tokenizer for GGUF "llama" vocabularies).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_BPE_H
#define KVRT_TOKENIZER_BPE_H

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvrt::tokenizer {

/// Token text to id, viewing strings the tokenizer owns.
using VocabMap = std::unordered_map<std::string_view, int32_t>;

/// Pair merges by rank, applied as tokenizers' Word::merge_all does.
class MergeTable {
public:
  /// Records that `left` then `right` merge into `merged` at priority
  /// `rank`; a later record of the same pair replaces the earlier one.
  void add(int32_t left, int32_t right, uint32_t rank, int32_t merged);

  /// Merges the ids of `word` in place: lowest rank first, leftmost first
  /// among equal ranks, until no adjacent pair has a merge.
  void apply(std::vector<int32_t> &word) const;

  size_t size() const { return merges_.size(); }

private:
  struct Merge {
    uint32_t rank;
    int32_t merged;
  };
  static uint64_t key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  const Merge *find(int32_t left, int32_t right) const {
    auto it = merges_.find(key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }
  std::unordered_map<uint64_t, Merge> merges_;
};

/// Collects a word's first symbols the way tokenizers' BPE::merge_word
/// does: known characters, <0xNN> byte tokens, and unknown characters as
/// the unknown token (consecutive ones fused when asked).
class SymbolBuilder {
public:
  SymbolBuilder(std::vector<int32_t> &out, int32_t unkId, bool fuseUnknown)
      : out_(out), unkId_(unkId), fuseUnknown_(fuseUnknown) {}

  void addKnown(int32_t id) {
    flushUnknown();
    out_.push_back(id);
  }
  /// Byte tokens do not end a pending unknown run: tokenizers appends them
  /// before it, and so do we.
  void addByte(int32_t id) { out_.push_back(id); }
  /// A character neither the vocabulary nor byte tokens cover; dropped when
  /// the model has no unknown token.
  void addUnknown() {
    if (unkId_ < 0)
      return;
    if (pendingUnknown_ && !fuseUnknown_)
      out_.push_back(unkId_);
    pendingUnknown_ = true;
  }
  void finish() { flushUnknown(); }

private:
  void flushUnknown() {
    if (pendingUnknown_)
      out_.push_back(unkId_);
    pendingUnknown_ = false;
  }
  std::vector<int32_t> &out_;
  int32_t unkId_;
  bool fuseUnknown_;
  bool pendingUnknown_ = false;
};

/// llama.cpp's SentencePiece BPE over well-formed UTF-8 `text`: starting
/// from characters, repeatedly merges the adjacent pair whose concatenation
/// is in `vocab` with the highest score (leftmost on ties). Appends the
/// final pieces as byte ranges [first, second) of `text`.
void scoreMerge(std::string_view text, const VocabMap &vocab,
                const std::vector<float> &scores,
                std::vector<std::pair<size_t, size_t>> &pieces);

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_BPE_H
