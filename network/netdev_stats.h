// Traffic counters of the interfaces in a network namespace, as the kernel
// keeps them (/proc/net/dev): the pod's view of its network, since vmlet
// plugs the VM's tap into QEMU itself and the engine has no counters for it.
#ifndef VMLET_NETWORK_NETDEV_STATS_H_
#define VMLET_NETWORK_NETDEV_STATS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace vmlet::network {

// The most interfaces ParseNetDev returns and the most bytes of
// /proc/net/dev ReadInterfaceCounters reads; the rest is ignored.
inline constexpr size_t kMaxNetDevInterfaces = 1024;
inline constexpr size_t kMaxNetDevBytes = size_t{1} << 20;

// One interface's counters since it was created.
struct InterfaceCounters {
  std::string name;
  uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_dropped = 0;
  uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_dropped = 0;

  bool operator==(const InterfaceCounters&) const = default;
};

// Parses the text of /proc/net/dev: two header lines, then one line per
// interface, "name: " and 16 decimal counters (8 receive, 8 transmit). A
// line that is not of that form, or whose name is not printable ASCII, is
// skipped (it does not hide the others);
// INVALID_ARGUMENT when the header is missing. Interfaces in text order,
// at most kMaxNetDevInterfaces. Pure; any thread.
absl::StatusOr<std::vector<InterfaceCounters>> ParseNetDev(std::string_view text);

// The counters of every interface but `lo` in the network namespace pinned
// at `netns_path`. The calling thread joins the namespace (setns), reads
// /proc/thread-self/net/dev and joins its own namespace again before
// returning, also on error. If it cannot return (which the kernel does not
// do for a namespace the thread was in and still holds a descriptor of),
// the process aborts: the thread would otherwise go on in the pod's
// namespace. Needs CAP_SYS_ADMIN. Any thread, but it must not share its
// network namespace state with work that runs meanwhile on it (no
// coroutines or callbacks interleave with the call).
absl::StatusOr<std::vector<InterfaceCounters>> ReadInterfaceCounters(const std::string& netns_path);

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_NETDEV_STATS_H_
