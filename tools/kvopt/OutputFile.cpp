//===- OutputFile.cpp -----------------------------------------------------===//
#include "tools/kvopt/OutputFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
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

} // namespace kvopt::cli
