// End-to-end test of vmletctl: runs the real binary against a real vmletd
// (with the fake VM driver), as a person or a script would: run, ls, logs
// and rm of a VM pod, the CRI calls one by one, and bad usage.
//
// Needs $VMLETD and $VMLETCTL, set by meson; without $VMLETD the test exits
// 77, which meson reports as skipped.
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/process.h"
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

}  // namespace
}  // namespace vmlet::e2e
