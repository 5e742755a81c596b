//===- HttpRequest.h - Reading one HTTP/1.1 request from hostile bytes -*- C++
//-*-===//
//
// A request comes from anyone who can reach the port. The reader takes the
// bytes received so far and says whether they hold a whole request, need
// more, or are refused with a status code and one sentence. It never
// allocates more than the limits allow, trusts no length it has not
// checked, and refuses what request smuggling needs (Transfer-Encoding,
// conflicting Content-Length, folded or space-padded header names).
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SERVE_HTTPREQUEST_H
#define KVOPT_TOOLS_KVOPT_SERVE_HTTPREQUEST_H

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvopt::serve {

struct HttpLimits {
  /// The request line and the headers, their line ends included.
  size_t maxHeaderBytes = 16 * 1024;
  size_t maxHeaders = 64;
  size_t maxBodyBytes = 1024 * 1024;
};

struct HttpRequest {
  std::string method;
  /// The path, without the query.
  std::string path;
  /// "HTTP/1.0" or "HTTP/1.1".
  std::string version;
  /// Names in lower case, values without surrounding spaces.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Whether the client keeps the connection open after the response.
  bool keepAlive = false;

  /// The value of header `name` (lower case), or null.
  const std::string *header(std::string_view name) const;
};

struct HttpParse {
  enum class State { NeedMore, Complete, Refused };
  State state = State::NeedMore;
  HttpRequest request;
  /// Complete: the bytes the request took (the rest begins the next one).
  size_t consumed = 0;
  /// Refused: the status to answer with and why.
  int status = 0;
  std::string error;
};

/// Reads a request from the start of `bytes`.
HttpParse parseHttpRequest(std::string_view bytes, const HttpLimits &limits);

/// "Bad Request" for 400, ...; "Error" for a code it does not know.
const char *httpReason(int status);

} // namespace kvopt::serve

#endif // KVOPT_TOOLS_KVOPT_SERVE_HTTPREQUEST_H
