// Statistics of the node's VMs, read from the driver in one bulk query per
// interval on a thread of its own and kept in memory, so that the kubelet's
// stats calls never wait for the engine and cost no engine call at all.
#ifndef VMLET_CRI_STATS_COLLECTOR_H_
#define VMLET_CRI_STATS_COLLECTOR_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
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

  // One bulk query now, on the calling thread (tests, and Start).
  absl::Status CollectNow();

  std::optional<StatsSample> Get(std::string_view id) const;
  std::map<std::string, StatsSample, std::less<>> GetAll() const;

  absl::Duration interval() const { return interval_; }
  uint64_t collections() const;
  uint64_t errors() const;  // Collections that failed.
  // The error of the last collection; OK after a good one.
  absl::Status last_error() const;

 private:
  void Loop();

  vmdriver::VmDriver* const driver_;
  const absl::Duration interval_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
  std::map<std::string, StatsSample, std::less<>> samples_;  // By VM id; running VMs only.
  uint64_t collections_ = 0;
  uint64_t errors_ = 0;
  absl::Status last_error_;
};

}  // namespace vmlet::cri

#endif  // VMLET_CRI_STATS_COLLECTOR_H_
