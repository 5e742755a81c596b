//===- PageLedger.cpp - Which device pages each sequence holds ------------===//
#include "runtime/src/backends/cuda/PageLedger.h"

#include <algorithm>
#include <string>
#include <utility>

namespace kvrt::cuda {

PageLedger::PageLedger(uint32_t pageSize, uint32_t capacityPages,
                       std::string name)
    : pageSize_(pageSize), name_(std::move(name)), holders_(capacityPages),
      free_(capacityPages), generations_(capacityPages) {
  // Lowest pages first.
  for (uint32_t i = 0; i < capacityPages; ++i)
    free_[i] = int32_t(capacityPages - 1 - i);
}

Status PageLedger::addSequence(uint64_t sequence) {
  auto [it, added] = sequences_.emplace(sequence, Sequence());
  if (!added)
    return Status::error("sequence " + std::to_string(sequence) +
                         " is already in the device cache");
  if (freeSlots_.empty()) {
    it->second.slot = slots_++;
  } else {
    it->second.slot = freeSlots_.back();
    freeSlots_.pop_back();
  }
  return Status::ok();
}

Status PageLedger::share(uint64_t from, uint64_t sequence, uint64_t tokens) {
  const Sequence &source = sequences_.at(from);
  if (tokens % pageSize_ != 0 || tokens > source.length)
    return Status::error("cannot share " + std::to_string(tokens) +
                         " tokens of sequence " + std::to_string(from) +
                         ": not whole pages of the " +
                         std::to_string(source.length) + " it holds");
  KVRT_RETURN_IF_ERROR(addSequence(sequence));
  // `source` stays valid: unordered_map keeps its elements where they are.
  Sequence &s = sequences_.at(sequence);
  s.pages.assign(source.pages.begin(),
                 source.pages.begin() + tokens / pageSize_);
  for (int32_t page : s.pages)
    ++holders_[page];
  s.length = tokens;
  return Status::ok();
}

void PageLedger::release(int32_t page) {
  if (--holders_[page] > 0)
    return;
  free_.push_back(page);
  --pagesInUse_;
}

void PageLedger::removeSequence(uint64_t sequence) {
  auto found = sequences_.find(sequence);
  if (found == sequences_.end())
    return;
  for (int32_t page : found->second.pages)
    release(page);
  freeSlots_.push_back(found->second.slot);
  sequences_.erase(found);
}

void PageLedger::shrink(uint64_t sequence, uint64_t length) {
  Sequence &s = sequences_.at(sequence);
  s.length = std::min(s.length, length);
  const uint64_t pages = (s.length + pageSize_ - 1) / pageSize_;
  while (s.pages.size() > pages) {
    release(s.pages.back());
    s.pages.pop_back();
  }
}

Status
PageLedger::reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens) {
  auto pagesFor = [&](const Sequence &s, uint64_t more) {
    return (s.length + more + pageSize_ - 1) / pageSize_;
  };
  uint64_t needed = 0;
  for (const auto &[sequence, more] : tokens) {
    const Sequence &s = sequences_.at(sequence);
    const uint64_t pages = pagesFor(s, more);
    needed += pages > s.pages.size() ? pages - s.pages.size() : 0;
  }
  if (needed > free_.size())
    return Status::cacheFull(name_ + " is full: the batch needs " +
                             std::to_string(needed) + " more pages of " +
                             std::to_string(pageSize_) + " tokens and " +
                             std::to_string(free_.size()) +
                             " are free; raise EngineOptions::cacheTokens or "
                             "finish sequences");
  for (const auto &[sequence, more] : tokens) {
    Sequence &s = sequences_.at(sequence);
    const uint64_t pages = pagesFor(s, more);
    while (s.pages.size() < pages) {
      s.pages.push_back(free_.back());
      free_.pop_back();
      holders_[s.pages.back()] = 1;
      ++generations_[s.pages.back()];
      ++pagesInUse_;
    }
  }
  peakPages_ = std::max(peakPages_, pagesInUse_);
  return Status::ok();
}

} // namespace kvrt::cuda
