// The typed libvirt domain that vmlet defines for a VM. Built from a
// VmConfig by BuildDomain (domain_builder.h) and turned into XML by exactly
// one writer, WriteDomainXml, which escapes every value. Empty optional
// fields produce no element.
#ifndef VMLET_VMDRIVER_LIBVIRT_DOMAIN_H_
#define VMLET_VMDRIVER_LIBVIRT_DOMAIN_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace vmlet::vmdriver::libvirt {

// The XML namespace of vmlet's <metadata> element in a domain.
inline constexpr char kMetadataNamespace[] = "https://vmlet.io/xmlns/domain/v1";
inline constexpr char kMetadataPrefix[] = "vmlet";

// Prefix of the names of every domain vmlet defines; reconciliation only
// ever touches domains with this prefix and vmlet metadata.
inline constexpr char kDomainNamePrefix[] = "vmlet-";

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
};

struct Disk {
  std::string source_file;
  std::string format;      // "qcow2" or "raw".
  std::string target_dev;  // "vda", ...
  std::string bus = "virtio";
  bool read_only = false;
};

struct Domain {
  // "kvm" (hardware virtualisation) or "qemu" (TCG, software emulation).
  std::string type = "kvm";
  std::string name;
  std::string uuid;  // Derived from the container id (DomainUuid).
  std::string title;
  DomainMetadata metadata;
  // <memory>: what the guest may be given at most (the balloon's ceiling),
  // and <currentMemory>: what it is given at boot (0: no element, as much
  // as memory_kib).
  uint64_t memory_kib = 512 * 1024;
  uint64_t current_memory_kib = 0;
  // vCPUs at boot, and how many hot-plug may raise that to (0: vcpus).
  int vcpus = 1;
  int max_vcpus = 0;
  // Host CPUs the vCPUs and the emulator threads run on, in libvirt's
  // syntax ("0-1,3"); empty: all.
  std::string cpuset;

  std::string arch = "x86_64";
  std::string machine = "pc";
  // Direct kernel boot when `kernel` is set; otherwise the first disk boots.
  std::string kernel;
  std::string initrd;
  std::string cmdline;

  // "host-passthrough" under KVM; empty under TCG (QEMU's default model).
  std::string cpu_mode;

  std::string emulator = "/usr/bin/qemu-system-x86_64";
  std::vector<Disk> disks;
  // The serial console: a unix socket QEMU listens on and vmletd reads.
  std::string console_socket;
  // The virtio serial port of the guest agent (kGuestAgentChannel); its
  // host side is a unix socket that libvirt names and connects to.
  std::string guest_agent_channel;
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
