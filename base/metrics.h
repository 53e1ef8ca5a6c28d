// A Prometheus metrics registry: counters, gauges and histograms with
// labels, collectors that compute values at scrape time, and the text
// exposition format 0.0.4.
//
//   MetricsRegistry registry;
//   VMLET_ASSIGN_OR_RETURN(Counter * requests,
//                          registry.AddCounter("vmlet_cri_requests_total",
//                                              "CRI calls by method and code.",
//                                              {"method", "code"}));
//   requests->Inc({"RunPodSandbox", "OK"});
//   registry.AddCollector([&](MetricSink& sink) {
//     MetricSink::Family& vms = sink.AddGauge("vmlet_vms", "VMs by state.", {"state"});
//     vms.Add({"running"}, 3);
//   });
//   std::string text = registry.RenderText();
//
// Names: a bad metric or label name, a name already taken or bad buckets
// are refused when a family is registered, with INVALID_ARGUMENT or
// ALREADY_EXISTS (never an abort): callers register at start-up and fail
// there. Samples that cannot be kept are dropped, never crash, and are
// counted in the registry's own counter kDroppedSamplesMetric{family,reason}
// (reasons: "series_limit", a new label combination beyond the family's
// limit; "label_count", a wrong number of label values; "invalid_family", a
// collector's family with a bad or taken name or bad label names;
// "duplicate_series", a collector's repeated label combination).
//
// Threads: every method of every class here may be called from any thread,
// except MetricSink's, which belong to the collector call that received the
// sink. Each family has a mutex of its own, held for one update or while its
// samples are copied out for a scrape, never while the text is formatted.
#ifndef VMLET_BASE_METRICS_H_
#define VMLET_BASE_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace vmlet {

enum class MetricType { kCounter, kGauge, kHistogram };

// New label combinations a family takes before it drops samples.
inline constexpr size_t kDefaultMaxSeriesPerFamily = 10000;
// The registry's own counter of dropped samples.
inline constexpr std::string_view kDroppedSamplesMetric = "vmlet_metrics_dropped_samples_total";

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool IsValidLabelName(std::string_view name);

// Upper bounds in seconds for RPC latencies: 0.001, 0.0025, 0.005, 0.01,
// 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 (and +Inf).
std::vector<double> DefaultLatencyBuckets();

// The values of a sample's labels, in the order of the family's label names.
// A parameter type only: it refers to the caller's strings, and a braced
// list's strings live until the end of the call's full expression.
//   counter->Inc({"RunPodSandbox", "OK"});
//   counter->Inc(values);  // A std::vector<std::string> or <std::string_view>.
class LabelValues {
 public:
  LabelValues() = default;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
  // The braced list's array outlives the call that takes a LabelValues,
  // which is all this type is for.
  LabelValues(std::initializer_list<std::string_view> values)
      : views_(values.begin()), size_(values.size()) {}
#pragma GCC diagnostic pop
  LabelValues(const std::vector<std::string_view>& values)
      : views_(values.data()), size_(values.size()) {}
  LabelValues(const std::vector<std::string>& values)
      : strings_(values.data()), size_(values.size()) {}

  size_t size() const { return size_; }
  std::string_view operator[](size_t i) const {
    return views_ != nullptr ? views_[i] : std::string_view(strings_[i]);
  }
  std::vector<std::string> ToVector() const;

 private:
  const std::string_view* views_ = nullptr;
  const std::string* strings_ = nullptr;
  size_t size_ = 0;
};

namespace metrics_internal {

// Orders label value lists lexicographically; compares stored keys with
// LabelValues without copying.
struct LabelsLess {
  using is_transparent = void;
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    return a < b;
  }
  bool operator()(const std::vector<std::string>& a, const LabelValues& b) const;
  bool operator()(const LabelValues& a, const std::vector<std::string>& b) const;
};

// Where drops are counted, with a bounded number of (family, reason) keys.
class DropLog {
 public:
  void Record(std::string_view family, std::string_view reason, uint64_t count = 1);
  std::map<std::pair<std::string, std::string>, uint64_t> Snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> drops_;
};

}  // namespace metrics_internal

// What the families share: name, help, label names, the series limit.
class MetricFamily {
 public:
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;
  virtual ~MetricFamily() = default;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Forgets one label combination (a removed VM's); unknown ones are ignored.
  void Remove(LabelValues labels);
  // How many label combinations the family holds.
  size_t series_count() const;

 protected:
  template <typename V>
  using SeriesMap = std::map<std::vector<std::string>, V, metrics_internal::LabelsLess>;

  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> label_names, size_t max_series,
               metrics_internal::DropLog* drops)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)),
        max_series_(max_series),
        drops_(drops) {}

  // Under mu_: the series of `labels`, added as make() if new; nullptr (and
  // the drop counted) for a wrong number of values or beyond the limit.
  template <typename V, typename Make>
  V* FindOrAddLocked(SeriesMap<V>& series, LabelValues labels, const Make& make) {
    if (labels.size() != label_names_.size()) {
      drops_->Record(name_, "label_count");
      return nullptr;
    }
    auto it = series.lower_bound(labels);
    if (it != series.end() && !series.key_comp()(labels, it->first)) return &it->second;
    if (series.size() >= max_series_) {
      drops_->Record(name_, "series_limit");
      return nullptr;
    }
    return &series.emplace_hint(it, labels.ToVector(), make())->second;
  }
  virtual void EraseLocked(LabelValues labels) = 0;
  virtual size_t SizeLocked() const = 0;
  // Appends "# HELP", "# TYPE" and the samples to `out`; the samples are
  // copied under mu_ and formatted without it.
  virtual void AppendText(std::string* out) const = 0;

  mutable std::mutex mu_;  // Guards the subclass's series.

 private:
  friend class MetricsRegistry;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  const size_t max_series_;
  metrics_internal::DropLog* const drops_;  // The registry's.
};

// Only goes up. A family without labels shows 0 from the start.
class Counter final : public MetricFamily {
 public:
  // Adds `delta`; a negative or NaN delta is ignored.
  void Inc(LabelValues labels = {}, double delta = 1);
  // The current value, 0 for a combination never incremented (for tests).
  double Value(LabelValues labels = {}) const;

 private:
  friend class MetricsRegistry;
  using MetricFamily::MetricFamily;
  void EraseLocked(LabelValues labels) override {
    if (auto it = series_.find(labels); it != series_.end()) series_.erase(it);
  }
  size_t SizeLocked() const override { return series_.size(); }
  void AppendText(std::string* out) const override;

  SeriesMap<double> series_;
};

// Goes up and down. A family without labels shows 0 from the start.
class Gauge final : public MetricFamily {
 public:
  void Set(LabelValues labels, double value);
  void Add(LabelValues labels, double delta);
  double Value(LabelValues labels = {}) const;

 private:
  friend class MetricsRegistry;
  using MetricFamily::MetricFamily;
  void EraseLocked(LabelValues labels) override {
    if (auto it = series_.find(labels); it != series_.end()) series_.erase(it);
  }
  size_t SizeLocked() const override { return series_.size(); }
  void AppendText(std::string* out) const override;

  SeriesMap<double> series_;
};

// Counts observations into fixed buckets; rendered as cumulative
// name_bucket{le="..."} lines ending with le="+Inf", name_sum and
// name_count.
class Histogram final : public MetricFamily {
 public:
  // A NaN value is ignored.
  void Observe(LabelValues labels, double value);

  struct Snapshot {
    std::vector<uint64_t> counts;  // Per bucket, not cumulative; the last is +Inf.
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Value(LabelValues labels = {}) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class MetricsRegistry;
  Histogram(std::string name, std::string help, std::vector<std::string> label_names,
            std::vector<double> bounds, size_t max_series, metrics_internal::DropLog* drops)
      : MetricFamily(std::move(name), std::move(help), MetricType::kHistogram,
                     std::move(label_names), max_series, drops),
        bounds_(std::move(bounds)) {}
  void EraseLocked(LabelValues labels) override {
    if (auto it = series_.find(labels); it != series_.end()) series_.erase(it);
  }
  size_t SizeLocked() const override { return series_.size(); }
  void AppendText(std::string* out) const override;

  const std::vector<double> bounds_;  // Strictly increasing, finite.
  SeriesMap<Snapshot> series_;
};

// What a collector writes into at scrape time: counter and gauge families
// with their samples. Only the collector call that received it may use it.
class MetricSink {
 public:
  class Family {
   public:
    // Adds a sample; a wrong number of label values, a label combination
    // given before, or one beyond the family limit is dropped (and counted).
    void Add(LabelValues labels, double value);
    const std::string& name() const { return name_; }

   private:
    friend class MetricSink;
    friend class MetricsRegistry;
    std::string name_, help_;
    MetricType type_ = MetricType::kGauge;
    std::vector<std::string> label_names_;
    std::map<std::vector<std::string>, double, metrics_internal::LabelsLess> samples_;
    bool valid_ = true;
    size_t max_series_ = 0;
    uint64_t dropped_invalid_ = 0, dropped_label_count_ = 0, dropped_limit_ = 0,
             dropped_duplicate_ = 0;
  };

  MetricSink(const MetricSink&) = delete;
  MetricSink& operator=(const MetricSink&) = delete;

  // Starts a family. A bad metric or label name (or a repeated one), a name
  // that a registered family or an earlier collector family of this scrape
  // exposes, or more than kMaxFamilies families in one call, makes it an
  // invalid family whose samples are dropped (and counted). The reference
  // stays valid during the collector call.
  Family& AddGauge(std::string_view name, std::string_view help,
                   std::vector<std::string> label_names = {});
  Family& AddCounter(std::string_view name, std::string_view help,
                     std::vector<std::string> label_names = {});

  static constexpr size_t kMaxFamilies = 1000;

 private:
  friend class MetricsRegistry;
  explicit MetricSink(size_t max_series) : max_series_(max_series) { overflow_.valid_ = false; }
  Family& AddFamily(MetricType type, std::string_view name, std::string_view help,
                    std::vector<std::string> label_names);

  const size_t max_series_;
  std::deque<Family> families_;  // A deque: references stay valid.
  Family overflow_;              // What AddFamily returns beyond kMaxFamilies.
};

class MetricsRegistry {
 public:
  // `max_series_per_family` bounds each family's label combinations (and
  // each collector family's samples).
  explicit MetricsRegistry(size_t max_series_per_family = kDefaultMaxSeriesPerFamily);
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers a family; the pointer lives as long as the registry.
  // INVALID_ARGUMENT for a bad metric or label name (or a repeated one, or
  // "le" on a histogram) or bad buckets (each finite, strictly increasing;
  // +Inf is implied and dropped when given); ALREADY_EXISTS for a name that
  // is taken, also as a histogram's name_bucket, name_sum or name_count.
  // By convention a counter's name ends in "_total".
  absl::StatusOr<Counter*> AddCounter(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names = {});
  absl::StatusOr<Gauge*> AddGauge(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names = {});
  absl::StatusOr<Histogram*> AddHistogram(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names = {},
                                          std::vector<double> bounds = DefaultLatencyBuckets());

  // Runs `collector` on the scraping thread at each RenderText, with no lock
  // of the registry held (it may take its own locks; it must not block for
  // long). Its families appear in the order collectors and families were
  // added. The collector must stay callable as long as the registry.
  void AddCollector(std::function<void(MetricSink&)> collector);

  // The text exposition format 0.0.4: families in registration order, then
  // kDroppedSamplesMetric; samples sorted by label values.
  std::string RenderText() const;

 private:
  struct Entry {
    std::unique_ptr<MetricFamily> family;        // Either this,
    std::function<void(MetricSink&)> collector;  // or this.
  };
  template <typename F>
  absl::StatusOr<F*> Register(std::unique_ptr<F> family);
  void RenderCollected(MetricSink& sink, std::set<std::string, std::less<>>& taken,
                       std::string* out) const;

  const size_t max_series_;
  mutable metrics_internal::DropLog drops_;
  mutable std::mutex mu_;                        // Guards entries_ (append-only).
  std::vector<std::unique_ptr<Entry>> entries_;  // Never removed: pointers stay valid.
};

// The process-wide registry of vmletd. Tests make registries of their own.
MetricsRegistry& Metrics();

}  // namespace vmlet

#endif  // VMLET_BASE_METRICS_H_
