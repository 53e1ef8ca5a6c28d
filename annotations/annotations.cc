#include "annotations/annotations.h"

#include <cmath>
#include <cstdlib>
#include <utility>

#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::annotations {
namespace {

constexpr std::pair<std::string_view, double> kSuffixes[] = {
    {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12},
};

absl::Status BadValue(std::string_view field, std::string_view key, std::string_view value,
                      std::string_view expected) {
  return absl::InvalidArgumentError(
      StrCat(field, "[\"", key, "\"] \"", value, "\" is invalid: expected ", expected));
}

}  // namespace

absl::StatusOr<uint64_t> ParseByteQuantity(std::string_view value) {
  double multiplier = 1;
  std::string_view number = value;
  for (const auto& [suffix, factor] : kSuffixes) {
    if (number.ends_with(suffix)) {
      number.remove_suffix(suffix.size());
      multiplier = factor;
      break;
    }
  }
  if (number.empty() || number.size() > 32 ||
      number.find_first_not_of("0123456789.") != std::string_view::npos || number.front() == '.' ||
      number.find('.') != number.rfind('.')) {
    return absl::InvalidArgumentError(
        StrCat("\"", value, "\" is not a quantity of bytes such as 20Gi, 512Mi or 1073741824"));
  }
  std::string digits(number);
  double bytes = std::strtod(digits.c_str(), nullptr) * multiplier;
  if (!std::isfinite(bytes) || bytes < 1 || bytes > 9.0e18) {
    return absl::InvalidArgumentError(
        StrCat("\"", value, "\" is out of range: expected 1 byte to 8 EiB"));
  }
  return static_cast<uint64_t>(std::ceil(bytes));
}

absl::StatusOr<VmTunables> ParseVmTunables(const std::map<std::string, std::string>& annotations,
                                           std::string_view field) {
  VmTunables tunables;
  for (const auto& [key, value] : annotations) {
    if (!key.starts_with(kPrefix)) continue;
    if (key == kRootDiskSize) {
      absl::StatusOr<uint64_t> bytes = ParseByteQuantity(value);
      if (!bytes.ok()) {
        return BadValue(field, key, value, "a quantity of bytes such as 20Gi");
      }
      tunables.root_disk_bytes = *bytes;
    } else {
      return absl::InvalidArgumentError(StrCat(field, "[\"", key,
                                               "\"] is not a vmlet annotation: known keys under \"",
                                               kPrefix, "\" are ", kRootDiskSize));
    }
  }
  return tunables;
}

}  // namespace vmlet::annotations
