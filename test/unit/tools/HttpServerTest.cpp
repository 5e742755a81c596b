//===- HttpServerTest.cpp - Connections, deadlines and keep-alive ---------===//
//
// A client that never finishes its request must not hold a thread past the
// request deadline; kept-alive and pipelined requests each get their answer;
// a stream is chunked on a kept connection and ends at the close otherwise.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/serve/HttpServer.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace kvopt::serve;

namespace {

/// A server answering "path" to every request (/stream: "ab" then "cde" as
/// a stream), on a free port, for the test's lifetime.
class Served {
public:
  explicit Served(HttpServerOptions options) {
    options.port = 0;
    server_ = std::move(HttpServer::listen(options).value());
    thread_ = std::thread([this] {
      server_->serve([](const HttpRequest &request, HttpExchange &exchange) {
        if (request.path != "/stream") {
          exchange.respond(200, "text/plain", request.path);
          return;
        }
        if (exchange.beginStream("text/event-stream"))
          for (std::string_view part : {"ab", "", "cde"})
            exchange.send(part);
      });
    });
  }
  ~Served() {
    server_->stop();
    thread_.join();
  }
  /// A connected socket.
  int connect() const {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in where{};
    where.sin_family = AF_INET;
    where.sin_port = htons(server_->port());
    inet_pton(AF_INET, "127.0.0.1", &where.sin_addr);
    EXPECT_EQ(::connect(s, reinterpret_cast<sockaddr *>(&where), sizeof where),
              0);
    return s;
  }

private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

void sendAll(int s, std::string_view bytes) {
  ASSERT_EQ(send(s, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            ssize_t(bytes.size()));
}

/// Everything the server sends until it closes the connection.
std::string readToClose(int s) {
  std::string all;
  char chunk[4096];
  ssize_t n;
  while ((n = recv(s, chunk, sizeof chunk, 0)) > 0)
    all.append(chunk, size_t(n));
  close(s);
  return all;
}

size_t count(const std::string &text, std::string_view what) {
  size_t found = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1))
    ++found;
  return found;
}

TEST(HttpServer, AnswersAnUnfinishedRequestWith408AtItsDeadline) {
  HttpServerOptions options;
  options.requestSeconds = 1;
  Served served(options);
  int s = served.connect();
  auto start = std::chrono::steady_clock::now();
  sendAll(s, "GET /slow HTTP/1.1\r\nHost: x\r\n");
  std::string answer = readToClose(s);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(answer.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("did not arrive whole within 1 seconds"),
            std::string::npos);
  EXPECT_GE(seconds, 0.9);
  EXPECT_LT(seconds, 5);
}

TEST(HttpServer, ClosesAnIdleKeptAliveConnectionQuietly) {
  HttpServerOptions options;
  options.idleSeconds = 1;
  Served served(options);
  int s = served.connect();
  sendAll(s, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  // The first answer, then nothing: the connection closes after a second
  // without another request, with no 408.
  std::string answer = readToClose(s);
  EXPECT_EQ(count(answer, "HTTP/1.1 200 OK"), 1u) << answer;
  EXPECT_EQ(count(answer, "408"), 0u) << answer;
}

TEST(HttpServer, AnswersPipelinedRequestsInOrder) {
  Served served({});
  int s = served.connect();
  sendAll(s, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
             "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
             "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer = readToClose(s);
  EXPECT_EQ(count(answer, "HTTP/1.1 200 OK"), 3u) << answer;
  size_t a = answer.find("\r\n\r\n/a"), b = answer.find("\r\n\r\n/b"),
         c = answer.find("\r\n\r\n/c");
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_NE(c, std::string::npos);
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
}

TEST(HttpServer, ChunksAStreamOnAKeptConnectionAndGoesOn) {
  Served served({});
  int s = served.connect();
  sendAll(s, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer = readToClose(s);
  const std::string body = "\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n";
  EXPECT_NE(answer.find("Transfer-Encoding: chunked\r\n"), std::string::npos)
      << answer;
  EXPECT_NE(answer.find(body + "HTTP/1.1 200 OK"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\r\n\r\n/after"), std::string::npos) << answer;
}

TEST(HttpServer, StreamsToTheCloseWhenTheClientEndsTheConnection) {
  Served served({});
  int s = served.connect();
  sendAll(s, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer = readToClose(s);
  EXPECT_EQ(answer.find("Transfer-Encoding"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Connection: close\r\n\r\nabcde"), std::string::npos)
      << answer;
  EXPECT_EQ(answer.substr(answer.size() - 5), "abcde") << answer;
}

TEST(HttpServer, RefusesAHostileRequestAndCloses) {
  Served served({});
  int s = served.connect();
  sendAll(s, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
             "Content-Length: 2\r\n\r\nab");
  std::string answer = readToClose(s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("two different Content-Length"), std::string::npos);
}

} // namespace
