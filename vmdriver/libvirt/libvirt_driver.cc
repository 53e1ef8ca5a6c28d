#include "vmdriver/libvirt/libvirt_driver.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/time/clock.h"
#include "base/fault_point.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "image/qcow2_overlay.h"
#include "vmdriver/libvirt/guest_exec.h"
#include "vmdriver/libvirt/guest_exec_stream.h"
#include "vmdriver/libvirt/libvirt_errors.h"
#include "vmdriver/libvirt/nic_hotplug.h"

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr Logger kLog("libvirt");

// How often Stop looks whether the guest has powered off.
constexpr absl::Duration kStopPollInterval = absl::Milliseconds(100);

struct ExitInfo {
  int32_t exit_code;
  const char* reason;
  const char* message;
};

// How a domain that shut off ended, from libvirt's shutoff reason (the same
// numbers serve the detail of a STOPPED event; the table says which).
ExitInfo ExitFromShutoffReason(int reason) {
  switch (reason) {
    case VIR_DOMAIN_SHUTOFF_SHUTDOWN:
      return {0, "Completed", "the guest powered off"};
    case VIR_DOMAIN_SHUTOFF_DESTROYED:
      return {137, "Killed", "the VM was destroyed"};
    case VIR_DOMAIN_SHUTOFF_CRASHED:
      return {1, "Error", "the guest crashed"};
    case VIR_DOMAIN_SHUTOFF_FAILED:
      return {1, "Error", "QEMU failed or died"};
    default:
      return {255, "Unknown", "the VM stopped for a reason libvirt did not report"};
  }
}

// A STOPPED event's detail as the equivalent shutoff reason.
int ShutoffReasonFromStoppedDetail(int detail) {
  switch (detail) {
    case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
      return VIR_DOMAIN_SHUTOFF_SHUTDOWN;
    case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
      return VIR_DOMAIN_SHUTOFF_DESTROYED;
    case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
      return VIR_DOMAIN_SHUTOFF_CRASHED;
    case VIR_DOMAIN_EVENT_STOPPED_FAILED:
      return VIR_DOMAIN_SHUTOFF_FAILED;
    default:
      return VIR_DOMAIN_SHUTOFF_UNKNOWN;
  }
}

absl::Status ReadState(virDomainPtr domain, std::string_view id, int* state, int* reason) {
  if (virDomainGetState(domain, state, reason, 0) < 0) {
    return LastError(StrCat("reading the state of VM \"", id, "\""));
  }
  return absl::OkStatus();
}

std::string UuidOf(virDomainPtr domain) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(domain, uuid) < 0) return "";
  return uuid;
}

// vmlet's metadata of a domain; NOT_FOUND for a domain that is not vmlet's
// or belongs to another vmletd instance (another VM directory) on the host.
absl::StatusOr<DomainMetadata> MetadataOf(virDomainPtr domain, std::string_view instance) {
  const char* name = virDomainGetName(domain);
  if (name == nullptr || std::string_view(name).rfind(kDomainNamePrefix, 0) != 0) {
    return absl::NotFoundError("not a vmlet domain");
  }
  char* xml = virDomainGetMetadata(domain, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0);
  if (xml == nullptr) return LastError(StrCat("reading the metadata of domain ", name));
  absl::StatusOr<DomainMetadata> metadata = ParseDomainMetadata(xml);
  free(xml);
  if (metadata.ok() && !metadata->instance.empty() && metadata->instance != instance) {
    return absl::NotFoundError(
        StrCat("domain ", name, " belongs to the vmletd of \"", metadata->instance, "\""));
  }
  return metadata;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LibvirtDriver>> LibvirtDriver::Start(LibvirtDriverOptions options) {
  VMLET_ASSIGN_OR_RETURN(AcceleratorChoice accelerator, ChooseAccelerator(options.accelerator));
  kLog.Info("{}", accelerator.reason);
  VMLET_RETURN_IF_ERROR(MakeDirs(options.vm_dir, 0711));
  VMLET_RETURN_IF_ERROR(MakeDirs(options.console_dir, 0711));
  std::unique_ptr<LibvirtDriver> driver(new LibvirtDriver(std::move(options), accelerator));
  LibvirtDriver* self = driver.get();
  driver->connection_ = LibvirtConnection::Start(
      self->options_.uri,
      [self](virDomainPtr domain, int event, int detail) {
        self->OnLifecycle(domain, event, detail);
      },
      [self](virConnectPtr conn) { self->Resync(conn); }, absl::Seconds(5));
  absl::Status reachable = driver->connection_->Reachable();
  if (!reachable.ok()) kLog.Warning("libvirt is not reachable yet: {}", reachable.message());
  return driver;
}

LibvirtDriver::LibvirtDriver(LibvirtDriverOptions options, AcceleratorChoice accelerator)
    : options_(std::move(options)), accelerator_(std::move(accelerator)) {}

LibvirtDriver::~LibvirtDriver() {
  connection_.reset();  // No more events or resyncs from here on.
  std::map<std::string, Vm, std::less<>> vms;
  {
    std::lock_guard lock(mu_);
    vms.swap(vms_);
  }
  for (auto& [id, vm] : vms) {
    if (vm.console) vm.console->Stop();
  }
}

std::string LibvirtDriver::ConsoleSocket(std::string_view id) const {
  // Short: a unix socket path must fit in 108 bytes.
  return StrCat(options_.console_dir, "/", id.substr(0, 16), ".sock");
}

std::string LibvirtDriver::RunDir(std::string_view id) const {
  // Next to the console socket, as short (unix socket paths).
  return StrCat(options_.console_dir, "/", id.substr(0, 16));
}

std::string LibvirtDriver::VmDir(std::string_view id) const {
  return StrCat(options_.vm_dir, "/", id);
}

absl::Status LibvirtDriver::CheckReachable() { return connection_->Reachable(); }

absl::StatusOr<virDomainPtr> LibvirtDriver::LookUp(virConnectPtr conn, std::string_view id) {
  const std::string uuid = DomainUuid(id);
  // Not a container id at all: no domain can be its (libvirt would call the
  // empty UUID an invalid argument).
  if (uuid.empty()) return absl::NotFoundError(StrCat("VM \"", id, "\" is not known"));
  virDomainPtr domain = virDomainLookupByUUIDString(conn, uuid.c_str());
  if (domain != nullptr) return domain;
  absl::Status status = LastError(StrCat("looking up the domain of VM \"", id, "\""));
  if (!absl::IsNotFound(status)) return status;
  // A VM spec may set its own UUID (machine.firmware.uuid): the driver
  // learnt it at Create or from the domain's metadata.
  std::string spec_uuid;
  {
    std::lock_guard lock(mu_);
    for (const auto& [known_uuid, known_id] : id_by_uuid_) {
      if (known_id == id && known_uuid != uuid) spec_uuid = known_uuid;
    }
  }
  if (spec_uuid.empty()) return status;
  domain = virDomainLookupByUUIDString(conn, spec_uuid.c_str());
  if (domain == nullptr) return LastError(StrCat("looking up the domain of VM \"", id, "\""));
  return domain;
}

DomainOptions LibvirtDriver::DomainOptionsFor(const VmConfig& config) const {
  const std::string dir = VmDir(config.id);
  DomainOptions options{.type = accelerator_.domain_type,
                        .emulator = options_.emulator,
                        .machine = options_.machine,
                        .console_socket = ConsoleSocket(config.id),
                        .overlay_path = "",
                        .seed_path = "",
                        .instance = options_.vm_dir,
                        .run_dir = RunDir(config.id)};
  if (!config.boot.IsKernelBoot() && !config.boot.disk_path.empty()) {
    options.overlay_path = StrCat(dir, "/root.qcow2");
  }
  if (!config.seed_path.empty()) options.seed_path = ReadOnlyDisks(config.id).front();
  for (const vmspec::v1::Disk& disk : config.machine.disks()) {
    if (disk.has_empty()) {
      options.empty_disk_paths[disk.name()] = StrCat(dir, "/", EmptyDiskFileName(disk.name()));
    }
  }
  return options;
}

absl::Status LibvirtDriver::FindVolumeTypes(const VmConfig& config,
                                            std::map<std::string, std::string>* types) {
  const auto& disks = config.machine.disks();
  for (int i = 0; i < disks.size(); ++i) {
    if (!disks[i].has_volume()) continue;
    const std::string& path = disks[i].volume().path();
    auto host = config.volumes.find(path);
    if (host == config.volumes.end()) continue;  // BuildDomain names the field.
    struct stat st {};
    if (::stat(host->second.c_str(), &st) != 0) {
      return absl::InvalidArgumentError(
          StrCat("machine.disks[", i, "].volume.path: \"", path, "\" comes from \"", host->second,
                 "\", which cannot be read on the host (", std::strerror(errno),
                 "): expected a block device or a disk image file"));
    }
    if (S_ISBLK(st.st_mode)) {
      (*types)[path] = "block";
    } else if (S_ISREG(st.st_mode)) {
      (*types)[path] = "file";
    } else {
      return absl::InvalidArgumentError(
          StrCat("machine.disks[", i, "].volume.path: \"", path, "\" comes from \"", host->second,
                 "\", which is neither a block device nor a regular file: expected a block device "
                 "or a disk image file"));
    }
  }
  return absl::OkStatus();
}

absl::Status LibvirtDriver::CreateEmptyDisks(const VmConfig& config, const DomainOptions& options) {
  for (const vmspec::v1::Disk& disk : config.machine.disks()) {
    if (!disk.has_empty()) continue;
    const std::string& path = options.empty_disk_paths.at(disk.name());
    VMLET_ASSIGN_OR_RETURN(uint64_t bytes, QuantityBytes(disk.empty().size()));
    VMLET_RETURN_IF_ERROR(RemoveFileIfExists(path));
    VMLET_RETURN_IF_ERROR(Annotate(
        RunProcessOk({"qemu-img", "create", "-q", "-f", "qcow2", path, StrCat(bytes)}),
        StrCat("creating the empty disk \"", disk.name(), "\" of VM \"", config.id, "\"")));
  }
  return absl::OkStatus();
}

absl::Status LibvirtDriver::GiveToQemu(const std::string& path) const {
  std::vector<char> buffer(16384);
  struct passwd entry {};
  struct passwd* user = nullptr;
  if (options_.qemu_user.empty() ||
      ::getpwnam_r(options_.qemu_user.c_str(), &entry, buffer.data(), buffer.size(), &user) != 0 ||
      user == nullptr) {
    return absl::OkStatus();  // QEMU runs as a user we cannot name: leave it.
  }
  if (::chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
    return ErrnoToStatus(
        errno, StrCat("giving \"", path, "\" to QEMU's user \"", options_.qemu_user, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LibvirtDriver::RenderDomainXml(const VmConfig& config) {
  VMLET_ASSIGN_OR_RETURN(Domain domain, BuildDomain(config, DomainOptionsFor(config)));
  return WriteDomainXml(domain);
}

absl::Status LibvirtDriver::Create(const VmConfig& config) {
  KeyedMutex::Lock job = jobs_.Acquire(config.id);
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  {
    std::lock_guard lock(mu_);
    if (vms_.contains(config.id)) {
      return absl::AlreadyExistsError(StrCat("VM \"", config.id, "\" already exists"));
    }
  }
  DomainOptions options = DomainOptionsFor(config);
  VMLET_RETURN_IF_ERROR(FindVolumeTypes(config, &options.volume_types));
  // Everything is checked before a file is made.
  VMLET_ASSIGN_OR_RETURN(Domain domain_def, BuildDomain(config, options));
  VMLET_RETURN_IF_ERROR(ClaimSpecUuid(conn.get(), config, domain_def));

  const std::string dir = VmDir(config.id);
  VMLET_RETURN_IF_ERROR(MakeDirs(dir, 0711));
  ScopeGuard remove_dir([&] { (void)RemoveTree(dir); });
  VMLET_FAULT_POINT("libvirt.create.after_vm_dir");
  if (!options.overlay_path.empty()) {
    // The image stays untouched: the VM writes into its own overlay, of
    // the requested size (at least the image's). Left over by a crash in
    // the middle of an earlier Create, an overlay of this id is stale.
    VMLET_RETURN_IF_ERROR(RemoveFileIfExists(options.overlay_path));
    VMLET_RETURN_IF_ERROR(
        Annotate(image::CreateQcow2Overlay(options.overlay_path, config.boot.disk_path,
                                           config.boot.disk_format, config.root_disk_bytes),
                 StrCat("creating the disk overlay of VM \"", config.id, "\"")));
    VMLET_FAULT_POINT("libvirt.create.after_overlay");
  }
  if (!options.seed_path.empty()) {
    // QEMU (an unprivileged user) can reach the VM's directory but not the
    // sandbox's: the VM gets its own copy of the seed.
    VMLET_ASSIGN_OR_RETURN(std::string seed, ReadFile(config.seed_path));
    VMLET_RETURN_IF_ERROR(
        Annotate(WriteFileAtomically(options.seed_path, seed, 0644),
                 StrCat("copying the cloud-init seed of VM \"", config.id, "\"")));
    VMLET_FAULT_POINT("libvirt.create.after_seed_copy");
  }
  VMLET_RETURN_IF_ERROR(CreateEmptyDisks(config, options));
  if (!options.empty_disk_paths.empty()) VMLET_FAULT_POINT("libvirt.create.after_empty_disks");
  const std::string run_dir = RunDir(config.id);
  ScopeGuard remove_run_dir([&] { (void)RemoveTree(run_dir); });
  if (!domain_def.extra_serial_sockets.empty() || !domain_def.vnc_socket.empty()) {
    VMLET_RETURN_IF_ERROR(RemoveTree(run_dir));
    VMLET_RETURN_IF_ERROR(MakeDirs(run_dir, 0711));
    // libvirtd makes the serial sockets; QEMU makes the VNC socket itself.
    VMLET_RETURN_IF_ERROR(GiveToQemu(run_dir));
  }
  VMLET_RETURN_IF_ERROR(RemoveFileIfExists(options.console_socket));
  VMLET_ASSIGN_OR_RETURN(std::string xml, WriteDomainXml(domain_def));

  {
    std::lock_guard lock(mu_);
    vms_[config.id] = Vm{.info = {.id = config.id}, .log_path = config.log_path, .console = {}};
    id_by_uuid_[domain_def.uuid] = config.id;
  }
  ScopeGuard forget([&] {
    std::lock_guard lock(mu_);
    vms_.erase(config.id);
    id_by_uuid_.erase(domain_def.uuid);
  });
  virDomainPtr domain =
      virDomainDefineXMLFlags(conn.get(), xml.c_str(), VIR_DOMAIN_DEFINE_VALIDATE);
  if (domain == nullptr) {
    return LastError(StrCat("defining the domain of VM \"", config.id, "\""));
  }
  ScopeGuard free_domain([domain] { virDomainFree(domain); });
  ScopeGuard undefine([domain] { virDomainUndefineFlags(domain, VIR_DOMAIN_UNDEFINE_NVRAM); });
  VMLET_FAULT_POINT("libvirt.create.after_define");
  if (virDomainCreateWithFlags(domain, VIR_DOMAIN_START_PAUSED) < 0) {
    return LastError(StrCat("starting QEMU (paused) for VM \"", config.id, "\""));
  }
  VMLET_FAULT_POINT("libvirt.create.after_start_paused");
  if (absl::Status plugged =
          PlugNics(domain, config.nics, domain_def.nics, IsQ35(domain_def.machine));
      !plugged.ok()) {
    virDomainDestroy(domain);
    return Annotate(plugged, StrCat("plugging the NICs of VM \"", config.id, "\""));
  }
  if (!config.nics.empty()) VMLET_FAULT_POINT("libvirt.create.after_nic_plug");
  absl::StatusOr<std::unique_ptr<ConsoleLog>> console =
      ConsoleLog::Start(options.console_socket, config.log_path);
  if (!console.ok()) {
    virDomainDestroy(domain);
    return Annotate(console.status(), StrCat("capturing the console of VM \"", config.id, "\""));
  }
  VMLET_FAULT_POINT("libvirt.create.after_console");
  {
    std::lock_guard lock(mu_);
    vms_[config.id].console = *std::move(console);
    vms_[config.id].start_paused = config.machine.lifecycle().start_paused();
  }
  undefine.Dismiss();
  forget.Dismiss();
  remove_dir.Dismiss();
  remove_run_dir.Dismiss();
  kLog.Info("VM {} defined as domain {} ({}, {} vCPUs, {} MiB), QEMU up and paused", config.id,
            domain_def.name, accelerator_.domain_type, config.vcpus, config.memory_bytes / kMiB);
  return absl::OkStatus();
}

absl::Status LibvirtDriver::ClaimSpecUuid(virConnectPtr conn, const VmConfig& config,
                                          const Domain& domain) {
  if (domain.uuid == DomainUuid(config.id)) return absl::OkStatus();
  virDomainPtr holder = virDomainLookupByUUIDString(conn, domain.uuid.c_str());
  if (holder == nullptr) {
    absl::Status status = LastError(StrCat("looking up the holder of UUID \"", domain.uuid, "\""));
    return absl::IsNotFound(status) ? absl::OkStatus() : status;
  }
  ScopeGuard free_holder([holder] { virDomainFree(holder); });
  const char* name = virDomainGetName(holder);
  const std::string holder_name = name != nullptr ? name : "?";
  absl::StatusOr<DomainMetadata> metadata = MetadataOf(holder, options_.vm_dir);
  const bool active = virDomainIsActive(holder) != 0;
  if (metadata.ok() && !active) {
    if (virDomainUndefineFlags(holder, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                           VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                           VIR_DOMAIN_UNDEFINE_NVRAM |
                                           VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0) {
      return LastError(StrCat("undefining domain \"", holder_name, "\" of exited VM \"",
                              metadata->container_id, "\" to free its UUID \"", domain.uuid,
                              "\""));
    }
    {
      std::lock_guard lock(mu_);
      id_by_uuid_.erase(domain.uuid);
    }
    kLog.Info("VM {} takes UUID {} over from domain {} of exited VM {}", config.id, domain.uuid,
              holder_name, metadata->container_id);
    return absl::OkStatus();
  }
  const std::string owner =
      metadata.ok() ? StrCat("VM \"", metadata->container_id, "\" of pod ", metadata->pod_namespace,
                             "/", metadata->pod_name)
                    : "no VM of this vmletd";
  return absl::FailedPreconditionError(StrCat(
      "machine.firmware.uuid \"", domain.uuid, "\" belongs to ", active ? "running " : "",
      "domain \"", holder_name, "\" (", owner,
      "): a UUID belongs to one VM at a time; stop that VM, or bind this pod to a VM spec "
      "without firmware.uuid"));
}

absl::Status LibvirtDriver::Start(std::string_view id) {
  KeyedMutex::Lock job = jobs_.Acquire(id);
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  VMLET_ASSIGN_OR_RETURN(virDomainPtr domain, LookUp(conn.get(), id));
  ScopeGuard free_domain([domain] { virDomainFree(domain); });
  int state = 0, reason = 0;
  VMLET_RETURN_IF_ERROR(ReadState(domain, id, &state, &reason));
  if (state != VIR_DOMAIN_PAUSED) {
    return absl::FailedPreconditionError(
        StrCat("VM \"", id, "\" is not created and paused (libvirt state ", state, ")"));
  }
  bool start_paused = false;
  {
    std::lock_guard lock(mu_);
    auto it = vms_.find(id);
    start_paused = it != vms_.end() && it->second.start_paused;
  }
  if (start_paused) {
    kLog.Info("VM {} started paused (lifecycle.start_paused): resume it with virsh resume", id);
  } else if (virDomainResume(domain) < 0) {
    return LastError(StrCat("resuming VM \"", id, "\""));
  }
  VMLET_FAULT_POINT("libvirt.start.after_resume");
  VmInfo info;
  {
    std::lock_guard lock(mu_);
    Vm& vm = vms_[std::string(id)];
    vm.info.id = std::string(id);
    vm.info.state = VmState::kRunning;
    if (vm.info.started_at == 0) vm.info.started_at = NowNanos();
    info = vm.info;
  }
  Emit(info);
  return absl::OkStatus();
}

absl::Status LibvirtDriver::Stop(std::string_view id, absl::Duration timeout) {
  KeyedMutex::Lock job = jobs_.Acquire(id);
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  VMLET_ASSIGN_OR_RETURN(virDomainPtr domain, LookUp(conn.get(), id));
  ScopeGuard free_domain([domain] { virDomainFree(domain); });
  int state = 0, reason = 0;
  VMLET_RETURN_IF_ERROR(ReadState(domain, id, &state, &reason));
  if (state == VIR_DOMAIN_SHUTOFF) return absl::OkStatus();
  if (state != VIR_DOMAIN_PAUSED &&
      virDomainShutdownFlags(domain, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == 0) {
    VMLET_FAULT_POINT("libvirt.stop.after_shutdown_request");
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (virDomainGetState(domain, &state, &reason, 0) == 0 && state == VIR_DOMAIN_SHUTOFF) {
        break;
      }
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(kStopPollInterval));
    }
  }
  if (state != VIR_DOMAIN_SHUTOFF) {
    kLog.Info("VM {} did not power off within {}; destroying it", id,
              absl::FormatDuration(timeout));
    if (virDomainDestroy(domain) < 0) {
      absl::Status status = LastError(StrCat("destroying VM \"", id, "\""));
      if (!absl::IsFailedPrecondition(status)) return status;  // Else: it stopped meanwhile.
    }
    VMLET_FAULT_POINT("libvirt.stop.after_destroy");
    VMLET_RETURN_IF_ERROR(ReadState(domain, id, &state, &reason));
  }
  Emit(RecordExit(id, reason));
  return absl::OkStatus();
}

absl::Status LibvirtDriver::Destroy(std::string_view id) {
  KeyedMutex::Lock job = jobs_.Acquire(id);
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  VMLET_ASSIGN_OR_RETURN(virDomainPtr domain, LookUp(conn.get(), id));
  ScopeGuard free_domain([domain] { virDomainFree(domain); });
  if (virDomainIsActive(domain) != 1) return absl::OkStatus();
  if (virDomainDestroy(domain) < 0) {
    absl::Status status = LastError(StrCat("destroying VM \"", id, "\""));
    if (!absl::IsFailedPrecondition(status)) return status;
  }
  VMLET_FAULT_POINT("libvirt.destroy.after_destroy");
  int state = 0, reason = 0;
  virDomainGetState(domain, &state, &reason, 0);
  Emit(RecordExit(id, reason));
  return absl::OkStatus();
}

absl::Status LibvirtDriver::Remove(std::string_view id) {
  // Not a container id: no VM of ours has it, and it must never name files.
  if (!IsHexId(id)) return absl::OkStatus();
  KeyedMutex::Lock job = jobs_.Acquire(id);
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  absl::StatusOr<virDomainPtr> domain = LookUp(conn.get(), id);
  if (!domain.ok() && !absl::IsNotFound(domain.status())) return domain.status();
  if (domain.ok()) {
    ScopeGuard free_domain([&domain] { virDomainFree(*domain); });
    if (virDomainIsActive(*domain) == 1 && virDomainDestroy(*domain) < 0) {
      absl::Status status = LastError(StrCat("destroying VM \"", id, "\""));
      if (!absl::IsFailedPrecondition(status)) return status;
    }
    if (virDomainUndefineFlags(*domain, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                            VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                            VIR_DOMAIN_UNDEFINE_NVRAM |
                                            VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0) {
      absl::Status status = LastError(StrCat("undefining VM \"", id, "\""));
      if (!absl::IsNotFound(status)) return status;
    }
    VMLET_FAULT_POINT("libvirt.remove.after_undefine");
  }
  std::shared_ptr<ConsoleLog> console;
  {
    std::lock_guard lock(mu_);
    auto it = vms_.find(id);
    if (it != vms_.end()) {
      console = std::move(it->second.console);
      vms_.erase(it);
    }
    id_by_uuid_.erase(DomainUuid(id));
  }
  if (console) console->Stop();
  VMLET_RETURN_IF_ERROR(RemoveTree(VmDir(id)));
  VMLET_RETURN_IF_ERROR(RemoveTree(RunDir(id)));
  VMLET_RETURN_IF_ERROR(RemoveFileIfExists(ConsoleSocket(id)));
  kLog.Info("VM {} removed", id);
  return absl::OkStatus();
}

absl::StatusOr<std::string> LibvirtDriver::ContainerIdOf(virDomainPtr domain) {
  const std::string uuid = UuidOf(domain);
  {
    std::lock_guard lock(mu_);
    auto it = id_by_uuid_.find(uuid);
    if (it != id_by_uuid_.end()) return it->second;
  }
  VMLET_ASSIGN_OR_RETURN(DomainMetadata metadata, MetadataOf(domain, options_.vm_dir));
  if (!uuid.empty()) {
    std::lock_guard lock(mu_);
    id_by_uuid_[uuid] = metadata.container_id;
  }
  return metadata.container_id;
}

std::vector<std::string> LibvirtDriver::ReadOnlyDisks(std::string_view id) const {
  return {StrCat(VmDir(id), "/seed.iso")};  // As Create names it.
}

VmInfo LibvirtDriver::RecordExit(std::string_view id, int shutoff_reason) {
  ExitInfo exit = ExitFromShutoffReason(shutoff_reason);
  std::lock_guard lock(mu_);
  Vm& vm = vms_[std::string(id)];
  vm.info.id = std::string(id);
  if (vm.info.state != VmState::kExited) {
    vm.info.state = VmState::kExited;
    vm.info.finished_at = NowNanos();
    vm.info.exit_code = exit.exit_code;
    vm.info.reason = exit.reason;
    vm.info.message = exit.message;
  }
  return vm.info;
}

absl::StatusOr<VmInfo> LibvirtDriver::InfoOf(virDomainPtr domain, std::string_view id) {
  int state = 0, reason = 0;
  VMLET_RETURN_IF_ERROR(ReadState(domain, id, &state, &reason));
  if (state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED) {
    return RecordExit(id, state == VIR_DOMAIN_CRASHED ? VIR_DOMAIN_SHUTOFF_CRASHED : reason);
  }
  std::lock_guard lock(mu_);
  Vm& vm = vms_[std::string(id)];
  vm.info.id = std::string(id);
  // A domain vmlet started is only ever paused before its first resume.
  if (state == VIR_DOMAIN_PAUSED && vm.info.started_at == 0 && vm.info.state != VmState::kRunning) {
    vm.info.state = VmState::kCreated;
  } else {
    vm.info.state = VmState::kRunning;
  }
  return vm.info;
}

absl::StatusOr<VmInfo> LibvirtDriver::Inspect(std::string_view id) {
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  VMLET_ASSIGN_OR_RETURN(virDomainPtr domain, LookUp(conn.get(), id));
  ScopeGuard free_domain([domain] { virDomainFree(domain); });
  VMLET_ASSIGN_OR_RETURN(VmInfo info, InfoOf(domain, id));
  if (const char* name = virDomainGetName(domain); name != nullptr) info.domain_name = name;
  return info;
}

absl::StatusOr<std::vector<VmInfo>> LibvirtDriver::List() {
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  virDomainPtr* domains = nullptr;
  int count = virConnectListAllDomains(conn.get(), &domains, 0);
  if (count < 0) return LastError("listing domains");
  std::vector<VmInfo> infos;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<DomainMetadata> metadata = MetadataOf(domains[i], options_.vm_dir);
    if (metadata.ok()) {
      absl::StatusOr<VmInfo> info = InfoOf(domains[i], metadata->container_id);
      if (info.ok()) infos.push_back(*std::move(info));
    }
    virDomainFree(domains[i]);
  }
  free(domains);
  return infos;
}

void LibvirtDriver::Watch(VmEventHandler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

absl::Status LibvirtDriver::ReopenLog(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return absl::NotFoundError(StrCat("VM \"", id, "\" is not known"));
  if (!it->second.console) return absl::OkStatus();  // Nothing is being written.
  return it->second.console->Reopen();
}

// AddReader and RemoveReader run under mu_ (they only take the console's own
// short lock, never mu_). Write may wait up to ConsoleLog::kWriteTimeout for
// a guest that takes no input, so it runs on a reference, without mu_; once
// Remove stopped the console such a write fails as not connected.
absl::StatusOr<int> LibvirtDriver::AttachConsole(std::string_view id, ConsoleReader reader) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return absl::NotFoundError(StrCat("VM \"", id, "\" is not known"));
  if (!it->second.console) {
    return absl::FailedPreconditionError(
        StrCat("VM \"", id, "\" has no console: it is not running"));
  }
  return it->second.console->AddReader(std::move(reader));
}

void LibvirtDriver::DetachConsole(std::string_view id, int handle) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(id);
  if (it == vms_.end() || !it->second.console) return;
  it->second.console->RemoveReader(handle);
}

absl::Status LibvirtDriver::WriteConsole(std::string_view id, std::string_view bytes) {
  std::shared_ptr<ConsoleLog> console;
  {
    std::lock_guard lock(mu_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return absl::NotFoundError(StrCat("VM \"", id, "\" is not known"));
    console = it->second.console;
  }
  if (!console) {
    return absl::FailedPreconditionError(
        StrCat("console of VM \"", id, "\" not connected: the VM is not running"));
  }
  return Annotate(console->Write(bytes), StrCat("VM \"", id, "\""));
}

template <typename Result>
absl::StatusOr<Result> LibvirtDriver::InRunningGuest(
    std::string_view id, const std::vector<std::string>& argv,
    const std::function<absl::StatusOr<Result>(const AgentCommand& agent,
                                               const std::string& vm_name)>& run) {
  if (argv.empty()) {
    return absl::InvalidArgumentError("argv: empty: expected the command to run in the guest");
  }
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  VMLET_ASSIGN_OR_RETURN(virDomainPtr domain, LookUp(conn.get(), id));
  ScopeGuard free_domain([domain] { virDomainFree(domain); });
  int state = 0, reason = 0;
  VMLET_RETURN_IF_ERROR(ReadState(domain, id, &state, &reason));
  if (state != VIR_DOMAIN_RUNNING) {
    return absl::FailedPreconditionError(StrCat("VM \"", id, "\" is not running (libvirt state ",
                                                state, "): commands run only in a running guest"));
  }
  const char* name = virDomainGetName(domain);
  const std::string vm_name = name != nullptr ? name : std::string(id);
  return run(LibvirtAgent(domain, vm_name), vm_name);
}

absl::StatusOr<ExecResult> LibvirtDriver::Exec(std::string_view id,
                                               const std::vector<std::string>& argv,
                                               absl::Duration timeout) {
  return InRunningGuest<ExecResult>(id, argv,
                                    [&](const AgentCommand& agent, const std::string& vm_name) {
                                      return RunInGuest(agent, vm_name, argv, timeout);
                                    });
}

absl::StatusOr<int> LibvirtDriver::ExecStreaming(std::string_view id,
                                                 const std::vector<std::string>& argv,
                                                 const ExecStreams& streams) {
  return InRunningGuest<int>(id, argv, [&](const AgentCommand& agent, const std::string& vm_name) {
    return StreamInGuest(agent, vm_name, argv, streams);
  });
}

std::vector<std::pair<std::string, std::string>> LibvirtDriver::StatusInfo() {
  std::vector<std::pair<std::string, std::string>> info = {
      {"libvirtUri", options_.uri},
      {"accelerator", accelerator_.domain_type == "kvm" ? "kvm" : "tcg"},
      {"acceleratorReason", accelerator_.reason},
  };
  if (absl::StatusOr<ConnRef> conn = connection_->Get(); conn.ok()) {
    unsigned long lib = 0, hv = 0;
    if (virConnectGetLibVersion(conn->get(), &lib) == 0) {
      info.emplace_back("libvirtVersion",
                        StrCat(lib / 1000000, ".", lib / 1000 % 1000, ".", lib % 1000));
    }
    if (virConnectGetVersion(conn->get(), &hv) == 0) {
      info.emplace_back("qemuVersion", StrCat(hv / 1000000, ".", hv / 1000 % 1000, ".", hv % 1000));
    }
  }
  return info;
}

void LibvirtDriver::OnLifecycle(virDomainPtr domain, int event, int detail) {
  if (event != VIR_DOMAIN_EVENT_RESUMED && event != VIR_DOMAIN_EVENT_STOPPED) return;
  std::string id;
  {
    std::lock_guard lock(mu_);
    auto it = id_by_uuid_.find(UuidOf(domain));
    if (it != id_by_uuid_.end()) id = it->second;
  }
  if (id.empty()) {
    absl::StatusOr<DomainMetadata> metadata = MetadataOf(domain, options_.vm_dir);
    if (!metadata.ok()) return;  // Not one of vmlet's domains.
    id = metadata->container_id;
  }
  VmInfo info;
  if (event == VIR_DOMAIN_EVENT_STOPPED) {
    info = RecordExit(id, ShutoffReasonFromStoppedDetail(detail));
  } else {
    std::lock_guard lock(mu_);
    Vm& vm = vms_[id];
    vm.info.id = id;
    if (vm.info.state == VmState::kExited) return;
    vm.info.state = VmState::kRunning;
    if (vm.info.started_at == 0) vm.info.started_at = NowNanos();
    info = vm.info;
  }
  kLog.Debug("VM {}: libvirt event {} detail {} -> {}", id, event, detail, VmStateName(info.state));
  Emit(info);
}

void LibvirtDriver::Resync(virConnectPtr conn) {
  virDomainPtr* domains = nullptr;
  int count = virConnectListAllDomains(conn, &domains, 0);
  if (count < 0) {
    kLog.Error("{}", LastError("listing domains after connecting").message());
    return;
  }
  std::vector<VmInfo> infos;
  for (int i = 0; i < count; ++i) {
    ScopeGuard free_domain([&] { virDomainFree(domains[i]); });
    absl::StatusOr<DomainMetadata> metadata = MetadataOf(domains[i], options_.vm_dir);
    if (!metadata.ok()) continue;
    const std::string& id = metadata->container_id;
    bool active = virDomainIsActive(domains[i]) == 1;
    {
      std::lock_guard lock(mu_);
      id_by_uuid_[UuidOf(domains[i])] = id;
      Vm& vm = vms_[id];
      vm.info.id = id;
      vm.log_path = metadata->log_path;
      vm.start_paused = metadata->start_paused;
      if (active && !vm.console) {
        // Adopt the running VM: its console continues into the same log.
        absl::StatusOr<std::unique_ptr<ConsoleLog>> console =
            ConsoleLog::Start(ConsoleSocket(id), metadata->log_path);
        if (console.ok()) {
          vm.console = *std::move(console);
        } else {
          kLog.Error("VM {}: capturing its console: {}", id, console.status().message());
        }
      }
    }
    absl::StatusOr<VmInfo> info = InfoOf(domains[i], id);
    if (info.ok()) infos.push_back(*std::move(info));
  }
  free(domains);
  kLog.Info("found {} vmlet VMs in libvirt", infos.size());
  for (const VmInfo& info : infos) Emit(info);
}

void LibvirtDriver::Emit(const VmInfo& info) {
  VmEventHandler handler;
  {
    std::lock_guard lock(mu_);
    handler = handler_;
  }
  if (handler) handler(VmEvent{.info = info});
}

}  // namespace vmlet::vmdriver::libvirt
