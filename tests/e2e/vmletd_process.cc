#include "tests/e2e/vmletd_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/netns.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// A parent directory for the test's directory whose socket path still fits
// in sockaddr_un (108 bytes); $TEST_TMPDIR can be long.
std::string TempBase() {
  std::string base = Getenv("TEST_TMPDIR");
  constexpr size_t kSuffix = sizeof("/vmlet-e2e-XXXXXX/cri.sock");
  if (base.empty() || base.size() + kSuffix > sizeof(sockaddr_un{}.sun_path)) return "/tmp";
  return base;
}

// A channel of its own: no subchannel shared with earlier channels to the
// same socket (whose reconnect backoff would delay the first call), and a
// short reconnect backoff.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& socket_path) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return grpc::CreateCustomChannel(StrCat("unix:", socket_path), grpc::InsecureChannelCredentials(),
                                   args);
}

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// Runs in the forked child, where only async-signal-safe calls are allowed:
// dies with the test process, takes the given descriptors as stdin, stdout
// and stderr, and execs `argv`.
[[noreturn]] void ExecChild(pid_t parent, int in, int out, int err, char* const* argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(127);
  ::execv(argv[0], argv);
  static constexpr char kMessage[] = "e2e: execv of the binary under test failed\n";
  (void)!::write(2, kMessage, sizeof(kMessage) - 1);
  ::_exit(127);
}

ExitStatus FromWaitStatus(int wait_status) {
  ExitStatus status;
  if (WIFEXITED(wait_status)) status.code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) status.signal = WTERMSIG(wait_status);
  return status;
}

}  // namespace

std::string VmletdBinary() { return Getenv("VMLETD"); }
std::string VmletctlBinary() { return Getenv("VMLETCTL"); }

absl::StatusOr<ExitStatus> RunCommand(const std::vector<std::string>& args,
                                      absl::Duration timeout) {
  if (args.empty()) return absl::InvalidArgumentError("no command to run");
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return ErrnoToStatus(errno, "opening /dev/null");
  ScopeGuard close_null([null_fd] { ::close(null_fd); });
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe2");
  ScopeGuard close_read([&] { ::close(pipe_fds[0]); });
  std::vector<char*> argv = Argv(args);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[1]);
    return ErrnoToStatus(errno, "fork");
  }
  if (pid == 0) ExecChild(parent, null_fd, pipe_fds[1], 2, argv.data());
  ::close(pipe_fds[1]);

  ExitStatus result;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  char buffer[4096];
  while (true) {
    int wait_ms =
        static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    pollfd fd{.fd = pipe_fds[0], .events = POLLIN, .revents = 0};
    int ready = ::poll(&fd, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(pipe_fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the command closed its stdout.
    result.output.append(buffer, static_cast<size_t>(n));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) return ErrnoToStatus(errno, "waitpid");
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        StrCat("\"", args[0], "\" did not finish in ", absl::ToInt64Seconds(timeout), "s; killed"));
  }
  ExitStatus ended = FromWaitStatus(wait_status);
  result.code = ended.code;
  result.signal = ended.signal;
  return result;
}

VmletdProcess::VmletdProcess(const std::string& extra_yaml, bool fake_driver) {
  std::string templ = TempBase() + "/vmlet-e2e-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    init_status_ = ErrnoToStatus(errno, StrCat("mkdtemp \"", templ, "\""));
    return;
  }
  dir_ = templ;
  config_path_ = dir_ + "/vmletd.yaml";
  socket_path_ = dir_ + "/cri.sock";
  state_dir_ = dir_ + "/state";
  log_path_ = dir_ + "/vmletd.log";
  std::string config = StrCat(                    //
      "cri_socket: ", socket_path_, "\n",         //
      "vmspec_socket: ", dir_, "/vmspec.sock\n",  //
      "state_dir: ", state_dir_, "\n",            //
      "run_dir: ", dir_, "/run\n",                //
      "log_level: debug\n");
  if (fake_driver) {
    // The fake driver boots nothing, but CreateContainer still resolves the
    // image: a local image whose kernel is a placeholder file.
    const std::string image_dir = dir_ + "/images/tiny";
    init_status_ = MakeDirs(image_dir + "/boot");
    if (init_status_.ok()) {
      init_status_ = WriteFileAtomically(image_dir + "/boot/vmlinuz", "not a kernel", 0644);
    }
    StrAppend(&config, "vm_driver: fake\n", "local_images:\n  \"", kFakeImage, "\": ", image_dir,
              "\n");
  }
  // Tests that are not about pod networking need no CNI configuration.
  if (extra_yaml.find("pod_network:") == std::string::npos) config += "pod_network: none\n";
  config += extra_yaml;
  if (!init_status_.ok()) return;
  init_status_ = Annotate(WriteFileAtomically(config_path_, config), "writing the vmletd config");
  channel_ = NewChannel(socket_path_);
  runtime_ = v1::RuntimeService::NewStub(channel_);
  image_ = v1::ImageService::NewStub(channel_);
}

VmletdProcess::~VmletdProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  runtime_.reset();
  image_.reset();
  channel_.reset();
  if (dir_.empty()) return;
  // Pods a test left behind keep their network namespaces pinned (bind
  // mounts), which would make the directory impossible to remove.
  const std::string netns_dir = dir_ + "/run/netns";
  if (absl::StatusOr<std::vector<std::string>> pinned = ListDirectory(netns_dir); pinned.ok()) {
    for (const std::string& name : *pinned) (void)network::RemoveNetns(netns_dir + "/" + name);
  }
  (void)RemoveTree(dir_);
}

void VmletdProcess::AppendToLog(const std::string& line) const {
  int fd = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

std::string VmletdProcess::Log() const {
  absl::StatusOr<std::string> log = ReadFile(log_path_);
  return log.ok() ? *log : StrCat("(no log: ", log.status().message(), ")\n");
}

absl::Status VmletdProcess::Spawn() {
  VMLET_RETURN_IF_ERROR(init_status_);
  if (pid_ > 0) return absl::FailedPreconditionError("vmletd is already running");
  const std::string binary = VmletdBinary();
  if (binary.empty()) return absl::FailedPreconditionError("$VMLETD is not set");

  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return ErrnoToStatus(errno, "opening /dev/null");
  ScopeGuard close_null([null_fd] { ::close(null_fd); });
  int out_fd =
      ::open((dir_ + "/vmletd.stdout").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (out_fd < 0) return ErrnoToStatus(errno, "opening vmletd's stdout file");
  ScopeGuard close_out([out_fd] { ::close(out_fd); });
  AppendToLog(StrCat("==== e2e: starting ", binary, " --config ", config_path_, "\n"));
  int err_fd = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (err_fd < 0) return ErrnoToStatus(errno, "opening vmletd's log");
  ScopeGuard close_err([err_fd] { ::close(err_fd); });

  std::vector<std::string> args = {binary, "--config", config_path_};
  args.insert(args.begin(), wrapper_.begin(), wrapper_.end());
  std::vector<char*> argv = Argv(args);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) ExecChild(parent, null_fd, out_fd, err_fd, argv.data());
  pid_ = pid;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ExitStatus>> VmletdProcess::Reap(bool block) {
  if (pid_ <= 0) return absl::FailedPreconditionError("vmletd is not running");
  int wait_status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid_, &wait_status, block ? 0 : WNOHANG);
  } while (reaped < 0 && errno == EINTR);
  if (reaped < 0) return ErrnoToStatus(errno, "waitpid");
  if (reaped == 0) return std::nullopt;
  pid_ = -1;
  ExitStatus status = FromWaitStatus(wait_status);
  AppendToLog(
      StrCat("==== e2e: vmletd ended: exit code ", status.code, ", signal ", status.signal, "\n"));
  return status;
}

absl::StatusOr<ExitStatus> VmletdProcess::WaitForExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    VMLET_ASSIGN_OR_RETURN(std::optional<ExitStatus> ended, Reap(/*block=*/false));
    if (ended.has_value()) return *ended;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          StrCat("vmletd did not exit within ", absl::ToInt64Seconds(timeout), "s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

absl::Status VmletdProcess::WaitUntilServing(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    VMLET_ASSIGN_OR_RETURN(std::optional<ExitStatus> ended, Reap(/*block=*/false));
    if (ended.has_value()) {
      return absl::FailedPreconditionError(StrCat("vmletd exited (code ", ended->code, ", signal ",
                                                  ended->signal, ") before serving on \"",
                                                  socket_path_, "\"; its log:\n", Log()));
    }
    // A fresh channel per attempt: the socket may not exist yet, or may be
    // the stale one of a killed vmletd.
    std::shared_ptr<grpc::Channel> channel = NewChannel(socket_path_);
    std::unique_ptr<v1::RuntimeService::Stub> stub = v1::RuntimeService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    v1::VersionRequest request;
    request.set_version("v1");
    v1::VersionResponse response;
    if (stub->Version(&context, request, &response).ok()) {
      channel_ = std::move(channel);
      runtime_ = std::move(stub);
      image_ = v1::ImageService::NewStub(channel_);
      return absl::OkStatus();
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(StrCat("vmletd did not answer Version on \"", socket_path_,
                                                "\" within ", absl::ToInt64Seconds(timeout), "s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status VmletdProcess::Start(absl::Duration timeout) {
  VMLET_RETURN_IF_ERROR(Spawn());
  return WaitUntilServing(timeout);
}

absl::Status VmletdProcess::Kill() {
  if (pid_ <= 0) return absl::FailedPreconditionError("vmletd is not running");
  if (::kill(pid_, SIGKILL) != 0) return ErrnoToStatus(errno, "kill(SIGKILL)");
  return Reap(/*block=*/true).status();
}

absl::StatusOr<ExitStatus> VmletdProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("vmletd is not running");
  if (::kill(pid_, SIGTERM) != 0) return ErrnoToStatus(errno, "kill(SIGTERM)");
  return WaitForExit(timeout);
}

absl::Status VmletdProcess::Restart() {
  if (pid_ > 0) VMLET_RETURN_IF_ERROR(Kill());
  return Start();
}

absl::Status VmletdProcess::RemovePodSandboxes(const std::vector<std::string>& ids) {
  if (!running()) return absl::OkStatus();
  std::string errors;
  for (const std::string& id : ids) {
    grpc::ClientContext context;
    runtime::v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    runtime::v1::RemovePodSandboxResponse response;
    grpc::Status status = runtime().RemovePodSandbox(&context, request, &response);
    if (!status.ok())
      StrAppend(&errors, "RemovePodSandbox ", id, ": ", status.error_message(), "; ");
  }
  return errors.empty() ? absl::OkStatus() : absl::InternalError(errors);
}

}  // namespace vmlet::e2e
