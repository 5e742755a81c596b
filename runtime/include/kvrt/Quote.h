//===- Quote.h - Names from outside, safe to put in a message ---*- C++ -*-===//
#ifndef KVRT_QUOTE_H
#define KVRT_QUOTE_H

#include <string>
#include <string_view>

namespace kvrt {

/// `text` in single quotes for an error message. Tensor names, keys, paths
/// and header fields come from files and clients: control characters and
/// bytes that are not UTF-8 are written as \xNN, and a long text is cut, so
/// that a message stays one short printable line whatever the input holds.
std::string quote(std::string_view text);

} // namespace kvrt

#endif // KVRT_QUOTE_H
