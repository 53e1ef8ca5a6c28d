// main() of the end-to-end tests that need only the vmletd binary.
#include <cstdio>
#include <cstdlib>

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
  return RUN_ALL_TESTS();
}
