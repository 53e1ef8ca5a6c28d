// End-to-end tests of ExecSync: vmletd with the libvirt driver boots the
// test guest (tests/guest/build-guest.sh) under TCG, whose init runs the
// QEMU guest agent on the virtio port org.qemu.guest_agent.0, and commands
// run through it. A second guest, booted with vmlet_noagent, runs no agent.
//
// Both VMs boot once for the whole suite (booting under TCG takes seconds);
// the tests only run commands in them. Skipped (exit 77) without libvirtd,
// QEMU or the guest's packages (qemu-guest-agent among them).
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/process.h"
#include "base/status.h"
#include "base/str_util.h"
#include "streaming/client.h"
#include "tests/e2e/test_guest.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAgentImage[] = "vmlet.test/exec:agent";
constexpr char kNoAgentImage[] = "vmlet.test/exec:noagent";

std::string AgentLayout() { return StrCat(GuestDir(), "/layouts/exec-agent"); }
std::string NoAgentLayout() { return StrCat(GuestDir(), "/layouts/exec-noagent"); }

absl::Status MakeLayouts() {
  VMLET_RETURN_IF_ERROR(MakeGuestLayout(AgentLayout(), "console=ttyS0 quiet panic=-1"));
  return MakeGuestLayout(NoAgentLayout(), "console=ttyS0 quiet panic=-1 vmlet_noagent");
}

class ExecTest : public ::testing::Test {
 public:
  static VmletdProcess& Vmletd() { return *vmletd_; }

 protected:
  // One vmletd and two pods for the suite: "agent" and "noagent".
  static void SetUpTestSuite() {
    namespace_ = new std::string(StrCat("e2e-", GenerateId().substr(0, 8)));
    const std::string yaml = StrCat(
        "vm_driver: libvirt\nlibvirt_uri: ", kLibvirtUri, "\naccelerator: tcg\nlocal_images:\n  \"",
        kAgentImage, "\": ", AgentLayout(), "\n  \"", kNoAgentImage, "\": ", NoAgentLayout(), "\n");
    vmletd_ = new VmletdProcess(yaml, /*fake_driver=*/false);
    setup_error_ = new std::string();
    *setup_error_ = Boot();
  }

  // Boots both VMs and waits until the agent answers; what went wrong, or "".
  static std::string Boot() {
    if (!vmletd_->init_status().ok()) return std::string(vmletd_->init_status().message());
    // QEMU runs as libvirt's own user: it must reach the per-VM files.
    if (::chmod(vmletd_->dir().c_str(), 0711) != 0) return "chmod of the test directory failed";
    if (absl::Status started = vmletd_->Start(); !started.ok()) {
      return StrCat("starting vmletd: ", started.message());
    }
    agent_vm_ = new std::string(CreateAndStartVm(vmletd_->runtime(), RunPod("agent"), kAgentImage));
    no_agent_vm_ =
        new std::string(CreateAndStartVm(vmletd_->runtime(), RunPod("noagent"), kNoAgentImage));
    if (!WaitFor(
            [] { return LogOf("agent").find("VMLET-GUEST-AGENT-READY") != std::string::npos; })) {
      return StrCat("no VMLET-GUEST-AGENT-READY in the console log:\n", LogOf("agent"));
    }
    // qemu-ga has the port open; libvirt connects to it when QEMU reports
    // that, a moment later.
    if (!WaitFor(
            [] {
              v1::ExecSyncResponse response;
              return Exec(*agent_vm_, {"true"}, 10, &response).error_code() !=
                     grpc::StatusCode::FAILED_PRECONDITION;
            },
            absl::Seconds(20))) {
      return "the guest agent did not answer within 20s of VMLET-GUEST-AGENT-READY";
    }
    if (!WaitFor(
            [] { return LogOf("noagent").find("VMLET-GUEST-AGENT-OFF") != std::string::npos; })) {
      return StrCat("no VMLET-GUEST-AGENT-OFF in the console log:\n", LogOf("noagent"));
    }
    return "";
  }

  static void TearDownTestSuite() {
    if (absl::Status removed = vmletd_->RemovePodSandboxes(sandboxes_); !removed.ok()) {
      std::fprintf(stderr, "%s\n", std::string(removed.message()).c_str());
    }
    // Never leave a domain behind, even when a test failed.
    std::istringstream lines(Virsh({"list", "--all", "--name"}));
    for (std::string name; std::getline(lines, name);) {
      if (name.find(*namespace_) == std::string::npos) continue;
      std::fprintf(stderr, "a domain of this test is left: %s; removing it\n", name.c_str());
      Virsh({"destroy", name});
      Virsh({"undefine", name});
    }
    if (!setup_error_->empty() || ::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
      std::fprintf(stderr, "vmletd log:\n%s\n", vmletd_->Log().c_str());
    }
    delete vmletd_;  // Kills vmletd and removes its directory.
    vmletd_ = nullptr;
  }

  void SetUp() override {
    if (!setup_error_->empty()) GTEST_FAIL() << *setup_error_;
  }

  static std::string RunPod(const std::string& name) {
    grpc::ClientContext context;
    v1::RunPodSandboxRequest request;
    v1::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_metadata()->set_namespace_(*namespace_);
    config->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    config->set_log_directory(StrCat(vmletd_->dir(), "/logs/", name));
    v1::RunPodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    sandboxes_.push_back(response.pod_sandbox_id());
    return response.pod_sandbox_id();
  }

  static std::string LogOf(const std::string& pod) {
    return ReadAll(StrCat(vmletd_->dir(), "/logs/", pod, "/vm/0.log"));
  }

  static grpc::Status Exec(const std::string& id, const std::vector<std::string>& cmd,
                           int64_t timeout, v1::ExecSyncResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout + 60));
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& arg : cmd) request.add_cmd(arg);
    request.set_timeout(timeout);
    return vmletd_->runtime().ExecSync(&context, request, response);
  }

  static inline VmletdProcess* vmletd_ = nullptr;
  static inline std::string* namespace_ = nullptr;
  static inline std::string* setup_error_ = nullptr;
  static inline std::string* agent_vm_ = nullptr;
  static inline std::string* no_agent_vm_ = nullptr;
  static inline std::vector<std::string> sandboxes_;
};

// The interactive console through the real libvirt driver, on this suite's
// VM: a line typed with `vmletctl console` reaches the guest, whose echo
// loop prints it back into the console log.
TEST_F(ExecTest, ALineTypedIntoVmletctlConsoleReachesTheGuest) {
  const char* vmletctl = std::getenv("VMLETCTL");
  if (vmletctl == nullptr || *vmletctl == '\0') GTEST_SKIP() << "$VMLETCTL is not set";
  absl::StatusOr<ProcessResult> console =
      RunProcess({vmletctl, "--endpoint", vmletd_->socket_path(), "--vmspec-endpoint",
                  vmletd_->dir() + "/vmspec.sock", "console", "agent", "--namespace", *namespace_},
                 ProcessOptions{.stdin_data = "typed-into-the-console\n\x1d",
                                .separate_stderr = true,
                                .timeout = absl::Seconds(30)});
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(console->exit_code, 0) << console->error_output;
  EXPECT_TRUE(WaitFor(
      [] {
        return LogOf("agent").find("VMLET-GUEST-ECHO typed-into-the-console") != std::string::npos;
      },
      absl::Seconds(30)))
      << LogOf("agent");
}

TEST_F(ExecTest, EchoReturnsItsStdoutAndExitCodeZero) {
  v1::ExecSyncResponse response;
  grpc::Status status = Exec(*agent_vm_, {"echo", "hello"}, 30, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.stdout(), "hello\n");
  EXPECT_EQ(response.stderr(), "");
  EXPECT_EQ(response.exit_code(), 0);
}

TEST_F(ExecTest, StderrAndANonZeroExitCodeComeBack) {
  v1::ExecSyncResponse response;
  grpc::Status status = Exec(*agent_vm_, {"sh", "-c", "echo err >&2; exit 3"}, 30, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.stdout(), "");
  EXPECT_EQ(response.stderr(), "err\n");
  EXPECT_EQ(response.exit_code(), 3);
}

TEST_F(ExecTest, AProcessEndedByASignalExitsWith128PlusTheSignal) {
  v1::ExecSyncResponse response;
  grpc::Status status = Exec(*agent_vm_, {"sh", "-c", "kill -9 $$"}, 30, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.exit_code(), 137);
}

TEST_F(ExecTest, BinaryOutputOfAMegabyteArrivesWhole) {
  v1::ExecSyncResponse response;
  grpc::Status status =
      Exec(*agent_vm_, {"dd", "if=/dev/zero", "bs=65536", "count=16"}, 60, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.exit_code(), 0);
  EXPECT_TRUE(response.stdout() == std::string(1 << 20, '\0'))
      << "stdout has " << response.stdout().size() << " bytes";
}

TEST_F(ExecTest, ACommandLongerThanItsTimeoutIsDeadlineExceeded) {
  v1::ExecSyncResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status = Exec(*agent_vm_, {"sleep", "30"}, 2, &response);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("\"sleep 30\""));
  EXPECT_GE(took, absl::Seconds(2));
  EXPECT_LT(took, absl::Seconds(8));
  // The agent still serves the next command.
  status = Exec(*agent_vm_, {"true"}, 30, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ExecTest, AProgramTheGuestDoesNotHaveIsFailedPrecondition) {
  // qemu-ga cannot spawn it and answers guest-exec with an error.
  v1::ExecSyncResponse response;
  grpc::Status status = Exec(*agent_vm_, {"/bin/no-such-program", "x"}, 30, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("the guest agent could not start the command"));
  EXPECT_THAT(status.error_message(), HasSubstr("/bin/no-such-program"));
  EXPECT_THAT(status.error_message(), HasSubstr("No such file or directory"));
}

TEST_F(ExecTest, AGuestWithoutAnAgentIsFailedPreconditionAtOnce) {
  v1::ExecSyncResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status = Exec(*no_agent_vm_, {"echo", "hello"}, 30, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(StrCat("guest agent not connected in VM \"vmlet-",
                                                       *namespace_, "-noagent-")));
  EXPECT_THAT(status.error_message(), HasSubstr("the guest must run qemu-guest-agent"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// Streaming exec and attach: the CRI returns a URL of vmletd's streaming
// server, and the project's own SPDY and WebSocket clients connect to it,
// as the kubelet (or crictl) would.
absl::StatusOr<std::string> ExecUrl(const std::string& id, const std::vector<std::string>& cmd,
                                    bool in = false) {
  grpc::ClientContext context;
  v1::ExecRequest request;
  request.set_container_id(id);
  for (const std::string& arg : cmd) request.add_cmd(arg);
  request.set_stdin(in);
  request.set_stdout(true);
  request.set_stderr(true);
  v1::ExecResponse response;
  grpc::Status status = ExecTest::Vmletd().runtime().Exec(&context, request, &response);
  if (!status.ok()) return absl::UnknownError(status.error_message());
  return response.url();
}

absl::StatusOr<streaming::CommandOutput> StreamExec(const std::string& id,
                                                    const std::vector<std::string>& cmd,
                                                    streaming::WireProtocol wire,
                                                    std::string_view input = "") {
  VMLET_ASSIGN_OR_RETURN(std::string url, ExecUrl(id, cmd, !input.empty()));
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<streaming::CommandSession> session,
                         streaming::ConnectCommand(url, {.wire = wire, .stdin = !input.empty()}));
  return streaming::RunCommand(*session, input);
}

TEST_F(ExecTest, StreamingExecOverSpdyAndWebSocket) {
  for (streaming::WireProtocol wire :
       {streaming::WireProtocol::kSpdy, streaming::WireProtocol::kWebSocket}) {
    absl::StatusOr<streaming::CommandOutput> out = StreamExec(*agent_vm_, {"echo", "hello"}, wire);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->stdout_data, "hello\n");
    EXPECT_EQ(out->exit_code, 0);
    out = StreamExec(*agent_vm_, {"sh", "-c", "echo out; echo err >&2; exit 3"}, wire);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->stdout_data, "out\n");
    EXPECT_EQ(out->stderr_data, "err\n");
    EXPECT_EQ(out->exit_code, 3);
  }
}

TEST_F(ExecTest, StreamingExecPassesStdin) {
  absl::StatusOr<streaming::CommandOutput> out =
      StreamExec(*agent_vm_, {"sh", "-c", "tr a-z A-Z; echo done"}, streaming::WireProtocol::kSpdy,
                 "typed into exec\n");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, "TYPED INTO EXEC\ndone\n");
  EXPECT_EQ(out->exit_code, 0);
}

TEST_F(ExecTest, StreamingExecRelaysOutputWhileTheCommandRuns) {
  // The command prints, then waits for a file that only ExecSync makes: the
  // first line must arrive while it waits.
  const std::string flag = StrCat("/tmp/go-", GenerateId().substr(0, 8));
  absl::StatusOr<std::string> url =
      ExecUrl(*agent_vm_,
              {"sh", "-c",
               StrCat("echo first; while [ ! -e ", flag, " ]; do sleep 0.1; done; echo second")});
  ASSERT_TRUE(url.ok()) << url.status();
  absl::StatusOr<std::unique_ptr<streaming::CommandSession>> session =
      streaming::ConnectCommand(*url, {});
  ASSERT_TRUE(session.ok()) << session.status();
  std::string seen;
  while (seen.find('\n') == std::string::npos) {
    absl::StatusOr<std::string> chunk = (*session)->stdout->Read();
    ASSERT_TRUE(chunk.ok() && !chunk->empty()) << seen;
    seen += *chunk;
  }
  EXPECT_EQ(seen, "first\n");
  v1::ExecSyncResponse touched;
  ASSERT_TRUE(Exec(*agent_vm_, {"sh", "-c", StrCat(": >", flag)}, 30, &touched).ok());
  absl::StatusOr<streaming::CommandOutput> rest = streaming::RunCommand(**session);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->stdout_data, "second\n");
  EXPECT_EQ(rest->exit_code, 0);
  (void)Exec(*agent_vm_, {"rm", "-f", flag}, 30, &touched);  // An applet of the test guest.
}

TEST_F(ExecTest, StreamingExecWithoutAnAgentGetsTheClearError) {
  absl::StatusOr<streaming::CommandOutput> out =
      StreamExec(*no_agent_vm_, {"echo", "hello"}, streaming::WireProtocol::kSpdy);
  EXPECT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("guest agent not connected in VM"));
}

TEST_F(ExecTest, AStreamingUrlIsGoodForOneConnection) {
  absl::StatusOr<std::string> url = ExecUrl(*agent_vm_, {"true"});
  ASSERT_TRUE(url.ok()) << url.status();
  absl::StatusOr<std::unique_ptr<streaming::CommandSession>> first =
      streaming::ConnectCommand(*url, {});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(streaming::RunCommand(**first).ok());
  absl::StatusOr<std::unique_ptr<streaming::CommandSession>> again =
      streaming::ConnectCommand(*url, {});
  EXPECT_FALSE(again.ok());
  EXPECT_THAT(again.status().message(), HasSubstr("404"));
}

TEST_F(ExecTest, AttachShowsTheConsoleAndTypesIntoIt) {
  for (streaming::WireProtocol wire :
       {streaming::WireProtocol::kSpdy, streaming::WireProtocol::kWebSocket}) {
    grpc::ClientContext context;
    v1::AttachRequest request;
    request.set_container_id(*agent_vm_);
    request.set_stdin(true);
    request.set_stdout(true);
    request.set_tty(true);
    v1::AttachResponse response;
    grpc::Status status = vmletd_->runtime().Attach(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    absl::StatusOr<std::unique_ptr<streaming::CommandSession>> session = streaming::ConnectCommand(
        response.url(), {.wire = wire, .stdin = true, .stderr = false, .tty = true});
    ASSERT_TRUE(session.ok()) << session.status();
    const std::string line = StrCat("attached-", GenerateId().substr(0, 8));
    ASSERT_TRUE((*session)->stdin->Write(line + "\n").ok());
    // The guest's echo loop answers on the console, which attach relays.
    std::string seen;
    while (seen.find(StrCat("VMLET-GUEST-ECHO ", line)) == std::string::npos) {
      absl::StatusOr<std::string> chunk = (*session)->stdout->Read();
      ASSERT_TRUE(chunk.ok() && !chunk->empty()) << seen;
      seen += *chunk;
    }
    (*session)->Close();
    // The console log goes on being written while attached.
    EXPECT_TRUE(WaitFor([&] {
      return LogOf("agent").find(StrCat("VMLET-GUEST-ECHO ", line)) != std::string::npos;
    }));
  }
}

TEST_F(ExecTest, AStoppedContainerIsFailedPrecondition) {
  // Last: it stops the VM without an agent.
  grpc::ClientContext context;
  v1::StopContainerRequest stop;
  stop.set_container_id(*no_agent_vm_);
  stop.set_timeout(0);
  v1::StopContainerResponse stopped;
  ASSERT_TRUE(vmletd_->runtime().StopContainer(&context, stop, &stopped).ok());
  v1::ExecSyncResponse response;
  grpc::Status status = Exec(*no_agent_vm_, {"true"}, 30, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("is exited"));
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (int prepared = vmlet::e2e::PrepareTestGuest({"/usr/sbin/qemu-ga"}); prepared != 0) {
    return prepared;
  }
  if (absl::Status laid_out = vmlet::e2e::MakeLayouts(); !laid_out.ok()) {
    std::fprintf(stderr, "%s\n", std::string(laid_out.message()).c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
