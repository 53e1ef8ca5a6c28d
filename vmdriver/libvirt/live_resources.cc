#include "vmdriver/libvirt/live_resources.h"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmdriver/libvirt/domain_builder.h"
#include "vmdriver/vm_config.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using Json = nlohmann::json;

// How long one agent command may take.
constexpr absl::Duration kAgentCommandTimeout = absl::Seconds(3);
// How often the guest's CPUs are looked at again while a hot-added one has
// not shown up yet.
constexpr absl::Duration kGuestVcpuPoll = absl::Milliseconds(200);

// " (192 MiB)" for a whole number of MiB, else "".
std::string InMib(int64_t bytes) {
  if (bytes % kMiB != 0) return "";
  return StrCat(" (", bytes / kMiB, " MiB)");
}

std::string HostCpus(const std::vector<bool>& host_cpus) {
  std::vector<int> online;
  for (size_t cpu = 0; cpu < host_cpus.size(); ++cpu) {
    if (host_cpus[cpu]) online.push_back(static_cast<int>(cpu));
  }
  return CpusetString(std::move(online));
}

}  // namespace

absl::Status CheckVcpuCount(int vcpus, int max_vcpus) {
  if (vcpus < 1) {
    return absl::OutOfRangeError(
        StrCat("vcpus: ", vcpus, " is less than 1: expected 1 to ", max_vcpus, " (max_vcpus)"));
  }
  if (vcpus > max_vcpus) {
    return absl::OutOfRangeError(StrCat("vcpus: ", vcpus, " is more than the ", max_vcpus,
                                        " vCPUs this VM was started with room for (max_vcpus)"));
  }
  return absl::OkStatus();
}

absl::Status CheckMemorySize(int64_t bytes, int64_t max_bytes) {
  if (bytes < kMinLiveMemoryBytes) {
    return absl::OutOfRangeError(StrCat(
        "memory_bytes: ", bytes, " is less than ", kMinLiveMemoryBytes, InMib(kMinLiveMemoryBytes),
        ": expected ", kMinLiveMemoryBytes, " to ", max_bytes, " (max_memory_bytes)"));
  }
  if (bytes > max_bytes) {
    return absl::OutOfRangeError(StrCat("memory_bytes: ", bytes, " is more than the ", max_bytes,
                                        " bytes", InMib(max_bytes),
                                        " this VM was started with room for (max_memory_bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckCpuset(const std::vector<int>& cpuset, const std::vector<bool>& host_cpus) {
  std::set<int> seen;
  for (int cpu : cpuset) {
    if (cpu < 0 || static_cast<size_t>(cpu) >= host_cpus.size() || !host_cpus[cpu]) {
      return absl::InvalidArgumentError(StrCat("cpuset: CPU ", cpu,
                                               " is not on this host: expected CPUs ",
                                               HostCpus(host_cpus), " (the host's online CPUs)"));
    }
    if (!seen.insert(cpu).second) {
      return absl::InvalidArgumentError(
          StrCat("cpuset: CPU ", cpu, " is listed twice: expected each CPU once"));
    }
  }
  return absl::OkStatus();
}

std::vector<bool> CpusOfMap(const unsigned char* map, int cpus) {
  std::vector<bool> online(cpus > 0 ? static_cast<size_t>(cpus) : 0, false);
  for (size_t cpu = 0; map != nullptr && cpu < online.size(); ++cpu) {
    online[cpu] = VIR_CPU_USED(map, cpu);
  }
  return online;
}

std::vector<unsigned char> CpuMapOf(const std::vector<int>& cpus,
                                    const std::vector<bool>& host_cpus) {
  std::vector<unsigned char> map(VIR_CPU_MAPLEN(static_cast<int>(host_cpus.size())), 0);
  auto set = [&](size_t cpu) {
    if (cpu < host_cpus.size()) VIR_USE_CPU(map.data(), cpu);
  };
  if (cpus.empty()) {
    for (size_t cpu = 0; cpu < host_cpus.size(); ++cpu) {
      if (host_cpus[cpu]) set(cpu);
    }
  } else {
    for (int cpu : cpus) {
      if (cpu >= 0) set(static_cast<size_t>(cpu));
    }
  }
  return map;
}

absl::StatusOr<std::vector<GuestVcpu>> ParseGuestVcpus(std::string_view reply) {
  Json parsed = Json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("return") || !parsed["return"].is_array()) {
    return absl::InternalError(
        StrCat("the guest agent's reply to guest-get-vcpus is not a {\"return\": [...]} object: ",
               reply.substr(0, 200)));
  }
  std::vector<GuestVcpu> vcpus;
  for (const Json& entry : parsed["return"]) {
    if (!entry.is_object() || !entry.contains("logical-id") ||
        !entry["logical-id"].is_number_integer() || !entry.contains("online") ||
        !entry["online"].is_boolean()) {
      return absl::InternalError(
          StrCat("guest-get-vcpus: an entry without an integer \"logical-id\" and a boolean "
                 "\"online\": ",
                 entry.dump().substr(0, 200)));
    }
    const int64_t id = entry["logical-id"].get<int64_t>();
    if (id < 0 || id > 1 << 20) {
      return absl::InternalError(StrCat("guest-get-vcpus: logical-id ", id, " is out of range"));
    }
    vcpus.push_back(GuestVcpu{
        .logical_id = static_cast<int>(id),
        .online = entry["online"].get<bool>(),
        .can_offline = entry.contains("can-offline") && entry["can-offline"].is_boolean() &&
                       entry["can-offline"].get<bool>(),
    });
  }
  return vcpus;
}

absl::Status SetGuestOnlineVcpus(const AgentCommand& agent, int count, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string get = R"({"execute":"guest-get-vcpus"})";
  absl::Status last_error;
  for (;;) {
    const absl::Duration command_timeout =
        std::max(absl::Milliseconds(100), std::min(kAgentCommandTimeout, deadline - absl::Now()));
    VMLET_ASSIGN_OR_RETURN(std::string reply, agent(get, command_timeout));
    VMLET_ASSIGN_OR_RETURN(std::vector<GuestVcpu> vcpus, ParseGuestVcpus(reply));
    const int online = static_cast<int>(
        std::count_if(vcpus.begin(), vcpus.end(), [](const GuestVcpu& v) { return v.online; }));
    if (online == count) return absl::OkStatus();
    // Lowest ids first when onlining, highest first when offlining.
    std::sort(vcpus.begin(), vcpus.end(),
              [](const GuestVcpu& a, const GuestVcpu& b) { return a.logical_id < b.logical_id; });
    if (online > count) std::reverse(vcpus.begin(), vcpus.end());
    Json changes = Json::array();
    int wanted = std::abs(count - online);
    for (const GuestVcpu& vcpu : vcpus) {
      if (wanted == 0) break;
      const bool candidate = online < count ? !vcpu.online : (vcpu.online && vcpu.can_offline);
      if (!candidate) continue;
      changes.push_back({{"logical-id", vcpu.logical_id}, {"online", online < count}});
      --wanted;
    }
    if (!changes.empty()) {
      Json set = {{"execute", "guest-set-vcpus"}, {"arguments", {{"vcpus", changes}}}};
      // A partial change is seen (and retried) by the next guest-get-vcpus;
      // so is a refusal, unless the agent is gone.
      absl::Status changed = agent(set.dump(), command_timeout).status();
      if (absl::IsFailedPrecondition(changed)) return changed;
      if (!changed.ok()) last_error = changed;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          StrCat("the guest has ", online, " of ", vcpus.size(), " vCPUs online, not ", count,
                 ", after ", absl::FormatDuration(timeout),
                 last_error.ok() ? "" : StrCat(" (last refusal: ", last_error.message(), ")")));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kGuestVcpuPoll));
  }
}

}  // namespace vmlet::vmdriver::libvirt
