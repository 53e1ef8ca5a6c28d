// The typed libvirt domain that vmlet defines for a VM. Built from a
// VmConfig by BuildDomain (domain_builder.h) and turned into XML by exactly
// one writer, WriteDomainXml, which escapes every value. Empty optional
// fields produce no element.
#ifndef VMLET_VMDRIVER_LIBVIRT_DOMAIN_H_
#define VMLET_VMDRIVER_LIBVIRT_DOMAIN_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace vmlet::vmdriver::libvirt {

// The XML namespace of vmlet's <metadata> element in a domain.
inline constexpr char kMetadataNamespace[] = "https://vmlet.io/xmlns/domain/v1";
inline constexpr char kMetadataPrefix[] = "vmlet";

// Prefix of the names of every domain vmlet defines; reconciliation only
// ever touches domains with this prefix and vmlet metadata.
inline constexpr char kDomainNamePrefix[] = "vmlet-";

// On q35 machines NIC number i is hot-plugged into the PCIe root port with
// this alias plus i ("ua-vmletport0"); libvirt passes user aliases ("ua-")
// to QEMU as device ids, so the port is the NIC's bus.
inline constexpr char kNicPortAliasPrefix[] = "ua-vmletport";

// The name of the virtio serial port on which the QEMU guest agent in the
// guest listens (qemu-ga's default); libvirt connects to it itself.
inline constexpr char kGuestAgentChannel[] = "org.qemu.guest_agent.0";

struct DomainMetadata {
  std::string container_id;
  std::string sandbox_id;
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  std::string container_name;
  std::string image;     // The image reference, for operators.
  std::string log_path;  // Where vmletd writes the console, so a restart resumes it.
  // The vmletd that defined the domain (its VM directory): each vmletd on a
  // host sees and reconciles only its own domains. Empty in domains defined
  // before instances were recorded; those count as everyone's.
  std::string instance;
  // lifecycle.start_paused of the VM's machine: Start leaves it paused,
  // also when a vmletd started after Create does the Start.
  bool start_paused = false;
};

struct Disk {
  // "file" (an image file) or "block" (a host block device).
  std::string type = "file";
  std::string source_file;     // The file, or the device for type "block".
  std::string format;          // "qcow2" or "raw".
  std::string target_dev;      // "vda", "sdb", ...
  std::string bus = "virtio";  // "virtio", "scsi" or "sata".
  bool read_only = false;
  std::string cache;  // <driver cache>; empty: QEMU's default.
  std::string io;     // <driver io>; empty: QEMU's default.
  std::string serial;
  int boot_order = 0;  // <boot order>; 0: none.
};

// <controller type="TYPE" index="INDEX" model="MODEL"> with an optional
// user alias ("ua-..."), which is also QEMU's id of the device.
struct Controller {
  std::string type;  // "scsi", "sata", "pci".
  int index = -1;    // -1: no index attribute (libvirt picks).
  std::string model;
  std::string alias;
};

struct CpuFeature {
  std::string name;
  std::string policy;  // "force", "require", "optional", "disable", "forbid".
};

struct NumaCell {
  int id = 0;
  std::string cpus;  // libvirt cpuset syntax.
  uint64_t memory_kib = 0;
};

struct VcpuPin {
  int vcpu = 0;
  std::string cpuset;
};

// Hyper-V enlightenments (<hyperv mode="custom">); each written when on.
struct HyperV {
  bool relaxed = false;
  bool vapic = false;
  int spinlock_retries = 0;  // 0: no <spinlocks>.
  bool vpindex = false;
  bool runtime = false;
  bool synic = false;
  bool stimer = false;
  bool reset = false;
  bool frequencies = false;
  bool tlbflush = false;
  bool ipi = false;
  bool Any() const {
    return relaxed || vapic || spinlock_retries > 0 || vpindex || runtime || synic || stimer ||
           reset || frequencies || tlbflush || ipi;
  }
};

struct Timer {
  std::string name;
  std::string tick_policy;  // Empty: no attribute.
  int present = -1;         // -1: no attribute; 0: "no"; 1: "yes".
};

// A NIC's settings as vmletd plugs it (nic_hotplug.h): recorded in vmlet's
// metadata (<vmlet:nic>), since libvirt does not list hot-plugged NICs.
struct Nic {
  int index = 0;
  std::string model = "virtio";  // "virtio", "e1000", "e1000e", "rtl8139".
  std::string mac;               // Empty: not known yet (no pod network).
  int queues = 1;
};

struct Domain {
  // "kvm" (hardware virtualisation) or "qemu" (TCG, software emulation).
  std::string type = "kvm";
  std::string name;
  std::string uuid;  // Derived from the container id (DomainUuid), or the spec's.
  std::string title;
  DomainMetadata metadata;
  // NIC settings, written into the metadata element.
  std::vector<Nic> nics;
  // <memory>: what the guest may be given at most (the balloon's ceiling),
  // and <currentMemory>: what it is given at boot (0: no element, as much
  // as memory_kib).
  uint64_t memory_kib = 512 * 1024;
  uint64_t current_memory_kib = 0;
  // <memtune><hard_limit> (0: none); set with locked memory.
  uint64_t hard_limit_kib = 0;
  // <memoryBacking>: hugepages of this size (0: none) and <locked/>.
  uint64_t hugepage_kib = 0;
  bool memory_locked = false;
  // vCPUs at boot, and how many hot-plug may raise that to (0: vcpus).
  int vcpus = 1;
  int max_vcpus = 0;
  // Host CPUs the vCPUs and the emulator threads run on, in libvirt's
  // syntax ("0-1,3"); empty: all.
  std::string cpuset;
  // Host CPUs of the emulator threads when not `cpuset` (empty: cpuset).
  std::string emulator_cpuset;
  std::vector<VcpuPin> vcpu_pins;

  // <sysinfo type="smbios"><system>: (name, value) entries in order; when
  // any, <os><smbios mode="sysinfo"/>.
  std::vector<std::pair<std::string, std::string>> smbios_system;

  std::string arch = "x86_64";
  std::string machine = "pc";
  // <os firmware="efi"> (libvirt picks OVMF from its descriptors) and,
  // with it, <loader secure="yes"/>.
  bool uefi = false;
  bool secure_boot = false;
  // Direct kernel boot when `kernel` is set; otherwise the first disk boots
  // (<boot dev="hd"/>) unless a disk has a boot order.
  std::string kernel;
  std::string initrd;
  std::string cmdline;

  // <features>.
  bool acpi = true;
  bool apic = true;
  bool smm = false;
  HyperV hyperv;

  // "host-passthrough" under KVM; empty under TCG (QEMU's default model);
  // "host-model"; "custom" with cpu_model.
  std::string cpu_mode;
  std::string cpu_model;
  std::vector<CpuFeature> cpu_features;
  // <topology>; all 0: none.
  int sockets = 0;
  int cores = 0;
  int threads = 0;
  std::vector<NumaCell> numa;

  std::string clock_offset = "utc";
  std::vector<Timer> timers;
  std::string on_reboot = "restart";  // "restart" or "destroy".

  std::string emulator = "/usr/bin/qemu-system-x86_64";
  std::vector<Disk> disks;
  std::vector<Controller> controllers;
  // The serial console: a unix socket QEMU listens on and vmletd reads.
  std::string console_socket;
  // Serial ports 1, 2, ...: unix sockets QEMU listens on.
  std::vector<std::string> extra_serial_sockets;
  // The virtio serial port of the guest agent (kGuestAgentChannel); its
  // host side is a unix socket that libvirt names and connects to.
  std::string guest_agent_channel;
  // A VNC display on this unix socket, with a VGA card; empty: none.
  std::string vnc_socket;
  // <watchdog>; empty model: none.
  std::string watchdog_model;
  std::string watchdog_action;
  // A virtio RNG fed from /dev/urandom.
  bool rng = true;
  // <tpm model><backend type="emulator" version>; empty version: none.
  std::string tpm_model;
  std::string tpm_version;
  // A virtio balloon, which lets the host resize the guest's memory and
  // the guest report its own figures every this many seconds (0: no
  // reports). False: <memballoon model="none"/>.
  bool memory_balloon = true;
  int balloon_stats_period_s = 0;
};

// The domain as libvirt XML.
absl::StatusOr<std::string> WriteDomainXml(const Domain& domain);

// Reads vmlet's metadata element as virDomainGetMetadata returns it.
// INVALID_ARGUMENT if it is not XML or has no container id.
absl::StatusOr<DomainMetadata> ParseDomainMetadata(std::string_view xml);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_DOMAIN_H_
