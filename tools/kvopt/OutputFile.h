//===- OutputFile.h - Write a file whole or not at all ----------*- C++ -*-===//
//
// Needs nothing but the standard library, so that the runtime-only kvopt
// writes its result files the same way.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_OUTPUTFILE_H
#define KVOPT_TOOLS_KVOPT_OUTPUTFILE_H

#include <functional>
#include <ostream>
#include <string>

namespace kvopt::cli {

/// Writes through `write` to `path` ("-" for stdout) via a temporary file
/// renamed into place, so an existing file is never left half-written.
/// Returns the exit code: 0, or 1 after reporting the failure.
int writeOutputFile(const std::string &path,
                    const std::function<bool(std::ostream &)> &write);

/// Why `path` cannot be written now (its folder missing or closed to new
/// files, or `path` itself a folder), or "" when it can, or is "-" or "".
/// Asked before a run of minutes whose result would otherwise be lost at
/// its end.
std::string outputFileProblem(const std::string &path);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_OUTPUTFILE_H
