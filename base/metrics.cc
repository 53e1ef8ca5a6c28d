#include "base/metrics.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "absl/status/status.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet {
namespace {

constexpr Logger kLog("metrics");

// (family, reason) keys the drop counter keeps; more go to family "(other)".
constexpr size_t kMaxDropKeys = 1000;

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The length of the valid UTF-8 sequence at text[i], 0 if there is none.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char low = 0x80, high = 0xBF;  // The range of the second byte.
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // No overlong forms.
    if (lead == 0xED) high = 0x9F;  // No surrogates.
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // Nothing beyond U+10FFFF.
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

// Appends `text` with backslash and line feed escaped (and the double quote
// when `quote`), invalid UTF-8 replaced by U+FFFD.
void AppendEscaped(std::string* out, std::string_view text, bool quote) {
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quote) {
      out->append("\\\"");
    } else if (size_t length = Utf8SequenceLength(text, i); length == 0) {
      out->append("\xEF\xBF\xBD");
    } else {
      out->append(text.substr(i, length));
      i += length;
      continue;
    }
    ++i;
  }
}

// As Go's strconv.FormatFloat(value, 'g', -1, 64) does for Prometheus:
// the shortest text that reads back as the same double.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendHeader(std::string* out, std::string_view name, std::string_view help, MetricType type) {
  StrAppend(out, "# HELP ", name, " ");
  AppendEscaped(out, help, /*quote=*/false);
  StrAppend(out, "\n# TYPE ", name, " ", TypeName(type), "\n");
}

// One sample line; `le` (a histogram bucket's bound) comes last when given.
void AppendSample(std::string* out, std::string_view name, const std::vector<std::string>& labels,
                  const std::vector<std::string>& values, const std::string* le,
                  std::string_view value) {
  out->append(name);
  if (!labels.empty() || le != nullptr) {
    out->push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      StrAppend(out, i == 0 ? "" : ",", labels[i], "=\"");
      AppendEscaped(out, values[i], /*quote=*/true);
      out->push_back('"');
    }
    if (le != nullptr) StrAppend(out, labels.empty() ? "" : ",", "le=\"", *le, "\"");
    out->push_back('}');
  }
  StrAppend(out, " ", value, "\n");
}

void AppendSamples(std::string* out, std::string_view name,
                   const std::vector<std::string>& label_names,
                   const std::vector<std::pair<std::vector<std::string>, double>>& samples) {
  for (const auto& [values, value] : samples) {
    AppendSample(out, name, label_names, values, nullptr, FormatValue(value));
  }
}

// The sample names a family exposes; two families may share none.
std::vector<std::string> ExposedNames(std::string_view name, MetricType type) {
  std::vector<std::string> names = {std::string(name)};
  if (type == MetricType::kHistogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      names.push_back(StrCat(name, suffix));
    }
  }
  return names;
}

// INVALID_ARGUMENT for a bad metric name or bad or repeated label names.
absl::Status CheckNames(std::string_view name, MetricType type,
                        const std::vector<std::string>& label_names) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(
        StrCat("metric name \"", name, "\" is invalid (expected [a-zA-Z_:][a-zA-Z0-9_:]*)"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(
          StrCat("label name \"", label, "\" of metric \"", name,
                 "\" is invalid (expected [a-zA-Z_][a-zA-Z0-9_]* not starting with \"__\")"));
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(StrCat("label name \"le\" of histogram \"", name,
                                               "\" is reserved for the bucket bounds"));
    }
    if (std::find(label_names.begin(), label_names.begin() + i, label) != label_names.begin() + i) {
      return absl::InvalidArgumentError(
          StrCat("label name \"", label, "\" of metric \"", name, "\" is given twice"));
    }
  }
  return absl::OkStatus();
}

// The name of a taken sample name among `exposed`, or nullptr.
const std::string* FindTaken(const std::vector<std::string>& exposed,
                             const std::set<std::string, std::less<>>& taken) {
  for (const std::string& name : exposed) {
    if (taken.contains(name)) return &name;
  }
  return nullptr;
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || IsDigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAsciiLetter(c) || IsDigit(c) || c == '_' || c == ':'; });
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || IsDigit(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAsciiLetter(c) || IsDigit(c) || c == '_'; });
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::vector<std::string> LabelValues::ToVector() const {
  std::vector<std::string> out;
  out.reserve(size_);
  for (size_t i = 0; i < size_; ++i) out.emplace_back((*this)[i]);
  return out;
}

namespace metrics_internal {

bool LabelsLess::operator()(const std::vector<std::string>& a, const LabelValues& b) const {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (int c = std::string_view(a[i]).compare(b[i]); c != 0) return c < 0;
  }
  return a.size() < b.size();
}

bool LabelsLess::operator()(const LabelValues& a, const std::vector<std::string>& b) const {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (int c = a[i].compare(b[i]); c != 0) return c < 0;
  }
  return a.size() < b.size();
}

void DropLog::Record(std::string_view family, std::string_view reason, uint64_t count) {
  if (count == 0) return;
  std::lock_guard lock(mu_);
  std::pair<std::string, std::string> key(family, reason);
  auto it = drops_.find(key);
  if (it == drops_.end()) {
    if (drops_.size() >= kMaxDropKeys) key.first = "(other)";
    it = drops_.try_emplace(std::move(key), 0).first;
    if (it->second == 0) {
      kLog.Warning("metric family \"{}\" dropped samples ({}); {} counts further ones", family,
                   reason, kDroppedSamplesMetric);
    }
  }
  it->second += count;
}

std::map<std::pair<std::string, std::string>, uint64_t> DropLog::Snapshot() const {
  std::lock_guard lock(mu_);
  return drops_;
}

}  // namespace metrics_internal

void MetricFamily::Remove(LabelValues labels) {
  std::lock_guard lock(mu_);
  EraseLocked(labels);
}

size_t MetricFamily::series_count() const {
  std::lock_guard lock(mu_);
  return SizeLocked();
}

void Counter::Inc(LabelValues labels, double delta) {
  if (!(delta >= 0)) return;  // Negative or NaN.
  std::lock_guard lock(mu_);
  if (double* value = FindOrAddLocked(series_, labels, [] { return 0.0; })) *value += delta;
}

double Counter::Value(LabelValues labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void Counter::AppendText(std::string* out) const {
  std::vector<std::pair<std::vector<std::string>, double>> samples;
  {
    std::lock_guard lock(mu_);
    samples.assign(series_.begin(), series_.end());
  }
  AppendHeader(out, name(), help(), type());
  AppendSamples(out, name(), label_names(), samples);
}

void Gauge::Set(LabelValues labels, double value) {
  std::lock_guard lock(mu_);
  if (double* current = FindOrAddLocked(series_, labels, [] { return 0.0; })) *current = value;
}

void Gauge::Add(LabelValues labels, double delta) {
  std::lock_guard lock(mu_);
  if (double* current = FindOrAddLocked(series_, labels, [] { return 0.0; })) *current += delta;
}

double Gauge::Value(LabelValues labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void Gauge::AppendText(std::string* out) const {
  std::vector<std::pair<std::vector<std::string>, double>> samples;
  {
    std::lock_guard lock(mu_);
    samples.assign(series_.begin(), series_.end());
  }
  AppendHeader(out, name(), help(), type());
  AppendSamples(out, name(), label_names(), samples);
}

void Histogram::Observe(LabelValues labels, double value) {
  if (std::isnan(value)) return;
  size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                      bounds_.begin());
  std::lock_guard lock(mu_);
  Snapshot* series = FindOrAddLocked(series_, labels, [&] {
    return Snapshot{.counts = std::vector<uint64_t>(bounds_.size() + 1)};
  });
  if (series == nullptr) return;
  ++series->counts[bucket];
  series->sum += value;
  ++series->count;
}

Histogram::Snapshot Histogram::Value(LabelValues labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  if (it == series_.end()) return Snapshot{.counts = std::vector<uint64_t>(bounds_.size() + 1)};
  return it->second;
}

void Histogram::AppendText(std::string* out) const {
  std::vector<std::pair<std::vector<std::string>, Snapshot>> samples;
  {
    std::lock_guard lock(mu_);
    samples.assign(series_.begin(), series_.end());
  }
  AppendHeader(out, name(), help(), type());
  std::vector<std::string> les;
  for (double bound : bounds_) les.push_back(FormatValue(bound));
  les.push_back("+Inf");
  const std::string bucket_name = StrCat(name(), "_bucket");
  const std::string sum_name = StrCat(name(), "_sum");
  const std::string count_name = StrCat(name(), "_count");
  for (const auto& [values, snapshot] : samples) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < les.size(); ++i) {
      cumulative += snapshot.counts[i];
      AppendSample(out, bucket_name, label_names(), values, &les[i], StrCat(cumulative));
    }
    AppendSample(out, sum_name, label_names(), values, nullptr, FormatValue(snapshot.sum));
    AppendSample(out, count_name, label_names(), values, nullptr, StrCat(snapshot.count));
  }
}

void MetricSink::Family::Add(LabelValues labels, double value) {
  if (!valid_) {
    ++dropped_invalid_;
  } else if (labels.size() != label_names_.size()) {
    ++dropped_label_count_;
  } else if (auto it = samples_.lower_bound(labels);
             it != samples_.end() && !samples_.key_comp()(labels, it->first)) {
    ++dropped_duplicate_;
  } else if (samples_.size() >= max_series_) {
    ++dropped_limit_;
  } else {
    samples_.emplace_hint(it, labels.ToVector(), value);
  }
}

MetricSink::Family& MetricSink::AddGauge(std::string_view name, std::string_view help,
                                         std::vector<std::string> label_names) {
  return AddFamily(MetricType::kGauge, name, help, std::move(label_names));
}

MetricSink::Family& MetricSink::AddCounter(std::string_view name, std::string_view help,
                                           std::vector<std::string> label_names) {
  return AddFamily(MetricType::kCounter, name, help, std::move(label_names));
}

MetricSink::Family& MetricSink::AddFamily(MetricType type, std::string_view name,
                                          std::string_view help,
                                          std::vector<std::string> label_names) {
  if (families_.size() >= kMaxFamilies) return overflow_;
  Family& family = families_.emplace_back();
  family.name_ = std::string(name);
  family.help_ = std::string(help);
  family.type_ = type;
  family.label_names_ = std::move(label_names);
  family.max_series_ = max_series_;
  family.valid_ = CheckNames(name, type, family.label_names_).ok();
  return family;
}

MetricsRegistry::MetricsRegistry(size_t max_series_per_family)
    : max_series_(max_series_per_family) {}

MetricsRegistry::~MetricsRegistry() = default;

template <typename F>
absl::StatusOr<F*> MetricsRegistry::Register(std::unique_ptr<F> family) {
  VMLET_RETURN_IF_ERROR(CheckNames(family->name(), family->type(), family->label_names()));
  std::vector<std::string> exposed = ExposedNames(family->name(), family->type());
  std::lock_guard lock(mu_);
  std::set<std::string, std::less<>> taken = {std::string(kDroppedSamplesMetric)};
  for (const auto& entry : entries_) {
    if (entry->family == nullptr) continue;
    for (std::string& name : ExposedNames(entry->family->name(), entry->family->type())) {
      taken.insert(std::move(name));
    }
  }
  if (const std::string* clash = FindTaken(exposed, taken)) {
    return absl::AlreadyExistsError(StrCat("metric \"", family->name(), "\" clashes with \"",
                                           *clash, "\", which is already registered"));
  }
  F* raw = family.get();
  auto entry = std::make_unique<Entry>();
  entry->family = std::move(family);
  entries_.push_back(std::move(entry));
  return raw;
}

absl::StatusOr<Counter*> MetricsRegistry::AddCounter(std::string_view name, std::string_view help,
                                                     std::vector<std::string> label_names) {
  bool unlabelled = label_names.empty();
  std::unique_ptr<Counter> family(new Counter(std::string(name), std::string(help),
                                              MetricType::kCounter, std::move(label_names),
                                              max_series_, &drops_));
  if (unlabelled) family->series_.emplace(std::vector<std::string>(), 0);
  return Register(std::move(family));
}

absl::StatusOr<Gauge*> MetricsRegistry::AddGauge(std::string_view name, std::string_view help,
                                                 std::vector<std::string> label_names) {
  bool unlabelled = label_names.empty();
  std::unique_ptr<Gauge> family(new Gauge(std::string(name), std::string(help), MetricType::kGauge,
                                          std::move(label_names), max_series_, &drops_));
  if (unlabelled) family->series_.emplace(std::vector<std::string>(), 0);
  return Register(std::move(family));
}

absl::StatusOr<Histogram*> MetricsRegistry::AddHistogram(std::string_view name,
                                                         std::string_view help,
                                                         std::vector<std::string> label_names,
                                                         std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
      return absl::InvalidArgumentError(
          StrCat("bucket bound ", FormatValue(bounds[i]), " of histogram \"", name,
                 "\" is invalid (expected finite bounds in strictly increasing order)"));
    }
  }
  bool unlabelled = label_names.empty();
  size_t buckets = bounds.size() + 1;
  std::unique_ptr<Histogram> family(new Histogram(std::string(name), std::string(help),
                                                  std::move(label_names), std::move(bounds),
                                                  max_series_, &drops_));
  if (unlabelled) {
    family->series_.emplace(std::vector<std::string>(),
                            Histogram::Snapshot{.counts = std::vector<uint64_t>(buckets)});
  }
  return Register(std::move(family));
}

void MetricsRegistry::AddCollector(std::function<void(MetricSink&)> collector) {
  if (!collector) return;
  auto entry = std::make_unique<Entry>();
  entry->collector = std::move(collector);
  std::lock_guard lock(mu_);
  entries_.push_back(std::move(entry));
}

void MetricsRegistry::RenderCollected(MetricSink& sink, std::set<std::string, std::less<>>& taken,
                                      std::string* out) const {
  auto render = [&](MetricSink::Family& family) {
    // Drops are counted under the family's name only when it is a valid one.
    std::string_view label = family.name_;
    if (&family == &sink.overflow_) {
      label = "(too many families)";
    } else if (!IsValidMetricName(label)) {
      label = "(invalid name)";
    }
    drops_.Record(label, "label_count", family.dropped_label_count_);
    drops_.Record(label, "series_limit", family.dropped_limit_);
    std::vector<std::string> exposed = ExposedNames(family.name_, family.type_);
    if (!family.valid_ || FindTaken(exposed, taken) != nullptr) {
      drops_.Record(label, "invalid_family", family.dropped_invalid_ + family.samples_.size());
      return;
    }
    taken.insert(exposed.begin(), exposed.end());
    drops_.Record(label, "duplicate_series", family.dropped_duplicate_);
    AppendHeader(out, family.name_, family.help_, family.type_);
    for (const auto& [values, value] : family.samples_) {
      AppendSample(out, family.name_, family.label_names_, values, nullptr, FormatValue(value));
    }
  };
  for (MetricSink::Family& family : sink.families_) render(family);
  render(sink.overflow_);
}

std::string MetricsRegistry::RenderText() const {
  std::vector<const Entry*> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : entries_) entries.push_back(entry.get());
  }
  std::set<std::string, std::less<>> taken = {std::string(kDroppedSamplesMetric)};
  for (const Entry* entry : entries) {
    if (entry->family == nullptr) continue;
    for (std::string& name : ExposedNames(entry->family->name(), entry->family->type())) {
      taken.insert(std::move(name));
    }
  }
  std::string out;
  for (const Entry* entry : entries) {
    if (entry->family != nullptr) {
      entry->family->AppendText(&out);
    } else {
      MetricSink sink(max_series_);
      entry->collector(sink);
      RenderCollected(sink, taken, &out);
    }
  }
  AppendHeader(&out, kDroppedSamplesMetric,
               "Samples the metrics registry dropped, by family and reason.", MetricType::kCounter);
  static const std::vector<std::string> kDropLabels = {"family", "reason"};
  for (const auto& [key, count] : drops_.Snapshot()) {
    AppendSample(&out, kDroppedSamplesMetric, kDropLabels, {key.first, key.second}, nullptr,
                 StrCat(count));
  }
  return out;
}

MetricsRegistry& Metrics() {
  // Never destroyed: threads may still update it while the process exits.
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

}  // namespace vmlet
