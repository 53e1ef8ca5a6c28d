// Statistics of the node's VMs, read from the driver in one bulk query per
// interval on a thread of its own and kept in memory, so that the kubelet's
// stats calls never wait for the engine and cost no engine call at all.
// With them, the traffic counters of each pod's network namespace (the
// pod's eth0, whose frames tc relays to and from the VM's tap): the engine
// has none, since vmlet hands the tap to QEMU itself.
#ifndef VMLET_CRI_STATS_COLLECTOR_H_
#define VMLET_CRI_STATS_COLLECTOR_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "network/netdev_stats.h"
#include "vmdriver/vm_driver.h"

namespace vmlet::cri {

inline constexpr absl::Duration kDefaultStatsInterval = absl::Seconds(5);

// One VM's latest figures.
struct StatsSample {
  vmdriver::VmStats stats;
  // CPU used between the previous sample and this one, in billionths of a
  // core; unset for a VM's first sample.
  std::optional<uint64_t> nano_cores;
};

// A pod's network namespace, to read its interfaces' counters from.
struct PodNetns {
  std::string sandbox_id;
  std::string netns_path;
};

// One pod's latest network figures: every interface of its namespace but
// lo, in the kernel's order.
struct NetworkSample {
  int64_t timestamp_ns = 0;  // When they were read; nanoseconds since the epoch.
  std::vector<network::InterfaceCounters> interfaces;
};

// The pods whose network to read (ready sandboxes with a namespace). Called
// on the collecting thread, without the collector's lock held.
using NetnsLister = std::function<std::vector<PodNetns>()>;
// Reads the counters of the namespace at a path; network::ReadInterfaceCounters
// unless a test sets another. Called on the collecting thread.
using NetworkCounterReader =
    std::function<absl::StatusOr<std::vector<network::InterfaceCounters>>(const std::string&)>;

// Thread-safe.
class StatsCollector {
 public:
  // `driver` must outlive the collector.
  StatsCollector(vmdriver::VmDriver* driver, absl::Duration interval);
  ~StatsCollector();  // Stop().
  StatsCollector(const StatsCollector&) = delete;
  StatsCollector& operator=(const StatsCollector&) = delete;

  // Collects at once, then every interval, on a thread of the collector's.
  void Start();
  // Joins the thread; idempotent.
  void Stop();

  // Which pods' network namespaces each collection reads; unset: none.
  // Any thread, any time (takes effect at the next collection).
  void SetNetnsLister(NetnsLister lister);
  // For tests: reads namespaces with `reader` instead. Any thread.
  void SetNetworkCounterReader(NetworkCounterReader reader);

  // One bulk query now, then the pods' network namespaces, on the calling
  // thread (tests, and Start); it joins each namespace for a moment (see
  // network::ReadInterfaceCounters). Returns the bulk query's status: a
  // namespace that cannot be read only leaves that pod without fresh
  // network figures (the last ones stay while the pod is listed).
  absl::Status CollectNow();

  // By VM (container) id. Any thread; no I/O.
  std::optional<StatsSample> Get(std::string_view id) const;
  std::map<std::string, StatsSample, std::less<>> GetAll() const;
  // By sandbox id. Any thread; no I/O.
  std::optional<NetworkSample> GetNetwork(std::string_view sandbox_id) const;
  std::map<std::string, NetworkSample, std::less<>> GetAllNetwork() const;

  absl::Duration interval() const { return interval_; }
  uint64_t collections() const;
  uint64_t errors() const;  // Collections that failed.
  // The error of the last collection; OK after a good one.
  absl::Status last_error() const;

 private:
  void Loop();
  void CollectNetwork();

  vmdriver::VmDriver* const driver_;
  const absl::Duration interval_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
  std::map<std::string, StatsSample, std::less<>> samples_;  // By VM id; running VMs only.
  NetnsLister netns_lister_;
  NetworkCounterReader network_reader_;
  // By sandbox id; listed pods only.
  std::map<std::string, NetworkSample, std::less<>> network_;
  // Sandboxes whose namespace could not be read last time (warned once).
  std::set<std::string, std::less<>> network_failing_;
  uint64_t collections_ = 0;
  uint64_t errors_ = 0;
  absl::Status last_error_;
};

}  // namespace vmlet::cri

#endif  // VMLET_CRI_STATS_COLLECTOR_H_
