#include "network/netdev_stats.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <set>

#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::network {
namespace {

constexpr Logger kLog("network");

// Columns of /proc/net/dev after the name: receive bytes, packets, errs,
// drop, fifo, frame, compressed, multicast; transmit bytes, packets, errs,
// drop, fifo, colls, carrier, compressed.
constexpr size_t kColumns = 16;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits `text` into lines (the last one may lack its '\n').
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return lines;
}

// One interface line, or false when it is not of the expected form.
bool ParseLine(std::string_view line, InterfaceCounters* out) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view name = Trim(line.substr(0, colon));
  if (name.empty() || name.size() >= IFNAMSIZ) return false;
  // Printable ASCII only: the name goes into protobuf strings (UTF-8).
  for (char c : name) {
    if (c <= ' ' || c > '~' || c == '/') return false;
  }
  std::array<uint64_t, kColumns> values{};
  size_t count = 0;
  std::string_view rest = line.substr(colon + 1);
  while (true) {
    rest = Trim(rest);
    if (rest.empty()) break;
    if (count == kColumns) return false;  // More columns than the format has.
    uint64_t value = 0;
    auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (error != std::errc() || (end != rest.data() + rest.size() && *end != ' ' && *end != '\t')) {
      return false;  // Not a number, or out of range.
    }
    values[count++] = value;
    rest.remove_prefix(end - rest.data());
  }
  if (count != kColumns) return false;
  out->name = std::string(name);
  out->rx_bytes = values[0];
  out->rx_packets = values[1];
  out->rx_errors = values[2];
  out->rx_dropped = values[3];
  out->tx_bytes = values[8];
  out->tx_packets = values[9];
  out->tx_errors = values[10];
  out->tx_dropped = values[11];
  return true;
}

// Reads at most kMaxNetDevBytes of the (size-less) proc file at `path`.
absl::StatusOr<std::string> ReadProcFile(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening \"", path, "\""));
  ScopeGuard close_fd([fd] { ::close(fd); });
  std::string text;
  char buffer[8192];
  while (text.size() < kMaxNetDevBytes) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, StrCat("reading \"", path, "\""));
    if (n == 0) break;
    text.append(buffer, std::min<size_t>(n, kMaxNetDevBytes - text.size()));
  }
  return text;
}

}  // namespace

absl::StatusOr<std::vector<InterfaceCounters>> ParseNetDev(std::string_view text) {
  std::vector<std::string_view> lines = Lines(text);
  if (lines.size() < 2 || lines[0].find('|') == std::string_view::npos ||
      lines[1].find('|') == std::string_view::npos) {
    return absl::InvalidArgumentError(
        "parsing /proc/net/dev: expected two header lines with '|' column groups");
  }
  std::vector<InterfaceCounters> interfaces;
  std::set<std::string, std::less<>> seen;
  for (size_t i = 2; i < lines.size() && interfaces.size() < kMaxNetDevInterfaces; ++i) {
    InterfaceCounters counters;
    if (!ParseLine(lines[i], &counters)) continue;
    if (!seen.insert(counters.name).second) continue;  // A name twice: keep the first.
    interfaces.push_back(std::move(counters));
  }
  return interfaces;
}

absl::StatusOr<std::vector<InterfaceCounters>> ReadInterfaceCounters(
    const std::string& netns_path) {
  int target = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    return ErrnoToStatus(errno, StrCat("opening network namespace \"", netns_path, "\""));
  }
  ScopeGuard close_target([target] { ::close(target); });
  struct statfs fs {};
  if (::fstatfs(target, &fs) != 0 || fs.f_type != NSFS_MAGIC) {
    return absl::FailedPreconditionError(
        StrCat("\"", netns_path, "\" is not a network namespace: expected a pinned netns file"));
  }
  int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return ErrnoToStatus(errno, "opening this thread's network namespace");
  ScopeGuard close_self([self] { ::close(self); });

  if (::setns(target, CLONE_NEWNET) != 0) {
    return ErrnoToStatus(errno, StrCat("joining network namespace \"", netns_path, "\""));
  }
  absl::StatusOr<std::string> text = ReadProcFile("/proc/thread-self/net/dev");
  if (::setns(self, CLONE_NEWNET) != 0) {
    // The thread would go on in the pod's namespace: whatever it opened next
    // (sockets, taps) would land there. Nothing safe is left to do.
    kLog.Error("returning from network namespace \"{}\" to this thread's own failed: {}; aborting",
               netns_path, std::string(ErrnoToStatus(errno, "setns").message()));
    std::abort();
  }
  if (!text.ok()) {
    return Annotate(text.status(), StrCat("in network namespace \"", netns_path, "\""));
  }
  absl::StatusOr<std::vector<InterfaceCounters>> parsed = ParseNetDev(*text);
  if (!parsed.ok()) {
    return Annotate(parsed.status(), StrCat("in network namespace \"", netns_path, "\""));
  }
  std::vector<InterfaceCounters> interfaces;
  for (InterfaceCounters& counters : *parsed) {
    if (counters.name != "lo") interfaces.push_back(std::move(counters));
  }
  return interfaces;
}

}  // namespace vmlet::network
