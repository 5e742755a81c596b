//===- DevicePages.cpp ----------------------------------------------------===//
//
// Flat arrays rather than node containers: a GPU decode step acquires
// thousands of pages per layer (8 rows x 8 KV heads x 128 blocks), and the
// schedule runs on the host during and after each step.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/offload/DevicePages.h"

#include <algorithm>
#include <string>

namespace kvrt::offload {
DevicePages::DevicePages(uint64_t slots, uint32_t kvHeads)
    : slots_(slots), kvHeads_(std::max(1u, kvHeads)) {}

uint64_t DevicePages::place(uint64_t page) const {
  return uint64_t(pageIndexOf(page)) * kvHeads_ + pageHeadOf(page);
}

uint32_t DevicePages::find(uint64_t page) const {
  const uint64_t at = place(page);
  if (at >= where_.size())
    return kNone;
  const uint64_t entry = where_[at];
  return entry >> 32 == (page >> 40 | kPresent) ? uint32_t(entry) : kNone;
}

void DevicePages::prefetchPlace(uint64_t page) const {
  const uint64_t at = place(page);
  if (at < where_.size())
    __builtin_prefetch(&where_[at]);
}

void DevicePages::insert(uint64_t page, uint32_t slot) {
  const uint64_t at = place(page);
  if (at >= where_.size())
    where_.resize(std::max(at + 1, 2 * where_.size()), 0);
  where_[at] = (page >> 40 | kPresent) << 32 | slot;
}

void DevicePages::erase(uint64_t page) {
  // A page taken again in a later generation may have replaced it.
  if (find(page) != kNone)
    where_[place(page)] = 0;
}

void DevicePages::unlink(uint32_t slot) {
  const uint32_t newer = slotInfo_[slot].newer, older = slotInfo_[slot].older;
  (newer == kNone ? newest_ : slotInfo_[newer].older) = older;
  (older == kNone ? oldest_ : slotInfo_[older].newer) = newer;
}

void DevicePages::touch(uint32_t slot) {
  if (newest_ == slot)
    return;
  unlink(slot);
  slotInfo_[slot].newer = kNone;
  slotInfo_[slot].older = newest_;
  (newest_ == kNone ? oldest_ : slotInfo_[newest_].newer) = slot;
  newest_ = slot;
}

bool DevicePages::bringIn(uint64_t page, bool evictCurrent) {
  uint32_t slot = find(page);
  if (slot != kNone) {
    touch(slot);
    slotInfo_[slot].lastStep = step_;
    return true;
  }
  if (slotInfo_.size() >= slots_) {
    slot = oldest_;
    if (!evictCurrent && slotInfo_[slot].lastStep == step_)
      return false;
    erase(slotInfo_[slot].holder);
  } else {
    slot = uint32_t(slotInfo_.size());
    // Linked in as the oldest, then made the newest below.
    Slot added;
    added.newer = oldest_;
    slotInfo_.push_back(added);
    (oldest_ == kNone ? newest_ : slotInfo_[oldest_].older) = slot;
    oldest_ = slot;
  }
  touch(slot);
  Slot &info = slotInfo_[slot];
  info.holder = page;
  info.lastStep = step_;
  info.prefetched = false;
  insert(page, slot);
  if (!info.listed) {
    info.listed = true;
    changed_.push_back(slot);
  }
  return true;
}

std::vector<uint64_t> DevicePages::takeChangedSlots() {
  for (uint64_t slot : changed_)
    slotInfo_[slot].listed = false;
  std::vector<uint64_t> changed;
  changed.swap(changed_);
  return changed;
}

void DevicePages::written(uint64_t page, bool holdsEarlierTokens) {
  if (holdsEarlierTokens && find(page) == kNone)
    ++counts_.refilled;
  bringIn(page, true);
}

Status DevicePages::acquire(const std::vector<uint64_t> &pages) {
  // Pages repeat where blocks are smaller than pages. A resident one is
  // known again by its slot's mark (this call's number): sorting the whole
  // list took a third of a GPU step's schedule. The missing ones, few
  // once the device holds the working set, are sorted.
  const uint64_t call = ++acquisitions_;
  std::vector<uint32_t> resident;
  std::vector<uint64_t> missing;
  for (size_t i = 0; i < pages.size(); ++i) {
    // The lookups miss the caches (the other layers' schedules ran since):
    // ask for the ones ahead so that their misses overlap.
    if (i + kLookAhead < pages.size())
      prefetchPlace(pages[i + kLookAhead]);
    const uint64_t page = pages[i];
    const uint32_t slot = find(page);
    if (slot == kNone) {
      missing.push_back(page);
    } else if (slotInfo_[slot].lastAcquired != call) {
      slotInfo_[slot].lastAcquired = call;
      resident.push_back(slot);
    }
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  const uint64_t distinct = resident.size() + missing.size();
  if (distinct > slots_)
    return Status::error("an attention reads " + std::to_string(distinct) +
                         " offloaded pages at once but the device holds " +
                         std::to_string(slots_) +
                         "; raise the offload budget or select fewer blocks");
  // Resident pages first, so that fetching the others never evicts one of
  // them.
  for (uint32_t slot : resident) {
    Slot &info = slotInfo_[slot];
    if (info.prefetched)
      ++counts_.prefetchHits;
    info.prefetched = false;
    info.lastStep = step_;
    touch(slot);
  }
  for (uint64_t page : missing)
    bringIn(page, true);
  counts_.read += distinct;
  counts_.hits += resident.size();
  counts_.misses += missing.size();
  return Status::ok();
}

void DevicePages::stream(const std::vector<uint64_t> &pages) {
  for (uint64_t page : pages) {
    if (find(page) == kNone)
      ++counts_.streamed;
    bringIn(page, true);
  }
}

void DevicePages::prefetch(const std::vector<uint64_t> &pages) {
  for (uint64_t page : pages) {
    if (find(page) != kNone)
      continue;
    if (!bringIn(page, false))
      return;
    slotInfo_[find(page)].prefetched = true;
    ++counts_.prefetched;
  }
}

} // namespace kvrt::offload
