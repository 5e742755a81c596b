//===- Bpe.cpp - Merging a word's symbols into tokens ---------------------===//
#include "runtime/src/tokenizer/Bpe.h"

#include "runtime/src/tokenizer/Unicode.h"

#include <queue>

namespace kvrt::tokenizer {

void MergeTable::add(int32_t left, int32_t right, uint32_t rank,
                     int32_t merged) {
  merges_[key(left, right)] = Merge{rank, merged};
}

namespace {

/// A symbol of a word being merged, linked to its live neighbours.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

/// A candidate merge of the symbol at `pos` with its right neighbour.
struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t merged;
  /// Lowest rank on top, then lowest position.
  bool operator<(const Candidate &o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

} // namespace

void MergeTable::apply(std::vector<int32_t> &word) const {
  if (word.size() < 2 || merges_.empty())
    return;
  int32_t n = static_cast<int32_t>(word.size());
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = Symbol{word[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t pos) {
    int32_t next = symbols[pos].next;
    if (next < 0)
      return;
    if (const Merge *m = find(symbols[pos].id, symbols[next].id))
      queue.push(Candidate{m->rank, pos, m->merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i)
    consider(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol &left = symbols[top.pos];
    if (!left.alive || left.next < 0)
      continue;
    // A candidate is stale when either side has merged since it was queued;
    // the pair would then produce a different token.
    const Merge *current = find(left.id, symbols[left.next].id);
    if (!current || current->merged != top.merged)
      continue;
    Symbol &right = symbols[left.next];
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0)
      symbols[right.next].prev = top.pos;
    if (left.prev >= 0)
      consider(left.prev);
    consider(top.pos);
  }

  word.clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next)
    word.push_back(symbols[i].id);
}

namespace {

/// A candidate merge of two adjacent pieces, as llama.cpp's llm_bigram_spm.
struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  size_t size;
};

/// Highest score on top, then leftmost (llama.cpp's comparator).
struct BigramOrder {
  bool operator()(const Bigram &l, const Bigram &r) const {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  }
};

struct Piece {
  size_t begin;
  size_t size;
  int32_t prev;
  int32_t next;
};

} // namespace

void scoreMerge(std::string_view text, const VocabMap &vocab,
                const std::vector<float> &scores,
                std::vector<std::pair<size_t, size_t>> &out) {
  std::vector<Piece> pieces;
  for (size_t pos = 0; pos < text.size();) {
    char32_t c;
    size_t n = decodeUtf8(text, pos, c);
    int32_t index = static_cast<int32_t>(pieces.size());
    pieces.push_back(Piece{pos, n, index - 1, -1});
    if (index > 0)
      pieces[index - 1].next = index;
    pos += n;
  }
  if (pieces.empty())
    return;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto tryAdd = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0)
      return;
    size_t size = pieces[left].size + pieces[right].size;
    auto it = vocab.find(text.substr(pieces[left].begin, size));
    if (it == vocab.end())
      return;
    queue.push(Bigram{left, right, scores[it->second], size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(pieces.size()); ++i)
    tryAdd(i - 1, i);

  while (!queue.empty()) {
    Bigram top = queue.top();
    queue.pop();
    Piece &left = pieces[top.left];
    Piece &right = pieces[top.right];
    // Skip bigrams whose pieces have merged with something else since.
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size)
      continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0)
      pieces[right.next].prev = top.left;
    tryAdd(left.prev, top.left);
    tryAdd(top.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = pieces[i].next)
    out.emplace_back(pieces[i].begin, pieces[i].begin + pieces[i].size);
}

} // namespace kvrt::tokenizer
