// vmletd under systemd's protocols, with the real tools and no systemd as
// PID 1: socket activation through systemd-socket-activate (the same
// LISTEN_FDS hand-over systemd does for contrib/systemd/vmletd.socket), and
// the notify protocol (READY, STATUS, WATCHDOG, STOPPING) read from a
// NOTIFY_SOCKET the test binds, as systemd would for Type=notify.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/scope_guard.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;

constexpr char kSocketActivate[] = "/usr/bin/systemd-socket-activate";

// A unix datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{.tv_sec = 0, .tv_usec = 200 * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool bound() const { return bound_; }

  // Every message received until `timeout` passes, appended to messages().
  void Drain(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    char buffer[4096];
    while (absl::Now() < deadline) {
      ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n > 0) messages_.emplace_back(buffer, static_cast<size_t>(n));
    }
  }
  const std::vector<std::string>& messages() const { return messages_; }
  std::string All() const {
    std::string all;
    for (const std::string& m : messages_) StrAppend(&all, m, "\n---\n");
    return all;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

TEST(SystemdTest, ServesASocketPassedBySystemdAndSpeaksTheNotifyProtocol) {
  VmletdProcess vmletd;
  ASSERT_TRUE(vmletd.init_status().ok()) << vmletd.init_status();
  NotifySocket notify(vmletd.dir() + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  vmletd.set_wrapper({kSocketActivate, "-l", vmletd.socket_path(), "-E",
                      StrCat("NOTIFY_SOCKET=", vmletd.dir(), "/notify.sock"), "-E",
                      "WATCHDOG_USEC=400000", "-E", StrCat("PATH=", std::getenv("PATH"))});
  absl::Status started = vmletd.Start();
  ASSERT_TRUE(started.ok()) << started << "\n" << vmletd.Log();
  EXPECT_THAT(vmletd.Log(), HasSubstr("(socket from systemd)"));

  // Calls on the passed socket are served, over several connections.
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::VersionResponse version;
    grpc::Status status = vmletd.runtime().Version(&context, v1::VersionRequest(), &version);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(version.runtime_name(), "vmlet");
  }

  // READY with a STATUS once serving; keep-alives at half the watchdog
  // interval (0.2 s here).
  notify.Drain(absl::Seconds(1.5));
  std::string all = notify.All();
  EXPECT_THAT(all, HasSubstr("READY=1"));
  EXPECT_THAT(all, HasSubstr(StrCat("STATUS=serving the CRI on ", vmletd.socket_path())));
  int keep_alives = 0;
  for (const std::string& message : notify.messages()) keep_alives += message == "WATCHDOG=1";
  EXPECT_GE(keep_alives, 3) << all;

  absl::StatusOr<ExitStatus> ended = vmletd.Terminate();
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->code, 0) << vmletd.Log();
  notify.Drain(absl::Milliseconds(300));
  EXPECT_THAT(notify.All(), HasSubstr("STOPPING=1"));
  // The socket is systemd's: vmletd leaves it in place.
  EXPECT_EQ(::access(vmletd.socket_path().c_str(), F_OK), 0);
}

}  // namespace
}  // namespace vmlet::e2e
