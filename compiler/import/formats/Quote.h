//===- Quote.h - The runtime's quote() for the importers --------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_QUOTE_H
#define KVOPT_COMPILER_IMPORT_FORMATS_QUOTE_H

#include "kvrt/Quote.h"

namespace kvopt::formats {
using kvrt::quote;
} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_QUOTE_H
