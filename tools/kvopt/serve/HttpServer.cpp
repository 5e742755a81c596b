//===- HttpServer.cpp -----------------------------------------------------===//
#include "tools/kvopt/serve/HttpServer.h"

#include "tools/kvopt/JsonWriter.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace kvopt::serve {
namespace {

using Clock = std::chrono::steady_clock;

/// OpenAI's error object, which every client of this API reads.
std::string errorBody(std::string_view message) {
  std::ostringstream out;
  cli::JsonWriter json(out, cli::JsonWriter::Layout::Compact);
  json.beginObject();
  json.key("error");
  json.beginObject();
  json.member("message", message);
  json.member("type", "invalid_request_error");
  json.key("param");
  json.null();
  json.key("code");
  json.null();
  json.endObject();
  json.endObject();
  return out.str();
}

void setTimeout(int socket, int option, int seconds) {
  timeval timeout{seconds, 0};
  setsockopt(socket, SOL_SOCKET, option, &timeout, sizeof timeout);
}

/// Answers a connection the server will not serve with 503 and closes it,
/// waiting at most a second for the client to take the answer.
void refuse(int socket, const std::string &why) {
  setTimeout(socket, SO_SNDTIMEO, 1);
  HttpExchange busy(socket, false, 1);
  busy.respond(503, "application/json", errorBody(why));
  close(socket);
}

} // namespace

bool HttpExchange::writeAll(std::string_view bytes) {
  while (!broken_ && !bytes.empty()) {
    ssize_t sent = ::send(socket_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR)
      continue;
    if (sent <= 0) {
      broken_ = true;
      break;
    }
    bytes.remove_prefix(size_t(sent));
  }
  return !broken_;
}

void HttpExchange::respond(int status, std::string_view contentType,
                           std::string_view body) {
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " + httpReason(status) +
      "\r\nContent-Type: " + std::string(contentType) +
      "\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: " + (keepAlive_ ? "keep-alive" : "close") + "\r\n\r\n";
  if (writeAll(head))
    writeAll(body);
}

bool HttpExchange::beginStream(std::string_view contentType) {
  // A client that keeps the connection gets the body in chunks, so that it
  // can tell the end from a break and send its next request on it.
  chunked_ = keepAlive_;
  return writeAll(
      "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(contentType) +
      "\r\nCache-Control: no-cache\r\n" +
      (chunked_ ? "Transfer-Encoding: chunked\r\nConnection: keep-alive"
                : "Connection: close") +
      "\r\n\r\n");
}

bool HttpExchange::send(std::string_view bytes) {
  if (!chunked_)
    return writeAll(bytes);
  if (bytes.empty()) // An empty chunk would end the body.
    return !broken_;
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
  return writeAll(std::string(size) + std::string(bytes) + "\r\n");
}

void HttpExchange::finish() {
  if (chunked_ && !broken_)
    writeAll("0\r\n\r\n");
  chunked_ = false;
}

bool HttpExchange::clientGone() const {
  if (broken_)
    return true;
  pollfd watch{socket_, POLLIN | POLLRDHUP, 0};
  if (poll(&watch, 1, 0) <= 0)
    return false;
  if (watch.revents & (POLLRDHUP | POLLHUP | POLLERR))
    return true;
  // Readable: the next request, or the end of the stream.
  char byte;
  return recv(socket_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

kvrt::StatusOr<std::unique_ptr<HttpServer>>
HttpServer::listen(const HttpServerOptions &options) {
  std::string address = options.host + ":" + std::to_string(options.port);
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(options.port);
  if (inet_pton(AF_INET, options.host.c_str(), &where.sin_addr) != 1)
    return kvrt::Status::error("--host " + options.host +
                               " is not an IPv4 address");
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0)
    return kvrt::Status::error("cannot open a socket: " +
                               std::string(std::strerror(errno)));
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (bind(listener, reinterpret_cast<sockaddr *>(&where), sizeof where) != 0 ||
      ::listen(listener, 128) != 0) {
    std::string why = std::strerror(errno);
    close(listener);
    return kvrt::Status::error("cannot listen on " + address + ": " + why);
  }
  socklen_t size = sizeof where;
  getsockname(listener, reinterpret_cast<sockaddr *>(&where), &size);
  return std::unique_ptr<HttpServer>(
      new HttpServer(options, listener, ntohs(where.sin_port)));
}

HttpServer::~HttpServer() { close(listener_); }

void HttpServer::stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  // Wakes accept() and every reader; responses being written go on.
  shutdown(listener_, SHUT_RDWR);
  for (int socket : sockets_)
    shutdown(socket, SHUT_RD);
}

void HttpServer::serve(const HttpHandler &handler) {
  while (true) {
    int socket = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopping_) {
      if (socket >= 0)
        close(socket);
      break;
    }
    if (socket < 0) {
      lock.unlock();
      // Out of descriptors: let connections end before trying again.
      if (errno == EMFILE || errno == ENFILE)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (sockets_.size() >= options_.maxConnections) {
      lock.unlock();
      refuse(socket, "the server has " +
                         std::to_string(options_.maxConnections) +
                         " connections open, its most; try again");
      continue;
    }
    sockets_.insert(socket);
    try {
      std::thread([this, socket, &handler] {
        connection(socket, handler);
      }).detach();
    } catch (const std::system_error &) {
      // No thread to be had (a process or memory limit): this client is
      // told to come back, the server goes on.
      sockets_.erase(socket);
      lock.unlock();
      refuse(socket, "the server cannot start a thread for this connection "
                     "now; try again");
    }
  }
  std::unique_lock<std::mutex> lock(mutex_);
  connectionsChanged_.wait(lock, [&] { return sockets_.empty(); });
}

void HttpServer::connection(int socket, const HttpHandler &handler) {
  int on = 1;
  setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  setTimeout(socket, SO_SNDTIMEO, options_.sendSeconds);
  std::string buffer;
  bool first = true;
  while (true) {
    // A request must arrive whole within requestSeconds of its first byte;
    // between requests the connection may idle for idleSeconds.
    bool begun = !buffer.empty();
    Clock::time_point deadline =
        Clock::now() + std::chrono::seconds(first || begun
                                                ? options_.requestSeconds
                                                : options_.idleSeconds);
    HttpParse parse = parseHttpRequest(buffer, options_.limits);
    while (parse.state == HttpParse::State::NeedMore) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      pollfd watch{socket, POLLIN, 0};
      int ready = left.count() > 0 ? poll(&watch, 1, int(left.count())) : 0;
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0) {
        if (begun) {
          HttpExchange late(socket, false, options_.sendSeconds);
          late.respond(408, "application/json",
                       errorBody("the request did not arrive whole within " +
                                 std::to_string(options_.requestSeconds) +
                                 " seconds"));
        }
        parse.state = HttpParse::State::Refused;
        parse.status = 0;
        break;
      }
      char chunk[64 * 1024];
      ssize_t received = recv(socket, chunk, sizeof chunk, 0);
      if (received < 0 && errno == EINTR)
        continue;
      if (received <= 0) {
        parse.status = 0;
        parse.state = HttpParse::State::Refused;
        break;
      }
      if (!begun) {
        begun = true;
        deadline = Clock::now() + std::chrono::seconds(options_.requestSeconds);
      }
      buffer.append(chunk, size_t(received));
      parse = parseHttpRequest(buffer, options_.limits);
    }
    if (parse.state == HttpParse::State::Refused) {
      if (parse.status != 0) {
        HttpExchange refused(socket, false, options_.sendSeconds);
        refused.respond(parse.status, "application/json",
                        errorBody(parse.error));
      }
      break;
    }
    first = false;
    buffer.erase(0, parse.consumed);
    bool keepAlive;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      keepAlive = parse.request.keepAlive && !stopping_;
    }
    HttpExchange exchange(socket, keepAlive, options_.sendSeconds);
    handler(parse.request, exchange);
    exchange.finish();
    if (!exchange.keepsConnection())
      break;
  }
  // Under the lock: accept() may reuse the number once it is closed.
  std::lock_guard<std::mutex> lock(mutex_);
  sockets_.erase(socket);
  close(socket);
  connectionsChanged_.notify_all();
}

} // namespace kvopt::serve
