//===- LayerRange.cpp - Which layers a setting applies to -----------------===//
#include "compiler/policy/LayerRange.h"

#include "compiler/import/formats/Quote.h"

#include <optional>
#include <string>

namespace kvopt::policy {

namespace {
/// Reads an optionally negative decimal index from the front of `text`,
/// advancing past it; nullopt when there is none or it is too large.
std::optional<int64_t> readIndex(std::string_view &text) {
  bool negative = !text.empty() && text.front() == '-';
  size_t digits = negative ? 1 : 0;
  int64_t magnitude = 0;
  for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9';
       ++digits) {
    magnitude = magnitude * 10 + (text[digits] - '0');
    if (magnitude > kMaxLayerIndex)
      return std::nullopt;
  }
  if (digits == (negative ? 1u : 0u))
    return std::nullopt;
  text.remove_prefix(digits);
  return negative ? -magnitude : magnitude;
}

std::string describe(LayerRange range) {
  return range.first == range.last
             ? std::to_string(range.first)
             : std::to_string(range.first) + "-" + std::to_string(range.last);
}
} // namespace

kvrt::StatusOr<LayerRange> parseLayerRange(std::string_view text) {
  auto invalid = [&] {
    return kvrt::Status::error(
        formats::quote(text) +
        " is not a layer range: write N, -N (counting from the end, -1 is "
        "the last layer) or A-B (A to B inclusive), with indices up to " +
        std::to_string(kMaxLayerIndex));
  };
  std::string_view rest = text;
  std::optional<int64_t> first = readIndex(rest);
  if (!first)
    return invalid();
  std::optional<int64_t> last = first;
  if (!rest.empty()) {
    if (rest.front() != '-')
      return invalid();
    rest.remove_prefix(1);
    last = readIndex(rest);
    if (!last || !rest.empty())
      return invalid();
  }
  LayerRange range{*first, *last};
  // Only indices counted from the same end can be compared before the
  // layer count is known.
  if ((range.first < 0) == (range.last < 0) && range.first > range.last)
    return kvrt::Status::error("layer range " + describe(range) +
                               " runs backwards; write the lower index first");
  return range;
}

kvrt::StatusOr<LayerRange> resolveLayerRange(LayerRange range,
                                             int64_t layerCount) {
  auto resolve = [&](int64_t index) {
    return index < 0 ? layerCount + index : index;
  };
  for (int64_t index : {range.first, range.last}) {
    int64_t absolute = resolve(index);
    if (absolute < 0 || absolute >= layerCount)
      return kvrt::Status::error(
          "layer " + std::to_string(index) + " does not exist in a model " +
          (layerCount == 0
               ? std::string("without layers")
               : "of " + std::to_string(layerCount) + " layers (0 to " +
                     std::to_string(layerCount - 1) + ", or -" +
                     std::to_string(layerCount) + " to -1)"));
  }
  LayerRange absolute{resolve(range.first), resolve(range.last)};
  if (absolute.first > absolute.last)
    return kvrt::Status::error("layer range " + describe(range) +
                               " runs backwards in a model of " +
                               std::to_string(layerCount) + " layers (it is " +
                               describe(absolute) + ")");
  return absolute;
}

} // namespace kvopt::policy
