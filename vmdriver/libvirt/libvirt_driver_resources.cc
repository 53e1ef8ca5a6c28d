// LibvirtDriver's statistics (CollectStats) and live resource changes
// (UpdateResources); the rest of the driver is in libvirt_driver.cc.
#include <chrono>
#include <cstdlib>
#include <limits>
#include <set>
#include <thread>

#include "absl/time/clock.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmdriver/libvirt/domain_stats.h"
#include "vmdriver/libvirt/libvirt_driver.h"
#include "vmdriver/libvirt/libvirt_errors.h"
#include "vmdriver/libvirt/live_resources.h"

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr Logger kLog("libvirt");

// How long the guest may take to find and online hot-plugged vCPUs (its
// kernel sees a new CPU a moment after QEMU adds it; slower under TCG), and
// to offline vCPUs before they are unplugged.
constexpr absl::Duration kGuestOnlineTimeout = absl::Seconds(10);
constexpr absl::Duration kGuestOfflineTimeout = absl::Seconds(5);
// After a refused unplug, for onlining the CPUs again: they are there, or
// (the unplug went through in QEMU but was never reported) gone for good.
constexpr absl::Duration kGuestReonlineTimeout = absl::Seconds(3);
// libvirt waits 5 s for QEMU to report an unplugged vCPU gone (its
// DEVICE_DELETED event), then reports a timeout while the guest may still
// be releasing it; a late event completes the unplug. It gets this much
// longer before the unplug counts as refused.
constexpr absl::Duration kUnplugGrace = absl::Seconds(10);
constexpr absl::Duration kUnplugPoll = absl::Milliseconds(250);

constexpr unsigned kLive = VIR_DOMAIN_AFFECT_LIVE;
constexpr unsigned kConfig = VIR_DOMAIN_AFFECT_CONFIG;
constexpr unsigned kLiveAndConfig = kLive | kConfig;

std::string UuidOf(virDomainPtr domain) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(domain, uuid) < 0) return "";
  return uuid;
}

std::string NameOf(virDomainPtr domain, std::string_view id) {
  const char* name = virDomainGetName(domain);
  return name != nullptr ? std::string(name) : std::string(id);
}

// Whether the domain's live vCPU count reaches `count` within `timeout`.
bool WaitForLiveVcpus(virDomainPtr domain, int count, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (virDomainGetVcpusFlags(domain, kLive) == count) return true;
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kUnplugPoll));
  }
}

// The host's online CPUs, one flag per CPU.
absl::StatusOr<std::vector<bool>> HostCpus(virConnectPtr conn) {
  unsigned char* map = nullptr;
  unsigned int online = 0;
  const int cpus = virNodeGetCPUMap(conn, &map, &online, 0);
  if (cpus < 0) return LastError("reading the host's CPU map");
  std::vector<bool> host_cpus = CpusOfMap(map, cpus);
  free(map);
  return host_cpus;
}

}  // namespace

absl::StatusOr<std::vector<VmStats>> LibvirtDriver::CollectStats() {
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  virDomainStatsRecordPtr* records = nullptr;
  // NOWAIT: a VM busy with a long job (an unplug) gives what it can
  // without waiting, and does not hold up the others.
  const int count = virConnectGetAllDomainStats(
      conn.get(), kStatsGroups, &records,
      VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE | VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
  bulk_stats_queries_.fetch_add(1);
  if (count < 0) return LastError("reading the statistics of the VMs");
  ScopeGuard free_records([records] { virDomainStatsRecordListFree(records); });
  const int64_t now = NowNanos();

  std::vector<VmStats> all;
  std::set<std::string, std::less<>> foreign;  // Not vmlet's, met in this collect.
  for (int i = 0; i < count; ++i) {
    virDomainPtr domain = records[i]->dom;
    const std::string uuid = UuidOf(domain);
    std::string id;
    bool known_foreign = false;
    {
      std::lock_guard lock(mu_);
      if (auto it = id_by_uuid_.find(uuid); it != id_by_uuid_.end()) {
        id = it->second;
      } else {
        known_foreign = foreign_uuids_.contains(uuid);
      }
    }
    if (id.empty() && !known_foreign) {
      // Met for the first time (another vmletd's, or defined behind our
      // back): one metadata read, then remembered either way.
      absl::StatusOr<std::string> found = ContainerIdOf(domain);
      if (found.ok()) id = *std::move(found);
    }
    if (id.empty()) {
      foreign.insert(uuid);
      continue;
    }
    DomainStats parsed =
        ParseDomainStats(records[i]->params, records[i]->nparams, ReadOnlyDisks(id));
    if (parsed.state == VIR_DOMAIN_PAUSED) {
      std::lock_guard lock(mu_);
      auto it = vms_.find(id);
      if (it != vms_.end() && it->second.info.state == VmState::kCreated) continue;
    }
    parsed.stats.id = id;
    parsed.stats.timestamp_ns = now;
    all.push_back(std::move(parsed.stats));
  }
  {
    std::lock_guard lock(mu_);
    foreign_uuids_ = std::move(foreign);
  }
  kLog.Debug("statistics of {} VMs from {} active domains", all.size(), count);
  return all;
}

absl::Status LibvirtDriver::UpdateResources(std::string_view id, const VmResourceUpdate& update) {
  KeyedMutex::Lock job = jobs_.Acquire(id);
  VMLET_ASSIGN_OR_RETURN(ConnRef conn, connection_->Get());
  VMLET_ASSIGN_OR_RETURN(virDomainPtr domain, LookUp(conn.get(), id));
  ScopeGuard free_domain([domain] { virDomainFree(domain); });

  // Every check first: nothing changes when one fails.
  int state = 0, reason = 0;
  if (virDomainGetState(domain, &state, &reason, 0) < 0) {
    return LastError(StrCat("reading the state of VM \"", id, "\""));
  }
  if (state != VIR_DOMAIN_RUNNING) {
    return absl::FailedPreconditionError(StrCat("VM \"", id, "\" is not running (libvirt state ",
                                                state, "): resources change only while it runs"));
  }
  const int max_vcpus =
      virDomainGetVcpusFlags(domain, kLive | static_cast<unsigned>(VIR_DOMAIN_VCPU_MAXIMUM));
  const int vcpus = virDomainGetVcpusFlags(domain, kLive);
  if (max_vcpus < 0 || vcpus < 0) {
    return LastError(StrCat("reading the vCPUs of VM \"", id, "\""));
  }
  if (update.vcpus) VMLET_RETURN_IF_ERROR(CheckVcpuCount(*update.vcpus, max_vcpus));
  uint64_t memory_kib = 0;
  if (update.memory_bytes) {
    const unsigned long max_kib = virDomainGetMaxMemory(domain);
    if (max_kib == 0) return LastError(StrCat("reading the maximum memory of VM \"", id, "\""));
    const int64_t max_bytes =
        max_kib > static_cast<unsigned long>(std::numeric_limits<int64_t>::max() / 1024)
            ? std::numeric_limits<int64_t>::max()
            : static_cast<int64_t>(max_kib) * 1024;
    VMLET_RETURN_IF_ERROR(CheckMemorySize(*update.memory_bytes, max_bytes));
    memory_kib = (static_cast<uint64_t>(*update.memory_bytes) + 1023) / 1024;
  }
  const bool adds_vcpus = update.vcpus && *update.vcpus > vcpus;
  std::vector<bool> host_cpus;
  if (update.cpuset || adds_vcpus) {
    VMLET_ASSIGN_OR_RETURN(host_cpus, HostCpus(conn.get()));
  }
  if (update.cpuset) VMLET_RETURN_IF_ERROR(CheckCpuset(*update.cpuset, host_cpus));

  // vCPUs first, so that pinning covers the new ones.
  if (update.vcpus && *update.vcpus != vcpus) {
    VMLET_RETURN_IF_ERROR(SetVcpus(domain, id, vcpus, *update.vcpus));
  }
  if (update.memory_bytes &&
      virDomainSetMemoryFlags(domain, static_cast<unsigned long>(memory_kib), kLiveAndConfig) < 0) {
    return LastError(StrCat("setting the memory of VM \"", id, "\" to ", *update.memory_bytes,
                            " bytes (memory_bytes)"));
  }
  if (update.cpuset) {
    VMLET_RETURN_IF_ERROR(PinCpus(domain, id, CpuMapOf(*update.cpuset, host_cpus), max_vcpus));
  } else if (adds_vcpus) {
    PinAddedVcpus(domain, id, vcpus, *update.vcpus, host_cpus);
  }
  kLog.Info("VM {}: resources updated:{}{}{}", id,
            update.vcpus ? StrCat(" vcpus ", vcpus, " -> ", *update.vcpus) : "",
            update.memory_bytes ? StrCat(" memory ", *update.memory_bytes / kMiB, " MiB") : "",
            update.cpuset ? StrCat(" cpuset \"", CpusetString(*update.cpuset), "\"") : "");
  return absl::OkStatus();
}

absl::Status LibvirtDriver::SetVcpus(virDomainPtr domain, std::string_view id, int from, int to) {
  const std::string name = NameOf(domain, id);
  const AgentCommand agent = LibvirtAgent(domain, name);
  if (to > from) {
    if (virDomainSetVcpusFlags(domain, static_cast<unsigned>(to), kLiveAndConfig) < 0) {
      return LastError(
          StrCat("hot-plugging vCPUs into VM \"", id, "\" (vcpus ", from, " -> ", to, ")"));
    }
    // Best effort: a guest without an agent onlines them itself or not.
    if (absl::Status online = SetGuestOnlineVcpus(agent, to, kGuestOnlineTimeout); !online.ok()) {
      kLog.Warning("VM {}: onlining the hot-plugged vCPUs in the guest: {}", id, online.message());
    }
    return absl::OkStatus();
  }
  // Down: the guest lets go of the CPUs first, then they are unplugged.
  absl::Status offline = SetGuestOnlineVcpus(agent, to, kGuestOfflineTimeout);
  if (!offline.ok()) {
    kLog.Warning("VM {}: offlining vCPUs in the guest before the unplug: {}", id,
                 offline.message());
  }
  if (virDomainSetVcpusFlags(domain, static_cast<unsigned>(to), kLiveAndConfig) < 0) {
    absl::Status refused =
        LastError(StrCat("the engine did not unplug vCPUs down to ", to, " (vcpus)"));
    if (absl::IsDeadlineExceeded(refused) && WaitForLiveVcpus(domain, to, kUnplugGrace)) {
      kLog.Info("VM {}: the guest released its vCPUs after libvirt stopped waiting", id);
      if (virDomainSetVcpusFlags(domain, static_cast<unsigned>(to), kConfig) < 0) {
        return LastError(StrCat("recording ", to, " vCPUs in the definition of VM \"", id, "\""));
      }
      return absl::OkStatus();
    }
    if (offline.ok()) {
      // The VM keeps its vCPUs: give them back to the guest.
      if (absl::Status online = SetGuestOnlineVcpus(agent, from, kGuestReonlineTimeout);
          !online.ok()) {
        kLog.Warning("VM {}: onlining the vCPUs again after a failed unplug: {}", id,
                     online.message());
      }
    }
    return absl::FailedPreconditionError(
        StrCat("VM \"", id, "\" keeps its ", from, " vCPUs: ", refused.message()));
  }
  return absl::OkStatus();
}

absl::Status LibvirtDriver::PinCpus(virDomainPtr domain, std::string_view id,
                                    const std::vector<unsigned char>& map, int max_vcpus) {
  const int live_vcpus = virDomainGetVcpusFlags(domain, kLive);
  if (live_vcpus < 0) return LastError(StrCat("reading the vCPUs of VM \"", id, "\""));
  auto* cpumap = const_cast<unsigned char*>(map.data());
  const int maplen = static_cast<int>(map.size());
  // vCPUs that are not plugged in are pinned in the definition only
  // (libvirt pins a live vCPU only); PinAddedVcpus pins them when they come.
  for (int vcpu = 0; vcpu < max_vcpus; ++vcpu) {
    const unsigned flags = vcpu < live_vcpus ? kLiveAndConfig : kConfig;
    if (virDomainPinVcpuFlags(domain, static_cast<unsigned>(vcpu), cpumap, maplen, flags) < 0) {
      return LastError(StrCat("pinning vCPU ", vcpu, " of VM \"", id, "\" (cpuset)"));
    }
  }
  if (virDomainPinEmulator(domain, cpumap, maplen, kLiveAndConfig) < 0) {
    return LastError(StrCat("pinning the emulator threads of VM \"", id, "\" (cpuset)"));
  }
  return absl::OkStatus();
}

void LibvirtDriver::PinAddedVcpus(virDomainPtr domain, std::string_view id, int from, int to,
                                  const std::vector<bool>& host_cpus) {
  // The emulator's pinning is the VM's cpuset (PinCpus sets both); a new
  // vCPU starts on the cpuset the domain was defined with instead.
  const std::vector<unsigned char> all = CpuMapOf({}, std::vector<bool>(host_cpus.size(), true));
  std::vector<unsigned char> map(all.size(), 0);
  if (virDomainGetEmulatorPinInfo(domain, map.data(), static_cast<int>(map.size()), kLive) < 0) {
    kLog.Warning("VM {}: {}", id, LastError("reading the emulator's pinning").message());
    return;
  }
  if (map == all) return;  // Not pinned.
  for (int vcpu = from; vcpu < to; ++vcpu) {
    if (virDomainPinVcpuFlags(domain, static_cast<unsigned>(vcpu), map.data(),
                              static_cast<int>(map.size()), kLive) < 0) {
      kLog.Warning("VM {}: {}", id,
                   LastError(StrCat("pinning the hot-plugged vCPU ", vcpu)).message());
    }
  }
}

}  // namespace vmlet::vmdriver::libvirt
