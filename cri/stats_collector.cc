#include "cri/stats_collector.h"

#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "base/logging.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("stats");

}  // namespace

StatsCollector::StatsCollector(vmdriver::VmDriver* driver, absl::Duration interval)
    : driver_(driver), interval_(interval), network_reader_(network::ReadInterfaceCounters) {}

StatsCollector::~StatsCollector() { Stop(); }

void StatsCollector::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void StatsCollector::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StatsCollector::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    absl::Status status = CollectNow();
    lock.lock();
    if (!status.ok() && collections_ % 60 == 0) {
      kLog.Warning("collecting VM statistics: {}", std::string(status.message()));
    }
    wake_.wait_for(lock, absl::ToChronoMilliseconds(interval_), [this] { return stopping_; });
  }
}

void StatsCollector::SetNetnsLister(NetnsLister lister) {
  std::lock_guard lock(mu_);
  netns_lister_ = std::move(lister);
}

void StatsCollector::SetNetworkCounterReader(NetworkCounterReader reader) {
  std::lock_guard lock(mu_);
  network_reader_ = std::move(reader);
}

absl::Status StatsCollector::CollectNow() {
  absl::StatusOr<std::vector<vmdriver::VmStats>> collected = driver_->CollectStats();
  // The pods' networks do not depend on the engine: read them whatever the
  // bulk query gave.
  CollectNetwork();
  std::lock_guard lock(mu_);
  ++collections_;
  if (!collected.ok()) {
    // Keep the last figures: a call during an outage of libvirt answers
    // with them (their timestamps say how old they are).
    last_error_ = collected.status();
    ++errors_;
    return last_error_;
  }
  last_error_ = absl::OkStatus();
  std::map<std::string, StatsSample, std::less<>> samples;
  for (vmdriver::VmStats& stats : *collected) {
    StatsSample sample;
    auto previous = samples_.find(stats.id);
    if (previous != samples_.end()) {
      const vmdriver::VmStats& before = previous->second.stats;
      const int64_t elapsed = stats.timestamp_ns - before.timestamp_ns;
      if (elapsed > 0 && stats.cpu_time_ns >= before.cpu_time_ns) {
        const long double cores =
            static_cast<long double>(stats.cpu_time_ns - before.cpu_time_ns) / elapsed;
        sample.nano_cores = static_cast<uint64_t>(cores * 1e9L);
      } else if (elapsed > 0) {
        sample.nano_cores = 0;  // The VM restarted: its counter began again.
      } else {
        sample.nano_cores = previous->second.nano_cores;
      }
    }
    std::string id = stats.id;
    sample.stats = std::move(stats);
    samples.emplace(std::move(id), std::move(sample));
  }
  samples_ = std::move(samples);
  return absl::OkStatus();
}

void StatsCollector::CollectNetwork() {
  NetnsLister lister;
  NetworkCounterReader reader;
  {
    std::lock_guard lock(mu_);
    lister = netns_lister_;
    reader = network_reader_;
  }
  if (!lister) return;
  // Read without the lock: each read joins a namespace for a moment.
  struct Read {
    std::string sandbox_id;
    std::string netns_path;
    absl::StatusOr<NetworkSample> sample;
  };
  std::vector<Read> reads;
  for (PodNetns& pod : lister()) {
    if (pod.netns_path.empty()) continue;
    Read read{std::move(pod.sandbox_id), std::move(pod.netns_path), NetworkSample{}};
    const int64_t now = absl::ToUnixNanos(absl::Now());
    absl::StatusOr<std::vector<network::InterfaceCounters>> interfaces = reader(read.netns_path);
    if (interfaces.ok()) {
      read.sample = NetworkSample{.timestamp_ns = now, .interfaces = *std::move(interfaces)};
    } else {
      read.sample = interfaces.status();
    }
    reads.push_back(std::move(read));
  }
  std::lock_guard lock(mu_);
  std::map<std::string, NetworkSample, std::less<>> network;
  std::set<std::string, std::less<>> failing;
  for (Read& read : reads) {
    if (read.sample.ok()) {
      network[read.sandbox_id] = *std::move(read.sample);
      continue;
    }
    // A pod that is going away may lose its namespace between the listing
    // and the read (NOT_FOUND); anything else is worth one warning per pod.
    if (absl::IsNotFound(read.sample.status())) {
      kLog.Debug("sandbox {}: reading the network counters of \"{}\": {}", read.sandbox_id,
                 read.netns_path, std::string(read.sample.status().message()));
    } else if (!network_failing_.contains(read.sandbox_id)) {
      kLog.Warning("sandbox {}: reading the network counters of \"{}\": {}", read.sandbox_id,
                   read.netns_path, std::string(read.sample.status().message()));
    }
    failing.insert(read.sandbox_id);
    auto previous = network_.find(read.sandbox_id);
    if (previous != network_.end()) network[read.sandbox_id] = std::move(previous->second);
  }
  network_ = std::move(network);
  network_failing_ = std::move(failing);
}

std::optional<StatsSample> StatsCollector::Get(std::string_view id) const {
  std::lock_guard lock(mu_);
  auto it = samples_.find(id);
  if (it == samples_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, StatsSample, std::less<>> StatsCollector::GetAll() const {
  std::lock_guard lock(mu_);
  return samples_;
}

std::optional<NetworkSample> StatsCollector::GetNetwork(std::string_view sandbox_id) const {
  std::lock_guard lock(mu_);
  auto it = network_.find(sandbox_id);
  if (it == network_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, NetworkSample, std::less<>> StatsCollector::GetAllNetwork() const {
  std::lock_guard lock(mu_);
  return network_;
}

uint64_t StatsCollector::collections() const {
  std::lock_guard lock(mu_);
  return collections_;
}

uint64_t StatsCollector::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

absl::Status StatsCollector::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

}  // namespace vmlet::cri
