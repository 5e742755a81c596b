//===- OutputFile.cpp -----------------------------------------------------===//
#include "tools/kvopt/OutputFile.h"

#include "llvm/Support/FileSystem.h"

#include <cstdio>
#include <iostream>

namespace kvopt::cli {

int writeOutputFile(const std::string &path,
                    const std::function<bool(llvm::raw_ostream &)> &write) {
  if (path == "-") {
    bool ok = write(llvm::outs());
    llvm::outs().flush();
    return ok ? 0 : 1;
  }
  std::string tmp = path + ".tmp";
  std::error_code ec;
  {
    llvm::raw_fd_ostream os(tmp, ec, llvm::sys::fs::OF_None);
    if (ec) {
      std::cerr << "kvopt: cannot write '" << tmp << "': " << ec.message()
                << "\n";
      return 1;
    }
    bool ok = write(os);
    os.close();
    if (!ok || os.has_error()) {
      std::cerr << "kvopt: writing '" << path << "' failed"
                << (os.has_error() ? ": " + os.error().message() : "") << "\n";
      os.clear_error();
      std::remove(tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::cerr << "kvopt: cannot move '" << tmp << "' to '" << path << "'\n";
    std::remove(tmp.c_str());
    return 1;
  }
  return 0;
}

} // namespace kvopt::cli
