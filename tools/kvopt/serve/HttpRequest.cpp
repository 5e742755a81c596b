//===- HttpRequest.cpp ----------------------------------------------------===//
#include "tools/kvopt/serve/HttpRequest.h"

#include "kvrt/Quote.h"

#include <algorithm>
#include <cstdint>

namespace kvopt::serve {
namespace {

/// RFC 9110's tchar: what a method or a header name is made of.
bool isTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9')
    return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
    return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(char(c)) !=
         std::string_view::npos;
}

bool isToken(std::string_view text) {
  if (text.empty())
    return false;
  for (char c : text)
    if (!isTokenChar(static_cast<unsigned char>(c)))
      return false;
  return true;
}

/// A field value's bytes: visible ASCII, spaces, tabs and obs-text.
bool isFieldValue(std::string_view text) {
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 ? c != '\t' : c == 0x7F)
      return false;
  }
  return true;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char &c : out)
    if (c >= 'A' && c <= 'Z')
      c = char(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

HttpParse refuse(int status, std::string error) {
  HttpParse parse;
  parse.state = HttpParse::State::Refused;
  parse.status = status;
  parse.error = std::move(error);
  return parse;
}

} // namespace

const std::string *HttpRequest::header(std::string_view name) const {
  for (const auto &[key, value] : headers)
    if (key == name)
      return &value;
  return nullptr;
}

HttpParse parseHttpRequest(std::string_view bytes, const HttpLimits &limits) {
  // Empty lines before a request are ignored (RFC 9112, 2.2).
  size_t start = 0;
  while (bytes.substr(start, 2) == "\r\n")
    start += 2;
  size_t headerEnd = bytes.find("\r\n\r\n", start);
  if (headerEnd == std::string_view::npos ||
      headerEnd + 4 > limits.maxHeaderBytes) {
    if (bytes.size() >= limits.maxHeaderBytes)
      return refuse(431, "the request line and headers exceed " +
                             std::to_string(limits.maxHeaderBytes) + " bytes");
    return {};
  }
  std::string_view head = bytes.substr(start, headerEnd + 2 - start);

  HttpRequest request;
  size_t lineEnd = head.find("\r\n");
  std::string_view line = head.substr(0, lineEnd);
  if (line.find_first_of("\r\n") != std::string_view::npos)
    return refuse(400, "the request line holds a bare CR or LF");
  size_t space1 = line.find(' ');
  size_t space2 = space1 == std::string_view::npos ? std::string_view::npos
                                                   : line.find(' ', space1 + 1);
  if (space2 == std::string_view::npos ||
      line.find(' ', space2 + 1) != std::string_view::npos)
    return refuse(400, "the request line " + kvrt::quote(line) +
                           " is not METHOD, path and version separated by "
                           "single spaces");
  std::string_view method = line.substr(0, space1);
  std::string_view target = line.substr(space1 + 1, space2 - space1 - 1);
  std::string_view version = line.substr(space2 + 1);
  if (!isToken(method))
    return refuse(400, "the method " + kvrt::quote(method) + " is not a token");
  if (target.empty() || target[0] != '/')
    return refuse(400, "the request target " + kvrt::quote(target) +
                           " is not a path starting with /");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 ||
        static_cast<unsigned char>(c) >= 0x7F)
      return refuse(400, "the request target " + kvrt::quote(target) +
                             " holds a byte outside visible ASCII");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    if (version.substr(0, 5) == "HTTP/")
      return refuse(505, "this server speaks HTTP/1.1 and HTTP/1.0, not " +
                             kvrt::quote(version));
    return refuse(400, "the request line ends in " + kvrt::quote(version) +
                           ", not an HTTP version");
  }
  request.method = std::string(method);
  request.path = std::string(target.substr(0, target.find('?')));
  request.version = std::string(version);

  bool haveLength = false;
  uint64_t length = 0;
  size_t hosts = 0;
  size_t lineNumber = 1;
  for (size_t at = lineEnd + 2; at < head.size(); ++lineNumber) {
    size_t end = head.find("\r\n", at);
    std::string_view field = head.substr(at, end - at);
    at = end + 2;
    if (request.headers.size() == limits.maxHeaders)
      return refuse(431, "the request has more than " +
                             std::to_string(limits.maxHeaders) + " headers");
    if (field[0] == ' ' || field[0] == '\t')
      return refuse(400, "header line " + std::to_string(lineNumber) +
                             " continues the one before (obsolete line "
                             "folding)");
    size_t colon = field.find(':');
    if (colon == std::string_view::npos)
      return refuse(400, "header line " + std::to_string(lineNumber) + " " +
                             kvrt::quote(field) + " has no colon");
    std::string_view name = field.substr(0, colon);
    if (!isToken(name))
      return refuse(400, "header line " + std::to_string(lineNumber) +
                             " has the name " + kvrt::quote(name) +
                             ", which is not a token (no spaces before the "
                             "colon)");
    std::string_view value = trim(field.substr(colon + 1));
    if (!isFieldValue(value))
      return refuse(400, "header " + kvrt::quote(name) +
                             " holds a control character");
    std::string key = lower(name);
    if (key == "transfer-encoding")
      return refuse(501, "Transfer-Encoding is not accepted in requests; "
                         "send the body with Content-Length");
    if (key == "content-length") {
      if (value.empty() || value.size() > 19 ||
          value.find_first_not_of("0123456789") != std::string_view::npos)
        return refuse(400, "Content-Length " + kvrt::quote(value) +
                               " is not a decimal number of bytes");
      uint64_t parsed = 0;
      for (char c : value)
        parsed = parsed * 10 + uint64_t(c - '0');
      if (haveLength && parsed != length)
        return refuse(400, "the request has two different Content-Length "
                           "headers");
      haveLength = true;
      length = parsed;
    }
    if (key == "host")
      ++hosts;
    request.headers.emplace_back(std::move(key), std::string(value));
  }
  if (request.version == "HTTP/1.1" && hosts != 1)
    return refuse(400, hosts == 0 ? "an HTTP/1.1 request needs a Host header"
                                  : "the request has more than one Host "
                                    "header");
  if (!haveLength && request.method == "POST")
    return refuse(411, "a POST needs a Content-Length header");
  if (length > limits.maxBodyBytes)
    return refuse(
        413, "the body of " + std::to_string(length) + " bytes exceeds the " +
                 std::to_string(limits.maxBodyBytes) + " this server accepts");
  size_t bodyStart = headerEnd + 4;
  if (bytes.size() - bodyStart < length)
    return {};
  request.body = std::string(bytes.substr(bodyStart, size_t(length)));

  // HTTP/1.1 keeps the connection unless told to close; 1.0 closes it
  // unless told to keep it. "close" wins over "keep-alive".
  bool close = false, keep = false;
  if (const std::string *connection = request.header("connection")) {
    std::string options = lower(*connection);
    for (size_t at = 0; at <= options.size();) {
      size_t comma = std::min(options.find(',', at), options.size());
      std::string_view option =
          trim(std::string_view(options).substr(at, comma - at));
      close |= option == "close";
      keep |= option == "keep-alive";
      at = comma + 1;
    }
  }
  request.keepAlive = !close && (keep || request.version == "HTTP/1.1");
  HttpParse parse;
  parse.state = HttpParse::State::Complete;
  parse.request = std::move(request);
  parse.consumed = bodyStart + size_t(length);
  return parse;
}

const char *httpReason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Error";
  }
}

} // namespace kvopt::serve
