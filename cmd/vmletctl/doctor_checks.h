// The checks of `vmletctl doctor`, each a function that looks at one part of
// the node and returns what it found, with a fix when something is wrong.
// They never fail themselves: whatever is broken becomes a finding.
//
// The checks that need vmletd's CRI (the "sockets" answer) live in
// doctor.cc; the boot test ("kvm-boot") in doctor_boot.h.
//
// Threading: single-threaded, as the whole CLI is; the checks keep no state.
#ifndef VMLET_CMD_VMLETCTL_DOCTOR_CHECKS_H_
#define VMLET_CMD_VMLETCTL_DOCTOR_CHECKS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cmd/vmletd/config.h"

namespace vmlet::ctl::doctor {

enum class Severity {
  kOk,    // Works.
  kInfo,  // Not used or not applicable; nothing to do.
  kWarn,  // Works, but worse than it could, or something the kubelet minds.
  kFail,  // Blocks running VMs.
};

// "ok", "info", "warn", "FAIL".
std::string_view SeverityName(Severity severity);

struct Finding {
  std::string check;  // One of the fixed names: "config", "kvm", "kvm-boot", ...
  Severity severity = Severity::kOk;
  std::string message;  // The fact, naming paths and values.
  std::string fix;      // What to do; empty for ok and info.
};

Finding Ok(std::string check, std::string message);
Finding Info(std::string check, std::string message);
Finding Warn(std::string check, std::string message, std::string fix);
Finding Fail(std::string check, std::string message, std::string fix);

// The configuration the other checks look at: the file's, or the defaults
// when it is absent or does not load.
struct ConfigCheck {
  Finding finding;
  Config config;
};

// "config": loads `path`. A `named` file (--config) must exist; the default
// one may be absent (info: the defaults apply).
ConfigCheck CheckConfig(const std::string& path, bool named);

// "kvm": whether `device` opens and answers the KVM API, judged by what the
// configured accelerator needs. `config_path` names the file in fixes.
Finding CheckKvm(Accelerator accelerator, const std::string& config_path,
                 const std::string& device = "/dev/kvm");

// Whether vmletd would run VMs under KVM with `accelerator` ("auto" picks
// KVM when `device` is usable).
bool WouldUseKvm(Accelerator accelerator, const std::string& device = "/dev/kvm");

// "qemu": qemu-system-x86_64 on $PATH or in /usr/bin, and its version.
// Sets `*path` to the binary when found (empty otherwise).
Finding CheckQemu(std::string* path);

// "ovmf": UEFI firmware, the first of `candidates` that exists.
Finding CheckOvmf(const std::vector<std::string>& candidates = {"/usr/share/OVMF/OVMF_CODE_4M.fd",
                                                                "/usr/share/OVMF/OVMF_CODE.fd"});

// "libvirt": connects to `uri`; reports libvirt's and the hypervisor's
// versions. Silences libvirt's default error printing for the process.
Finding CheckLibvirt(const std::string& uri);

// "cni": with pod_network cni, the network configuration in cni_conf_dir
// loads and every plugin it names (ipam included) is an executable in one of
// cni_bin_dirs. `config_path` names the file in fixes.
Finding CheckCni(const Config& config, const std::string& config_path);

// "state-dir" / "run-dir": `path` exists or can be created (its nearest
// existing parent is checked then), a file can be created in it, and its
// file system has at least `fail_below` bytes free (FAIL) and `warn_below`
// (warn; 0 for no warning).
Finding CheckDirectory(std::string check, const std::string& path, uint64_t fail_below,
                       uint64_t warn_below);

// What is at a socket path of the config.
struct SocketFile {
  std::string path;
  bool exists = false;
  bool is_socket = false;
  std::string kind;   // What it is when not a socket: "a regular file", ...
  mode_t mode = 0;    // Permission bits.
  std::string owner;  // "user:group", numeric ids when they have no name.
};
SocketFile InspectSocket(const std::string& path);
// "0660 root:kvm".
std::string DescribeSocket(const SocketFile& file);

// "sockets", the files only: FAIL for a path that exists and is not a
// socket, warn for a world-writable socket; nothing for the others.
std::vector<Finding> CheckSocketFiles(const std::vector<SocketFile>& files);

// "clock": whether the kernel considers the clock synchronised (adjtimex).
Finding CheckClock();

// "cgroup": cgroup v2 at `cgroup_root`, and the kubelet's cgroupDriver to go
// with the init system named in `pid1_comm`.
Finding CheckCgroup(const std::string& cgroup_root = "/sys/fs/cgroup",
                    const std::string& pid1_comm = "/proc/1/comm");

// "swap": whether `proc_swaps` lists active swap.
Finding CheckSwap(const std::string& proc_swaps = "/proc/swaps");

}  // namespace vmlet::ctl::doctor

#endif  // VMLET_CMD_VMLETCTL_DOCTOR_CHECKS_H_
