#include "vmdriver/libvirt/domain_stats.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string_view>

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::string_view NameOf(const virTypedParameter& param) {
  return std::string_view(param.field, strnlen(param.field, VIR_TYPED_PARAM_FIELD_LENGTH));
}

// The value of a numeric parameter that is not negative.
std::optional<uint64_t> Unsigned(const virTypedParameter& param) {
  switch (param.type) {
    case VIR_TYPED_PARAM_UINT:
      return param.value.ui;
    case VIR_TYPED_PARAM_ULLONG:
      return param.value.ul;
    case VIR_TYPED_PARAM_INT:
      if (param.value.i >= 0) return static_cast<uint64_t>(param.value.i);
      return std::nullopt;
    case VIR_TYPED_PARAM_LLONG:
      if (param.value.l >= 0) return static_cast<uint64_t>(param.value.l);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

uint64_t KibToBytes(uint64_t kib) { return kib > kMax / 1024 ? kMax : kib * 1024; }

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return b > kMax - a ? kMax : a + b; }

// "N.rest" after a prefix such as "net.": N (at most 9 digits) and rest.
bool SplitIndex(std::string_view name, uint32_t* index, std::string_view* rest) {
  size_t digits = 0;
  uint32_t value = 0;
  while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') {
    if (digits == 9) return false;
    value = value * 10 + static_cast<uint32_t>(name[digits] - '0');
    ++digits;
  }
  if (digits == 0 || digits >= name.size() || name[digits] != '.') return false;
  *index = value;
  *rest = name.substr(digits + 1);
  return true;
}

struct BlockFigures {
  std::string path;
  uint64_t allocation = 0;
};

}  // namespace

DomainStats ParseDomainStats(const virTypedParameter* params, int count,
                             const std::vector<std::string>& read_only_disks) {
  DomainStats result;
  VmStats& stats = result.stats;
  // By block.N index; at most one entry per parameter.
  std::map<uint32_t, BlockFigures> blocks;
  for (int i = 0; params != nullptr && i < count; ++i) {
    const virTypedParameter& param = params[i];
    const std::string_view name = NameOf(param);
    if (name == "state.state") {
      if (param.type == VIR_TYPED_PARAM_INT) result.state = param.value.i;
      continue;
    }
    if (name.starts_with("block.")) {
      uint32_t index = 0;
      std::string_view field;
      if (!SplitIndex(name.substr(6), &index, &field)) continue;
      if (field == "path" && param.type == VIR_TYPED_PARAM_STRING && param.value.s != nullptr) {
        blocks[index].path = param.value.s;
      } else if (field == "allocation") {
        if (std::optional<uint64_t> value = Unsigned(param)) blocks[index].allocation = *value;
      }
      continue;
    }
    const std::optional<uint64_t> value = Unsigned(param);
    if (!value) continue;
    if (name == "cpu.time") {
      stats.cpu_time_ns = *value;
    } else if (name == "vcpu.current") {
      stats.vcpus = *value > static_cast<uint64_t>(std::numeric_limits<int>::max())
                        ? std::numeric_limits<int>::max()
                        : static_cast<int>(*value);
    } else if (name == "balloon.current") {
      stats.memory_bytes = KibToBytes(*value);
    } else if (name == "balloon.rss") {
      stats.rss_bytes = KibToBytes(*value);
    } else if (name == "balloon.available") {
      stats.guest_total_bytes = KibToBytes(*value);
      stats.guest_memory_reported = true;
    } else if (name == "balloon.unused") {
      stats.guest_unused_bytes = KibToBytes(*value);
      stats.guest_memory_reported = true;
    } else if (name == "balloon.usable") {
      stats.guest_available_bytes = KibToBytes(*value);
      stats.guest_memory_reported = true;
    } else if (name.starts_with("net.")) {
      uint32_t index = 0;
      std::string_view field;
      if (!SplitIndex(name.substr(4), &index, &field)) continue;
      stats.network_reported = true;
      if (field == "rx.bytes") stats.rx_bytes = SaturatingAdd(stats.rx_bytes, *value);
      if (field == "rx.errs") stats.rx_errors = SaturatingAdd(stats.rx_errors, *value);
      if (field == "tx.bytes") stats.tx_bytes = SaturatingAdd(stats.tx_bytes, *value);
      if (field == "tx.errs") stats.tx_errors = SaturatingAdd(stats.tx_errors, *value);
    }
  }
  for (const auto& [index, block] : blocks) {
    bool read_only = false;
    for (const std::string& path : read_only_disks) {
      if (block.path == path) read_only = true;
    }
    if (!read_only) {
      stats.disk_allocated_bytes = SaturatingAdd(stats.disk_allocated_bytes, block.allocation);
    }
  }
  return result;
}

}  // namespace vmlet::vmdriver::libvirt
