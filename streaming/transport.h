// A connection's bytes, below any framing: what a SPDY session or a
// WebSocket runs on once the HTTP upgrade is done. FdTransport is a
// connected socket; a TLS connection is turned into one by a pump thread
// (http_server.h), so everything above sees plain file descriptors.
#ifndef VMLET_STREAMING_TRANSPORT_H_
#define VMLET_STREAMING_TRANSPORT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet::streaming {

// One thread may Read while another Writes; two concurrent Reads (or two
// concurrent Writes) are not allowed: callers serialise them.
class Transport {
 public:
  virtual ~Transport() = default;

  // Reads at most `size` bytes into `buffer`; 0 at end of stream. Blocks.
  virtual absl::StatusOr<size_t> Read(char* buffer, size_t size) = 0;

  // Writes all of `data`. Blocks.
  virtual absl::Status Write(std::string_view data) = 0;

  // Ends the connection both ways: a blocked Read or Write returns. Any
  // thread, any number of times.
  virtual void Shutdown() = 0;
};

// A connected stream socket, owned (closed by the destructor). `prefix` is
// read first: bytes that arrived behind the HTTP request that upgraded the
// connection.
class FdTransport final : public Transport {
 public:
  explicit FdTransport(int fd, std::string prefix = "");
  ~FdTransport() override;
  FdTransport(const FdTransport&) = delete;
  FdTransport& operator=(const FdTransport&) = delete;

  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;
  absl::Status Write(std::string_view data) override;
  void Shutdown() override;

  int fd() const { return fd_; }

 private:
  const int fd_;
  std::string prefix_;  // Read only by the reading thread.
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_TRANSPORT_H_
