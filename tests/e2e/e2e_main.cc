// main() of the end-to-end tests that need only the vmletd binary.
#include <unistd.h>
#include <cstdio>

#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/vmletd_process.h"

int main(int argc, char** argv) {
  // A C++ channel without a call in flight reads its socket only when the
  // backup poller runs, every 5 s by default; vmletd's GOAWAY at SIGTERM
  // would wait that long for the test's idle channel. The kubelet's (Go)
  // client reads at once, so poll often, before gRPC initialises.
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (vmlet::e2e::VmletdBinary().empty()) {
    std::fprintf(stderr, "$VMLETD is not set: nothing to test; skipping (exit 77)\n");
    return 77;
  }
  // Programs a test needs beside vmletd ($VMLET_E2E_REQUIRES, ':'-separated).
  if (const char* required = std::getenv("VMLET_E2E_REQUIRES"); required != nullptr) {
    std::string list = required;
    for (size_t start = 0; start <= list.size();) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      const std::string path = list.substr(start, end - start);
      if (!path.empty() && ::access(path.c_str(), X_OK) != 0) {
        std::fprintf(stderr, "%s is not installed; skipping (exit 77)\n", path.c_str());
        return 77;
      }
      start = end + 1;
    }
  }
  return RUN_ALL_TESTS();
}
