// Fault-injection points: named places in the code where a test can make
// vmletd crash, to check that the next start reconciles whatever the crash
// left behind (DESIGN.md "Intent first, then work, then result").
//
//   VMLET_FAULT_POINT("libvirt.create.after_define");
//
// A point is armed by vmletd's environment, read once at start-up by
// ArmFaultPointFromEnv():
//
//   VMLET_FAULT_KILL_AT=libvirt.create.after_define vmletd --config ...
//
// The armed point, when reached, logs one line and sends SIGKILL to the
// process: a real crash (no destructor, no flush, no reply to the call in
// flight). Points are named <rpc or layer>.<step> and every one of them is
// listed in kFaultPoints below; a name that is not in the table does not
// compile. `vmletd --list-fault-points` prints the table, and the restart
// matrix test (tests/e2e/restart_matrix_test.cc) tries every entry, so a
// new point is tested as soon as it is added here.
//
// Built with the meson option fault_injection (default true); with
// -Dfault_injection=false every point compiles to nothing (its name is
// still checked) and vmletd lists none. When not armed a point costs one comparison of an integer.
#ifndef VMLET_BASE_FAULT_POINT_H_
#define VMLET_BASE_FAULT_POINT_H_

#include <iterator>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "vmlet_build_config.h"

namespace vmlet {

// Every point, in the order the calls of a pod's life reach them.
inline constexpr std::string_view kFaultPoints[] = {
    // PullImage (image/image_store.cc): a registry pull assembles the image
    // under images/tmp/ and renames it into the store.
    "image_store.pull.after_tmp_dir",
    "image_store.pull.mid_layer",  // Some bytes of a layer are extracted.
    "image_store.pull.after_layer",
    "image_store.commit.after_meta",  // image.json written, not yet visible.
    "image_store.commit.after_rename",
    // RunPodSandbox (cri/sandbox_run.cc, cri/sandbox_network_ops.cc,
    // network/pod_network.cc).
    "run_pod_sandbox.after_intent_record",
    "run_pod_sandbox.after_sandbox_dir",
    "network.setup.after_netns_intent",  // Path recorded, namespace not made.
    "network.setup.after_netns",
    "network.setup.before_cni_add",  // CNI config recorded, ADD not run.
    "network.setup.after_cni_add",   // ADD done, its result not recorded.
    "network.setup.after_tap_intent",
    "network.setup.after_tap",
    "network.setup.after_dhcp",
    "run_pod_sandbox.after_network_recorded",
    "run_pod_sandbox.after_seed",
    "run_pod_sandbox.before_ready_record",
    "run_pod_sandbox.after_ready_record",
    // CreateContainer (cri/container_create.cc, vmdriver/libvirt/).
    "create_container.after_intent_record",
    "create_container.after_own_seed",
    "libvirt.create.after_vm_dir",
    "libvirt.create.after_overlay",
    "libvirt.create.after_seed_copy",
    "libvirt.create.after_empty_disks",
    "libvirt.create.after_define",
    "libvirt.create.after_start_paused",
    "libvirt.create.after_nic_plug",
    "libvirt.create.after_console",
    "create_container.before_created_record",
    "create_container.after_created_record",
    // StartContainer.
    "libvirt.start.after_resume",
    "start_container.after_running_record",
    // StopContainer with a timeout: ACPI power button, destroy after it.
    "libvirt.stop.after_shutdown_request",
    "libvirt.stop.after_destroy",
    "stop_container.after_exited_record",
    // RemoveContainer.
    "libvirt.remove.after_undefine",  // The domain is gone, its files not.
    "remove_container.after_vm_removed",
    // StopPodSandbox: running VMs are destroyed at once, then the network
    // goes.
    "libvirt.destroy.after_destroy",
    "stop_pod_sandbox.after_not_ready_record",
    "network.teardown.after_tap",
    "network.teardown.after_cni_del",
    "network.teardown.after_netns",
    // RemovePodSandbox.
    "remove_pod_sandbox.after_containers_removed",
    "remove_pod_sandbox.after_sandbox_dir",
};

namespace fault_internal {

inline constexpr int kNotArmed = -1;
// The index in kFaultPoints of the armed point, or kNotArmed. Written once
// by ArmFaultPointFromEnv before any other thread exists; read-only after.
extern int armed;

// Not constexpr on purpose: reaching it while evaluating IndexOf at compile
// time (a name missing from kFaultPoints) is a compile error.
int FaultPointNotInTable();

consteval int IndexOf(std::string_view name) {
  for (int i = 0; i < static_cast<int>(std::size(kFaultPoints)); ++i) {
    if (kFaultPoints[i] == name) return i;
  }
  return FaultPointNotInTable();
}

// Logs that the point `index` is reached and SIGKILLs the process.
[[noreturn]] void Crash(int index);

}  // namespace fault_internal

// Arms the point named by $VMLET_FAULT_KILL_AT, if set. INVALID_ARGUMENT
// for a name that is not a point (or any name in a build without fault
// injection). Call once, at start-up, before any other thread starts.
absl::Status ArmFaultPointFromEnv();

// The names of every point, one per line; empty in a build without fault
// injection.
std::string FaultPointList();

}  // namespace vmlet

#if VMLET_FAULT_INJECTION
#define VMLET_FAULT_POINT(name)                                               \
  do {                                                                        \
    constexpr int vmlet_fault_index = ::vmlet::fault_internal::IndexOf(name); \
    if (::vmlet::fault_internal::armed == vmlet_fault_index) [[unlikely]] {   \
      ::vmlet::fault_internal::Crash(vmlet_fault_index);                      \
    }                                                                         \
  } while (0)
#else
// The name is still checked against the table.
#define VMLET_FAULT_POINT(name)                                       \
  do {                                                                \
    static_assert(::vmlet::fault_internal::IndexOf(name) >= 0, name); \
  } while (0)
#endif

#endif  // VMLET_BASE_FAULT_POINT_H_
