// Small helpers shared by the streaming tests: raw sockets to the server
// under test, and the process's thread count (nothing may be left running).
#ifndef VMLET_TESTS_STREAMING_TEST_SOCKETS_H_
#define VMLET_TESTS_STREAMING_TEST_SOCKETS_H_

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

namespace vmlet::streaming::testing {

// The threads of this process now.
inline int CountThreads() {
  // A sanitizer's helper thread starts with the first thread: count after it.
  static const bool kWarm = [] {
    std::thread([] {}).join();
    return true;
  }();
  (void)kWarm;
  int count = 0;
  DIR* dir = ::opendir("/proc/self/task");
  while (dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
  ::closedir(dir);
  return count;
}

// A connected TCP socket to 127.0.0.1:port.
inline int ConnectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

}  // namespace vmlet::streaming::testing

#endif  // VMLET_TESTS_STREAMING_TEST_SOCKETS_H_
