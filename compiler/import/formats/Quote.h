//===- Quote.h - Names from a file, safe to put in a message ----*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_QUOTE_H
#define KVOPT_COMPILER_IMPORT_FORMATS_QUOTE_H

#include <string>
#include <string_view>

namespace kvopt::formats {

/// `text` in single quotes for an error message. Tensor names, keys and
/// dtypes come from the file: control characters and bytes that are not
/// UTF-8 are written as \xNN, and a long text is cut, so that a message
/// stays one short printable line whatever the file holds.
std::string quote(std::string_view text);

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_QUOTE_H
