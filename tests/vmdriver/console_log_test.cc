#include "vmdriver/console_log.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <ios>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "base/file_util.h"
#include "base/str_util.h"

namespace vmlet::vmdriver {
namespace {

// Every wait is bounded by this; none of the tests asserts on timing.
constexpr std::chrono::seconds kWait(10);

const std::string kKiB16(CriLogFormatter::kMaxLineBytes, 'x');

absl::Time TestTime() { return absl::FromUnixNanos(1795361718984123456); }
constexpr std::string_view kTestTimestamp = "2026-11-22T15:35:18.984123456Z";

TEST(FormatCriTimestampTest, WritesUtcWithNineFractionalDigits) {
  EXPECT_EQ(FormatCriTimestamp(TestTime()), kTestTimestamp);
  EXPECT_EQ(FormatCriTimestamp(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(FormatCriTimestamp(absl::FromUnixNanos(1)), "1970-01-01T00:00:00.000000001Z");
}

struct FormatterCase {
  std::string name;
  std::vector<std::string> chunks;
  bool flush;
  std::vector<std::string> want;  // "<tag> <content>" of each line.
};

TEST(CriLogFormatterTest, FormatsLines) {
  const FormatterCase cases[] = {
      {"single line", {"hello\n"}, false, {"F hello"}},
      {"CRLF keeps the CR", {"hello\r\n"}, false, {"F hello\r"}},
      {"empty line", {"\n"}, false, {"F "}},
      {"several lines in one chunk", {"a\nb\r\nc\n"}, false, {"F a", "F b\r", "F c"}},
      {"line split across chunks", {"hel", "lo wor", "ld\n"}, false, {"F hello world"}},
      {"escape sequences kept",
       {"\x1b[1;32mOK\x1b[0m \x1b]0;t\a\n"},
       false,
       {"F \x1b[1;32mOK\x1b[0m \x1b]0;t\a"}},
      {"NUL and invalid UTF-8 kept",
       {std::string("a\0b\xff\n", 5)},
       false,
       {std::string("F a\0b\xff", 6)}},
      {"exactly 16 KiB", {kKiB16 + "\n"}, false, {"F " + kKiB16}},
      {"16 KiB without newline is held back", {kKiB16}, false, {}},
      {"16 KiB + 1 gives P then F", {kKiB16 + "y\n"}, false, {"P " + kKiB16, "F y"}},
      {"16 KiB + 1 across chunks", {kKiB16, "y", "\n"}, false, {"P " + kKiB16, "F y"}},
      {"32 KiB gives P then F", {kKiB16 + kKiB16 + "\n"}, false, {"P " + kKiB16, "F " + kKiB16}},
      {"partial line is held back", {"abc"}, false, {}},
      {"flush emits the partial line", {"ab", "c"}, true, {"F abc"}},
      {"flush after 16 KiB + 1", {kKiB16 + "y"}, true, {"P " + kKiB16, "F y"}},
      {"flush after a whole line adds nothing", {"a\n"}, true, {"F a"}},
      {"empty input", {""}, true, {}},
  };
  for (const FormatterCase& c : cases) {
    SCOPED_TRACE(c.name);
    CriLogFormatter formatter;
    std::string out;
    for (const std::string& chunk : c.chunks) formatter.Append(chunk, TestTime(), &out);
    if (c.flush) {
      formatter.Flush(TestTime(), &out);
      EXPECT_EQ(formatter.pending_size(), 0u);
    }
    std::string want;
    for (const std::string& line : c.want) StrAppend(&want, kTestTimestamp, " stdout ", line, "\n");
    EXPECT_EQ(out, want);
  }
}

TEST(CriLogFormatterTest, StampsALineWithTheTimeOfTheChunkThatEndsIt) {
  CriLogFormatter formatter;
  std::string out;
  formatter.Append("early ", absl::FromUnixSeconds(0), &out);
  formatter.Append("late\n", TestTime(), &out);
  EXPECT_EQ(out, StrCat(kTestTimestamp, " stdout F early late\n"));
}

// The QEMU side of a console socket: listens, accepts one client at a time.
class ConsoleServer {
 public:
  explicit ConsoleServer(const std::string& path) : path_(path) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    EXPECT_EQ(::listen(listen_fd_, 1), 0) << std::strerror(errno);
  }
  ~ConsoleServer() { Shutdown(); }

  // Waits (bounded) for the console log to connect; -1 if it does not.
  int Accept() {
    pollfd pfd = {listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, std::chrono::milliseconds(kWait).count()) != 1) return -1;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return -1;
    // A client that stopped draining fails the write instead of hanging it.
    timeval timeout = {kWait.count(), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    client_fds_.push_back(fd);
    return fd;
  }

  // Closes the listening socket and removes its file, as an exiting QEMU does.
  void Shutdown() {
    if (listen_fd_ < 0) return;
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(path_.c_str());
    for (int fd : client_fds_) ::close(fd);
    client_fds_.clear();
  }

 private:
  std::string path_;
  int listen_fd_ = -1;
  std::vector<int> client_fds_;
};

bool Send(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Polls `done` until it holds or kWait has passed.
bool WaitUntil(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The lines of a CRI log without their timestamps ("stdout F hello"), after
// checking that each timestamp is well formed.
std::vector<std::string> LogBodies(const std::string& path) {
  std::vector<std::string> bodies;
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) return bodies;
  std::string_view rest = *contents;
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    size_t space = line.find(' ');
    std::string timestamp(line.substr(0, space));
    absl::Time time;
    std::string error;
    EXPECT_EQ(timestamp.size(), kTestTimestamp.size()) << timestamp;
    EXPECT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", timestamp, &time, &error)) << error;
    bodies.emplace_back(line.substr(space == std::string_view::npos ? line.size() : space + 1));
  }
  return bodies;
}

// Waits (bounded) until the log holds `count` lines, and returns them.
std::vector<std::string> WaitForLines(const std::string& path, size_t count) {
  WaitUntil([&] {
    absl::StatusOr<std::string> contents = ReadFile(path);
    return contents.ok() &&
           static_cast<size_t>(std::count(contents->begin(), contents->end(), '\n')) >= count;
  });
  return LogBodies(path);
}

class ConsoleLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmlet-console-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_path_ = dir_ + "/console.sock";
    log_path_ = dir_ + "/pods/ns_pod_uid/vm/0.log";  // Parents created by Start.
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(dir_).ok()); }

  std::unique_ptr<ConsoleLog> StartLog(const std::string& log_path) {
    absl::StatusOr<std::unique_ptr<ConsoleLog>> log = ConsoleLog::Start(socket_path_, log_path);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  std::string dir_;
  std::string socket_path_;
  std::string log_path_;
};

TEST_F(ConsoleLogTest, WritesConsoleLinesToTheLogInCriFormat) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  const std::string first = "hello\r\nwor", second = "ld\n\x1b[0mpartial";
  ASSERT_TRUE(Send(client, first));
  ASSERT_TRUE(Send(client, second));
  EXPECT_EQ(WaitForLines(log_path_, 2),
            (std::vector<std::string>{"stdout F hello\r", "stdout F world"}));
  server.Shutdown();  // EOF: the partial line is flushed.
  EXPECT_EQ(
      WaitForLines(log_path_, 3),
      (std::vector<std::string>{"stdout F hello\r", "stdout F world", "stdout F \x1b[0mpartial"}));
  EXPECT_EQ(log->bytes_read(), first.size() + second.size());
  struct stat st;
  ASSERT_EQ(::stat(log_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0640, 0u) << std::oct << (st.st_mode & 0777);
}

// Both ways a console connection ends while the VM lives on: QEMU drops the
// client and accepts again on the same socket, or QEMU exits (its socket
// disappears) and a new one listens at the same path.
TEST_F(ConsoleLogTest, KeepsLoggingAcrossReconnects) {
  for (bool restart_server : {false, true}) {
    SCOPED_TRACE(restart_server ? "server restarted" : "client dropped");
    std::string log_path = StrCat(log_path_, restart_server ? ".restart" : ".drop");
    auto server = std::make_unique<ConsoleServer>(socket_path_);
    std::unique_ptr<ConsoleLog> log = StartLog(log_path);
    ASSERT_NE(log, nullptr);
    int client = server->Accept();
    ASSERT_GE(client, 0);
    ASSERT_TRUE(Send(client, "one\n"));
    EXPECT_EQ(WaitForLines(log_path, 1), (std::vector<std::string>{"stdout F one"}));
    if (restart_server) {
      server = nullptr;
      server = std::make_unique<ConsoleServer>(socket_path_);
    } else {
      ::shutdown(client, SHUT_RDWR);
    }
    client = server->Accept();
    ASSERT_GE(client, 0);
    ASSERT_TRUE(Send(client, "two\n"));
    EXPECT_EQ(WaitForLines(log_path, 2),
              (std::vector<std::string>{"stdout F one", "stdout F two"}));
    log = nullptr;
  }
}

TEST_F(ConsoleLogTest, ConnectsOnceTheSocketAppears) {
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  ConsoleServer server(socket_path_);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  ASSERT_TRUE(Send(client, "booted\n"));
  EXPECT_EQ(WaitForLines(log_path_, 1), (std::vector<std::string>{"stdout F booted"}));
}

TEST_F(ConsoleLogTest, ReopenAfterRotationWritesToAFreshFile) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  ASSERT_TRUE(Send(client, "before\n"));
  ASSERT_EQ(WaitForLines(log_path_, 1).size(), 1u);
  std::string rotated = log_path_ + ".20261122-153518";
  ASSERT_EQ(::rename(log_path_.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE(log->Reopen().ok());
  ASSERT_TRUE(Send(client, "after\n"));
  EXPECT_EQ(WaitForLines(log_path_, 1), (std::vector<std::string>{"stdout F after"}));
  EXPECT_EQ(LogBodies(rotated), (std::vector<std::string>{"stdout F before"}));
}

TEST_F(ConsoleLogTest, FailedReopenKeepsWritingToTheOldFile) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  // The log's directory is replaced by a file: the path cannot be opened.
  std::string log_dir = dir_ + "/pods/ns_pod_uid/vm";
  ASSERT_EQ(::rename(log_dir.c_str(), (log_dir + ".old").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(log_dir, "").ok());
  absl::Status status = log->Reopen();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(ToStd(status.message()).find("reopening console log"), std::string::npos) << status;
  ASSERT_TRUE(Send(client, "kept\n"));
  EXPECT_EQ(WaitForLines(log_dir + ".old/0.log", 1), (std::vector<std::string>{"stdout F kept"}));
}

TEST_F(ConsoleLogTest, StartFailsWhenTheLogCannotBeOpened) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/pods", "").ok());
  absl::StatusOr<std::unique_ptr<ConsoleLog>> log = ConsoleLog::Start(socket_path_, log_path_);
  EXPECT_FALSE(log.ok());
}

TEST_F(ConsoleLogTest, StartRejectsASocketPathTooLongForUnixSockets) {
  absl::StatusOr<std::unique_ptr<ConsoleLog>> log =
      ConsoleLog::Start(dir_ + "/" + std::string(200, 's'), log_path_);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
}

// Stop runs on another thread so that a Stop that cannot wake the console
// thread fails the test after kWait (and then hangs until meson's timeout).
void ExpectStopReturns(ConsoleLog& log) {
  std::future<void> stopped = std::async(std::launch::async, [&log] { log.Stop(); });
  EXPECT_EQ(stopped.wait_for(kWait), std::future_status::ready) << "Stop did not return";
}

TEST_F(ConsoleLogTest, StopReturnsWhileConnectedToASilentConsole) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  ASSERT_GE(server.Accept(), 0);
  ExpectStopReturns(*log);
  log->Stop();  // Idempotent.
}

TEST_F(ConsoleLogTest, StopReturnsWhileWaitingForTheSocket) {
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  ExpectStopReturns(*log);
  EXPECT_EQ(log->bytes_read(), 0u);
}

TEST_F(ConsoleLogTest, StopLogsWhatWasAlreadyReadIncludingThePartialLine) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  ASSERT_TRUE(Send(client, "last words"));
  ASSERT_TRUE(WaitUntil([&] { return log->bytes_read() == 10; }));
  ExpectStopReturns(*log);
  EXPECT_EQ(LogBodies(log_path_), (std::vector<std::string>{"stdout F last words"}));
}

TEST_F(ConsoleLogTest, EmptyLogPathDrainsWithoutWriting) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog("");
  ASSERT_NE(log, nullptr);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  // Far more than the socket buffers hold: Send completes only if drained.
  const std::string megabyte(1 << 20, 'z');
  ASSERT_TRUE(Send(client, megabyte + "\n"));
  EXPECT_TRUE(WaitUntil([&] { return log->bytes_read() == megabyte.size() + 1; }));
  EXPECT_TRUE(log->Reopen().ok());
  absl::StatusOr<std::vector<std::string>> entries = ListDirectory(dir_);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(*entries, std::vector<std::string>{"console.sock"});
}

TEST_F(ConsoleLogTest, TapSeesTheRawBytesUntilRemoved) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  std::mutex mu;
  std::string tapped;
  log->SetTap([&](std::string_view bytes) {
    std::lock_guard<std::mutex> lock(mu);
    tapped.append(bytes);
  });
  int client = server.Accept();
  ASSERT_GE(client, 0);
  ASSERT_TRUE(Send(client, "\x1b[2Jlogin: "));
  EXPECT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(mu);
    return tapped == "\x1b[2Jlogin: ";
  }));
  log->SetTap(nullptr);
  ASSERT_TRUE(Send(client, "root\n"));
  EXPECT_EQ(WaitForLines(log_path_, 1), (std::vector<std::string>{"stdout F \x1b[2Jlogin: root"}));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(tapped, "\x1b[2Jlogin: ");
}

// A reader's bytes, guarded for the test thread.
struct Collected {
  std::mutex mu;
  std::string bytes;

  ConsoleLog::Tap Reader() {
    return [this](std::string_view chunk) {
      std::lock_guard<std::mutex> lock(mu);
      bytes.append(chunk);
    };
  }
  std::string Get() {
    std::lock_guard<std::mutex> lock(mu);
    return bytes;
  }
};

// Reads from `fd` (bounded by kWait) until `want` bytes arrived.
std::string ReceiveExactly(int fd, size_t want) {
  std::string got;
  char buffer[4096];
  while (got.size() < want) {
    pollfd pfd = {fd, POLLIN, 0};
    if (::poll(&pfd, 1, std::chrono::milliseconds(kWait).count()) != 1) break;
    ssize_t n = ::read(fd, buffer, std::min(sizeof(buffer), want - got.size()));
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
  }
  return got;
}

TEST_F(ConsoleLogTest, SeveralReadersEachSeeTheBytesUntilRemoved) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog(log_path_);
  ASSERT_NE(log, nullptr);
  Collected first, second;
  int first_handle = log->AddReader(first.Reader());
  int second_handle = log->AddReader(second.Reader());
  EXPECT_NE(first_handle, second_handle);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  ASSERT_TRUE(Send(client, "boot\n"));
  EXPECT_TRUE(WaitUntil([&] { return first.Get() == "boot\n" && second.Get() == "boot\n"; }));
  log->RemoveReader(first_handle);
  log->RemoveReader(12345);  // Unknown: ignored.
  ASSERT_TRUE(Send(client, "login: \n"));
  EXPECT_TRUE(WaitUntil([&] { return second.Get() == "boot\nlogin: \n"; }));
  EXPECT_EQ(first.Get(), "boot\n");
  EXPECT_EQ(WaitForLines(log_path_, 2),
            (std::vector<std::string>{"stdout F boot", "stdout F login: "}));
}

TEST_F(ConsoleLogTest, WriteSendsTheBytesToTheConsole) {
  ConsoleServer server(socket_path_);
  std::unique_ptr<ConsoleLog> log = StartLog("");
  ASSERT_NE(log, nullptr);
  int client = server.Accept();
  ASSERT_GE(client, 0);
  ASSERT_TRUE(WaitUntil([&] { return log->connected(); }));
  ASSERT_TRUE(log->Write("root\r").ok());
  // More than the socket buffers hold: Write waits for the guest to read.
  const std::string big(1 << 20, 'k');
  std::future<absl::Status> written =
      std::async(std::launch::async, [&] { return log->Write(big); });
  EXPECT_EQ(ReceiveExactly(client, 5 + big.size()), "root\r" + big);
  ASSERT_EQ(written.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(written.get().ok());
}

TEST_F(ConsoleLogTest, WriteFailsWhileNotConnected) {
  std::unique_ptr<ConsoleLog> log = StartLog("");  // No server yet.
  ASSERT_NE(log, nullptr);
  absl::Status status = log->Write("x");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("not connected"), std::string_view::npos) << status;
  {
    ConsoleServer server(socket_path_);
    ASSERT_GE(server.Accept(), 0);
    EXPECT_TRUE(WaitUntil([&] { return log->connected(); }));
  }  // QEMU exits: the console is gone until it comes back.
  EXPECT_TRUE(WaitUntil([&] { return !log->connected(); }));
  EXPECT_EQ(log->Write("x").code(), absl::StatusCode::kFailedPrecondition);
  log->Stop();
  EXPECT_EQ(log->Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

// Writers racing the console thread's reconnects never write to a closed
// (or reused) descriptor: every Write either succeeds or fails cleanly.
TEST_F(ConsoleLogTest, WritesAreSafeAgainstReconnects) {
  std::unique_ptr<ConsoleLog> log = StartLog("");
  ASSERT_NE(log, nullptr);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    while (!done.load()) {
      absl::Status status = log->Write("y");
      EXPECT_TRUE(status.ok() || status.code() == absl::StatusCode::kFailedPrecondition ||
                  status.code() == absl::StatusCode::kUnavailable)
          << status;
      if (!status.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (int i = 0; i < 5; ++i) {
    ConsoleServer server(socket_path_);
    ASSERT_GE(server.Accept(), 0);
    EXPECT_TRUE(WaitUntil([&] { return log->connected(); }));
  }
  done.store(true);
  writer.join();
}

}  // namespace
}  // namespace vmlet::vmdriver
