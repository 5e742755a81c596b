//===- OutputFile.cpp -----------------------------------------------------===//
#include "tools/kvopt/OutputFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace kvopt::cli {

int writeOutputFile(const std::string &path,
                    const std::function<bool(std::ostream &)> &write) {
  if (path == "-") {
    bool ok = write(std::cout);
    std::cout.flush();
    return ok && std::cout.good() ? 0 : 1;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) {
      std::cerr << "kvopt: cannot write '" << tmp
                << "': " << std::strerror(errno) << "\n";
      return 1;
    }
    bool ok = write(os);
    os.close();
    if (!ok || os.fail()) {
      std::cerr << "kvopt: writing '" << path << "' failed\n";
      std::remove(tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::cerr << "kvopt: cannot move '" << tmp << "' to '" << path
              << "': " << std::strerror(errno) << "\n";
    std::remove(tmp.c_str());
    return 1;
  }
  return 0;
}

std::string outputFileProblem(const std::string &path) {
  if (path.empty() || path == "-")
    return "";
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    return "'" + path + "' is a folder, not a file";
  // The temporary file writeOutputFile() will write, made and removed.
  const std::string probe = path + ".tmp";
  const bool existed = std::filesystem::exists(probe, error);
  {
    std::ofstream os(probe, std::ios::binary | std::ios::app);
    if (!os)
      return "cannot write '" + probe + "': " + std::strerror(errno);
  }
  if (!existed)
    std::remove(probe.c_str());
  return "";
}

} // namespace kvopt::cli
