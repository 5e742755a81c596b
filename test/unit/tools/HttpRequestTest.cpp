//===- HttpRequestTest.cpp - Reading requests, refusing hostile ones ------===//
//
// Each refusal here is one a request-smuggling or resource attack relies on
// a server accepting: lengths that overflow or disagree, bodies framed by
// Transfer-Encoding, folded or padded header names, endless headers.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/serve/HttpRequest.h"

#include <gtest/gtest.h>

using namespace kvopt::serve;

namespace {

HttpParse parse(std::string_view bytes, HttpLimits limits = {}) {
  return parseHttpRequest(bytes, limits);
}

/// Expects `bytes` refused with `status` and a message containing `words`.
void expectRefused(std::string_view bytes, int status, std::string_view words,
                   HttpLimits limits = {}) {
  SCOPED_TRACE(std::string(bytes.substr(0, 80)));
  HttpParse p = parse(bytes, limits);
  ASSERT_EQ(p.state, HttpParse::State::Refused);
  EXPECT_EQ(p.status, status);
  EXPECT_NE(p.error.find(words), std::string::npos) << p.error;
}

TEST(HttpRequest, ReadsAPostWithItsBody) {
  std::string bytes = "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length:   7 \r\n\r\n{\"a\":1}GET";
  HttpParse p = parse(bytes);
  ASSERT_EQ(p.state, HttpParse::State::Complete) << p.error;
  EXPECT_EQ(p.request.method, "POST");
  EXPECT_EQ(p.request.path, "/v1/completions");
  EXPECT_EQ(p.request.body, "{\"a\":1}");
  ASSERT_NE(p.request.header("content-type"), nullptr);
  EXPECT_EQ(*p.request.header("content-type"), "application/json");
  EXPECT_TRUE(p.request.keepAlive);
  // The next request's first bytes are left for it.
  EXPECT_EQ(p.consumed, bytes.size() - 3);
}

TEST(HttpRequest, WaitsForTheWholeRequest) {
  std::string bytes =
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab";
  for (size_t size = 0; size < bytes.size(); ++size)
    EXPECT_EQ(parse(bytes.substr(0, size)).state, HttpParse::State::NeedMore)
        << size;
  EXPECT_EQ(parse(bytes + "cd").state, HttpParse::State::Complete);
}

TEST(HttpRequest, KeepsTheConnectionAsTheVersionAndHeaderSay) {
  auto keeps = [](std::string_view version, std::string_view connection) {
    std::string bytes = "GET / " + std::string(version) + "\r\nHost: a\r\n";
    if (!connection.empty())
      bytes += "Connection: " + std::string(connection) + "\r\n";
    HttpParse p = parse(bytes + "\r\n");
    EXPECT_EQ(p.state, HttpParse::State::Complete) << p.error;
    return p.request.keepAlive;
  };
  EXPECT_TRUE(keeps("HTTP/1.1", ""));
  EXPECT_FALSE(keeps("HTTP/1.1", "close"));
  EXPECT_FALSE(keeps("HTTP/1.1", "keep-alive, Close"));
  EXPECT_FALSE(keeps("HTTP/1.0", ""));
  EXPECT_TRUE(keeps("HTTP/1.0", "Keep-Alive"));
}

TEST(HttpRequest, SkipsEmptyLinesBeforeTheRequest) {
  HttpParse p = parse("\r\n\r\nGET /health HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.state, HttpParse::State::Complete) << p.error;
  EXPECT_EQ(p.request.path, "/health");
}

TEST(HttpRequest, RefusesBodiesItCannotFrameSafely) {
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "\r\n0\r\n\r\n",
                501, "Transfer-Encoding");
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
                501, "Content-Length");
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                "Content-Length: 4\r\n\r\nabcd",
                400, "two different Content-Length");
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
                "not a decimal number");
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
                400, "not a decimal number");
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400,
                "not a decimal number");
  // 2^64 + 3 would wrap to 3 in 64 bits.
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\n"
                "Content-Length: 18446744073709551619\r\n\r\nabc",
                400, "not a decimal number");
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\n\r\n", 411, "Content-Length");
}

TEST(HttpRequest, BoundsWhatItBuffers) {
  HttpLimits limits;
  limits.maxHeaderBytes = 64;
  limits.maxHeaders = 2;
  limits.maxBodyBytes = 10;
  expectRefused("GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(60, 'x'),
                431, "exceed 64 bytes", limits);
  expectRefused("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", 431,
                "more than 2 headers", limits);
  expectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413,
                "11 bytes", limits);
  // A body at the limit is read.
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
                  "0123456789",
                  limits)
                .state,
            HttpParse::State::Complete);
}

TEST(HttpRequest, RefusesMalformedLines) {
  expectRefused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "single spaces");
  expectRefused("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400, "single spaces");
  expectRefused("GET\r / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR");
  expectRefused("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not a token");
  expectRefused("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                "starting with /");
  expectRefused("GET /\x7F HTTP/1.1\r\nHost: a\r\n\r\n", 400, "visible ASCII");
  expectRefused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/1.1");
  expectRefused("GET / FTP/1.0\r\nHost: a\r\n\r\n", 400, "not an HTTP version");
  expectRefused("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, "folding");
  expectRefused("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400,
                "no spaces before the colon");
  expectRefused("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400,
                "has no colon");
  const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
  expectRefused(std::string_view(nul, sizeof nul - 1), 400,
                "control character");
  expectRefused("GET / HTTP/1.1\r\nX: a\nHost: b\r\n\r\n", 400,
                "control character");
  expectRefused("GET / HTTP/1.1\r\n\r\n", 400, "needs a Host");
  expectRefused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
                "more than one Host");
}

} // namespace
