// systemd socket activation of the CRI socket (contrib/systemd/vmletd.socket).
//
// gRPC's C++ server cannot listen on a socket it did not create, but it
// takes connected descriptors (grpc::AddInsecureChannelFromFd). So the
// listening socket systemd passes is served by an accept loop of our own
// that hands every connection to the gRPC server.
#ifndef VMLET_CMD_VMLETD_SOCKET_ACTIVATION_H_
#define VMLET_CMD_VMLETD_SOCKET_ACTIVATION_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>
#include <thread>

namespace vmlet {

// The listening unix stream socket systemd passed for `path` (sd_listen_fds),
// or -1 when vmletd was not socket-activated for it.
int ActivatedSocket(const std::string& path);

// Accepts connections on `listen_fd` (which it owns) and adds each to
// `server`. Stop() ends the loop; it must run before the server shuts down.
class ActivatedListener {
 public:
  ActivatedListener(int listen_fd, grpc::Server* server);
  ~ActivatedListener();
  void Stop();

 private:
  void Run();

  const int listen_fd_;
  const int stop_fd_;  // eventfd that wakes the loop.
  grpc::Server* const server_;
  std::thread thread_;
};

}  // namespace vmlet

#endif  // VMLET_CMD_VMLETD_SOCKET_ACTIVATION_H_
