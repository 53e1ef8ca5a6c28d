// End-to-end test of vmletctl: runs the real binary against a real vmletd
// (with the fake VM driver), as a person or a script would: run, ls, logs
// and rm of a VM pod, the CRI calls one by one, and bad usage.
//
// Needs $VMLETD and $VMLETCTL, set by meson; without $VMLETD the test exits
// 77, which meson reports as skipped.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/process.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/v1/api.grpc.pb.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::SizeIs;
using Stub = v1::RuntimeService::Stub;

// The value after `label` on its line of `output` ("pod:  ID" -> "ID").
std::string Field(const std::string& output, const std::string& label) {
  size_t start = output.find(label);
  if (start == std::string::npos) return "";
  start = output.find_first_not_of(' ', start + label.size());
  if (start == std::string::npos) return "";
  return output.substr(start, output.find('\n', start) - start);
}

// The output without its trailing newline.
std::string Chomp(std::string text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// Runs vmletctl with `args`; `with_stderr` captures stderr with stdout.
absl::StatusOr<ExitStatus> RunVmletctl(const std::vector<std::string>& args,
                                       bool with_stderr = false) {
  std::vector<std::string> argv;
  if (with_stderr) argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1"};
  argv.push_back(VmletctlBinary());
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

// Each test talks to a vmletd of its own (see VmletdFixture).
class VmletctlTest : public VmletdFixture {
 protected:
  void SetUp() override {
    if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
    VmletdFixture::SetUp();
  }

  // vmletctl with --endpoint of this test's vmletd; fails the test if it
  // cannot be run at all.
  ExitStatus Ctl(std::vector<std::string> args, bool with_stderr = false) {
    args.insert(args.begin(), {"--endpoint", vmletd_.socket_path()});
    absl::StatusOr<ExitStatus> run = RunVmletctl(args, with_stderr);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : ExitStatus{};
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (vmletd_.runtime().*method)(&context, request, response);
  }

  v1::ListPodSandboxResponse Pods() {
    v1::ListPodSandboxResponse pods;
    grpc::Status status = Call(&Stub::ListPodSandbox, v1::ListPodSandboxRequest(), &pods);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return pods;
  }

  v1::ListContainersResponse Containers() {
    v1::ListContainersResponse containers;
    grpc::Status status = Call(&Stub::ListContainers, v1::ListContainersRequest(), &containers);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return containers;
  }

  grpc::Status ContainerStatus(const std::string& id, v1::ContainerStatusResponse* response) {
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    return Call(&Stub::ContainerStatus, request, response);
  }
};

TEST_F(VmletctlTest, RunsListsShowsTheLogOfAndRemovesAVmPod) {
  const std::string log_dir = vmletd_.dir() + "/logs/web";
  ExitStatus run = Ctl({"run", "web", "--image", kFakeImage, "--cpus", "2", "--memory-mib", "1536",
                        "--log-dir", log_dir});
  ASSERT_EQ(run.code, 0) << run.output;
  const std::string pod_id = Field(run.output, "pod:");
  const std::string container_id = Field(run.output, "container:");
  const std::string log_file = Field(run.output, "log file:");
  EXPECT_THAT(pod_id, MatchesRegex("[0-9a-f]{64}"));
  EXPECT_THAT(container_id, MatchesRegex("[0-9a-f]{64}"));
  EXPECT_EQ(log_file, log_dir + "/vm/0.log");

  // What the kubelet would read back: its labels, the VM's size, the log.
  v1::ContainerStatusResponse status;
  ASSERT_TRUE(ContainerStatus(container_id, &status).ok());
  EXPECT_EQ(status.status().state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(status.status().log_path(), log_file);
  EXPECT_EQ(status.status().labels().at("io.kubernetes.pod.name"), "web");
  EXPECT_EQ(status.status().labels().at("io.kubernetes.pod.namespace"), "default");
  EXPECT_EQ(status.status().labels().at("io.kubernetes.container.name"), "vm");
  EXPECT_EQ(status.status().resources().linux().cpu_quota(), 200000);
  EXPECT_EQ(status.status().resources().linux().cpu_period(), 100000);
  EXPECT_EQ(status.status().resources().linux().memory_limit_in_bytes(), int64_t{1536} << 20);

  ExitStatus ls = Ctl({"ls"});
  ASSERT_EQ(ls.code, 0) << ls.output;
  EXPECT_THAT(ls.output,
              MatchesRegex("POD +NAMESPACE +STATE +IP +VCPUS +MEMORY +IMAGE +AGE\n"
                           "web +default +running +- +2 +1.5GiB +vmlet.test/tiny:1 +[0-9]+s\n"));
  ExitStatus ls_json = Ctl({"-o", "json", "vm", "ls"});
  ASSERT_EQ(ls_json.code, 0) << ls_json.output;
  EXPECT_THAT(ls_json.output,
              AllOf(HasSubstr("\"name\": \"web\""), HasSubstr("\"state\": \"running\""),
                    HasSubstr("\"vcpus\": 2"), HasSubstr("\"podId\": \"" + pod_id + "\"")));
  // The fake driver's Exec echoes the command as its output.
  ExitStatus exec = Ctl({"exec", "web", "--timeout", "5", "--", "uname", "-a"});
  ASSERT_EQ(exec.code, 0) << exec.output;
  EXPECT_EQ(exec.output, "uname -a\n");
  ExitStatus exec_missing = Ctl({"exec", "nosuchpod", "--", "true"});
  EXPECT_EQ(exec_missing.code, 1);

  ExitStatus ls_yaml = Ctl({"ls", "-o", "yaml"});
  ASSERT_EQ(ls_yaml.code, 0) << ls_yaml.output;
  EXPECT_THAT(ls_yaml.output, AllOf(HasSubstr("pods:\n  - name: web\n    namespace: default\n"),
                                    HasSubstr("    state: running\n"), HasSubstr("    vcpus: 2\n"),
                                    // Quoted only when it starts with a digit.
                                    ContainsRegex("    podId: \"?" + pod_id + "\"?\n")));

  // The fake driver writes no console: write the log as vmletd would, with
  // a line split into partial (P) lines.
  ASSERT_TRUE(MakeDirs(log_dir + "/vm").ok());
  ASSERT_TRUE(WriteFileAtomically(log_file,
                                  "2026-11-22T10:00:00.000000001Z stdout F Booting the guest\n"
                                  "2026-11-22T10:00:00.000000002Z stdout P web login: \n"
                                  "2026-11-22T10:00:00.000000003Z stdout P roo\n"
                                  "2026-11-22T10:00:00.000000004Z stdout F t\n"
                                  "2026-11-22T10:00:00.000000005Z stdout F \n"
                                  "2026-11-22T10:00:00.000000006Z stdout F $ uname\n",
                                  0644)
                  .ok());
  ExitStatus logs = Ctl({"logs", "web"});
  ASSERT_EQ(logs.code, 0) << logs.output;
  EXPECT_EQ(logs.output, "Booting the guest\nweb login: root\n\n$ uname\n");

  ExitStatus rm = Ctl({"rm", "web", "--timeout", "5"});
  ASSERT_EQ(rm.code, 0) << rm.output;
  EXPECT_THAT(rm.output, HasSubstr("web"));
  ExitStatus empty = Ctl({"ls"});
  ASSERT_EQ(empty.code, 0) << empty.output;
  EXPECT_EQ(empty.output, "POD   NAMESPACE   STATE   IP   VCPUS   MEMORY   IMAGE   AGE\n");
  EXPECT_THAT(Pods().items(), IsEmpty());
  EXPECT_THAT(Containers().containers(), IsEmpty());
}

TEST_F(VmletctlTest, RefusesToRunASecondPodOfTheSameName) {
  ExitStatus first = Ctl({"run", "twice", "--namespace", "team", "--image", kFakeImage});
  ASSERT_EQ(first.code, 0) << first.output;
  ExitStatus second =
      Ctl({"run", "twice", "--namespace", "team", "--image", kFakeImage}, /*with_stderr=*/true);
  EXPECT_EQ(second.code, 1) << second.output;
  EXPECT_THAT(second.output, HasSubstr("already exists"));
  EXPECT_THAT(Pods().items(), SizeIs(1));
  // Another namespace is another pod.
  ExitStatus elsewhere = Ctl({"run", "twice", "--image", kFakeImage});
  EXPECT_EQ(elsewhere.code, 0) << elsewhere.output;
  EXPECT_THAT(Pods().items(), SizeIs(2));
}

TEST_F(VmletctlTest, UndoesTheSandboxWhenRunFailsForAnUnknownImage) {
  ExitStatus run = Ctl({"run", "nowhere", "--image", "vmlet.test/absent:1"}, /*with_stderr=*/true);
  EXPECT_EQ(run.code, 1) << run.output;
  EXPECT_THAT(run.output, AllOf(HasSubstr("CreateContainer"), HasSubstr("vmlet.test/absent:1"),
                                HasSubstr("NOT_FOUND")));
  EXPECT_THAT(Pods().items(), IsEmpty());
  EXPECT_THAT(Containers().containers(), IsEmpty());
  ExitStatus ls = Ctl({"ls"});
  EXPECT_THAT(ls.output, Not(HasSubstr("nowhere")));
}

TEST_F(VmletctlTest, ReportsAPodToRemoveOrShowThatDoesNotExist) {
  for (const std::string command : {"rm", "logs"}) {
    SCOPED_TRACE(command);
    ExitStatus run = Ctl({command, "ghost"}, /*with_stderr=*/true);
    EXPECT_EQ(run.code, 1) << run.output;
    EXPECT_THAT(run.output, HasSubstr("pod \"ghost\" in namespace \"default\" not found"));
  }
}

TEST_F(VmletctlTest, RunsThePodLifecycleCallByCallWithIdPrefixes) {
  ExitStatus runp = Ctl({"cri", "runp", "--name", "db", "--namespace", "data", "--uid", "uid-db",
                         "--log-dir", vmletd_.dir() + "/logs/db"});
  ASSERT_EQ(runp.code, 0) << runp.output;
  const std::string pod_id = Chomp(runp.output);
  ASSERT_THAT(pod_id, MatchesRegex("[0-9a-f]{64}"));

  ExitStatus create = Ctl({"cri", "create", pod_id.substr(0, 12), "--name", "main", "--image",
                           kFakeImage, "--cpus", "1", "--memory-mib", "256"});
  ASSERT_EQ(create.code, 0) << create.output;
  const std::string container_id = Chomp(create.output);
  ASSERT_THAT(container_id, MatchesRegex("[0-9a-f]{64}"));
  v1::ContainerStatusResponse status;
  ASSERT_TRUE(ContainerStatus(container_id, &status).ok());
  EXPECT_EQ(status.status().state(), v1::CONTAINER_CREATED);
  EXPECT_EQ(status.status().log_path(), vmletd_.dir() + "/logs/db/main/0.log");
  EXPECT_EQ(status.status().labels().at("io.kubernetes.pod.uid"), "uid-db");

  const std::string short_id = container_id.substr(0, 10);
  ExitStatus start = Ctl({"cri", "start", short_id});
  ASSERT_EQ(start.code, 0) << start.output;
  ASSERT_TRUE(ContainerStatus(container_id, &status).ok());
  EXPECT_EQ(status.status().state(), v1::CONTAINER_RUNNING);

  ExitStatus inspect = Ctl({"cri", "inspect", short_id});
  ASSERT_EQ(inspect.code, 0) << inspect.output;
  EXPECT_THAT(inspect.output,
              AllOf(HasSubstr("\"state\": \"CONTAINER_RUNNING\""), HasSubstr(container_id)));
  ExitStatus inspectp = Ctl({"cri", "inspectp", pod_id.substr(0, 8)});
  ASSERT_EQ(inspectp.code, 0) << inspectp.output;
  EXPECT_THAT(inspectp.output,
              AllOf(HasSubstr("\"state\": \"SANDBOX_READY\""), HasSubstr("\"name\": \"db\"")));
  ExitStatus images = Ctl({"cri", "images"});
  ASSERT_EQ(images.code, 0) << images.output;
  EXPECT_THAT(images.output, AllOf(HasSubstr("IMAGE ID"), HasSubstr(kFakeImage)));

  ExitStatus stop = Ctl({"cri", "stop", "--timeout", "2", short_id});
  ASSERT_EQ(stop.code, 0) << stop.output;
  ASSERT_TRUE(ContainerStatus(container_id, &status).ok());
  EXPECT_EQ(status.status().state(), v1::CONTAINER_EXITED);
  ExitStatus ls = Ctl({"ls"});
  EXPECT_THAT(ls.output, MatchesRegex(".*\ndb +data +exited \\(0\\) +- +1 +256MiB .*"));

  ExitStatus rm = Ctl({"cri", "rm", container_id});
  ASSERT_EQ(rm.code, 0) << rm.output;
  EXPECT_EQ(ContainerStatus(container_id, &status).error_code(), grpc::StatusCode::NOT_FOUND);
  ExitStatus stopp = Ctl({"cri", "stopp", pod_id});
  ASSERT_EQ(stopp.code, 0) << stopp.output;
  ExitStatus rmp = Ctl({"cri", "rmp", pod_id});
  ASSERT_EQ(rmp.code, 0) << rmp.output;
  EXPECT_THAT(Pods().items(), IsEmpty());

  // A call on what is gone fails with the gRPC message and code.
  ExitStatus gone = Ctl({"cri", "inspect", container_id}, /*with_stderr=*/true);
  EXPECT_EQ(gone.code, 1) << gone.output;
  EXPECT_THAT(gone.output, AllOf(HasSubstr(container_id), HasSubstr("NOT_FOUND")));
}

// Bad usage needs no vmletd: vmletctl refuses before it connects.
struct Usage {
  std::vector<std::string> args;
  std::string message;
};

// Runs vmletctl console with `args` and `input` on its stdin (a pipe, not a
// terminal), with stdout and stderr apart.
absl::StatusOr<ProcessResult> RunConsole(const VmletdProcess& vmletd,
                                         const std::vector<std::string>& args, std::string input) {
  std::vector<std::string> argv = {VmletctlBinary(),
                                   "--endpoint",
                                   vmletd.socket_path(),
                                   "--vmspec-endpoint",
                                   vmletd.dir() + "/vmspec.sock",
                                   "console"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, ProcessOptions{.stdin_data = std::move(input),
                                         .separate_stderr = true,
                                         .timeout = absl::Seconds(20)});
}

TEST_F(VmletctlTest, ConsoleTypesIntoTheGuestUntilTheEscapeCharacter) {
  ExitStatus run = Ctl({"run", "web", "--image", kFakeImage});
  ASSERT_EQ(run.code, 0) << run.output;

  // The fake driver's console echoes what is typed; what follows the
  // escape character (^] by default) is never sent.
  absl::StatusOr<ProcessResult> console = RunConsole(vmletd_, {"web"}, "hello\n\x1dignored\n");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(console->exit_code, 0) << console->error_output;
  EXPECT_THAT(console->output, HasSubstr("hello\n"));
  EXPECT_THAT(console->output, Not(HasSubstr("ignored")));
  EXPECT_THAT(console->error_output,
              HasSubstr("Connected to the console of pod web (escape character is ^])"));

  // Another escape character; EOF also ends the session.
  console = RunConsole(vmletd_, {"web", "--escape", "^a"}, "one\x1d\x01two\n");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(console->exit_code, 0) << console->error_output;
  EXPECT_THAT(console->output, HasSubstr("one\x1d"));
  EXPECT_THAT(console->output, Not(HasSubstr("two")));
  EXPECT_THAT(console->error_output, HasSubstr("(escape character is ^A)"));
  console = RunConsole(vmletd_, {"web"}, "until eof\n");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(console->exit_code, 0) << console->error_output;
  EXPECT_THAT(console->output, HasSubstr("until eof\n"));

  // A stopped VM has no console to attach to.
  ASSERT_THAT(Containers().containers(), SizeIs(1));
  v1::StopContainerRequest stop;
  stop.set_container_id(Containers().containers(0).id());
  stop.set_timeout(0);
  v1::StopContainerResponse stopped;
  grpc::Status status = Call(&Stub::StopContainer, stop, &stopped);
  ASSERT_TRUE(status.ok()) << status.error_message();
  console = RunConsole(vmletd_, {"web"}, "x\n");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(console->exit_code, 1) << console->error_output;
  EXPECT_THAT(console->error_output,
              AllOf(HasSubstr("FAILED_PRECONDITION"), HasSubstr("is not running")));
}

// exec, attach and port-forward through the CRI and vmletd's streaming
// server (SPDY), against the fake driver.
TEST_F(VmletctlTest, ExecAttachAndPortForwardGoThroughTheStreamingServer) {
  ExitStatus run = Ctl({"run", "web", "--image", kFakeImage});
  ASSERT_EQ(run.code, 0) << run.output;
  auto vmletctl = [&](std::vector<std::string> args, std::string input) {
    args.insert(args.begin(), {VmletctlBinary(), "--endpoint", vmletd_.socket_path()});
    return RunProcess(args, ProcessOptions{.stdin_data = std::move(input),
                                           .separate_stderr = true,
                                           .timeout = absl::Seconds(20)});
  };
  // The fake driver's streaming exec echoes its argv, then copies stdin.
  absl::StatusOr<ProcessResult> exec = vmletctl({"exec", "web", "-i", "--", "cat", "-"}, "typed\n");
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->exit_code, 0) << exec->error_output;
  EXPECT_EQ(exec->output, "cat -\ntyped\n");
  exec = vmletctl({"exec", "web", "-i", "--timeout", "5", "--", "true"}, "");
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->exit_code, 2);
  EXPECT_THAT(exec->error_output, HasSubstr("--timeout works without -i and -t only"));

  // The fake console echoes what is typed; end of input ends the session.
  absl::StatusOr<ProcessResult> attach = vmletctl({"attach", "web"}, "hello attach\n");
  ASSERT_TRUE(attach.ok()) << attach.status();
  EXPECT_EQ(attach->exit_code, 0) << attach->error_output;
  EXPECT_THAT(attach->output, HasSubstr("hello attach\n"));
  EXPECT_THAT(attach->error_output,
              HasSubstr("Attached to the console of pod web (escape character is ^])"));

  // This vmletd's pods have no network: nothing to forward to.
  absl::StatusOr<ProcessResult> forward = vmletctl({"port-forward", "web", "8080:80"}, "");
  ASSERT_TRUE(forward.ok()) << forward.status();
  EXPECT_EQ(forward->exit_code, 1);
  EXPECT_THAT(forward->error_output,
              AllOf(HasSubstr("FAILED_PRECONDITION"), HasSubstr("has no IP address")));
  forward = vmletctl({"port-forward", "web", "80:99999"}, "");
  ASSERT_TRUE(forward.ok()) << forward.status();
  EXPECT_EQ(forward->exit_code, 2);
  EXPECT_THAT(forward->error_output, HasSubstr("\"80:99999\" is invalid"));
}

TEST_F(VmletctlTest, ConsoleFailsForAPodThatDoesNotExist) {
  absl::StatusOr<ProcessResult> console = RunConsole(vmletd_, {"nosuchpod"}, "x\n");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(console->exit_code, 1) << console->error_output;
  EXPECT_THAT(console->error_output, HasSubstr("nosuchpod"));
  EXPECT_THAT(console->output, IsEmpty());
}

TEST(VmletctlUsageTest, ExitsTwoWithAMessageForBadUsage) {
  if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
  const Usage cases[] = {
      {{}, "usage: vmletctl"},
      {{"bogus"}, "unknown command \"bogus\""},
      {{"--bogus", "ls"}, "unknown option \"--bogus\""},
      {{"cri"}, "usage: vmletctl [options] cri"},
      {{"cri", "bogus"}, "unknown command \"cri bogus\""},
      {{"vm", "bogus"}, "unknown command \"vm bogus\""},
      {{"run"}, "\"run\" needs 1 argument"},
      {{"run", "web"}, "--image is required"},
      {{"run", "web", "--image", "x", "--bogus"}, "unknown option \"--bogus\" for \"run\""},
      {{"run", "web", "--image", "x", "--cpus", "two"}, "--cpus \"two\" is invalid"},
      {{"ls", "extra"}, "\"ls\" takes at most 0 arguments"},
      {{"-o", "xml", "ls"}, "-o \"xml\" is invalid: expected table, json or yaml"},
      {{"ls", "-o", "xml"}, "-o \"xml\" is invalid: expected table or json or yaml"},
      {{"exec", "web"}, "\"exec\" needs at least 2 arguments"},
      {{"exec", "web", "--timeout", "-1", "--", "true"}, "--timeout \"-1\" is invalid"},
      {{"--timeout", "0", "ls"}, "--timeout \"0\" is invalid"},
      {{"cri", "runp"}, "--name is required"},
      {{"cri", "create", "abc", "--name", "vm"}, "--image is required"},
      {{"cri", "stop", "--timeout", "soon", "abc"}, "--timeout \"soon\" is invalid"},
      {{"cri", "rmp"}, "\"cri rmp\" needs at least 1 argument"},
      {{"logs", "web", "--endpoint"}, "unknown option \"--endpoint\" for \"logs\""},
      {{"console"}, "\"console\" needs 1 argument"},
      {{"console", "web", "--escape", "^^^"}, "--escape \"^^^\" is invalid"},
  };
  for (const Usage& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    absl::StatusOr<ExitStatus> run = RunVmletctl(c.args, /*with_stderr=*/true);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 2) << run->output;
    EXPECT_THAT(run->output, HasSubstr(c.message));
  }
}

TEST(VmletctlUsageTest, PrintsUsageForHelpOnEveryLevel) {
  if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
  const Usage cases[] = {
      {{"--help"}, "usage: vmletctl [options] COMMAND"},
      {{"cri", "--help"}, "usage: vmletctl [options] cri COMMAND"},
      {{"run", "--help"}, "usage: vmletctl [options] run NAME --image IMAGE"},
      {{"vm", "ls", "--help"}, "usage: vmletctl [options] ls"},
      {{"rm", "-h"}, "usage: vmletctl [options] rm NAME"},
      {{"logs", "--help"}, "usage: vmletctl [options] logs NAME"},
      {{"console", "--help"}, "usage: vmletctl [options] console NAME"},
      {{"cri", "runp", "--help"}, "usage: vmletctl [options] cri runp --name NAME"},
      {{"cri", "create", "--help"}, "usage: vmletctl [options] cri create POD_ID"},
      {{"cri", "stop", "--help"}, "--timeout S"},
      {{"cri", "images", "--help"}, "usage: vmletctl [options] cri images"},
  };
  for (const Usage& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    absl::StatusOr<ExitStatus> run = RunVmletctl(c.args);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 0) << run->output;
    EXPECT_THAT(run->output, HasSubstr(c.message));
  }
}

// ---- stats, statsp, update, events and runtime-config ----

// A vmletctl that runs while the test goes on (`cri events`), its stdout
// and stderr read as they come. The destructor kills and reaps it if it
// still runs, whatever the test's outcome.
class LiveVmletctl {
 public:
  LiveVmletctl() = default;
  LiveVmletctl(const LiveVmletctl&) = delete;
  LiveVmletctl& operator=(const LiveVmletctl&) = delete;
  ~LiveVmletctl() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {out_fd_, err_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  absl::Status Start(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {VmletctlBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_argv;
    for (std::string& arg : argv) c_argv.push_back(arg.data());
    c_argv.push_back(nullptr);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe2");
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      return ErrnoToStatus(errno, "pipe2");
    }
    out_fd_ = out[0];
    err_fd_ = err[0];
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls in the child.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (::dup2(null_fd, 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(err[1], 2) < 0) ::_exit(127);
      ::execv(c_argv[0], c_argv.data());
      ::_exit(127);
    }
    const int fork_errno = errno;
    ::close(out[1]);
    ::close(err[1]);
    if (null_fd >= 0) ::close(null_fd);
    if (pid_ < 0) return ErrnoToStatus(fork_errno, "fork");
    return absl::OkStatus();
  }

  // Reads stdout and stderr until `done()` holds (true), or `timeout`
  // passes or both are closed (false).
  bool ReadUntil(const std::function<bool()>& done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!done()) {
      if (out_fd_ < 0 && err_fd_ < 0) return false;
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      pollfd fds[2] = {{.fd = out_fd_, .events = POLLIN, .revents = 0},
                       {.fd = err_fd_, .events = POLLIN, .revents = 0}};
      const int ready = ::poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) return false;
      if (ready <= 0) continue;
      Drain(fds[0], out_fd_, out_);
      Drain(fds[1], err_fd_, err_);
    }
    return true;
  }

  // SIGINT, then waits at most `timeout` for the exit (SIGKILL after that),
  // reading the output meanwhile.
  absl::StatusOr<ExitStatus> Interrupt(absl::Duration timeout) {
    if (pid_ <= 0) return absl::FailedPreconditionError("vmletctl is not running");
    ::kill(pid_, SIGINT);
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int wait_status = 0;
      const pid_t done = ::waitpid(pid_, &wait_status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        ReadUntil([] { return false; }, absl::Milliseconds(100));  // The rest of the output.
        ExitStatus status;
        if (WIFEXITED(wait_status)) status.code = WEXITSTATUS(wait_status);
        if (WIFSIGNALED(wait_status)) status.signal = WTERMSIG(wait_status);
        return status;
      }
      if (absl::Now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return absl::DeadlineExceededError("vmletctl did not exit after SIGINT; killed");
      }
      ReadUntil([] { return false; }, absl::Milliseconds(50));
    }
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  static void Drain(const pollfd& polled, int& fd, std::string& into) {
    if (fd < 0 || polled.revents == 0) return;
    char buffer[4096];
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) {
      ::close(fd);
      fd = -1;
      return;
    }
    into.append(buffer, static_cast<size_t>(n));
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

// The lines of `text` that contain every one of `parts`.
std::vector<std::string> LinesWith(const std::string& text, const std::vector<std::string>& parts) {
  std::vector<std::string> lines;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // Not complete yet.
    const std::string line = text.substr(start, end - start);
    bool all = true;
    for (const std::string& part : parts) all = all && line.find(part) != std::string::npos;
    if (all) lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

class VmletctlStatsTest : public VmletctlTest {
 protected:
  // `cri runp` and `cri create` of pod "db" with container "main" (1 vCPU,
  // 256 MiB); `start` starts it. The ids into pod_id_ and container_id_.
  void MakeContainer(bool start) {
    ExitStatus runp = Ctl({"cri", "runp", "--name", "db", "--uid", "uid-db"});
    ASSERT_EQ(runp.code, 0) << runp.output;
    pod_id_ = Chomp(runp.output);
    ExitStatus create = Ctl({"cri", "create", pod_id_, "--name", "main", "--image", kFakeImage,
                             "--cpus", "1", "--memory-mib", "256"});
    ASSERT_EQ(create.code, 0) << create.output;
    container_id_ = Chomp(create.output);
    if (!start) return;
    ExitStatus started = Ctl({"cri", "start", container_id_});
    ASSERT_EQ(started.code, 0) << started.output;
  }

  // `cri stats ARGS` until its output matches `regex`, for at most 20 s
  // (vmletd samples every 5 s); the last output.
  std::string StatsUntil(const std::vector<std::string>& args, const std::string& regex) {
    ExitStatus stats;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    do {
      std::vector<std::string> command = {"cri"};
      command.insert(command.end(), args.begin(), args.end());
      stats = Ctl(command);
      if (stats.code == 0 && ::testing::Value(stats.output, ContainsRegex(regex))) break;
      absl::SleepFor(absl::Milliseconds(250));
    } while (absl::Now() < deadline);
    return stats.output;
  }

  std::string pod_id_;
  std::string container_id_;
};

TEST_F(VmletctlStatsTest, StatsShowsAContainerOnceItRunsAndAllOfThemWithA) {
  ASSERT_NO_FATAL_FAILURE(MakeContainer(/*start=*/false));
  const std::string short_id = container_id_.substr(0, 13);
  // Created, not running: no figures, shown only with -a.
  ExitStatus stats = Ctl({"cri", "stats"});
  ASSERT_EQ(stats.code, 0) << stats.output;
  EXPECT_EQ(stats.output, "CONTAINER   NAME   CPU %   MEM   DISK\n");
  stats = Ctl({"cri", "stats", "-a"});
  ASSERT_EQ(stats.code, 0) << stats.output;
  EXPECT_THAT(stats.output,
              MatchesRegex("CONTAINER +NAME +CPU % +MEM +DISK\n" + short_id + " +main +- +- +-\n"));

  ExitStatus start = Ctl({"cri", "start", container_id_});
  ASSERT_EQ(start.code, 0) << start.output;
  // The fake VM's resident memory is half its memory; its disks take
  // nothing. CPU % is "-" until the second sample.
  const std::string row = short_id + " +main +(-|[0-9]+\\.[0-9]{2}) +128MiB +0B\n";
  EXPECT_THAT(StatsUntil({"stats"}, row), ContainsRegex(row));
  // The filters, by id prefix, pod id prefix and label.
  EXPECT_THAT(Ctl({"cri", "stats", container_id_.substr(0, 6)}).output, ContainsRegex(row));
  EXPECT_THAT(Ctl({"cri", "stats", "--id", container_id_}).output, ContainsRegex(row));
  EXPECT_THAT(Ctl({"cri", "stats", "-p", pod_id_.substr(0, 8)}).output, ContainsRegex(row));
  EXPECT_THAT(Ctl({"cri", "stats", "-l", "io.kubernetes.container.name=main", "--label",
                   "io.kubernetes.pod.name=db"})
                  .output,
              ContainsRegex(row));
  EXPECT_THAT(Ctl({"cri", "stats", "-a", "-l", "io.kubernetes.container.name=other"}).output,
              Not(HasSubstr("main")));
  EXPECT_THAT(Ctl({"cri", "stats", "-a", "--id", "0000"}).output, Not(HasSubstr("main")));
  ExitStatus json = Ctl({"cri", "stats", "-o", "json"});
  ASSERT_EQ(json.code, 0) << json.output;
  EXPECT_THAT(json.output,
              AllOf(HasSubstr("\"name\": \"main\""), HasSubstr("\"id\": \"" + container_id_ + "\""),
                    HasSubstr("\"workingSetBytes\": {\n"), HasSubstr("\"value\": \"134217728\"")));

  // The pod's figures are its VM's; a VM without a NIC (pod_network none)
  // has no network figures: "-", and no eth0.
  ExitStatus statsp = Ctl({"cri", "statsp"});
  ASSERT_EQ(statsp.code, 0) << statsp.output;
  EXPECT_THAT(statsp.output,
              MatchesRegex("POD ID +NAME +CPU % +MEM +NET RX / TX\n" + pod_id_.substr(0, 13) +
                           " +db +(-|[0-9]+\\.[0-9]{2}) +128MiB +-\n"));
  ExitStatus statsp_yaml = Ctl({"cri", "statsp", "--id", pod_id_.substr(0, 8), "-o", "yaml"});
  ASSERT_EQ(statsp_yaml.code, 0) << statsp_yaml.output;
  EXPECT_THAT(statsp_yaml.output,
              AllOf(HasSubstr("name: db\n"), HasSubstr("containers:\n"), Not(HasSubstr("eth0"))));
  EXPECT_EQ(Ctl({"cri", "statsp", "-l", "io.kubernetes.pod.name=other"}).output,
            "POD ID   NAME   CPU %   MEM   NET RX / TX\n");
}

TEST_F(VmletctlStatsTest, UpdateChangesTheResourcesTheContainerReportsAndRefusesTooMany) {
  ASSERT_NO_FATAL_FAILURE(MakeContainer(/*start=*/true));
  const std::string short_id = container_id_.substr(0, 10);
  ExitStatus update = Ctl({"cri", "update", "--cpu-quota", "50000", "--memory", "128Mi",
                           "--cpuset-cpus", "0", short_id});
  ASSERT_EQ(update.code, 0) << update.output;
  EXPECT_EQ(update.output, short_id + "\n");
  // What is not given stays: the period the container was created with.
  ExitStatus inspect = Ctl({"cri", "inspect", short_id});
  ASSERT_EQ(inspect.code, 0) << inspect.output;
  EXPECT_THAT(inspect.output,
              AllOf(HasSubstr("\"cpuQuota\": \"50000\""), HasSubstr("\"cpuPeriod\": \"100000\""),
                    HasSubstr("\"memoryLimitInBytes\": \"134217728\""),
                    HasSubstr("\"cpusetCpus\": \"0\"")));
  update = Ctl({"cri", "update", "--memory=201326592", container_id_});
  ASSERT_EQ(update.code, 0) << update.output;
  inspect = Ctl({"cri", "inspect", short_id});
  EXPECT_THAT(inspect.output, AllOf(HasSubstr("\"cpuQuota\": \"50000\""),
                                    HasSubstr("\"memoryLimitInBytes\": \"201326592\"")));

  // 64 vCPUs: beyond what the VM has room for; nothing changes.
  ExitStatus refused =
      Ctl({"cri", "update", "--cpu-quota", "6400000", "--cpu-period", "100000", short_id},
          /*with_stderr=*/true);
  EXPECT_EQ(refused.code, 1) << refused.output;
  EXPECT_THAT(refused.output, AllOf(HasSubstr("UpdateContainerResources \"" + short_id + "\""),
                                    HasSubstr("vcpus: 64")));
  inspect = Ctl({"cri", "inspect", short_id});
  EXPECT_THAT(inspect.output, HasSubstr("\"cpuQuota\": \"50000\""));

  ExitStatus missing = Ctl({"cri", "update", "--memory", "1Gi", "0000"}, /*with_stderr=*/true);
  EXPECT_EQ(missing.code, 1) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("NOT_FOUND"));

  const Usage usage[] = {
      {{"cri", "update", "--memory", "junk", short_id}, "--memory \"junk\" is invalid"},
      {{"cri", "update", "--memory", "12Xi", short_id}, "--memory \"12Xi\" is invalid"},
      {{"cri", "update", "--memory=", short_id}, "--memory \"\" is invalid"},
      {{"cri", "update", "--cpu-quota", "-5", short_id}, "--cpu-quota \"-5\" is invalid"},
      {{"cri", "update", "--cpuset-cpus", "all", short_id}, "--cpuset-cpus \"all\" is invalid"},
      {{"cri", "update", short_id}, "nothing to update"},
      {{"cri", "update", "--memory", "1Gi"}, "\"cri update\" needs at least 1 argument"},
      {{"cri", "stats", "-l", "novalue"}, "-l \"novalue\" is invalid: expected KEY=VALUE"},
      {{"cri", "stats", "-l"}, "-l needs a value"},
      {{"cri", "stats", "--id", "a", "b"}, "either as ID or with --id"},
      {{"cri", "statsp", "-o", "xml"}, "-o \"xml\" is invalid"},
      {{"cri", "events", "extra"}, "\"cri events\" takes at most 0 arguments"},
      {{"cri", "runtime-config", "--bogus"}, "unknown option \"--bogus\""},
  };
  for (const Usage& c : usage) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    ExitStatus run = Ctl(c.args, /*with_stderr=*/true);
    EXPECT_EQ(run.code, 2) << run.output;
    EXPECT_THAT(run.output, HasSubstr(c.message));
  }
  inspect = Ctl({"cri", "inspect", short_id});
  EXPECT_THAT(inspect.output, HasSubstr("\"memoryLimitInBytes\": \"201326592\""));
}

TEST_F(VmletctlStatsTest, EventsPrintsEachLifecycleEventLiveUntilInterrupted) {
  LiveVmletctl json;
  LiveVmletctl table;
  ASSERT_TRUE(
      json.Start({"--endpoint", vmletd_.socket_path(), "cri", "events", "-o", "json"}).ok());
  ASSERT_TRUE(table.Start({"--endpoint", vmletd_.socket_path(), "cri", "events"}).ok());
  // Subscribed: no event from here on is missed.
  for (LiveVmletctl* events : {&json, &table}) {
    ASSERT_TRUE(events->ReadUntil(
        [&] { return events->err().find("Watching container events") != std::string::npos; },
        absl::Seconds(10)))
        << events->err();
  }

  ASSERT_NO_FATAL_FAILURE(MakeContainer(/*start=*/true));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"cri", "stop", "--timeout", "0", container_id_},
        {"cri", "rm", container_id_},
        {"cri", "stopp", pod_id_},
        {"cri", "rmp", pod_id_}}) {
    ExitStatus run = Ctl(args);
    ASSERT_EQ(run.code, 0) << run.output;
  }

  // One JSON object a line, in the order of the lifecycle.
  const std::vector<std::string> types = {"CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT",
                                          "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"};
  const std::string id_json = "\"containerId\":\"" + container_id_ + "\"";
  auto json_line = [&](const std::string& type) {
    return LinesWith(json.out(), {id_json, "\"containerEventType\":\"" + type + "\""});
  };
  EXPECT_TRUE(json.ReadUntil([&] { return !json_line("CONTAINER_DELETED_EVENT").empty(); },
                             absl::Seconds(20)))
      << json.out();
  size_t previous = 0;
  for (const std::string& type : types) {
    SCOPED_TRACE(type);
    std::vector<std::string> lines = json_line(type);
    ASSERT_THAT(lines, Not(IsEmpty())) << json.out();
    EXPECT_THAT(lines[0], MatchesRegex("\\{.*\"podSandboxStatus\":\\{.*\\}"));
    const size_t at = json.out().find(lines[0]);
    EXPECT_GE(at, previous) << json.out();
    previous = at;
  }

  // The table: a header, then TIME CONTAINER TYPE POD.
  const std::string short_id = container_id_.substr(0, 13);
  EXPECT_TRUE(table.ReadUntil(
      [&] {
        return !LinesWith(table.out(), {short_id, "DELETED"}).empty();
      },
      absl::Seconds(20)))
      << table.out();
  EXPECT_THAT(table.out(),
              AllOf(MatchesRegex("TIME +CONTAINER +TYPE +POD\n(.*\n)*"),
                    ContainsRegex("\n[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{9}Z +" +
                                  short_id + " +CREATED +db\n"),
                    ContainsRegex(short_id + " +STARTED +db\n"),
                    ContainsRegex(short_id + " +STOPPED +db\n")));

  for (LiveVmletctl* events : {&json, &table}) {
    absl::StatusOr<ExitStatus> ended = events->Interrupt(absl::Seconds(10));
    ASSERT_TRUE(ended.ok()) << ended.status();
    EXPECT_EQ(ended->signal, 0);
    EXPECT_EQ(ended->code, 0) << events->err();
  }
}

TEST_F(VmletctlTest, RuntimeConfigPrintsTheCgroupDriver) {
  // vmletd's cgroup_driver "auto" is systemd where systemd runs the host.
  const bool systemd = ::access("/run/systemd/system", F_OK) == 0;
  ExitStatus config = Ctl({"cri", "runtime-config"});
  ASSERT_EQ(config.code, 0) << config.output;
  EXPECT_EQ(config.output, systemd ? "cgroup driver: systemd\n" : "cgroup driver: cgroupfs\n");
  config = Ctl({"cri", "runtime-config", "-o", "json"});
  ASSERT_EQ(config.code, 0) << config.output;
  EXPECT_THAT(config.output, HasSubstr(systemd ? "\"cgroupDriver\": \"SYSTEMD\""
                                               : "\"cgroupDriver\": \"CGROUPFS\""));
}

// ---- spec apply|get|list|delete|validate|render and vm status ----

// A directory for vmspec_dir, made before the vmletd that reads it.
std::string MakeSpecsDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string templ =
      StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/vmlet-e2e-specs-XXXXXX");
  return ::mkdtemp(templ.data()) == nullptr ? "" : templ;
}

std::string SpecYaml(const std::string& name, int vcpus) {
  return StrCat("metadata:\n  name: ", name, "\nspec:\n  cpu:\n    count: ", vcpus,
                "\n  memory:\n    size: 1Gi\n");
}

// A vmletd (fake driver) whose vmspec_dir is a directory of the test.
class VmletctlSpecTest : public ::testing::Test {
 protected:
  VmletctlSpecTest()
      : specs_dir_(MakeSpecsDir()), vmletd_(StrCat("vmspec_dir: ", specs_dir_, "\n")) {}
  ~VmletctlSpecTest() override {
    if (!specs_dir_.empty()) (void)RemoveTree(specs_dir_);
  }

  void SetUp() override {
    if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
    ASSERT_FALSE(specs_dir_.empty());
    ASSERT_TRUE(vmletd_.init_status().ok()) << vmletd_.init_status();
    absl::Status started = vmletd_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "---- log of vmletd in " << vmletd_.dir() << " ----\n"
                << vmletd_.Log() << "---- end of the log of vmletd ----\n";
    }
  }

  // vmletctl against this test's vmletd, stdout and stderr together.
  ProcessResult Ctl(std::vector<std::string> args, std::string input = "") {
    std::vector<std::string> argv = {VmletctlBinary(), "--endpoint", vmletd_.socket_path(),
                                     "--vmspec-endpoint", vmletd_.dir() + "/vmspec.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<ProcessResult> run = RunProcess(
        argv, ProcessOptions{.stdin_data = std::move(input), .timeout = absl::Seconds(20)});
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : ProcessResult{.exit_code = -1};
  }

  std::string WriteSpecFile(const std::string& name, const std::string& contents) {
    const std::string path = vmletd_.dir() + "/" + name;
    EXPECT_TRUE(WriteFileAtomically(path, contents, 0644).ok());
    return path;
  }

  std::string specs_dir_;
  VmletdProcess vmletd_;
};

TEST_F(VmletctlSpecTest, AppliesGetsListsAndDeletesSpecs) {
  const std::string file =
      WriteSpecFile("specs.yaml", SpecYaml("web", 2) + "---\n" + SpecYaml("db", 4));
  ProcessResult apply = Ctl({"spec", "apply", "-f", file});
  ASSERT_EQ(apply.exit_code, 0) << apply.output;
  EXPECT_EQ(apply.output,
            "vmspec default/web applied (generation 1)\n"
            "vmspec default/db applied (generation 1)\n");
  // From stdin, changed: the next generation; unchanged: the same.
  apply = Ctl({"spec", "apply", "-f", "-"}, SpecYaml("web", 3));
  ASSERT_EQ(apply.exit_code, 0) << apply.output;
  EXPECT_EQ(apply.output, "vmspec default/web applied (generation 2)\n");

  ProcessResult get = Ctl({"spec", "get", "web"});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, AllOf(HasSubstr("name: web"), HasSubstr("generation: 2"),
                                HasSubstr("count: 3"), HasSubstr("source: api")));
  // What get prints applies again, unchanged.
  apply = Ctl({"spec", "apply", "-f", "-"}, get.output);
  ASSERT_EQ(apply.exit_code, 0) << apply.output;
  EXPECT_EQ(apply.output, "vmspec default/web applied (generation 2)\n");
  ProcessResult json = Ctl({"spec", "get", "web", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_THAT(json.output,
              AllOf(HasSubstr("\"namespace\": \"default\""), HasSubstr("\"created_at\": ")));

  ProcessResult list = Ctl({"spec", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output,
              AllOf(MatchesRegex("NAMESPACE +NAME +GENERATION +VCPUS +MEMORY +SOURCE +AGE\n.*"),
                    ContainsRegex("\ndefault +db +1 +4 +1Gi +api +[0-9]+s\n"),
                    ContainsRegex("\ndefault +web +2 +3 +1Gi +api +[0-9]+s\n")));
  EXPECT_THAT(Ctl({"spec", "list", "-n", "prod"}).output, Not(HasSubstr("web")));
  EXPECT_THAT(Ctl({"spec", "list", "-A", "-o", "json"}).output,
              AllOf(HasSubstr("\"vm_specs\""), HasSubstr("\"web\""), HasSubstr("\"db\"")));

  ProcessResult deleted = Ctl({"spec", "delete", "web"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_EQ(deleted.output, "vmspec default/web deleted\n");
  get = Ctl({"spec", "get", "web"});
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_THAT(get.output, AllOf(HasSubstr("default/web"), HasSubstr("NOT_FOUND")));

  // Specs survive a restart of vmletd.
  ASSERT_TRUE(vmletd_.Restart().ok());
  EXPECT_THAT(Ctl({"spec", "get", "db"}).output, HasSubstr("count: 4"));
}

TEST_F(VmletctlSpecTest, ValidatesAndRendersSpecsWithoutStoringThem) {
  ProcessResult valid =
      Ctl({"spec", "validate", "-f", WriteSpecFile("ok.yaml", SpecYaml("web", 2))});
  ASSERT_EQ(valid.exit_code, 0) << valid.output;
  EXPECT_EQ(valid.output, "vmspec default/web is valid\n");

  const std::string bad =
      WriteSpecFile("bad.yaml", SpecYaml("web", 2) + "  firmware:\n    type: coreboot\n");
  ProcessResult invalid = Ctl({"spec", "validate", "-f", bad});
  EXPECT_EQ(invalid.exit_code, 1) << invalid.output;
  EXPECT_THAT(invalid.output,
              AllOf(HasSubstr("spec.firmware.type"), HasSubstr("INVALID_ARGUMENT")));
  ProcessResult apply = Ctl({"spec", "apply", "-f", bad});
  EXPECT_EQ(apply.exit_code, 1) << apply.output;
  // Not YAML of a spec: the file and line.
  ProcessResult unknown =
      Ctl({"spec", "validate", "-f", WriteSpecFile("typo.yaml", "metadata:\n  nmae: web\n")});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("typo.yaml:2"));

  ProcessResult render = Ctl({"spec", "render", "-f", WriteSpecFile("r.yaml", SpecYaml("web", 3)),
                              "--pod", "default/nobody"});
  ASSERT_EQ(render.exit_code, 0) << render.output;
  // What the fake driver renders: the VM's size.
  EXPECT_THAT(render.output, HasSubstr("3 vCPUs"));
  EXPECT_THAT(Ctl({"spec", "list", "-A"}).output, Not(HasSubstr("web")));
}

TEST_F(VmletctlSpecTest, ShowsWhatAPodsVmRunsWithAndWhatWaitsForItsNextStart) {
  ASSERT_EQ(Ctl({"spec", "apply", "-f", "-"}, SpecYaml("web", 2)).exit_code, 0);
  // A pod bound to the spec, as the kubelet would run it.
  v1::RunPodSandboxRequest run;
  v1::PodSandboxConfig& config = *run.mutable_config();
  config.mutable_metadata()->set_name("web-0");
  config.mutable_metadata()->set_namespace_("default");
  config.mutable_metadata()->set_uid("uid-web-0");
  config.set_log_directory(vmletd_.dir() + "/logs/web-0");
  (*config.mutable_annotations())["vmlet.io/vmspec"] = "web";
  v1::RunPodSandboxResponse ran;
  grpc::ClientContext run_context;
  ASSERT_TRUE(vmletd_.runtime().RunPodSandbox(&run_context, run, &ran).ok());
  v1::CreateContainerRequest create;
  create.set_pod_sandbox_id(ran.pod_sandbox_id());
  create.mutable_config()->mutable_metadata()->set_name("vm");
  create.mutable_config()->mutable_image()->set_image(kFakeImage);
  create.mutable_config()->set_log_path("vm/0.log");
  *create.mutable_sandbox_config() = config;
  v1::CreateContainerResponse created;
  grpc::ClientContext create_context;
  grpc::Status status = vmletd_.runtime().CreateContainer(&create_context, create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::StartContainerRequest start;
  start.set_container_id(created.container_id());
  v1::StartContainerResponse started;
  grpc::ClientContext start_context;
  ASSERT_TRUE(vmletd_.runtime().StartContainer(&start_context, start, &started).ok());

  ProcessResult vm = Ctl({"vm", "status", "web-0"});
  ASSERT_EQ(vm.exit_code, 0) << vm.output;
  EXPECT_THAT(vm.output, AllOf(ContainsRegex("state: +running\n"),
                               ContainsRegex("vmspec: +web \\(generation 1\\)\n"),
                               ContainsRegex("vcpus: +2\n"), ContainsRegex("memory: +1GiB\n")));

  ProcessResult apply = Ctl({"spec", "apply", "-f", "-"}, SpecYaml("web", 4));
  ASSERT_EQ(apply.exit_code, 0) << apply.output;
  EXPECT_THAT(apply.output,
              AllOf(HasSubstr("vmspec default/web applied (generation 2)\n"),
                    HasSubstr(StrCat("pending restart (takes effect at the VM's next start): ",
                                     ran.pod_sandbox_id().substr(0, 13)))));
  vm = Ctl({"vm", "status", "default/web-0", "-o", "json"});
  ASSERT_EQ(vm.exit_code, 0) << vm.output;
  EXPECT_THAT(vm.output, AllOf(HasSubstr("\"specPending\": true"),
                               HasSubstr("\"vmspecCurrentGeneration\": \"2\"")));
  EXPECT_THAT(Ctl({"vm", "status", "nobody"}).output, HasSubstr("NOT_FOUND"));
}

TEST_F(VmletctlSpecTest, AppliesTheFilesOfVmspecDirAndProtectsTheirSpecs) {
  const std::string file = specs_dir_ + "/web.yaml";
  ASSERT_TRUE(WriteFileAtomically(file, SpecYaml("web", 2), 0644).ok());
  ProcessResult list;
  for (int i = 0; i < 100; ++i) {
    list = Ctl({"spec", "list"});
    if (list.output.find(file) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(list.output, ContainsRegex("\ndefault +web +1 +2 +1Gi +" + file));

  ProcessResult deleted = Ctl({"spec", "delete", "web"});
  EXPECT_EQ(deleted.exit_code, 1) << deleted.output;
  EXPECT_THAT(deleted.output, AllOf(HasSubstr(file), HasSubstr("FAILED_PRECONDITION")));
  ProcessResult apply = Ctl({"spec", "apply", "-f", "-"}, SpecYaml("web", 8));
  EXPECT_EQ(apply.exit_code, 1) << apply.output;
  EXPECT_THAT(apply.output, HasSubstr(file));

  ASSERT_EQ(::unlink(file.c_str()), 0);
  for (int i = 0; i < 100; ++i) {
    list = Ctl({"spec", "list"});
    if (list.output.find(file) == std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(list.output, Not(HasSubstr("web")));
}

TEST(VmletctlSpecUsageTest, ExitsTwoForBadUsageOfTheSpecCommands) {
  if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
  const Usage cases[] = {
      {{"spec"}, "usage: vmletctl [options] spec COMMAND"},
      {{"spec", "bogus"}, "unknown command \"spec bogus\""},
      {{"spec", "apply"}, "-f FILE is required"},
      {{"spec", "get"}, "\"spec get\" needs 1 argument"},
      {{"spec", "get", "web", "-o", "table"}, "-o \"table\" is invalid"},
      {{"spec", "list", "-A", "-n", "x"}, "-A and -n cannot be combined"},
      {{"spec", "render"}, "-f FILE is required"},
      {{"vm", "status"}, "\"vm status\" needs 1 argument"},
  };
  for (const Usage& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    absl::StatusOr<ExitStatus> run = RunVmletctl(c.args, /*with_stderr=*/true);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 2) << run->output;
    EXPECT_THAT(run->output, HasSubstr(c.message));
  }
  absl::StatusOr<ExitStatus> help = RunVmletctl({"spec", "apply", "--help"});
  ASSERT_TRUE(help.ok());
  EXPECT_EQ(help->code, 0);
  EXPECT_THAT(help->output, HasSubstr("usage: vmletctl [options] spec apply -f FILE|-"));
}

}  // namespace
}  // namespace vmlet::e2e
