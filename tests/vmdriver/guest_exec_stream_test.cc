// The streaming exec through the guest agent (guest_exec_stream.h) against
// a fake guest whose agent behaves as qemu-ga 7.2 does: files that grow
// while a reader is at their end, a FIFO opened "r+" without blocking,
// stdio-buffered writes that reach the FIFO at guest-file-flush, EAGAIN on
// a full pipe (the buffer dropped, the error flag left set), guest-exec and
// guest-exec-status, kill. Programs in the fake guest advance one step per
// agent command. Also the streaming exec of FakeVmDriver and
// UnavailableVmDriver.
#include "vmdriver/libvirt/guest_exec_stream.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "base/str_util.h"
#include "vmdriver/fake_vm_driver.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

constexpr char kVmName[] = "vmlet-default-web-aaaa0000";
// glibc's stdio buffer for a FIFO (st_blksize), PIPE_BUF and a pipe's
// capacity on Linux.
constexpr size_t kStdioBuffer = 4096;
constexpr size_t kPipeBuf = 4096;
constexpr size_t kPipeCapacity = 65536;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// A file of the fake guest: a regular file or a FIFO.
struct File {
  bool fifo = false;
  std::string data;  // A FIFO's: what is in the pipe.
  int writers = 0;   // Agent handles open for writing (a FIFO's only writers).
};

// A process in the fake guest, as its program sees it.
class Process {
 public:
  // Up to `max` bytes of stdin; "" when nothing is there now.
  std::string ReadStdin(size_t max) {
    std::string taken = in_->data.substr(0, max);
    in_->data.erase(0, taken.size());
    return taken;
  }
  // Nothing left and no writer (also /dev/null, and input-data consumed).
  bool StdinEnded() const { return in_->data.empty() && in_->writers == 0; }
  void Out(std::string_view bytes) { out_->data.append(bytes); }
  void Err(std::string_view bytes) { err_->data.append(bytes); }
  void Exit(int code) {
    exited_ = true;
    exitcode_ = code;
  }
  void Die(int signal) {
    exited_ = true;
    signal_ = signal;
  }
  int step() const { return step_; }
  void IgnoreTerm() { ignore_term_ = true; }

 private:
  friend class FakeGuest;
  std::vector<std::string> argv_;
  int step_ = 0;
  // Shared with the guest's files, which rm may remove meanwhile.
  std::shared_ptr<File> in_ = std::make_shared<File>();
  std::shared_ptr<File> out_ = std::make_shared<File>();
  std::shared_ptr<File> err_ = std::make_shared<File>();
  bool captured_ = false;  // guest-exec with capture-output.
  bool exited_ = false;
  std::optional<int> exitcode_, signal_;
  bool ignore_term_ = false;
};

using Program = std::function<void(Process&)>;

struct GuestOptions {
  bool has_sh = true;
  bool has_mkfifo = true;
  bool file_commands_blocked = false;  // qemu-ga run with guest-file-* blocked.
};

// A guest with qemu-ga, a /tmp and programs. Thread-safe.
class FakeGuest {
 public:
  explicit FakeGuest(GuestOptions options = {}) : options_(options) { dirs_.insert("/tmp"); }

  void AddProgram(const std::string& name, Program program) {
    std::lock_guard lock(mu_);
    programs_[name] = std::move(program);
  }

  // From the `n`th command on (counting from 0), every command fails with
  // `status`, as when the VM stops.
  void FailFrom(int n, absl::Status status) {
    std::lock_guard lock(mu_);
    fail_from_ = n;
    fail_status_ = std::move(status);
  }

  AgentCommand Agent() {
    return [this](const std::string& command, absl::Duration timeout) {
      return Answer(command, timeout);
    };
  }

  // What is left: files and directories besides /tmp, open handles,
  // processes whose exit the agent still keeps.
  std::vector<std::string> Leftovers() {
    std::lock_guard lock(mu_);
    std::vector<std::string> left;
    for (const auto& [path, file] : files_) left.push_back(path);
    for (const std::string& dir : dirs_) {
      if (dir != "/tmp") left.push_back(dir);
    }
    for (const auto& [id, handle] : handles_) left.push_back(StrCat("handle ", id));
    for (const auto& [pid, process] : processes_) left.push_back(StrCat("pid ", pid));
    return left;
  }

  std::vector<std::string> Executed() {
    std::lock_guard lock(mu_);
    return executed_;
  }
  int Count(std::string_view execute) {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count(executed_.begin(), executed_.end(), execute));
  }
  std::vector<std::string> Scripts() {
    std::lock_guard lock(mu_);
    return scripts_;
  }
  int eagain() {
    std::lock_guard lock(mu_);
    return eagain_;
  }
  // Whether guest-exec-status has reported the exit of a program run
  // through the streaming script (not a helper).
  bool CommandExitReported() {
    std::lock_guard lock(mu_);
    return command_exit_reported_;
  }
  std::optional<absl::Duration> LastTimeout() {
    std::lock_guard lock(mu_);
    return last_timeout_;
  }

 private:
  struct Handle {
    std::shared_ptr<File> file;
    bool write = false;
    size_t position = 0;
    std::string buffer;  // stdio's write buffer.
    bool error = false;  // stdio's error flag.
  };

  static absl::Status AgentError(std::string_view execute, std::string_view desc) {
    return absl::InternalError(StrCat(
        "libvirt: internal error: unable to execute QEMU agent command '", execute, "': ", desc));
  }

  absl::StatusOr<std::string> Answer(const std::string& text, absl::Duration timeout) {
    std::lock_guard lock(mu_);
    last_timeout_ = timeout;
    Json command = Json::parse(text, nullptr, false);
    EXPECT_TRUE(command.is_object()) << text;
    if (!command.is_object()) return absl::InvalidArgumentError("not json");
    const std::string execute = command.value("execute", "");
    const Json arguments = command.value("arguments", Json::object());
    executed_.push_back(execute);
    if (fail_from_ >= 0 && static_cast<int>(executed_.size()) > fail_from_) return fail_status_;
    // Time passes: every process makes one step.
    for (auto& [pid, process] : processes_) Step(process);
    absl::StatusOr<Json> result = Execute(execute, arguments);
    if (!result.ok()) return result.status();
    return Json{{"return", *result}}.dump();
  }

  void Step(Process& process) {
    if (process.exited_) return;
    programs_.at(process.argv_[0])(process);
    ++process.step_;
  }

  absl::StatusOr<Json> Execute(const std::string& execute, const Json& arguments) {
    if (options_.file_commands_blocked && execute.starts_with("guest-file-")) {
      return AgentError(execute, StrCat("Command ", execute, " has been disabled"));
    }
    if (execute == "guest-exec") return Exec(arguments);
    if (execute == "guest-exec-status") return ExecStatus(arguments["pid"].get<int64_t>());
    if (execute == "guest-file-open") {
      return Open(arguments["path"].get<std::string>(), arguments.value("mode", "r"));
    }
    auto it = handles_.find(arguments.value("handle", int64_t{-1}));
    if (execute.starts_with("guest-file-") && it == handles_.end()) {
      return AgentError(execute, StrCat("handle '", arguments.value("handle", int64_t{-1}),
                                        "' has not been found"));
    }
    if (execute == "guest-file-read") return Read(it->second, arguments.value("count", 4096));
    if (execute == "guest-file-write") {
      std::string data;
      EXPECT_TRUE(absl::Base64Unescape(arguments["buf-b64"].get<std::string>(), &data));
      const size_t count = arguments.value("count", data.size());
      if (count > data.size()) return AgentError(execute, "value is invalid for argument count");
      Handle& handle = it->second;
      handle.buffer.append(data, 0, count);
      if (handle.buffer.size() > kStdioBuffer) Flush(handle);
      const bool failed = handle.error;
      handle.error = false;  // clearerr
      if (failed) return AgentError(execute, "failed to write to file");
      return Json{{"count", count}, {"eof", false}};
    }
    if (execute == "guest-file-flush") {
      if (!Flush(it->second)) {
        ++eagain_;
        return AgentError(execute, "failed to flush file: Resource temporarily unavailable");
      }
      return Json::object();
    }
    if (execute == "guest-file-close") {
      Flush(it->second);
      if (it->second.write) --it->second.file->writers;
      handles_.erase(it);
      return Json::object();
    }
    ADD_FAILURE() << "unexpected agent command " << execute;
    return AgentError(execute, "The command has not been found");
  }

  // stdio's flush of a handle's buffer into a non-blocking FIFO: up to
  // PIPE_BUF bytes go whole or not at all; the buffer is dropped either way.
  bool Flush(Handle& handle) {
    if (handle.buffer.empty()) return true;
    File& file = *handle.file;
    const size_t room = kPipeCapacity - std::min(kPipeCapacity, file.data.size());
    size_t n = std::min(room, handle.buffer.size());
    if (handle.buffer.size() <= kPipeBuf && n < handle.buffer.size()) n = 0;
    file.data.append(handle.buffer, 0, n);
    const bool all = n == handle.buffer.size();
    handle.buffer.clear();
    if (!all) handle.error = true;
    return all;
  }

  absl::StatusOr<Json> Open(const std::string& path, const std::string& mode) {
    auto it = files_.find(path);
    if (it == files_.end()) {
      return AgentError("guest-file-open", StrCat("failed to open file '", path, "' (mode: '", mode,
                                                  "'): No such file or directory"));
    }
    EXPECT_TRUE(mode == "r" || mode == "r+") << mode;
    // "w" would block on a FIFO without a reader: the real agent hangs.
    const int64_t id = next_handle_++;
    handles_[id] = Handle{.file = it->second, .write = mode == "r+"};
    if (mode == "r+") ++it->second->writers;
    return id;
  }

  absl::StatusOr<Json> Read(Handle& handle, size_t count) {
    const File& file = *handle.file;
    EXPECT_FALSE(file.fifo) << "reading a FIFO through the agent loses data";
    EXPECT_LE(count, size_t{3} << 20) << "libvirt refuses replies of 4 MiB";
    const std::string data = file.data.substr(std::min(handle.position, file.data.size()), count);
    handle.position += data.size();
    ++reads_;
    return Json{{"count", data.size()},
                {"buf-b64", absl::Base64Escape(data)},
                {"eof", data.size() < count}};
  }

  absl::StatusOr<Json> ExecStatus(int64_t pid) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return AgentError("guest-exec-status", "Invalid parameter 'pid'");
    Process& process = it->second;
    if (!process.exited_) return Json{{"exited", false}};
    Json status = {{"exited", true}};
    if (process.exitcode_) status["exitcode"] = *process.exitcode_;
    if (process.signal_) status["signal"] = *process.signal_;
    if (process.captured_) {
      status["out-data"] = absl::Base64Escape(process.out_->data);
      status["err-data"] = absl::Base64Escape(process.err_->data);
    }
    if (streamed_pids_.contains(pid)) command_exit_reported_ = true;
    processes_.erase(it);
    return status;
  }

  int64_t Exited(int code) {
    const int64_t pid = next_pid_++;
    Process& process = processes_[pid];
    process.argv_ = {"(sh)"};
    process.exited_ = true;
    process.exitcode_ = code;
    return pid;
  }

  void RemoveTree(const std::string& dir) {
    std::erase_if(files_, [&](const auto& entry) { return entry.first.starts_with(dir + "/"); });
    dirs_.erase(dir);
  }

  absl::StatusOr<Json> Exec(const Json& arguments) {
    const std::string path = arguments["path"].get<std::string>();
    std::vector<std::string> args;
    if (arguments.contains("arg")) args = arguments["arg"].get<std::vector<std::string>>();
    const bool capture = arguments.value("capture-output", false);
    if (path != "/bin/sh") {
      // The buffered exec: the program runs to its end on input-data.
      if (!programs_.contains(path)) {
        return AgentError("guest-exec", StrCat("Failed to execute child process \u201c", path,
                                               "\u201d (No such file or directory)"));
      }
      const int64_t pid = next_pid_++;
      Process& process = processes_[pid];
      process.argv_ = {path};
      process.argv_.insert(process.argv_.end(), args.begin(), args.end());
      if (arguments.contains("input-data")) {
        EXPECT_TRUE(
            absl::Base64Unescape(arguments["input-data"].get<std::string>(), &process.in_->data));
      }
      process.captured_ = capture;
      for (int i = 0; i < 100000 && !process.exited_; ++i) Step(process);
      return Json{{"pid", pid}};
    }
    if (!options_.has_sh) {
      return AgentError("guest-exec",
                        "Failed to execute child process \u201c/bin/sh\u201d (No such file or "
                        "directory)");
    }
    EXPECT_TRUE(args.size() >= 2 && args[0] == "-c");
    if (args.size() < 2) return AgentError("guest-exec", "bad arguments");
    const std::string& script = args[1];
    scripts_.push_back(script);
    std::smatch match;
    static const std::regex kSetup(
        R"re(d='(/tmp/\.vmlet-exec-[0-9a-f]{16})'; mkdir -m 700 "\$d" \|\| exit 1; )re"
        R"re(if : >"\$d/out" && : >"\$d/err"( && mkfifo -m 600 "\$d/in")?; )re"
        R"re(then exit 0; fi; rm -rf "\$d"; exit 1)re");
    static const std::regex kRemove(R"re(rm -rf '(/tmp/\.vmlet-exec-[0-9a-f]{16})')re");
    static const std::regex kKill(R"re(kill -(TERM|KILL) ([0-9]+))re");
    static const std::regex kCommand(
        R"re(exec "\$@" <(/dev/null|'[^']+') >'([^']+)' 2>'([^']+)')re");
    if (std::regex_match(script, match, kSetup)) {
      EXPECT_TRUE(capture);
      const std::string dir = match[1];
      if (dirs_.contains(dir)) return Json{{"pid", Exited(1)}};
      dirs_.insert(dir);
      files_[dir + "/out"] = std::make_shared<File>();
      files_[dir + "/err"] = std::make_shared<File>();
      if (match[2].matched) {
        if (!options_.has_mkfifo) {
          RemoveTree(dir);
          return Json{{"pid", Exited(1)}};
        }
        files_[dir + "/in"] = std::make_shared<File>(File{.fifo = true});
      }
      return Json{{"pid", Exited(0)}};
    }
    if (std::regex_match(script, match, kRemove)) {
      RemoveTree(match[1]);
      return Json{{"pid", Exited(0)}};
    }
    if (std::regex_match(script, match, kKill)) {
      auto it = processes_.find(std::stoll(match[2]));
      if (it == processes_.end() || it->second.exited_) return Json{{"pid", Exited(1)}};
      if (match[1] == "KILL") {
        it->second.Die(9);
      } else if (!it->second.ignore_term_) {
        it->second.Die(15);
      }
      return Json{{"pid", Exited(0)}};
    }
    if (std::regex_match(script, match, kCommand)) {
      EXPECT_TRUE(args.size() >= 4 && args[2] == "sh");
      EXPECT_FALSE(capture);
      const int64_t pid = next_pid_++;
      streamed_pids_.insert(pid);
      Process& process = processes_[pid];
      process.argv_.assign(args.begin() + 3, args.end());
      const std::string in = match[1];
      if (in != "/dev/null") {
        process.in_ = files_.at(in.substr(1, in.size() - 2));
        EXPECT_TRUE(process.in_->fifo);
        // Opening it for reading would block without a writer.
        EXPECT_GT(process.in_->writers, 0) << "the command would block opening its stdin";
      }
      process.out_ = files_.at(match[2]);
      process.err_ = files_.at(match[3]);
      if (!programs_.contains(process.argv_[0])) {
        process.Err(StrCat("sh: exec: line 0: ", process.argv_[0], ": not found\n"));
        process.Exit(127);
        process.argv_ = {"(sh)"};
      }
      return Json{{"pid", pid}};
    }
    ADD_FAILURE() << "unexpected script " << script;
    return Json{{"pid", Exited(2)}};
  }

  const GuestOptions options_;
  std::mutex mu_;
  std::map<std::string, Program> programs_ = {{"(sh)", [](Process&) {}}};
  std::map<std::string, std::shared_ptr<File>> files_;
  std::set<std::string> dirs_;
  std::map<int64_t, Handle> handles_;
  std::map<int64_t, Process> processes_;
  std::set<int64_t> streamed_pids_;
  int64_t next_handle_ = 1000;
  int64_t next_pid_ = 100;
  std::vector<std::string> executed_;
  std::vector<std::string> scripts_;
  int eagain_ = 0;
  int reads_ = 0;
  bool command_exit_reported_ = false;
  int fail_from_ = -1;
  absl::Status fail_status_;
  std::optional<absl::Duration> last_timeout_;
};

// What the client side sees and sends.
class Client {
 public:
  // The streams; stdin only after WithStdin.
  ExecStreams Streams(FakeGuest* guest = nullptr) {
    ExecStreams streams;
    streams.write_stdout = [this, guest](std::string_view bytes) {
      std::lock_guard lock(mu_);
      stdout_ += bytes;
      ++stdout_writes_;
      if (guest != nullptr && !guest->CommandExitReported()) ++stdout_writes_before_exit_;
      cv_.notify_all();
      return stdout_error_;
    };
    streams.write_stderr = [this](std::string_view bytes) {
      std::lock_guard lock(mu_);
      stderr_ += bytes;
      return absl::OkStatus();
    };
    if (with_stdin_) {
      streams.read_stdin = [this]() -> absl::StatusOr<std::string> {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !input_.empty() || cancelled_; });
        if (cancelled_) return std::string();
        std::string next = std::move(input_.front());
        input_.pop_front();
        ++stdin_reads_;
        return next;
      };
      streams.cancel_stdin = [this] {
        std::lock_guard lock(mu_);
        cancelled_ = true;
        cv_.notify_all();
      };
    }
    return streams;
  }

  void WithStdin() { with_stdin_ = true; }
  // Queues input for read_stdin; "" is the end of input.
  void Send(std::string bytes) {
    std::lock_guard lock(mu_);
    input_.push_back(std::move(bytes));
    cv_.notify_all();
  }
  void FailStdout(absl::Status status) {
    std::lock_guard lock(mu_);
    stdout_error_ = std::move(status);
  }
  bool WaitForStdout(std::string_view text) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10),
                        [&] { return stdout_.find(text) != std::string::npos; });
  }

  std::string out() {
    std::lock_guard lock(mu_);
    return stdout_;
  }
  std::string err() {
    std::lock_guard lock(mu_);
    return stderr_;
  }
  int stdout_writes() {
    std::lock_guard lock(mu_);
    return stdout_writes_;
  }
  int stdout_writes_before_exit() {
    std::lock_guard lock(mu_);
    return stdout_writes_before_exit_;
  }
  bool cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool with_stdin_ = false;
  std::deque<std::string> input_;
  bool cancelled_ = false;
  int stdin_reads_ = 0;
  std::string stdout_, stderr_;
  int stdout_writes_ = 0, stdout_writes_before_exit_ = 0;
  absl::Status stdout_error_;
};

// Quick polls, so that the tests take little time.
StreamExecOptions FastOptions() {
  return StreamExecOptions{.fast_poll = absl::Milliseconds(1),
                           .idle_poll = absl::Milliseconds(4),
                           .kill_grace = absl::Milliseconds(300),
                           .agent_timeout = absl::Seconds(5)};
}

// Copies stdin to stdout, `per_step` bytes at most per step; exits 0 at
// the end of stdin.
Program Cat(size_t per_step = 1000) {
  return [per_step](Process& process) {
    process.Out(process.ReadStdin(per_step));
    if (process.StdinEnded()) process.Exit(0);
  };
}

// Prints a line to stdout on every step, forever.
void Chatter(Process& process) { process.Out(StrCat("line ", process.step(), "\n")); }

TEST(StreamInGuestTest, RelaysOutputInPiecesWhileTheCommandRunsAndStderrApart) {
  FakeGuest guest;
  guest.AddProgram("pieces", [](Process& process) {
    switch (process.step()) {
      case 2:
        process.Out("one\n");
        break;
      case 12:
        process.Out("two\n");
        process.Err("warning\n");
        break;
      case 24:
        process.Out("three\n");
        break;
      case 30:
        process.Exit(0);
        break;
    }
  });
  Client client;
  absl::StatusOr<int> exit_code = StreamInGuest(guest.Agent(), kVmName, {"pieces", "a b"},
                                                client.Streams(&guest), FastOptions());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  EXPECT_EQ(client.out(), "one\ntwo\nthree\n");
  EXPECT_EQ(client.err(), "warning\n");
  EXPECT_EQ(client.stdout_writes(), 3);
  EXPECT_EQ(client.stdout_writes_before_exit(), 3);
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
  // No stdin: no FIFO; the command reads /dev/null.
  EXPECT_EQ(guest.Scripts().size(), 3u);
  EXPECT_THAT(guest.Scripts()[0], ::testing::Not(HasSubstr("mkfifo")));
  EXPECT_THAT(guest.Scripts()[1], HasSubstr("</dev/null"));
  EXPECT_EQ(guest.LastTimeout(), absl::Seconds(5));
}

TEST(StreamInGuestTest, ReturnsTheExitCodeOrOneHundredTwentyEightPlusTheSignal) {
  FakeGuest guest;
  guest.AddProgram("fail", [](Process& process) {
    process.Err("bad\n");
    process.Exit(3);
  });
  guest.AddProgram("crash", [](Process& process) {
    if (process.step() == 3) process.Die(9);
  });
  for (auto [program, expected] : {std::pair{"fail", 3}, std::pair{"crash", 137}}) {
    Client client;
    absl::StatusOr<int> exit_code =
        StreamInGuest(guest.Agent(), kVmName, {program}, client.Streams(), FastOptions());
    ASSERT_TRUE(exit_code.ok()) << exit_code.status();
    EXPECT_EQ(*exit_code, expected) << program;
    EXPECT_EQ(client.err(), std::string(program) == "fail" ? "bad\n" : "");
    EXPECT_THAT(guest.Leftovers(), IsEmpty());
  }
}

TEST(StreamInGuestTest, AMissingProgramExitsWith127AndTheShellsMessage) {
  FakeGuest guest;
  Client client;
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"nope"}, client.Streams(), FastOptions());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 127);
  EXPECT_THAT(client.err(), HasSubstr("nope: not found"));
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, StreamsStdinAsItComesAndItsEndEndsTheCommandsInput) {
  FakeGuest guest;
  guest.AddProgram("cat", Cat());
  Client client;
  client.WithStdin();
  std::thread typist([&] {
    client.Send("hello\n");
    // Interactive: the answer comes while stdin is still open.
    EXPECT_TRUE(client.WaitForStdout("hello\n"));
    client.Send("world\n");
    EXPECT_TRUE(client.WaitForStdout("world\n"));
    client.Send("");
  });
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"cat"}, client.Streams(&guest), FastOptions());
  typist.join();
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  EXPECT_EQ(client.out(), "hello\nworld\n");
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
  EXPECT_THAT(guest.Scripts()[0], HasSubstr("mkfifo"));
}

TEST(StreamInGuestTest, MuchStdinPassesAFullPipeIntact) {
  FakeGuest guest;
  guest.AddProgram("slowcat", Cat(/*per_step=*/700));
  Client client;
  client.WithStdin();
  std::string input;
  for (int i = 0; input.size() < 300 * 1024; ++i) input += StrCat(i, ":", std::string(i % 97, 'x'));
  for (size_t at = 0; at < input.size(); at += 7000) client.Send(input.substr(at, 7000));
  client.Send("");
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"slowcat"}, client.Streams(), FastOptions());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  EXPECT_EQ(client.out().size(), input.size());
  EXPECT_TRUE(client.out() == input) << "stdin was changed on its way";
  EXPECT_GT(guest.eagain(), 0) << "the pipe never filled: the test tests less than it should";
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, ReadsLargeOutputInPiecesTheAgentCanCarry) {
  FakeGuest guest;
  std::string big;
  for (int i = 0; big.size() < (size_t{5} << 19); ++i) big += StrCat(i, "\n");
  guest.AddProgram("big", [&big](Process& process) {
    process.Out(big);
    process.Exit(0);
  });
  Client client;
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"big"}, client.Streams(), FastOptions());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_TRUE(client.out() == big);
  EXPECT_GE(client.stdout_writes(), 3);
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, AClientThatGoesAwayEndsTheCommandAndLeavesNothingBehind) {
  FakeGuest guest;
  guest.AddProgram("chatter", Chatter);
  Client client;
  client.WithStdin();  // Open and silent: the exec must not wait for it.
  client.FailStdout(absl::UnavailableError("the client closed the connection"));
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"chatter"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kUnavailable) << exit_code.status();
  EXPECT_THAT(Message(exit_code.status()),
              HasSubstr("running \"chatter\" in VM \"vmlet-default-web-aaaa0000\": relaying "
                        "stdout: the client closed the connection"));
  EXPECT_TRUE(client.cancelled());
  std::vector<std::string> scripts = guest.Scripts();
  EXPECT_THAT(scripts, ::testing::Contains(HasSubstr("kill -TERM")));
  EXPECT_THAT(scripts, ::testing::Not(::testing::Contains(HasSubstr("kill -KILL"))));
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, AClientGoneWhileTheCommandIsSilentEndsIt) {
  FakeGuest guest;
  guest.AddProgram("silent", [](Process&) {});  // Never prints, never exits.
  Client client;
  ExecStreams streams = client.Streams();
  std::atomic<int> polls = 0;
  streams.client_gone = [&polls] { return ++polls > 3; };
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"silent"}, streams, FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kCancelled) << exit_code.status();
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("the client has gone"));
  EXPECT_THAT(guest.Scripts(), ::testing::Contains(HasSubstr("kill -TERM")));
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, ACommandThatIgnoresTermIsKilled) {
  FakeGuest guest;
  guest.AddProgram("stubborn", [](Process& process) {
    process.IgnoreTerm();
    Chatter(process);
  });
  Client client;
  client.FailStdout(absl::CancelledError("gone"));
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"stubborn"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(guest.Scripts(), ::testing::Contains(HasSubstr("kill -KILL")));
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, ACommandThatEndsWhileStdinIsOpenCancelsTheStdinReader) {
  FakeGuest guest;
  guest.AddProgram("quick", [](Process& process) {
    if (process.step() == 5) {
      process.Out("bye\n");
      process.Exit(0);
    }
  });
  Client client;
  client.WithStdin();  // Never sends anything: read_stdin blocks until cancelled.
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"quick"}, client.Streams(), FastOptions());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(client.out(), "bye\n");
  EXPECT_TRUE(client.cancelled());
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, AGuestWithoutShGetsTheBufferedExecWithStdinAsInputData) {
  FakeGuest guest({.has_sh = false});
  guest.AddProgram("/bin/cat", Cat());
  Client client;
  client.WithStdin();
  client.Send("abc");
  client.Send("def\n");
  client.Send("");
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"/bin/cat", "-"}, client.Streams(), FastOptions());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  EXPECT_EQ(client.out(), "abcdef\n");
  EXPECT_EQ(guest.Count("guest-file-open"), 0);
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, TheBufferedExecRefusesStdinBeyondItsLimit) {
  FakeGuest guest({.has_sh = false});
  guest.AddProgram("/bin/cat", Cat());
  Client client;
  client.WithStdin();
  for (int i = 0; i < 3; ++i) client.Send(std::string(size_t{64} << 10, 'a'));
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"/bin/cat"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("stdin: more than 131072 bytes"));
  EXPECT_EQ(guest.Count("guest-exec"), 1);  // Only the attempt to start /bin/sh.
}

TEST(StreamInGuestTest, AProgramTheBufferedExecCannotStartIsFailedPrecondition) {
  FakeGuest guest({.has_sh = false});
  Client client;
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"/nope"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("could not start the command"));
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("/nope"));
}

TEST(StreamInGuestTest, AGuestWithoutMkfifoOrFileCommandsGetsTheBufferedExec) {
  for (GuestOptions options :
       {GuestOptions{.has_mkfifo = false}, GuestOptions{.file_commands_blocked = true}}) {
    FakeGuest guest(options);
    guest.AddProgram("/bin/cat", Cat());
    Client client;
    client.WithStdin();
    client.Send("x\n");
    client.Send("");
    absl::StatusOr<int> exit_code =
        StreamInGuest(guest.Agent(), kVmName, {"/bin/cat"}, client.Streams(), FastOptions());
    ASSERT_TRUE(exit_code.ok()) << exit_code.status();
    EXPECT_EQ(client.out(), "x\n");
    EXPECT_THAT(guest.Leftovers(), IsEmpty());
  }
}

TEST(StreamInGuestTest, NoAgentIsFailedPreconditionAfterOneCommand) {
  FakeGuest guest;
  const absl::Status not_connected = absl::FailedPreconditionError(
      "guest agent not connected in VM \"vmlet-default-web-aaaa0000\": the guest must run "
      "qemu-guest-agent");
  guest.FailFrom(0, not_connected);
  Client client;
  client.WithStdin();
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"cat"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("guest agent not connected"));
  EXPECT_EQ(guest.Executed().size(), 1u);
}

TEST(StreamInGuestTest, AVmThatStopsEndsTheExecWithoutFurtherCommands) {
  FakeGuest guest;
  guest.AddProgram("chatter", Chatter);
  guest.FailFrom(20, absl::FailedPreconditionError("VM \"vmlet-default-web-aaaa0000\" is not "
                                                   "running (libvirt: domain is not running)"));
  Client client;
  client.WithStdin();
  absl::StatusOr<int> exit_code =
      StreamInGuest(guest.Agent(), kVmName, {"chatter"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("is not running"));
  EXPECT_EQ(guest.Executed().size(), 21u);  // The one that failed, then no more.
  EXPECT_TRUE(client.cancelled());
}

TEST(StreamInGuestTest, AReplyThatMakesNoSenseIsInternalAndCleanedUpAfter) {
  FakeGuest guest;
  guest.AddProgram("chatter", Chatter);
  AgentCommand real = guest.Agent();
  AgentCommand broken = [&real](const std::string& command,
                                absl::Duration timeout) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> reply = real(command, timeout);
    if (reply.ok() && command.find("guest-file-read") != std::string::npos) {
      Json parsed = Json::parse(*reply);
      if (parsed["return"]["count"].get<int>() > 0) {
        parsed["return"]["count"] = parsed["return"]["count"].get<int>() + 1;
      }
      return parsed.dump();
    }
    return reply;
  };
  Client client;
  absl::StatusOr<int> exit_code =
      StreamInGuest(broken, kVmName, {"chatter"}, client.Streams(), FastOptions());
  EXPECT_EQ(exit_code.status().code(), absl::StatusCode::kInternal) << exit_code.status();
  EXPECT_THAT(Message(exit_code.status()), HasSubstr("guest-file-read"));
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

TEST(StreamInGuestTest, AnEmptyArgvIsInvalidArgument) {
  FakeGuest guest;
  Client client;
  EXPECT_EQ(
      StreamInGuest(guest.Agent(), kVmName, {}, client.Streams(), FastOptions()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(guest.Executed(), IsEmpty());
}

TEST(StreamInGuestTest, AnArgumentThatIsNotUtf8TextIsInvalidArgument) {
  FakeGuest guest;
  Client client;
  for (std::string bad : {std::string("\xff"), std::string("a\xc3"), std::string("\xc0\xaf"),
                          std::string("\xed\xa0\x80"), std::string("a\0b", 3)}) {
    absl::Status status =
        StreamInGuest(guest.Agent(), kVmName, {"echo", bad}, client.Streams(), FastOptions())
            .status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(status), HasSubstr("argv[1]"));
  }
  EXPECT_THAT(guest.Executed(), IsEmpty());
  // Text in any script is fine.
  guest.AddProgram("echo", [](Process& process) { process.Exit(0); });
  EXPECT_TRUE(StreamInGuest(guest.Agent(), kVmName,
                            {"echo", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"},
                            client.Streams(), FastOptions())
                  .ok());
}

TEST(StreamInGuestTest, ExecsInOneGuestAtOnceUseTheirOwnDirectories) {
  FakeGuest guest;
  guest.AddProgram("cat", Cat());
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<int>> results(4, absl::UnknownError("not run"));
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<Client>());
    clients.back()->WithStdin();
    clients.back()->Send(StrCat("client ", i, "\n"));
    clients.back()->Send("");
  }
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      results[i] =
          StreamInGuest(guest.Agent(), kVmName, {"cat"}, clients[i]->Streams(), FastOptions());
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(clients[i]->out(), StrCat("client ", i, "\n"));
  }
  EXPECT_THAT(guest.Leftovers(), IsEmpty());
}

// The fake driver and the unavailable one.
VmConfig ConfigFor(const std::string& id) {
  VmConfig config;
  config.id = id;
  config.sandbox_id = "5a4d000000000000000000000000000000000000000000000000000000000000";
  config.name = "default_web_nginx";
  config.vcpus = 1;
  config.memory_bytes = int64_t{256} << 20;
  config.image = "docker.io/library/nginx:1.25";
  config.log_path = "/var/log/pods/default_web/nginx/0.log";
  return config;
}

constexpr char kVm[] = "aaaa000000000000000000000000000000000000000000000000000000000001";

TEST(FakeVmDriverExecStreamingTest, EchoesItsArgumentsThenCopiesStdin) {
  FakeVmDriver driver;
  ASSERT_TRUE(driver.Create(ConfigFor(kVm)).ok());
  ASSERT_TRUE(driver.Start(kVm).ok());
  Client client;
  client.WithStdin();
  client.Send("typed\n");
  client.Send("");
  absl::StatusOr<int> exit_code = driver.ExecStreaming(kVm, {"echo", "hi"}, client.Streams());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  EXPECT_EQ(client.out(), "echo hi\ntyped\n");

  Client no_stdin;
  ASSERT_TRUE(driver.ExecStreaming(kVm, {"true"}, no_stdin.Streams()).ok());
  EXPECT_EQ(no_stdin.out(), "true\n");
}

TEST(FakeVmDriverExecStreamingTest, RunsTheHandlerAndChecksLikeExec) {
  FakeVmDriver driver;
  Client client;
  EXPECT_EQ(driver.ExecStreaming(kVm, {"true"}, client.Streams()).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(driver.Create(ConfigFor(kVm)).ok());
  EXPECT_EQ(driver.ExecStreaming(kVm, {"true"}, client.Streams()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(driver.Start(kVm).ok());
  EXPECT_EQ(driver.ExecStreaming(kVm, {}, client.Streams()).status().code(),
            absl::StatusCode::kInvalidArgument);
  driver.FailNext("ExecStreaming", absl::FailedPreconditionError("no agent"));
  EXPECT_EQ(driver.ExecStreaming(kVm, {"true"}, client.Streams()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  std::vector<std::string> seen;
  driver.SetExecStreamingHandler([&seen](std::string_view id, const std::vector<std::string>& argv,
                                         const ExecStreams& streams) -> absl::StatusOr<int> {
    seen = argv;
    seen.push_back(std::string(id));
    EXPECT_TRUE(streams.write_stderr("oops\n").ok());
    return 5;
  });
  absl::StatusOr<int> exit_code = driver.ExecStreaming(kVm, {"false"}, client.Streams());
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 5);
  EXPECT_EQ(client.err(), "oops\n");
  EXPECT_THAT(seen, ::testing::ElementsAre("false", kVm));

  UnavailableVmDriver unavailable("libvirtd is not running");
  absl::Status status = unavailable.ExecStreaming(kVm, {"true"}, client.Streams()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Message(status), "libvirtd is not running");
}

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
