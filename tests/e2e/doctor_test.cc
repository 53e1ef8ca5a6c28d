// End-to-end test of `vmletctl doctor`: the real binary against the real
// libvirtd, QEMU and CNI plugins of this machine, with a config per case in
// a directory of the test's own: a healthy node (with a vmletd running on
// that config and a TCG boot test), no libvirtd, no CNI configuration, a
// read-only state directory, a config that does not parse.
//
// Needs root (qemu:///system, the bind mount), a reachable libvirtd and
// $VMLETD/$VMLETCTL; without them the test exits 77, which meson reports as
// skipped.
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/scope_guard.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kLibvirtSocket[] = "/run/libvirt/libvirt-sock";
constexpr char kCniBinDir[] = "/usr/lib/cni";

// A bridge + host-local network as an operator would write it.
constexpr char kConflist[] = R"({
  "cniVersion": "1.0.0",
  "name": "doctor-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "vmletdoc0",
      "isGateway": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.231.0.0/24"}]]}
    }
  ]
})";

struct Finding {
  std::string check, status, message, fix;
};

struct DoctorRun {
  int code = -1;
  std::string output;
  std::vector<Finding> findings;

  std::vector<Finding> Of(const std::string& check) const {
    std::vector<Finding> found;
    for (const Finding& finding : findings) {
      if (finding.check == check) found.push_back(finding);
    }
    return found;
  }
  // The one finding of `check` (an empty one, after failing the test, when
  // there is not exactly one).
  Finding One(const std::string& check) const {
    std::vector<Finding> found = Of(check);
    EXPECT_EQ(found.size(), 1u) << "findings of \"" << check << "\" in\n" << output;
    return found.size() == 1 ? found[0] : Finding{};
  }
  std::set<std::string> Failing() const {
    std::set<std::string> checks;
    for (const Finding& finding : findings) {
      if (finding.status == "FAIL") checks.insert(finding.check);
    }
    return checks;
  }
};

// Whether libvirtd's socket accepts a connection.
bool LibvirtdReachable() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, kLibvirtSocket, sizeof(address.sun_path) - 1);
  const bool reachable = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return reachable;
}

// A kernel to boot: the newest /boot/vmlinuz-*, or "" when there is none.
std::string AnyKernel() {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory("/boot");
  if (!names.ok()) return "";
  std::string kernel;
  for (const std::string& name : *names) {
    if (name.starts_with("vmlinuz-")) kernel = "/boot/" + name;
  }
  return kernel;
}

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = "/tmp/vmlet-doctor-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    dir_ = templ;
    cni_dir_ = dir_ + "/cni";
    state_dir_ = dir_ + "/state";
    ASSERT_TRUE(MakeDirs(cni_dir_).ok());
    ASSERT_TRUE(MakeDirs(state_dir_).ok());
    ASSERT_TRUE(MakeDirs(dir_ + "/run").ok());
    ASSERT_TRUE(WriteFileAtomically(cni_dir_ + "/10-doctor.conflist", kConflist, 0644).ok());
  }

  void TearDown() override {
    if (mounted_) {
      if (::umount2(state_dir_.c_str(), MNT_DETACH) != 0) {
        ADD_FAILURE() << "umount " << state_dir_ << ": " << std::strerror(errno);
      }
      mounted_ = false;
    }
    if (!dir_.empty()) (void)RemoveTree(dir_);
  }

  // The keys the healthy node has, minus the sockets and directories.
  std::string CommonYaml(const std::string& libvirt_uri = "qemu:///system") const {
    return StrCat("accelerator: tcg\n",                    //
                  "libvirt_uri: \"", libvirt_uri, "\"\n",  //
                  "pod_network: cni\n",                    //
                  "cni:\n  conf_dir: ", cni_dir_, "\n  bin_dirs: [", kCniBinDir, "]\n");
  }

  // Writes a config whose sockets and directories are in the test's
  // directory; returns its path.
  std::string WriteConfig(const std::string& yaml) {
    const std::string path = dir_ + "/vmlet.yaml";
    const std::string text = StrCat("cri_socket: ", dir_, "/cri.sock\n",        //
                                    "vmspec_socket: ", dir_, "/vmspec.sock\n",  //
                                    "state_dir: ", state_dir_, "\n",            //
                                    "run_dir: ", dir_, "/run\n", yaml);
    EXPECT_TRUE(WriteFileAtomically(path, text, 0644).ok());
    return path;
  }

  // Runs `vmletctl doctor ARGS -o json` and parses its findings.
  DoctorRun Doctor(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> argv = {VmletctlBinary(), "doctor"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"-o", "json"});
    DoctorRun run;
    absl::StatusOr<ExitStatus> status = RunCommand(argv, timeout);
    EXPECT_TRUE(status.ok()) << status.status();
    if (!status.ok()) return run;
    run.code = status->code;
    run.output = status->output;
    nlohmann::json json = nlohmann::json::parse(run.output, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(json.is_array()) << run.output;
    if (!json.is_array()) return run;
    for (const nlohmann::json& item : json) {
      run.findings.push_back({item.value("check", ""), item.value("status", ""),
                              item.value("message", ""), item.value("fix", "")});
      EXPECT_TRUE(run.findings.back().status == "ok" || run.findings.back().status == "info" ||
                  run.findings.back().status == "warn" || run.findings.back().status == "FAIL")
          << item.dump();
      if (run.findings.back().status == "warn" || run.findings.back().status == "FAIL") {
        EXPECT_FALSE(run.findings.back().fix.empty()) << item.dump();
      }
    }
    return run;
  }

  std::string dir_;
  std::string cni_dir_;
  std::string state_dir_;
  bool mounted_ = false;
};

TEST_F(DoctorTest, PrintsItsUsageForHelp) {
  absl::StatusOr<ExitStatus> run = RunCommand({VmletctlBinary(), "doctor", "--help"});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->code, 0);
  EXPECT_THAT(run->output, AllOf(HasSubstr("usage: vmletctl [options] doctor"),
                                 HasSubstr("--no-boot-test"), HasSubstr("--boot-timeout")));
}

TEST_F(DoctorTest, FindsNothingBlockingOnAHealthyNodeWithVmletdRunning) {
  const std::string kernel = AnyKernel();
  if (kernel.empty()) GTEST_SKIP() << "no /boot/vmlinuz-* to boot";
  VmletdProcess vmletd(CommonYaml());
  ASSERT_TRUE(vmletd.init_status().ok()) << vmletd.init_status();
  absl::Status started = vmletd.Start();
  ASSERT_TRUE(started.ok()) << started << "\n" << vmletd.Log();

  DoctorRun run =
      Doctor({"--config", vmletd.config_path(), "--kernel", kernel, "--boot-timeout", "45"},
             absl::Seconds(90));
  EXPECT_EQ(run.code, 0) << run.output;
  EXPECT_TRUE(run.Failing().empty()) << run.output;
  EXPECT_EQ(run.One("config").status, "ok") << run.output;
  EXPECT_EQ(run.One("kvm").status, "info") << run.output;  // accelerator tcg
  Finding boot = run.One("kvm-boot");
  EXPECT_EQ(boot.status, "ok") << run.output;
  EXPECT_THAT(boot.message, AllOf(HasSubstr(kernel), HasSubstr("tcg")));
  Finding libvirt = run.One("libvirt");
  EXPECT_EQ(libvirt.status, "ok") << run.output;
  EXPECT_THAT(libvirt.message, HasSubstr("qemu:///system: libvirt "));
  Finding cni = run.One("cni");
  EXPECT_EQ(cni.status, "ok") << run.output;
  EXPECT_THAT(cni.message, AllOf(HasSubstr("10-doctor.conflist"), HasSubstr("doctor-test"),
                                 HasSubstr("bridge (host-local)")));
  std::vector<Finding> sockets = run.Of("sockets");
  ASSERT_EQ(sockets.size(), 1u) << run.output;
  EXPECT_EQ(sockets[0].status, "ok") << run.output;
  EXPECT_THAT(sockets[0].message, AllOf(HasSubstr("answers on unix://" + vmletd.socket_path()),
                                        HasSubstr(", RuntimeReady and NetworkReady")));
  // Every check reports, once (sockets may add findings of files).
  for (const char* check : {"qemu", "ovmf", "state-dir", "run-dir", "clock", "cgroup", "swap"}) {
    EXPECT_EQ(run.Of(check).size(), 1u) << check << " in\n" << run.output;
  }
  if (HasFailure()) std::cerr << "---- vmletd log ----\n" << vmletd.Log();
}

TEST_F(DoctorTest, FailsLibvirtNamingTheUriWhenLibvirtdIsUnreachable) {
  const std::string uri = "qemu:///system?socket=/nonexistent/libvirt-sock";
  DoctorRun run = Doctor({"--config", WriteConfig(CommonYaml(uri)), "--no-boot-test"});
  EXPECT_EQ(run.code, 1) << run.output;
  EXPECT_EQ(run.Failing(), std::set<std::string>{"libvirt"}) << run.output;
  Finding libvirt = run.One("libvirt");
  EXPECT_THAT(libvirt.message, AllOf(HasSubstr(uri), HasSubstr("/nonexistent/libvirt-sock")));
  EXPECT_THAT(libvirt.fix, HasSubstr("libvirtd"));
  EXPECT_EQ(run.One("kvm-boot").status, "info") << run.output;  // skipped
  // Nothing listens on the config's socket.
  Finding sockets = run.One("sockets");
  EXPECT_EQ(sockets.status, "warn") << run.output;
  EXPECT_THAT(sockets.message, HasSubstr("vmletd is not running"));
}

TEST_F(DoctorTest, FailsCniNamingTheDirectoryWhenItHoldsNoConfiguration) {
  ASSERT_TRUE(RemoveFileIfExists(cni_dir_ + "/10-doctor.conflist").ok());
  DoctorRun run = Doctor({"--config", WriteConfig(CommonYaml()), "--no-boot-test"});
  EXPECT_EQ(run.code, 1) << run.output;
  EXPECT_EQ(run.Failing(), std::set<std::string>{"cni"}) << run.output;
  Finding cni = run.One("cni");
  EXPECT_THAT(cni.message, AllOf(HasSubstr(cni_dir_), HasSubstr("NetworkReady")));
  EXPECT_THAT(cni.fix, HasSubstr(cni_dir_));
}

TEST_F(DoctorTest, FailsStateDirWhenItIsReadOnly) {
  if (::mount(state_dir_.c_str(), state_dir_.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    GTEST_SKIP() << "cannot bind-mount " << state_dir_ << ": " << std::strerror(errno);
  }
  mounted_ = true;  // TearDown unmounts it, whatever happens below.
  ASSERT_EQ(
      ::mount(nullptr, state_dir_.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);

  DoctorRun run = Doctor({"--config", WriteConfig(CommonYaml()), "--no-boot-test"});
  EXPECT_EQ(run.code, 1) << run.output;
  EXPECT_EQ(run.Failing(), std::set<std::string>{"state-dir"}) << run.output;
  Finding state = run.One("state-dir");
  EXPECT_THAT(state.message, AllOf(HasSubstr(state_dir_), HasSubstr("Read-only")));
  EXPECT_EQ(run.One("run-dir").status, "ok") << run.output;
}

TEST_F(DoctorTest, FailsConfigWhenItDoesNotParse) {
  const std::string path = WriteConfig("accelerator: [tcg\n");
  DoctorRun run = Doctor({"--config", path, "--no-boot-test"});
  EXPECT_EQ(run.code, 1) << run.output;
  Finding config = run.One("config");
  EXPECT_EQ(config.status, "FAIL") << run.output;
  EXPECT_THAT(config.message, HasSubstr(path));
  EXPECT_THAT(config.fix, HasSubstr(path));
}

TEST_F(DoctorTest, FailsConfigWhenTheNamedFileIsMissing) {
  const std::string path = dir_ + "/missing.yaml";
  DoctorRun run = Doctor({"--config", path, "--no-boot-test"});
  EXPECT_EQ(run.code, 1) << run.output;
  Finding config = run.One("config");
  EXPECT_EQ(config.status, "FAIL") << run.output;
  EXPECT_THAT(config.message, HasSubstr(path));
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  ::testing::InitGoogleMock(&argc, argv);
  if (vmlet::e2e::VmletdBinary().empty() || vmlet::e2e::VmletctlBinary().empty()) {
    std::fprintf(stderr, "$VMLETD or $VMLETCTL is not set: nothing to test; skipping (exit 77)\n");
    return 77;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "not root (qemu:///system and mounts need it); skipping (exit 77)\n");
    return 77;
  }
  if (!vmlet::e2e::LibvirtdReachable()) {
    std::fprintf(stderr, "libvirtd does not answer on %s; skipping (exit 77)\n",
                 vmlet::e2e::kLibvirtSocket);
    return 77;
  }
  return RUN_ALL_TESTS();
}
