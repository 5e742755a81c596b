//===- DevicePages.cpp ----------------------------------------------------===//
#include "runtime/src/offload/DevicePages.h"

#include <string>

namespace kvrt::offload {

bool DevicePages::bringIn(uint64_t page, bool evictCurrent) {
  auto found = resident_.find(page);
  if (found != resident_.end()) {
    order_.splice(order_.begin(), order_, found->second.position);
    found->second.lastStep = step_;
    return true;
  }
  if (resident_.size() >= slots_) {
    uint64_t oldest = order_.back();
    if (!evictCurrent && resident_.at(oldest).lastStep == step_)
      return false;
    resident_.erase(oldest);
    order_.pop_back();
  }
  order_.push_front(page);
  resident_[page] = {order_.begin(), step_, false};
  return true;
}

void DevicePages::written(uint64_t page) { bringIn(page, true); }

Status DevicePages::acquire(const std::vector<uint64_t> &pages) {
  if (pages.size() > slots_)
    return Status::error("an attention reads " + std::to_string(pages.size()) +
                         " offloaded pages at once but the device holds " +
                         std::to_string(slots_) +
                         "; raise the offload budget or select fewer blocks");
  // Resident pages first, so that fetching the others never evicts one of
  // them.
  std::vector<uint64_t> missing;
  for (uint64_t page : pages) {
    auto found = resident_.find(page);
    if (found == resident_.end()) {
      missing.push_back(page);
      continue;
    }
    ++counts_.hits;
    if (found->second.prefetched)
      ++counts_.prefetchHits;
    found->second.prefetched = false;
    bringIn(page, true);
  }
  for (uint64_t page : missing)
    bringIn(page, true);
  counts_.read += pages.size();
  counts_.misses += missing.size();
  return Status::ok();
}

void DevicePages::stream(const std::vector<uint64_t> &pages) {
  for (uint64_t page : pages) {
    if (!resident_.count(page))
      ++counts_.streamed;
    bringIn(page, true);
  }
}

void DevicePages::prefetch(const std::vector<uint64_t> &pages) {
  for (uint64_t page : pages) {
    if (resident_.count(page))
      continue;
    if (!bringIn(page, false))
      return;
    resident_.at(page).prefetched = true;
    ++counts_.prefetched;
  }
}

} // namespace kvrt::offload
