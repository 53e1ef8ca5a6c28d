// Unit tests of ParseDomainStats: typed parameter lists built here, as
// virConnectGetAllDomainStats would return them, without libvirt.
#include "vmdriver/libvirt/domain_stats.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr uint64_t kKiB = 1024;

// Builds a parameter list; strings are kept alive by the builder.
class Params {
 public:
  Params& Ull(const std::string& name, unsigned long long value) {
    virTypedParameter& p = Add(name, VIR_TYPED_PARAM_ULLONG);
    p.value.ul = value;
    return *this;
  }
  Params& Uint(const std::string& name, unsigned value) {
    virTypedParameter& p = Add(name, VIR_TYPED_PARAM_UINT);
    p.value.ui = value;
    return *this;
  }
  Params& Int(const std::string& name, int value) {
    virTypedParameter& p = Add(name, VIR_TYPED_PARAM_INT);
    p.value.i = value;
    return *this;
  }
  Params& Ll(const std::string& name, long long value) {
    virTypedParameter& p = Add(name, VIR_TYPED_PARAM_LLONG);
    p.value.l = value;
    return *this;
  }
  Params& Str(const std::string& name, const std::string& value) {
    strings_.push_back(std::make_unique<std::string>(value));
    virTypedParameter& p = Add(name, VIR_TYPED_PARAM_STRING);
    p.value.s = strings_.back()->data();
    return *this;
  }
  Params& Raw(const virTypedParameter& param) {
    params_.push_back(param);
    return *this;
  }

  DomainStats Parse(const std::vector<std::string>& read_only = {}) const {
    return ParseDomainStats(params_.data(), static_cast<int>(params_.size()), read_only);
  }

 private:
  virTypedParameter& Add(const std::string& name, int type) {
    virTypedParameter p{};
    std::strncpy(p.field, name.c_str(), VIR_TYPED_PARAM_FIELD_LENGTH - 1);
    p.type = type;
    params_.push_back(p);
    return params_.back();
  }

  std::vector<virTypedParameter> params_;
  std::vector<std::unique_ptr<std::string>> strings_;
};

// What libvirt 9.0 returned for a running test guest (virsh domstats).
Params RunningGuest() {
  Params p;
  p.Int("state.state", VIR_DOMAIN_RUNNING)
      .Int("state.reason", 1)
      .Ull("cpu.time", 3572641000)
      .Ull("cpu.user", 2555750000)
      .Ull("cpu.system", 1016891000)
      .Ull("balloon.current", 131072)
      .Ull("balloon.maximum", 196608)
      .Ull("balloon.swap_in", 0)
      .Ull("balloon.unused", 57920)
      .Ull("balloon.available", 92280)
      .Ull("balloon.usable", 62364)
      .Ull("balloon.last-update", 1795418071)
      .Ull("balloon.disk_caches", 9008)
      .Ull("balloon.rss", 212820)
      .Uint("vcpu.current", 1)
      .Uint("vcpu.maximum", 2)
      .Int("vcpu.0.state", 1)
      .Ull("vcpu.0.time", 2930000000)
      .Uint("net.count", 0)
      .Uint("block.count", 0);
  return p;
}

TEST(ParseDomainStatsTest, MapsTheFiguresOfARunningGuest) {
  DomainStats parsed = RunningGuest().Parse();
  EXPECT_EQ(parsed.state, VIR_DOMAIN_RUNNING);
  const VmStats& s = parsed.stats;
  EXPECT_EQ(s.id, "");
  EXPECT_EQ(s.timestamp_ns, 0);
  EXPECT_EQ(s.cpu_time_ns, 3572641000u);
  EXPECT_EQ(s.vcpus, 1);
  EXPECT_EQ(s.memory_bytes, 131072 * kKiB);
  EXPECT_EQ(s.rss_bytes, 212820 * kKiB);
  EXPECT_TRUE(s.guest_memory_reported);
  EXPECT_EQ(s.guest_total_bytes, 92280 * kKiB);
  EXPECT_EQ(s.guest_unused_bytes, 57920 * kKiB);
  EXPECT_EQ(s.guest_available_bytes, 62364 * kKiB);
  EXPECT_EQ(s.rx_bytes, 0u);
  EXPECT_EQ(s.disk_allocated_bytes, 0u);
}

TEST(ParseDomainStatsTest, NoGuestViewBeforeItsBalloonDriverReports) {
  Params p;
  p.Int("state.state", VIR_DOMAIN_RUNNING)
      .Ull("balloon.current", 196608)
      .Ull("balloon.maximum", 196608)
      .Ull("balloon.last-update", 0)
      .Ull("balloon.rss", 202828);
  const VmStats s = p.Parse().stats;
  EXPECT_FALSE(s.guest_memory_reported);
  EXPECT_EQ(s.guest_total_bytes, 0u);
  EXPECT_EQ(s.guest_unused_bytes, 0u);
  EXPECT_EQ(s.guest_available_bytes, 0u);
  EXPECT_EQ(s.memory_bytes, 196608 * kKiB);
  EXPECT_EQ(s.rss_bytes, 202828 * kKiB);
}

TEST(ParseDomainStatsTest, SumsEveryNic) {
  Params p;
  p.Uint("net.count", 2)
      .Str("net.0.name", "vnet0")
      .Ull("net.0.rx.bytes", 1000)
      .Ull("net.0.rx.pkts", 10)
      .Ull("net.0.rx.errs", 1)
      .Ull("net.0.rx.drop", 7)
      .Ull("net.0.tx.bytes", 2000)
      .Ull("net.0.tx.errs", 2)
      .Str("net.1.name", "vnet1")
      .Ull("net.1.rx.bytes", 30)
      .Ull("net.1.rx.errs", 3)
      .Ull("net.1.tx.bytes", 40)
      .Ull("net.1.tx.errs", 4);
  const VmStats s = p.Parse().stats;
  EXPECT_EQ(s.rx_bytes, 1030u);
  EXPECT_EQ(s.rx_errors, 4u);
  EXPECT_EQ(s.tx_bytes, 2040u);
  EXPECT_EQ(s.tx_errors, 6u);
}

TEST(ParseDomainStatsTest, SumsTheAllocationOfWritableDisksOnly) {
  Params p;
  p.Uint("block.count", 3)
      .Str("block.0.name", "vda")
      .Str("block.0.path", "/var/lib/vmlet/vms/x/root.qcow2")
      .Ull("block.0.allocation", 5 << 20)
      .Ull("block.0.capacity", 1 << 30)
      // The allocation may come before the path.
      .Ull("block.2.allocation", 3 << 20)
      .Str("block.2.name", "vdc")
      .Str("block.2.path", "/var/lib/vmlet/vms/x/data.qcow2")
      .Str("block.1.name", "vdb")
      .Str("block.1.path", "/var/lib/vmlet/vms/x/seed.iso")
      .Ull("block.1.allocation", 360448);
  EXPECT_EQ(p.Parse({"/var/lib/vmlet/vms/x/seed.iso"}).stats.disk_allocated_bytes, 8u << 20);
  EXPECT_EQ(p.Parse().stats.disk_allocated_bytes, (8u << 20) + 360448);
}

TEST(ParseDomainStatsTest, IgnoresMalformedAndUnexpectedParameters) {
  virTypedParameter unterminated{};
  std::memset(unterminated.field, 'x', sizeof(unterminated.field));  // No NUL at all.
  unterminated.type = VIR_TYPED_PARAM_ULLONG;
  unterminated.value.ul = 1;
  virTypedParameter null_path{};
  std::strcpy(null_path.field, "block.0.path");
  null_path.type = VIR_TYPED_PARAM_STRING;
  null_path.value.s = nullptr;
  Params p;
  p.Raw(unterminated)
      .Raw(null_path)
      .Ull("block.0.allocation", 100)
      .Str("cpu.time", "not a number")     // Wrong type.
      .Ll("balloon.rss", -5)               // Negative.
      .Ull("net..rx.bytes", 9)             // No index.
      .Ull("net.x.rx.bytes", 9)            // Not a number.
      .Ull("net.12345678901.rx.bytes", 9)  // Index too long.
      .Ull("net.0", 9)                     // No field.
      .Ull("block.0", 9)                   // No field.
      .Ull("balloon.current.extra", 9)     // Not a known name.
      .Int("state.state", VIR_DOMAIN_PAUSED)
      .Ull("vcpu.current", 1ull << 40);  // More than an int: capped.
  DomainStats parsed = p.Parse();
  EXPECT_EQ(parsed.state, VIR_DOMAIN_PAUSED);
  EXPECT_EQ(parsed.stats.cpu_time_ns, 0u);
  EXPECT_EQ(parsed.stats.rss_bytes, 0u);
  EXPECT_EQ(parsed.stats.rx_bytes, 0u);
  EXPECT_EQ(parsed.stats.memory_bytes, 0u);
  EXPECT_EQ(parsed.stats.disk_allocated_bytes, 100u);  // A disk without a path is writable.
  EXPECT_EQ(parsed.stats.vcpus, 2147483647);
}

TEST(ParseDomainStatsTest, AcceptsSignedAndNarrowNumbersAndSaturates) {
  Params p;
  p.Ll("cpu.time", 42)
      .Int("vcpu.current", 3)
      .Ull("balloon.current", ~0ull)  // KiB beyond what bytes can hold.
      .Ull("net.0.rx.bytes", ~0ull)
      .Ull("net.1.rx.bytes", 5);
  const VmStats s = p.Parse().stats;
  EXPECT_EQ(s.cpu_time_ns, 42u);
  EXPECT_EQ(s.vcpus, 3);
  EXPECT_EQ(s.memory_bytes, ~0ull);
  EXPECT_EQ(s.rx_bytes, ~0ull);
}

TEST(ParseDomainStatsTest, AnEmptyOrNullListGivesZeros) {
  DomainStats empty = ParseDomainStats(nullptr, 0, {});
  EXPECT_EQ(empty.state, -1);
  EXPECT_EQ(empty.stats.cpu_time_ns, 0u);
  DomainStats negative = ParseDomainStats(nullptr, -3, {});
  EXPECT_EQ(negative.state, -1);
}

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
