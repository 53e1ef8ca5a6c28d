#include "cri/resources.h"

#include <algorithm>
#include <charconv>

#include "base/str_util.h"

namespace vmlet::cri {
namespace {

namespace v1 = ::runtime::v1;

// A CPU number of a CPU list: decimal digits only, at most kMaxCpusetCpu.
bool ParseCpu(std::string_view text, int* cpu) {
  if (text.empty() || text.size() > 5) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *cpu);
  return error == std::errc() && end == text.data() + text.size() && *cpu <= kMaxCpusetCpu;
}

}  // namespace

int VcpusFrom(const v1::LinuxContainerResources& resources, int fallback) {
  if (resources.cpu_quota() <= 0 || resources.cpu_period() <= 0) return fallback;
  int64_t vcpus = (resources.cpu_quota() + resources.cpu_period() - 1) / resources.cpu_period();
  return static_cast<int>(std::clamp<int64_t>(vcpus, 1, 1024));
}

int64_t MemoryFrom(const v1::LinuxContainerResources& resources, int64_t fallback) {
  return resources.memory_limit_in_bytes() > 0 ? resources.memory_limit_in_bytes() : fallback;
}

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view field, std::string_view value) {
  std::vector<int> cpus;
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat(field, ": \"", value.substr(0, 64), value.size() > 64 ? "...\"" : "\"",
               " is not a CPU list (", why, "): expected CPU numbers 0 to ", kMaxCpusetCpu,
               " and ranges, such as \"0-3,8\""));
  };
  if (value.size() > 1024) return invalid("too long");
  std::string_view rest = value;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) return invalid("it ends with a comma");
    size_t dash = item.find('-');
    int first = 0, last = 0;
    if (!ParseCpu(item.substr(0, dash), &first)) return invalid(StrCat("bad item \"", item, "\""));
    last = first;
    if (dash != std::string_view::npos && !ParseCpu(item.substr(dash + 1), &last)) {
      return invalid(StrCat("bad item \"", item, "\""));
    }
    if (last < first) return invalid(StrCat("range \"", item, "\" goes backwards"));
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

absl::StatusOr<vmdriver::VmResourceUpdate> ResourceUpdateFrom(
    std::string_view field, const v1::LinuxContainerResources& resources) {
  vmdriver::VmResourceUpdate update;
  if (resources.cpu_quota() > 0 && resources.cpu_period() > 0) {
    update.vcpus = VcpusFrom(resources, 1);
  }
  if (resources.memory_limit_in_bytes() > 0)
    update.memory_bytes = resources.memory_limit_in_bytes();
  if (!resources.cpuset_cpus().empty()) {
    absl::StatusOr<std::vector<int>> cpus =
        ParseCpuList(StrCat(field, ".cpuset_cpus"), resources.cpuset_cpus());
    if (!cpus.ok()) return cpus.status();
    update.cpuset = *std::move(cpus);
  }
  return update;
}

}  // namespace vmlet::cri
