//===- StopStrings.h - Cutting streamed text at a stop string ---*- C++ -*-===//
//
// A request's `stop` strings end its text where the first of them appears,
// the stop string itself left out. Text streams out as it is decoded, so the
// filter holds back the longest tail that could still begin a stop string
// and sends the rest.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SERVE_STOPSTRINGS_H
#define KVOPT_TOOLS_KVOPT_SERVE_STOPSTRINGS_H

#include <string>
#include <string_view>
#include <vector>

namespace kvopt::serve {

class StopStringFilter {
public:
  explicit StopStringFilter(std::vector<std::string> stops)
      : stops_(std::move(stops)) {}

  /// The text that may be sent now. Once a stop string appears, returns
  /// the text before it and stopped() turns true; later text is dropped.
  std::string push(std::string_view text);
  /// What is still held back (nothing after a stop).
  std::string finish();
  bool stopped() const { return stopped_; }

private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

} // namespace kvopt::serve

#endif // KVOPT_TOOLS_KVOPT_SERVE_STOPSTRINGS_H
