// The real VmDriver: VMs are libvirt domains run by QEMU.
//
// Each VM is a persistent domain named "vmlet-<namespace>-<pod>-<id8>" whose
// UUID is derived from the container id and whose <metadata> carries the ids,
// the pod and the log path, so a restarted vmletd finds and adopts it. Create
// defines the domain and starts it paused (QEMU is up, the guest has not run
// an instruction), Start only resumes it. The serial console is a unix socket
// that a ConsoleLog drains into the container's log file. Lifecycle events
// arrive on libvirt's event thread and are passed to the Watch handler.
// Start, Stop, Destroy, Remove and UpdateResources of one VM run one at a
// time (a per-VM job lock); Exec, consoles and CollectStats do not wait
// for them.
#ifndef VMLET_VMDRIVER_LIBVIRT_LIBVIRT_DRIVER_H_
#define VMLET_VMDRIVER_LIBVIRT_LIBVIRT_DRIVER_H_

#include <libvirt/libvirt.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/keyed_mutex.h"
#include "vmdriver/accelerator.h"
#include "vmdriver/console_log.h"
#include "vmdriver/libvirt/domain_builder.h"
#include "vmdriver/libvirt/guest_exec.h"
#include "vmdriver/libvirt/libvirt_connection.h"
#include "vmdriver/vm_driver.h"

namespace vmlet::vmdriver::libvirt {

struct LibvirtDriverOptions {
  std::string uri = "qemu:///system";
  std::string accelerator = "auto";  // "auto", "kvm" or "tcg".
  std::string vm_dir;                // Per-VM files (overlays): <state_dir>/vms.
  std::string console_dir;           // Console sockets: <run_dir>/consoles.
  std::string emulator = "/usr/bin/qemu-system-x86_64";
  std::string machine = "pc";
  // The user QEMU runs as (qemu.conf "user"; Debian's default): a VM's run
  // directory is given to it, since QEMU itself creates the VNC socket
  // there. Unknown on the host: the directory stays root's.
  std::string qemu_user = "libvirt-qemu";
};

class LibvirtDriver : public VmDriver {
 public:
  // Chooses the accelerator and connects (waiting briefly for the first
  // connection; an unreachable libvirtd is reported by CheckReachable and
  // retried in the background, not an error here).
  static absl::StatusOr<std::unique_ptr<LibvirtDriver>> Start(LibvirtDriverOptions options);
  ~LibvirtDriver() override;

  std::string_view Name() const override { return "libvirt"; }
  absl::Status CheckReachable() override;
  // Checks the config (BuildDomain, the volumes on the host, NIC support),
  // then makes the VM's files: the root overlay, the seed copy and the
  // empty disks in <vm_dir>/<id>, the run directory for serial and VNC
  // sockets (<console_dir>/<id16>); defines the domain and starts it
  // paused, and plugs the NICs. Remove deletes all of it.
  absl::Status Create(const VmConfig& config) override;
  // Create's domain without touching the host: volume disks are typed by
  // their host path (block under /dev/, else file). No libvirt call.
  absl::StatusOr<std::string> RenderDomainXml(const VmConfig& config) override;
  // Resumes the paused domain, unless its machine asked for
  // lifecycle.start_paused: then it stays paused (the container counts as
  // running) until someone resumes it (virsh resume). The domain's vmlet
  // metadata keeps the setting, so a restarted vmletd honours it too.
  absl::Status Start(std::string_view id) override;
  absl::Status Stop(std::string_view id, absl::Duration timeout) override;
  absl::Status Destroy(std::string_view id) override;
  absl::Status Remove(std::string_view id) override;
  absl::StatusOr<VmInfo> Inspect(std::string_view id) override;
  absl::StatusOr<std::vector<VmInfo>> List() override;
  void Watch(VmEventHandler handler) override;
  absl::Status ReopenLog(std::string_view id) override;
  // Through the guest agent (guest_exec.h); blocks the calling thread while
  // the command runs, without holding the driver's lock.
  absl::StatusOr<ExecResult> Exec(std::string_view id, const std::vector<std::string>& argv,
                                  absl::Duration timeout) override;
  // Through the guest agent's files and a FIFO (guest_exec_stream.h), with
  // the same checks as Exec; blocks the calling thread while the command
  // runs, without holding the driver's lock.
  absl::StatusOr<int> ExecStreaming(std::string_view id, const std::vector<std::string>& argv,
                                    const ExecStreams& streams) override;
  // Through the VM's ConsoleLog, which holds QEMU's one console connection.
  absl::StatusOr<int> AttachConsole(std::string_view id, ConsoleReader reader) override;
  void DetachConsole(std::string_view id, int handle) override;
  absl::Status WriteConsole(std::string_view id, std::string_view bytes) override;
  std::vector<std::pair<std::string, std::string>> StatusInfo() override;
  // One virConnectGetAllDomainStats call (domain_stats.h) for all active
  // domains, of which it keeps vmlet's (known by UUID; a domain it has not
  // met before costs one metadata read, once). A VM created but not started
  // is left out. Does not wait for a VM's running job.
  absl::StatusOr<std::vector<VmStats>> CollectStats() override;
  // vCPUs by hot-plug (the guest's agent onlines them; unplug offlines them
  // in the guest first), memory by the balloon, cpuset by pinning the vCPUs
  // and the emulator threads; each live and in the definition. Limits come
  // from the domain (its maximum vCPUs and memory). Blocks while the guest
  // takes its new CPUs (a few seconds at most).
  absl::Status UpdateResources(std::string_view id, const VmResourceUpdate& update) override;

  // How many bulk statistics calls CollectStats has made. Any thread.
  uint64_t bulk_stats_queries() const { return bulk_stats_queries_.load(); }

 private:
  // What the driver keeps of a VM beyond libvirt's own state.
  struct Vm {
    VmInfo info;
    std::string log_path;
    // Shared with WriteConsole, which writes without holding mu_.
    std::shared_ptr<ConsoleLog> console;
    // lifecycle.start_paused of its machine: Start leaves it paused.
    bool start_paused = false;
  };

  LibvirtDriver(LibvirtDriverOptions options, AcceleratorChoice accelerator);

  std::string ConsoleSocket(std::string_view id) const;
  std::string VmDir(std::string_view id) const;
  // Sockets of extra serial ports and VNC: <console_dir>/<first 16 of id>.
  std::string RunDir(std::string_view id) const;
  // The host-side choices for a VM's domain: paths of the files Create
  // makes (whether or not they exist yet). Any thread.
  DomainOptions DomainOptionsFor(const VmConfig& config) const;
  // What the host path of each volume disk is ("block" or "file");
  // INVALID_ARGUMENT naming machine.disks[i].volume.path otherwise.
  static absl::Status FindVolumeTypes(const VmConfig& config,
                                      std::map<std::string, std::string>* types);
  // Chowns `path` to options_.qemu_user when the host has that user.
  absl::Status GiveToQemu(const std::string& path) const;
  // qemu-img makes each empty disk of the machine at its path in `options`.
  static absl::Status CreateEmptyDisks(const VmConfig& config, const DomainOptions& options);
  // The domain of a VM; NOT_FOUND if libvirt has none.
  absl::StatusOr<virDomainPtr> LookUp(virConnectPtr conn, std::string_view id);
  // Makes `domain`'s UUID free for the VM of `config` to define. Only a VM
  // spec's own UUID (machine.firmware.uuid) can be taken: the shut-off
  // domain of one of this vmletd's VMs that exited (an earlier attempt of
  // the pod) gives it up and keeps its files until its Remove; a running
  // or foreign domain keeps it (FAILED_PRECONDITION naming it). Caller
  // holds the VM's job.
  absl::Status ClaimSpecUuid(virConnectPtr conn, const VmConfig& config, const Domain& domain);

  // For Exec and ExecStreaming: checks argv, looks the VM up and checks it
  // runs, then calls `run` with its guest agent and domain name.
  template <typename Result>
  absl::StatusOr<Result> InRunningGuest(
      std::string_view id, const std::vector<std::string>& argv,
      const std::function<absl::StatusOr<Result>(const AgentCommand& agent,
                                                 const std::string& vm_name)>& run);
  // The container id of a vmlet domain: remembered by UUID, else read from
  // its metadata (one libvirt call) and remembered. NOT_FOUND for a domain
  // that is not vmlet's.
  absl::StatusOr<std::string> ContainerIdOf(virDomainPtr domain);
  // The read-only disks of a VM (its cloud-init seed), whose allocation is
  // not the VM's.
  std::vector<std::string> ReadOnlyDisks(std::string_view id) const;
  // UpdateResources' steps, under the VM's job lock (live_resources.h).
  absl::Status SetVcpus(virDomainPtr domain, std::string_view id, int from, int to);
  absl::Status PinCpus(virDomainPtr domain, std::string_view id,
                       const std::vector<unsigned char>& map, int max_vcpus);
  void PinAddedVcpus(virDomainPtr domain, std::string_view id, int from, int to,
                     const std::vector<bool>& host_cpus);
  // The current VmInfo of a domain, merged with what the driver remembers.
  absl::StatusOr<VmInfo> InfoOf(virDomainPtr domain, std::string_view id);
  // Records an exit (from an event or a finished Stop) and returns the info.
  VmInfo RecordExit(std::string_view id, int shutoff_reason);

  // Event thread.
  void OnLifecycle(virDomainPtr domain, int event, int detail);
  // Reconnect thread: adopts vmlet's domains after each (re)connection.
  void Resync(virConnectPtr conn);
  void Emit(const VmInfo& info);

  const LibvirtDriverOptions options_;
  const AcceleratorChoice accelerator_;
  std::unique_ptr<LibvirtConnection> connection_;

  // One job at a time per VM (by container id); taken before mu_, never
  // under it.
  KeyedMutex jobs_;

  std::mutex mu_;
  std::map<std::string, Vm, std::less<>> vms_;                  // By container id.
  std::map<std::string, std::string, std::less<>> id_by_uuid_;  // Domain UUID -> id.
  // UUIDs of active domains CollectStats found not to be vmlet's, so that
  // it reads their metadata once; only those of the last collect are kept.
  std::set<std::string, std::less<>> foreign_uuids_;
  VmEventHandler handler_;

  std::atomic<uint64_t> bulk_stats_queries_{0};
};

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_LIBVIRT_DRIVER_H_
