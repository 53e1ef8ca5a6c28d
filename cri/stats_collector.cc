#include "cri/stats_collector.h"

#include <utility>
#include <vector>

#include "base/logging.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("stats");

}  // namespace

StatsCollector::StatsCollector(vmdriver::VmDriver* driver, absl::Duration interval)
    : driver_(driver), interval_(interval) {}

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

absl::Status StatsCollector::CollectNow() {
  absl::StatusOr<std::vector<vmdriver::VmStats>> collected = driver_->CollectStats();
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
