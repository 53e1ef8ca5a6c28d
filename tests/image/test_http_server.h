// A small HTTP/1.1 (or HTTPS) server for tests, on 127.0.0.1 at a port the
// kernel picks. Every connection is served on its own thread by a handler that can
// answer at once, stream a body in chunks, or drop the connection in the
// middle of a body (fault injection). The destructor closes all connections
// and joins every thread.
//
//   auto server = TestHttpServer::Start([](const TestHttpServer::Request& request,
//                                          TestHttpServer::Responder& responder) {
//     if (request.path == "/hello") return responder.Send(200, "hi");
//     responder.Send(404);
//   });
//   ASSERT_TRUE(server.ok()) << server.status();
//   HttpFetch({.url = (*server)->url() + "/hello"});
#ifndef VMLET_TESTS_IMAGE_TEST_HTTP_SERVER_H_
#define VMLET_TESTS_IMAGE_TEST_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace vmlet::testing {

// Serves HTTPS with this certificate and key (PEM files).
struct TestTlsOptions {
  std::string cert_file, key_file;
  // When set, clients must present a certificate this PEM bundle trusts.
  std::string client_ca_file;
};

// Writes a self-signed certificate for CN=127.0.0.1 (subjectAltName
// IP:127.0.0.1) and its key to the two files, using the openssl command.
// FAILED_PRECONDITION when the openssl command is missing.
absl::Status MakeSelfSignedCertificate(const std::string& cert_file, const std::string& key_file);

class TestHttpServer {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  struct Request {
    std::string method;
    std::string target;                          // As sent: "/v2/a/manifests/1?x=y".
    std::string path;                            // The target without its query.
    std::string query;                           // After "?", still encoded; "" without one.
    std::map<std::string, std::string> headers;  // Lowercase names.
    std::string body;

    // The header's value, or "" when absent. `name` is case-insensitive.
    std::string Header(std::string_view name) const;
    bool HasHeader(std::string_view name) const;
    // The query parameter, percent-decoded ("+" is a space), or "".
    std::string Param(std::string_view name) const;
  };

  // How a handler answers. Used on the connection's thread only.
  class Responder {
   public:
    // A whole response; Content-Length is added (no body is sent for HEAD).
    void Send(int status, std::string_view body = "", const Headers& headers = {});
    // Starts a streamed response: status and headers, with Content-Length
    // when `content_length` >= 0 (else the body ends when the connection is
    // closed). Then Write the body; a body shorter than announced closes the
    // connection when the handler returns.
    void Start(int status, int64_t content_length, const Headers& headers = {});
    // Writes body bytes of a started response. False once the client is gone.
    bool Write(std::string_view data);
    // Closes the connection at once, leaving whatever was being sent
    // unfinished: the client sees a truncated body or no response at all.
    void Drop();

   private:
    friend class TestHttpServer;
    Responder(int fd, SSL* ssl, bool head) : fd_(fd), ssl_(ssl), head_(head) {}
    bool WriteRaw(std::string_view data);

    int fd_;
    SSL* ssl_;  // Null for plain HTTP.
    bool head_;
    bool started_ = false;
    bool failed_ = false;  // A write failed or Drop was called.
    int64_t content_length_ = -1;
    int64_t body_written_ = 0;
  };

  // Runs on the connection's thread; connections are served concurrently,
  // so a handler shared by several must be thread-safe.
  using Handler = std::function<void(const Request&, Responder&)>;

  // Listens on 127.0.0.1:0 and starts serving, with TLS when `tls` has a
  // certificate.
  static absl::StatusOr<std::unique_ptr<TestHttpServer>> Start(Handler handler,
                                                               TestTlsOptions tls = {});
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  int port() const { return port_; }
  std::string host_port() const;  // "127.0.0.1:<port>"
  std::string url() const;        // "http://127.0.0.1:<port>" (https:// with TLS)

  // Every request received so far, in order of arrival. Any thread.
  std::vector<Request> requests() const;
  // How many requests had this path (without query). Any thread.
  int CountRequests(std::string_view path) const;
  void ClearRequests();

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  explicit TestHttpServer(Handler handler) : handler_(std::move(handler)) {}
  void AcceptLoop();
  void Serve(Connection* connection);
  // Reads one request; false when the client closed or sent garbage.
  bool ReadRequest(int fd, SSL* ssl, std::string& buffer, Request& request);

  Handler handler_;
  SSL_CTX* tls_ = nullptr;  // Null for plain HTTP. Read-only once started.
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread accept_thread_;

  mutable std::mutex mu_;
  bool stopping_ = false;                               // Guarded by mu_.
  std::list<std::unique_ptr<Connection>> connections_;  // Guarded by mu_.
  std::set<int> open_fds_;                              // Guarded by mu_.
  std::vector<Request> requests_;                       // Guarded by mu_.
};

}  // namespace vmlet::testing

#endif  // VMLET_TESTS_IMAGE_TEST_HTTP_SERVER_H_
