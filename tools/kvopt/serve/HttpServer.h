//===- HttpServer.h - A small threaded HTTP/1.1 server ----------*- C++ -*-===//
//
// One thread accepts connections; each connection has a thread of its own
// that reads requests (HttpRequest.h), calls the handler and keeps the
// connection for the next request when both sides allow it. A client gets a
// bounded time to send a request and to take a response's bytes, so a slow
// or silent one holds a thread for that long at most; past maxConnections,
// new clients get 503 at once.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SERVE_HTTPSERVER_H
#define KVOPT_TOOLS_KVOPT_SERVE_HTTPSERVER_H

#include "tools/kvopt/serve/HttpRequest.h"

#include "kvrt/Status.h"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace kvopt::serve {

struct HttpServerOptions {
  /// An IPv4 address to listen on.
  std::string host = "127.0.0.1";
  /// 0: a free port, which port() then tells.
  uint16_t port = 8000;
  size_t maxConnections = 64;
  HttpLimits limits;
  /// Seconds a client has to send a whole request once it has begun.
  int requestSeconds = 30;
  /// Seconds an idle kept-alive connection stays open.
  int idleSeconds = 5;
  /// Seconds one send may wait for the client to take bytes.
  int sendSeconds = 30;
};

/// One request's answer, written to its connection.
class HttpExchange {
public:
  HttpExchange(int socket, bool keepAlive, int sendSeconds)
      : socket_(socket), keepAlive_(keepAlive), sendSeconds_(sendSeconds) {}

  /// A whole response with a Content-Length.
  void respond(int status, std::string_view contentType, std::string_view body);
  /// Starts a response whose body follows in send() calls (Server-Sent
  /// Events): in chunks on a connection kept alive, which finish() ends,
  /// else until the connection closes; false when the client is gone.
  bool beginStream(std::string_view contentType);
  /// Writes body bytes of a stream; false when the client is gone.
  bool send(std::string_view bytes);
  /// Ends a chunked stream; the server calls it once the handler returns.
  void finish();
  /// Whether the client closed its side or the connection broke.
  bool clientGone() const;
  /// Whether the connection may take another request after this one.
  bool keepsConnection() const { return keepAlive_ && !broken_; }

private:
  bool writeAll(std::string_view bytes);

  int socket_;
  bool keepAlive_;
  int sendSeconds_;
  bool broken_ = false;
  bool chunked_ = false;
};

using HttpHandler = std::function<void(const HttpRequest &, HttpExchange &)>;

class HttpServer {
public:
  /// Binds and listens; fails with one sentence naming the address.
  static kvrt::StatusOr<std::unique_ptr<HttpServer>>
  listen(const HttpServerOptions &options);
  ~HttpServer();

  uint16_t port() const { return port_; }
  /// Serves until stop(), then waits for the open connections to end.
  void serve(const HttpHandler &handler);
  /// Stops accepting and closes idle connections; callable from any thread.
  void stop();

private:
  HttpServer(const HttpServerOptions &options, int listener, uint16_t port)
      : options_(options), listener_(listener), port_(port) {}
  void connection(int socket, const HttpHandler &handler);

  const HttpServerOptions options_;
  int listener_;
  uint16_t port_;
  std::mutex mutex_;
  std::condition_variable connectionsChanged_;
  /// Open connections' sockets, so that stop() can wake their readers.
  std::set<int> sockets_;
  bool stopping_ = false;
};

} // namespace kvopt::serve

#endif // KVOPT_TOOLS_KVOPT_SERVE_HTTPSERVER_H
