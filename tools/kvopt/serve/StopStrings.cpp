//===- StopStrings.cpp ----------------------------------------------------===//
#include "tools/kvopt/serve/StopStrings.h"

#include <algorithm>

namespace kvopt::serve {

std::string StopStringFilter::push(std::string_view text) {
  if (stopped_)
    return {};
  held_ += text;
  size_t first = std::string::npos;
  for (const std::string &stop : stops_)
    first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string before = held_.substr(0, first);
    held_.clear();
    return before;
  }
  // The longest tail of held_ that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string &stop : stops_)
    for (size_t length = std::min(stop.size() - 1, held_.size()); length > keep;
         --length)
      if (held_.compare(held_.size() - length, length, stop, 0, length) == 0) {
        keep = length;
        break;
      }
  std::string ready = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return ready;
}

std::string StopStringFilter::finish() {
  std::string rest;
  rest.swap(held_);
  return stopped_ ? std::string() : rest;
}

} // namespace kvopt::serve
