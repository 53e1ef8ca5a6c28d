// Unit tests of vmletctl doctor's checks, on files and stand-in programs in a
// directory of the test's own (no libvirt, no QEMU, no vmletd).
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/str_util.h"
#include "cmd/vmletctl/doctor_boot.h"
#include "cmd/vmletctl/doctor_checks.h"
#include "vmdriver/accelerator.h"

namespace vmlet::ctl::doctor {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr uint64_t kMiB = 1024 * 1024;

class DoctorChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = "/tmp/vmlet-doctor-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    dir_ = templ;
  }
  void TearDown() override {
    if (!dir_.empty()) (void)RemoveTree(dir_);
  }

  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0644) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    EXPECT_TRUE(WriteFileAtomically(path, text, mode).ok()) << path;
    return path;
  }

  std::string dir_;
};

TEST_F(DoctorChecksTest, NamesSeveritiesAsTheOutputShowsThem) {
  EXPECT_EQ(SeverityName(Severity::kOk), "ok");
  EXPECT_EQ(SeverityName(Severity::kInfo), "info");
  EXPECT_EQ(SeverityName(Severity::kWarn), "warn");
  EXPECT_EQ(SeverityName(Severity::kFail), "FAIL");
}

TEST_F(DoctorChecksTest, ConfigIsInfoWhenTheDefaultFileIsAbsentAndFailWhenANamedOneIs) {
  const std::string missing = dir_ + "/vmlet.yaml";
  ConfigCheck absent = CheckConfig(missing, /*named=*/false);
  EXPECT_EQ(absent.finding.severity, Severity::kInfo);
  EXPECT_THAT(absent.finding.message, AllOf(HasSubstr(missing), HasSubstr("defaults")));
  EXPECT_EQ(absent.config.accelerator, Accelerator::kAuto);

  ConfigCheck named = CheckConfig(missing, /*named=*/true);
  EXPECT_EQ(named.finding.severity, Severity::kFail);
  EXPECT_THAT(named.finding.message, HasSubstr(missing));
  EXPECT_THAT(named.finding.fix, Not(IsEmpty()));
}

TEST_F(DoctorChecksTest, ConfigFailsWithTheParsersMessageAndFallsBackToTheDefaults) {
  const std::string path = Write("bad.yaml", "accelerator: warp\n");
  ConfigCheck check = CheckConfig(path, /*named=*/true);
  EXPECT_EQ(check.finding.check, "config");
  EXPECT_EQ(check.finding.severity, Severity::kFail);
  EXPECT_THAT(check.finding.message, AllOf(HasSubstr("accelerator"), HasSubstr("warp")));
  EXPECT_THAT(check.finding.fix, HasSubstr(path));
  EXPECT_EQ(check.config.accelerator, Accelerator::kAuto);
}

TEST_F(DoctorChecksTest, ConfigReportsTheAcceleratorAndPodNetworkOfAGoodFile) {
  const std::string path = Write("good.yaml", "accelerator: tcg\npod_network: none\n");
  ConfigCheck check = CheckConfig(path, /*named=*/true);
  EXPECT_EQ(check.finding.severity, Severity::kOk);
  EXPECT_EQ(check.finding.message, path + " loaded (accelerator tcg, pod_network none)");
  EXPECT_EQ(check.config.accelerator, Accelerator::kTcg);
}

TEST_F(DoctorChecksTest, KvmSeverityFollowsWhatTheAcceleratorNeeds) {
  const std::string device = dir_ + "/no-kvm";
  Finding tcg = CheckKvm(Accelerator::kTcg, "/etc/vmlet/vmlet.yaml", device);
  EXPECT_EQ(tcg.severity, Severity::kInfo);
  EXPECT_THAT(tcg.message, HasSubstr("not used"));

  Finding automatic = CheckKvm(Accelerator::kAuto, "/etc/vmlet/vmlet.yaml", device);
  EXPECT_EQ(automatic.severity, Severity::kWarn);
  EXPECT_THAT(automatic.message, AllOf(HasSubstr(device), HasSubstr("TCG")));
  EXPECT_THAT(automatic.fix, AllOf(HasSubstr("kvm_intel"), HasSubstr("group kvm")));

  Finding kvm = CheckKvm(Accelerator::kKvm, "/etc/vmlet/vmlet.yaml", device);
  EXPECT_EQ(kvm.severity, Severity::kFail);
  EXPECT_THAT(kvm.fix, HasSubstr("\"accelerator: tcg\" in /etc/vmlet/vmlet.yaml"));

  EXPECT_FALSE(WouldUseKvm(Accelerator::kAuto, device));
  EXPECT_FALSE(WouldUseKvm(Accelerator::kTcg, device));
  EXPECT_TRUE(WouldUseKvm(Accelerator::kKvm, device));
}

TEST_F(DoctorChecksTest, OvmfTakesTheFirstFirmwareThatExists) {
  const std::string firmware = Write("OVMF_CODE.fd", "firmware");
  Finding found = CheckOvmf({dir_ + "/OVMF_CODE_4M.fd", firmware});
  EXPECT_EQ(found.severity, Severity::kOk);
  EXPECT_THAT(found.message, HasSubstr(firmware));

  Finding missing = CheckOvmf({dir_ + "/OVMF_CODE_4M.fd"});
  EXPECT_EQ(missing.severity, Severity::kWarn);
  EXPECT_EQ(missing.fix, "apt-get install ovmf");
}

class CniCheckTest : public DoctorChecksTest {
 protected:
  void SetUp() override {
    DoctorChecksTest::SetUp();
    config_.pod_network = "cni";
    config_.cni_conf_dir = dir_ + "/net.d";
    config_.cni_bin_dirs = {dir_ + "/empty-bin", dir_ + "/bin"};
    ASSERT_TRUE(MakeDirs(config_.cni_conf_dir).ok());
    ASSERT_TRUE(MakeDirs(dir_ + "/empty-bin").ok());
    Write("net.d/10-test.conflist", R"({"cniVersion": "1.0.0", "name": "testnet", "plugins": [
        {"type": "bridge", "bridge": "t0", "ipam": {"type": "host-local"}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]})");
  }

  Config config_;
};

TEST_F(CniCheckTest, IsInfoWithoutAPodNetwork) {
  config_.pod_network = "none";
  EXPECT_EQ(CheckCni(config_, "c.yaml").severity, Severity::kInfo);
}

TEST_F(CniCheckTest, FailsNamingTheDirectoryWhenItHoldsNoConfiguration) {
  ASSERT_TRUE(RemoveFileIfExists(config_.cni_conf_dir + "/10-test.conflist").ok());
  Finding finding = CheckCni(config_, "c.yaml");
  EXPECT_EQ(finding.severity, Severity::kFail);
  EXPECT_THAT(finding.message, AllOf(HasSubstr(config_.cni_conf_dir), HasSubstr("NotReady")));
  EXPECT_THAT(finding.fix, AllOf(HasSubstr(config_.cni_conf_dir), HasSubstr("c.yaml")));
}

TEST_F(CniCheckTest, FailsNamingEveryPluginThatIsNotAnExecutable) {
  Write("bin/bridge", "#!/bin/sh\n", 0755);
  Write("bin/portmap", "not executable", 0644);
  Finding finding = CheckCni(config_, "c.yaml");
  EXPECT_EQ(finding.severity, Severity::kFail);
  EXPECT_THAT(finding.message, AllOf(HasSubstr("host-local, portmap"), HasSubstr(dir_ + "/bin")));
  EXPECT_THAT(finding.fix, HasSubstr("containernetworking-plugins"));
}

TEST_F(CniCheckTest, ReportsTheFileNetworkAndPluginsWhenAllAreInstalled) {
  for (const char* plugin : {"bridge", "host-local", "portmap"}) {
    Write(StrCat("bin/", plugin), "#!/bin/sh\n", 0755);
  }
  Finding finding = CheckCni(config_, "c.yaml");
  EXPECT_EQ(finding.severity, Severity::kOk) << finding.message;
  EXPECT_EQ(finding.message, config_.cni_conf_dir +
                                 "/10-test.conflist: network \"testnet\", plugins bridge "
                                 "(host-local), portmap");
}

TEST_F(DoctorChecksTest, DirectoryIsOkWhenWritableOrCreatable) {
  Finding existing = CheckDirectory("state-dir", dir_, 1, 0);
  EXPECT_EQ(existing.severity, Severity::kOk) << existing.message;
  EXPECT_THAT(existing.message, AllOf(HasSubstr(dir_ + ": writable"), HasSubstr("free")));

  Finding creatable = CheckDirectory("state-dir", dir_ + "/a/b", 1, 0);
  EXPECT_EQ(creatable.severity, Severity::kOk) << creatable.message;
  EXPECT_THAT(creatable.message, HasSubstr("does not exist yet; vmletd creates it in " + dir_));
  // Nothing is left behind by the write test.
  absl::StatusOr<std::vector<std::string>> entries = ListDirectory(dir_);
  ASSERT_TRUE(entries.ok());
  EXPECT_THAT(*entries, IsEmpty());
}

TEST_F(DoctorChecksTest, DirectoryFailsOrWarnsBelowItsFreeSpaceThresholds) {
  constexpr uint64_t kExabyte = uint64_t{1} << 60;
  Finding fail = CheckDirectory("state-dir", dir_, kExabyte, 0);
  EXPECT_EQ(fail.severity, Severity::kFail);
  EXPECT_THAT(fail.message, HasSubstr("less than"));
  EXPECT_THAT(fail.fix, HasSubstr("state_dir"));

  Finding warn = CheckDirectory("run-dir", dir_, 16 * kMiB, kExabyte);
  EXPECT_EQ(warn.severity, Severity::kWarn);
  EXPECT_THAT(warn.fix, HasSubstr("run_dir"));
}

TEST_F(DoctorChecksTest, DirectoryFailsForAFileOrARelativePath) {
  const std::string file = Write("state", "x");
  Finding not_dir = CheckDirectory("state-dir", file + "/sub", 1, 0);
  EXPECT_EQ(not_dir.severity, Severity::kFail);
  EXPECT_THAT(not_dir.message, AllOf(HasSubstr(file), HasSubstr("not a directory")));

  EXPECT_EQ(CheckDirectory("run-dir", "run/vmlet", 1, 0).severity, Severity::kFail);
}

TEST_F(DoctorChecksTest, SocketFilesFailWhenNotASocketAndWarnWhenWorldWritable) {
  const std::string plain = Write("cri.sock", "not a socket");
  const std::string socket_path = dir_ + "/vmspec.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);

  ASSERT_EQ(::chmod(socket_path.c_str(), 0660), 0);
  SocketFile socket = InspectSocket(socket_path);
  EXPECT_TRUE(socket.exists);
  EXPECT_TRUE(socket.is_socket);
  EXPECT_THAT(DescribeSocket(socket), HasSubstr("0660 "));
  EXPECT_THAT(CheckSocketFiles({socket, InspectSocket(dir_ + "/missing.sock")}), IsEmpty());

  ASSERT_EQ(::chmod(socket_path.c_str(), 0666), 0);
  std::vector<Finding> findings =
      CheckSocketFiles({InspectSocket(plain), InspectSocket(socket_path)});
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].severity, Severity::kFail);
  EXPECT_THAT(findings[0].message, AllOf(HasSubstr(plain), HasSubstr("a regular file")));
  EXPECT_EQ(findings[1].severity, Severity::kWarn);
  EXPECT_THAT(findings[1].message, AllOf(HasSubstr(socket_path), HasSubstr("world-writable")));
  EXPECT_THAT(findings[1].fix, HasSubstr("chmod 0660 " + socket_path));
}

TEST_F(DoctorChecksTest, SwapWarnsNamingEachSwapArea) {
  const std::string none = Write("swaps-none", "Filename\tType\tSize\tUsed\tPriority\n");
  EXPECT_EQ(CheckSwap(none).severity, Severity::kOk);

  const std::string some = Write("swaps",
                                 "Filename\tType\tSize\tUsed\tPriority\n"
                                 "/dev/vda2  partition\t2097148\t0\t-2\n");
  Finding finding = CheckSwap(some);
  EXPECT_EQ(finding.severity, Severity::kWarn);
  EXPECT_THAT(finding.message, AllOf(HasSubstr("/dev/vda2 (2.0 GiB)"), HasSubstr("failSwapOn")));
  EXPECT_THAT(finding.fix, HasSubstr("swapoff -a"));

  EXPECT_EQ(CheckSwap(dir_ + "/nothing").severity, Severity::kInfo);
}

TEST_F(DoctorChecksTest, CgroupNamesTheKubeletsDriverForTheInitSystem) {
  // A plain directory is not cgroup v2.
  Finding v1 = CheckCgroup(dir_, Write("comm", "systemd\n"));
  EXPECT_EQ(v1.severity, Severity::kWarn);
  EXPECT_THAT(v1.message, AllOf(HasSubstr("cgroup v1"), HasSubstr("cgroupDriver to systemd")));

  Finding other = CheckCgroup(dir_, Write("comm2", "init\n"));
  EXPECT_THAT(other.message, HasSubstr("PID 1 is \"init\", not systemd: set the kubelet's "
                                       "cgroupDriver to cgroupfs"));
}

TEST_F(DoctorChecksTest, FindKernelPrefersTheRunningOneThenTheNewest) {
  const std::string boot = dir_ + "/boot";
  EXPECT_TRUE(absl::IsNotFound(FindKernel("", boot, "6.1.0-1-amd64").status()));
  EXPECT_TRUE(absl::IsNotFound(FindKernel(boot + "/nope", boot).status()));
  Write("boot/vmlinuz-6.1.0-9-amd64", "k");
  Write("boot/vmlinuz-6.1.0-10-amd64", "k");
  Write("boot/config-6.1.0-11-amd64", "c");
  EXPECT_EQ(FindKernel("", boot, "6.1.0-9-amd64").value_or(""), boot + "/vmlinuz-6.1.0-9-amd64");
  EXPECT_EQ(FindKernel("", boot, "5.10.0-1-amd64").value_or(""), boot + "/vmlinuz-6.1.0-10-amd64");
  const std::string named = Write("my-kernel", "k");
  EXPECT_EQ(FindKernel(named, boot).value_or(""), named);
}

TEST_F(DoctorChecksTest, BootCommandIsTheDocumentedQemuCommandLine) {
  BootTest test{.qemu = "/usr/bin/qemu-system-x86_64", .kernel = "/boot/k", .kvm = true};
  EXPECT_THAT(BootCommand(test),
              ElementsAre("/usr/bin/qemu-system-x86_64", "-accel", "kvm", "-m", "128", "-nographic",
                          "-nodefaults", "-no-reboot", "-serial", "stdio", "-display", "none",
                          "-kernel", "/boot/k", "-append", "console=ttyS0 panic=-1 quiet"));
  test.kvm = false;
  EXPECT_EQ(BootCommand(test)[2], "tcg");
}

// Stand-ins for QEMU: shell scripts that print what a console would.
class BootTestTest : public DoctorChecksTest {
 protected:
  // A QEMU whose body is `script`; it may start `sleep` children whose pid
  // it writes to $dir/child.pid.
  std::string FakeQemu(const std::string& script) {
    return Write("qemu", StrCat("#!/bin/sh\n", script), 0755);
  }

  // Whether the process whose pid is in child.pid still runs 2 s from now
  // (a zombie does not count: its parent, killed too, cannot reap it).
  bool ChildAlive() {
    absl::StatusOr<std::string> pid = ReadFile(dir_ + "/child.pid");
    EXPECT_TRUE(pid.ok()) << "the stand-in did not start its child";
    if (!pid.ok()) return false;
    const std::string stat_path = StrCat("/proc/", std::atoi(pid->c_str()), "/stat");
    for (absl::Time give_up = absl::Now() + absl::Seconds(2); absl::Now() < give_up;) {
      absl::StatusOr<std::string> stat = ReadFile(stat_path);
      if (!stat.ok()) return false;
      const size_t paren = stat->rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
      const char state = (*stat)[paren + 2];
      if (state == 'Z' || state == 'X') return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return true;
  }
};

TEST_F(BootTestTest, SucceedsAtThePanicAndKillsTheWholeProcessGroup) {
  BootTest test{
      .qemu = FakeQemu(StrCat("sleep 300 & echo $! > ", dir_, "/child.pid\n",
                              "printf '\\033c\\033[?7lbooting\\n'\n",
                              "echo '[    3.1] Kernel panic - not syncing: VFS'\n", "sleep 300\n")),
      .kernel = "/k",
      .timeout = absl::Seconds(20)};
  absl::StatusOr<BootOutcome> outcome = RunBootTest(test);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->panicked);
  EXPECT_FALSE(outcome->timed_out);
  EXPECT_LT(outcome->elapsed, absl::Seconds(10));
  EXPECT_EQ(outcome->last_line, "[    3.1] Kernel panic - not syncing: VFS");
  EXPECT_FALSE(ChildAlive());
}

TEST_F(BootTestTest, TimesOutKillingEverythingWhenNoPanicComes) {
  BootTest test{.qemu = FakeQemu(StrCat("sleep 300 & echo $! > ", dir_, "/child.pid\n",
                                        "printf '\\033c\\033[?7l'\n", "sleep 300\n")),
                .kernel = "/k",
                .timeout = absl::Seconds(1)};
  absl::StatusOr<BootOutcome> outcome = RunBootTest(test);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_FALSE(outcome->panicked);
  EXPECT_TRUE(outcome->timed_out);
  EXPECT_EQ(outcome->last_line, "");  // Escape sequences only.
  EXPECT_LT(outcome->elapsed, absl::Seconds(5));
  EXPECT_FALSE(ChildAlive());
}

TEST_F(BootTestTest, ReportsAnExitBeforeThePanicWithTheLastLine) {
  BootTest test{.qemu = FakeQemu("echo 'qemu: could not load kernel' >&2\nexit 3\n"),
                .kernel = "/k",
                .timeout = absl::Seconds(20)};
  absl::StatusOr<BootOutcome> outcome = RunBootTest(test);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_FALSE(outcome->panicked);
  EXPECT_FALSE(outcome->timed_out);
  EXPECT_EQ(outcome->exit_code, 3);
  EXPECT_EQ(outcome->last_line, "qemu: could not load kernel");
}

TEST_F(BootTestTest, CheckKvmBootSkipsOrWarnsWhenItCannotRun) {
  BootCheck check{.skip = true};
  EXPECT_EQ(CheckKvmBoot(check).severity, Severity::kInfo);
  check.skip = false;
  EXPECT_EQ(CheckKvmBoot(check).severity, Severity::kInfo);  // No QEMU.
  check.qemu = FakeQemu("exit 0\n");
  check.boot_dir = dir_ + "/boot";  // No kernel.
  check.accelerator = Accelerator::kTcg;
  Finding finding = CheckKvmBoot(check);
  EXPECT_EQ(finding.severity, Severity::kWarn);
  EXPECT_THAT(finding.fix, AllOf(HasSubstr("linux-image-cloud-amd64"), HasSubstr("--kernel")));
}

TEST_F(BootTestTest, CheckKvmBootUnderTcgIsOkAtThePanicAndFailsAtTheTimeout) {
  BootCheck check{.qemu = FakeQemu("echo \"$2\"; echo 'Kernel panic - not syncing'\n"),
                  .kernel = Write("vmlinuz", "k"),
                  .accelerator = Accelerator::kTcg,
                  .timeout = absl::Seconds(20),
                  .config_path = "c.yaml"};
  Finding ok = CheckKvmBoot(check);
  EXPECT_EQ(ok.severity, Severity::kOk) << ok.message;
  EXPECT_THAT(ok.message, AllOf(HasSubstr(check.kernel), HasSubstr("-accel tcg")));

  check.qemu = FakeQemu("echo starting; sleep 300\n");
  check.timeout = absl::Seconds(1);
  Finding fail = CheckKvmBoot(check);
  EXPECT_EQ(fail.severity, Severity::kFail);
  EXPECT_THAT(fail.message,
              AllOf(HasSubstr("QEMU cannot boot a guest"), HasSubstr("within 1 s under -accel tcg"),
                    HasSubstr("(last output: \"starting\")")));
  EXPECT_THAT(fail.fix, HasSubstr("--boot-timeout"));
}

TEST_F(BootTestTest, CheckKvmBootBlamesKvmWhenTheKvmBootHangs) {
  if (!vmdriver::CheckKvm().ok()) GTEST_SKIP() << "/dev/kvm is not usable here";
  BootCheck check{.qemu = FakeQemu("sleep 300\n"),
                  .kernel = Write("vmlinuz", "k"),
                  .accelerator = Accelerator::kAuto,
                  .timeout = absl::Seconds(1),
                  .config_path = "/etc/vmlet/vmlet.yaml"};
  Finding finding = CheckKvmBoot(check);
  EXPECT_EQ(finding.severity, Severity::kFail);
  EXPECT_THAT(finding.message,
              AllOf(HasSubstr("KVM cannot boot a guest"),
                    HasSubstr("printed no kernel panic within 1 s under -accel kvm")));
  EXPECT_EQ(finding.fix,
            "set \"accelerator: tcg\" in /etc/vmlet/vmlet.yaml (software emulation) or fix nested "
            "virtualisation");
}

}  // namespace
}  // namespace vmlet::ctl::doctor
