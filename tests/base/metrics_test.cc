// The metrics registry: the text of each family type, escaping, sample
// order, cumulative histogram buckets, registration errors, concurrent
// updates, the label-combination limit, collectors, and the text read back
// by a real parser (python3-prometheus-client). Exits 77 when that parser is
// missing and everything else passed.
#include "base/metrics.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/process.h"
#include "base/str_util.h"

namespace vmlet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

bool parser_missing = false;

// The registry's own family, as it renders without drops.
constexpr std::string_view kNoDrops =
    "# HELP vmlet_metrics_dropped_samples_total Samples the metrics registry dropped, by family "
    "and reason.\n"
    "# TYPE vmlet_metrics_dropped_samples_total counter\n";

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// A python3 that has prometheus_client, or "" (Debian's first: a python3
// earlier in PATH may be another installation).
std::string PythonWithParser() {
  for (const char* python : {"/usr/bin/python3", "python3"}) {
    absl::StatusOr<ProcessResult> result =
        RunProcess({python, "-c", "import prometheus_client.parser"}, absl::Seconds(60));
    if (result.ok() && result->exit_code == 0) return python;
  }
  return "";
}

// Parses `text` with prometheus_client and returns one line per family
// ("family NAME TYPE "HELP"") and per sample ("sample NAME {k="v",...}
// VALUE", labels sorted, values as Python's repr, strings as JSON), or an
// error line. Empty when the parser is missing (and parser_missing set).
std::string ParseWithPrometheusClient(const std::string& text) {
  static const std::string python = PythonWithParser();
  if (python.empty()) {
    parser_missing = true;
    return "";
  }
  static constexpr char kScript[] = R"(
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append('family %s %s %s' % (family.name, family.type, json.dumps(family.documentation)))
    for s in family.samples:
        labels = ','.join('%s=%s' % (k, json.dumps(v)) for k, v in sorted(s.labels.items()))
        out.append('sample %s {%s} %r' % (s.name, labels, s.value))
print('\n'.join(out))
)";
  ProcessOptions options;
  options.stdin_data = text;
  options.separate_stderr = true;
  options.timeout = absl::Seconds(60);
  absl::StatusOr<ProcessResult> result = RunProcess({python, "-c", kScript}, options);
  if (!result.ok()) return StrCat("error: ", Message(result.status()));
  if (result->exit_code != 0) {
    return StrCat("error: exit ", result->exit_code, ": ", result->error_output);
  }
  return result->output;
}

TEST(MetricsTest, RendersCountersWithSortedLabels) {
  MetricsRegistry registry;
  absl::StatusOr<Counter*> requests =
      registry.AddCounter("vmlet_requests_total", "CRI calls.", {"method", "code"});
  ASSERT_TRUE(requests.ok()) << requests.status();
  (*requests)->Inc({"Version", "OK"});
  (*requests)->Inc({"RunPodSandbox", "OK"}, 2);
  (*requests)->Inc({"RunPodSandbox", "INTERNAL"});
  std::vector<std::string> labels = {"Version", "OK"};
  (*requests)->Inc(labels, 0.5);
  (*requests)->Inc({"Version", "OK"}, -1);  // Ignored: a counter only goes up.
  (*requests)->Inc({"Version", "OK"}, std::nan(""));
  EXPECT_EQ((*requests)->Value({"Version", "OK"}), 1.5);
  EXPECT_EQ((*requests)->Value({"Nothing", "OK"}), 0);
  EXPECT_EQ(registry.RenderText(),
            StrCat("# HELP vmlet_requests_total CRI calls.\n"
                   "# TYPE vmlet_requests_total counter\n"
                   "vmlet_requests_total{method=\"RunPodSandbox\",code=\"INTERNAL\"} 1\n"
                   "vmlet_requests_total{method=\"RunPodSandbox\",code=\"OK\"} 2\n"
                   "vmlet_requests_total{method=\"Version\",code=\"OK\"} 1.5\n",
                   kNoDrops));
}

TEST(MetricsTest, FamiliesWithoutLabelsShowZeroFromTheStart) {
  MetricsRegistry registry;
  ASSERT_TRUE(registry.AddCounter("a_total", "A.").ok());
  ASSERT_TRUE(registry.AddGauge("b", "B.").ok());
  absl::StatusOr<Histogram*> c = registry.AddHistogram("c_seconds", "C.", {}, {1});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(registry.AddGauge("d", "D.", {"x"}).ok());  // Labels: nothing yet.
  EXPECT_EQ(registry.RenderText(), StrCat("# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
                                          "# HELP b B.\n# TYPE b gauge\nb 0\n"
                                          "# HELP c_seconds C.\n# TYPE c_seconds histogram\n"
                                          "c_seconds_bucket{le=\"1\"} 0\n"
                                          "c_seconds_bucket{le=\"+Inf\"} 0\n"
                                          "c_seconds_sum 0\nc_seconds_count 0\n"
                                          "# HELP d D.\n# TYPE d gauge\n",
                                          kNoDrops));
}

TEST(MetricsTest, GaugesSetAddAndRemove) {
  MetricsRegistry registry;
  absl::StatusOr<Gauge*> memory = registry.AddGauge("vm_memory_bytes", "Memory.", {"vm"});
  ASSERT_TRUE(memory.ok()) << memory.status();
  (*memory)->Set({"b"}, 1073741824);
  (*memory)->Set({"a"}, 5);
  (*memory)->Add({"a"}, -7.25);
  (*memory)->Add({"c"}, 1e-05);
  (*memory)->Set({"d"}, std::numeric_limits<double>::infinity());
  (*memory)->Set({"e"}, -std::numeric_limits<double>::infinity());
  (*memory)->Set({"f"}, std::nan(""));
  (*memory)->Set({"g"}, 1e22);
  EXPECT_EQ((*memory)->Value({"a"}), -2.25);
  EXPECT_EQ((*memory)->series_count(), 7u);
  (*memory)->Remove({"g"});
  (*memory)->Remove({"nothing"});
  EXPECT_EQ((*memory)->series_count(), 6u);
  EXPECT_EQ(registry.RenderText(), StrCat("# HELP vm_memory_bytes Memory.\n"
                                          "# TYPE vm_memory_bytes gauge\n"
                                          "vm_memory_bytes{vm=\"a\"} -2.25\n"
                                          "vm_memory_bytes{vm=\"b\"} 1073741824\n"
                                          "vm_memory_bytes{vm=\"c\"} 1e-05\n"
                                          "vm_memory_bytes{vm=\"d\"} +Inf\n"
                                          "vm_memory_bytes{vm=\"e\"} -Inf\n"
                                          "vm_memory_bytes{vm=\"f\"} NaN\n",
                                          kNoDrops));
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  absl::StatusOr<Histogram*> latency =
      registry.AddHistogram("rpc_seconds", "Latency.", {"method"}, {0.1, 1, 10});
  ASSERT_TRUE(latency.ok()) << latency.status();
  for (double value : {0.05, 0.1, 0.5, 1.0, 2.0, 100.0, std::nan("")}) {
    (*latency)->Observe({"Exec"}, value);
  }
  (*latency)->Observe({"Attach"}, -1);
  Histogram::Snapshot exec = (*latency)->Value({"Exec"});
  EXPECT_EQ(exec.counts, (std::vector<uint64_t>{2, 2, 1, 1}));  // A bound is in its bucket.
  EXPECT_EQ(exec.count, 6u);
  EXPECT_DOUBLE_EQ(exec.sum, 103.65);
  std::string text = registry.RenderText();
  EXPECT_THAT(text, StartsWith("# HELP rpc_seconds Latency.\n"
                               "# TYPE rpc_seconds histogram\n"
                               "rpc_seconds_bucket{method=\"Attach\",le=\"0.1\"} 1\n"
                               "rpc_seconds_bucket{method=\"Attach\",le=\"1\"} 1\n"
                               "rpc_seconds_bucket{method=\"Attach\",le=\"10\"} 1\n"
                               "rpc_seconds_bucket{method=\"Attach\",le=\"+Inf\"} 1\n"
                               "rpc_seconds_sum{method=\"Attach\"} -1\n"
                               "rpc_seconds_count{method=\"Attach\"} 1\n"
                               "rpc_seconds_bucket{method=\"Exec\",le=\"0.1\"} 2\n"
                               "rpc_seconds_bucket{method=\"Exec\",le=\"1\"} 4\n"
                               "rpc_seconds_bucket{method=\"Exec\",le=\"10\"} 5\n"
                               "rpc_seconds_bucket{method=\"Exec\",le=\"+Inf\"} 6\n"
                               "rpc_seconds_sum{method=\"Exec\"} 103.65\n"
                               "rpc_seconds_count{method=\"Exec\"} 6\n"));
}

TEST(MetricsTest, DefaultBucketsSpanRpcLatencies) {
  std::vector<double> buckets = DefaultLatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_EQ(buckets.front(), 0.001);
  EXPECT_EQ(buckets.back(), 60);
  EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end()));
  MetricsRegistry registry;
  absl::StatusOr<Histogram*> latency = registry.AddHistogram("x_seconds", "X.");
  ASSERT_TRUE(latency.ok()) << latency.status();
  EXPECT_EQ((*latency)->bounds(), buckets);
  EXPECT_THAT(registry.RenderText(), HasSubstr("x_seconds_bucket{le=\"0.0025\"} 0\n"));
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  absl::StatusOr<Gauge*> gauge =
      registry.AddGauge("escaped", "A \\ backslash,\na line feed and \"quotes\".", {"v"});
  ASSERT_TRUE(gauge.ok()) << gauge.status();
  (*gauge)->Set({"a\\b\"c\nd"}, 1);
  (*gauge)->Set({"caf\xC3\xA9 \xFF\xC0\xAF end"}, 2);  // Invalid UTF-8 becomes U+FFFD.
  (*gauge)->Set({""}, 3);
  EXPECT_EQ(registry.RenderText(),
            StrCat("# HELP escaped A \\\\ backslash,\\na line feed and \"quotes\".\n"
                   "# TYPE escaped gauge\n"
                   "escaped{v=\"\"} 3\n"
                   "escaped{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                   "escaped{v=\"caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end\"} 2\n",
                   kNoDrops));
}

TEST(MetricsTest, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("vmlet_vm:cpu_seconds_total"));
  EXPECT_TRUE(IsValidMetricName("_x"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1x"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_FALSE(IsValidMetricName("caf\xC3\xA9"));
  EXPECT_TRUE(IsValidLabelName("pod_name2"));
  EXPECT_TRUE(IsValidLabelName("_x"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("9"));
  EXPECT_FALSE(IsValidLabelName(""));
}

TEST(MetricsTest, RefusesBadRegistrations) {
  MetricsRegistry registry;
  ASSERT_TRUE(registry.AddHistogram("rpc_seconds", "Latency.").ok());
  ASSERT_TRUE(registry.AddGauge("vms", "VMs.").ok());
  struct Case {
    std::string what;
    absl::Status status;
    absl::StatusCode code;
    std::string message;
  };
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<Case> cases = {
      {"bad metric name", registry.AddCounter("a-b", "").status(),
       absl::StatusCode::kInvalidArgument, "metric name \"a-b\" is invalid"},
      {"bad label name", registry.AddCounter("x_total", "", {"ok", "not ok"}).status(),
       absl::StatusCode::kInvalidArgument, "label name \"not ok\" of metric \"x_total\""},
      {"reserved label name", registry.AddGauge("y", "", {"__name__"}).status(),
       absl::StatusCode::kInvalidArgument, "not starting with \"__\""},
      {"repeated label name", registry.AddGauge("y", "", {"a", "a"}).status(),
       absl::StatusCode::kInvalidArgument, "is given twice"},
      {"le on a histogram", registry.AddHistogram("h", "", {"le"}).status(),
       absl::StatusCode::kInvalidArgument, "reserved for the bucket bounds"},
      {"taken name", registry.AddCounter("vms", "").status(), absl::StatusCode::kAlreadyExists,
       "metric \"vms\" clashes with \"vms\""},
      {"a histogram's _count", registry.AddGauge("rpc_seconds_count", "").status(),
       absl::StatusCode::kAlreadyExists, "clashes with \"rpc_seconds_count\""},
      {"a histogram over a gauge", registry.AddHistogram("vm", "", {}, {1}).status(),
       absl::StatusCode::kOk, ""},
      {"a histogram whose _sum is taken", registry.AddHistogram("vm", "", {}, {1}).status(),
       absl::StatusCode::kAlreadyExists, "clashes with \"vm\""},
      {"the registry's own counter", registry.AddCounter(kDroppedSamplesMetric, "").status(),
       absl::StatusCode::kAlreadyExists, "vmlet_metrics_dropped_samples_total"},
      {"decreasing buckets", registry.AddHistogram("h1", "", {}, {1, 0.5}).status(),
       absl::StatusCode::kInvalidArgument, "bucket bound 0.5 of histogram \"h1\""},
      {"repeated bucket", registry.AddHistogram("h2", "", {}, {1, 1}).status(),
       absl::StatusCode::kInvalidArgument, "strictly increasing"},
      {"NaN bucket", registry.AddHistogram("h3", "", {}, {nan}).status(),
       absl::StatusCode::kInvalidArgument, "bucket bound NaN"},
      {"-Inf bucket", registry.AddHistogram("h4", "", {}, {-inf, 1}).status(),
       absl::StatusCode::kInvalidArgument, "bucket bound -Inf"},
      {"trailing +Inf is implied", registry.AddHistogram("h5", "", {}, {1, inf}).status(),
       absl::StatusCode::kOk, ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.code(), c.code) << c.what << ": " << c.status;
    EXPECT_THAT(Message(c.status), HasSubstr(c.message)) << c.what;
  }
  std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("h5_bucket{le=\"1\"} 0\nh5_bucket{le=\"+Inf\"} 0\nh5_sum"));
  EXPECT_THAT(text, Not(HasSubstr("a-b")));
}

TEST(MetricsTest, LimitsLabelCombinationsAndCountsDrops) {
  MetricsRegistry registry(/*max_series_per_family=*/3);
  absl::StatusOr<Counter*> counter = registry.AddCounter("c_total", "C.", {"id"});
  absl::StatusOr<Histogram*> histogram = registry.AddHistogram("h", "H.", {"id"}, {1});
  ASSERT_TRUE(counter.ok() && histogram.ok());
  for (int i = 0; i < 5; ++i) {
    (*counter)->Inc({StrCat("id", i)});
    (*histogram)->Observe({StrCat("id", i)}, 0.5);
  }
  (*counter)->Inc({"id0"}, 9);  // Existing combinations still count.
  (*counter)->Inc({"id0", "extra"});
  (*counter)->Inc();
  EXPECT_EQ((*counter)->series_count(), 3u);
  EXPECT_EQ((*counter)->Value({"id0"}), 10);
  EXPECT_EQ((*counter)->Value({"id4"}), 0);
  EXPECT_EQ((*histogram)->series_count(), 3u);
  (*counter)->Remove({"id1"});  // Room for one more.
  (*counter)->Inc({"id9"});
  EXPECT_EQ((*counter)->Value({"id9"}), 1);
  EXPECT_THAT(registry.RenderText(),
              HasSubstr(StrCat(kNoDrops,
                               "vmlet_metrics_dropped_samples_total{family=\"c_total\","
                               "reason=\"label_count\"} 2\n"
                               "vmlet_metrics_dropped_samples_total{family=\"c_total\","
                               "reason=\"series_limit\"} 2\n"
                               "vmlet_metrics_dropped_samples_total{family=\"h\","
                               "reason=\"series_limit\"} 2\n")));
}

TEST(MetricsTest, ConcurrentUpdatesAddUp) {
  MetricsRegistry registry;
  absl::StatusOr<Counter*> counter = registry.AddCounter("c_total", "C.", {"worker", "kind"});
  absl::StatusOr<Gauge*> gauge = registry.AddGauge("g", "G.");
  absl::StatusOr<Histogram*> histogram = registry.AddHistogram("h_seconds", "H.", {"kind"});
  ASSERT_TRUE(counter.ok() && gauge.ok() && histogram.ok());
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string worker = StrCat("w", t % 4);
      for (int i = 0; i < kIterations; ++i) {
        (*counter)->Inc({worker, i % 2 == 0 ? "even" : "odd"});
        (*gauge)->Add({}, 1);
        (*histogram)->Observe({"all"}, 0.002);
      }
    });
  }
  // Scrapes while the updates run.
  threads.emplace_back([&] {
    for (int i = 0; i < 20; ++i) EXPECT_THAT(registry.RenderText(), HasSubstr("# TYPE g gauge"));
  });
  for (std::thread& thread : threads) thread.join();
  double total = 0;
  for (int w = 0; w < 4; ++w) {
    for (const char* kind : {"even", "odd"}) {
      double value = (*counter)->Value({StrCat("w", w), kind});
      EXPECT_EQ(value, kThreads / 4 * kIterations / 2);
      total += value;
    }
  }
  EXPECT_EQ(total, kThreads * kIterations);
  EXPECT_EQ((*gauge)->Value(), kThreads * kIterations);
  Histogram::Snapshot snapshot = (*histogram)->Value({"all"});
  EXPECT_EQ(snapshot.count, static_cast<uint64_t>(kThreads * kIterations));
  EXPECT_EQ(snapshot.counts[1], static_cast<uint64_t>(kThreads * kIterations));  // le 0.0025
  EXPECT_THAT(registry.RenderText(),
              HasSubstr(StrCat("h_seconds_count{kind=\"all\"} ", kThreads * kIterations, "\n")));
}

TEST(MetricsTest, CollectorsRenderAtScrapeTimeInRegistrationOrder) {
  MetricsRegistry registry;
  ASSERT_TRUE(registry.AddGauge("first", "First.").ok());
  int scrapes = 0;
  registry.AddCollector([&](MetricSink& sink) {
    ++scrapes;
    MetricSink::Family& vms = sink.AddGauge("vmlet_vms", "VMs by state.", {"state"});
    vms.Add({"stopped"}, 1);
    vms.Add({"running"}, scrapes);
    MetricSink::Family& cpu =
        sink.AddCounter("vmlet_vm_cpu_seconds_total", "CPU time.", {"pod", "namespace"});
    cpu.Add({"web", "default"}, 12.5);
  });
  ASSERT_TRUE(registry.AddGauge("last", "Last.").ok());
  registry.AddCollector(nullptr);  // Ignored.
  std::string expected_tail = StrCat(
      "# HELP vmlet_vm_cpu_seconds_total CPU time.\n"
      "# TYPE vmlet_vm_cpu_seconds_total counter\n"
      "vmlet_vm_cpu_seconds_total{pod=\"web\",namespace=\"default\"} 12.5\n"
      "# HELP last Last.\n# TYPE last gauge\nlast 0\n",
      kNoDrops);
  EXPECT_EQ(registry.RenderText(), StrCat("# HELP first First.\n# TYPE first gauge\nfirst 0\n"
                                          "# HELP vmlet_vms VMs by state.\n"
                                          "# TYPE vmlet_vms gauge\n"
                                          "vmlet_vms{state=\"running\"} 1\n"
                                          "vmlet_vms{state=\"stopped\"} 1\n",
                                          expected_tail));
  EXPECT_THAT(registry.RenderText(), HasSubstr("vmlet_vms{state=\"running\"} 2\n"));
  EXPECT_EQ(scrapes, 2);
}

TEST(MetricsTest, DropsWhatACollectorGetsWrong) {
  MetricsRegistry registry(/*max_series_per_family=*/2);
  ASSERT_TRUE(registry.AddGauge("registered", "R.").ok());
  registry.AddCollector([](MetricSink& sink) {
    sink.AddGauge("bad name", "").Add({}, 1);
    sink.AddGauge("bad_label", "", {"__x"}).Add({"v"}, 1);
    sink.AddGauge("registered", "Clash.").Add({}, 1);
    MetricSink::Family& good = sink.AddGauge("good", "Good.", {"k"});
    good.Add({"b"}, 1);
    good.Add({"b"}, 2);  // Repeated: the first stays.
    good.Add({"a"}, 3);
    good.Add({"c"}, 4);  // Beyond the limit of 2.
    good.Add({"x", "y"}, 5);
    sink.AddCounter("good", "Clash with the collector's own.").Add({}, 1);
  });
  EXPECT_EQ(
      registry.RenderText(),
      "# HELP registered R.\n# TYPE registered gauge\nregistered 0\n"
      "# HELP good Good.\n# TYPE good gauge\ngood{k=\"a\"} 3\ngood{k=\"b\"} 1\n"
      "# HELP vmlet_metrics_dropped_samples_total Samples the metrics registry dropped, by "
      "family and reason.\n"
      "# TYPE vmlet_metrics_dropped_samples_total counter\n"
      "vmlet_metrics_dropped_samples_total{family=\"(invalid name)\","
      "reason=\"invalid_family\"} 1\n"
      "vmlet_metrics_dropped_samples_total{family=\"bad_label\",reason=\"invalid_family\"} 1\n"
      "vmlet_metrics_dropped_samples_total{family=\"good\",reason=\"duplicate_series\"} 1\n"
      "vmlet_metrics_dropped_samples_total{family=\"good\",reason=\"invalid_family\"} 1\n"
      "vmlet_metrics_dropped_samples_total{family=\"good\",reason=\"label_count\"} 1\n"
      "vmlet_metrics_dropped_samples_total{family=\"good\",reason=\"series_limit\"} 1\n"
      "vmlet_metrics_dropped_samples_total{family=\"registered\","
      "reason=\"invalid_family\"} 1\n");
}

TEST(MetricsTest, BoundsTheFamiliesOfACollector) {
  MetricsRegistry registry;
  registry.AddCollector([](MetricSink& sink) {
    for (size_t i = 0; i < MetricSink::kMaxFamilies + 5; ++i) {
      sink.AddGauge(StrCat("many_", i), "").Add({}, 1);
    }
  });
  std::string text = registry.RenderText();
  std::string last = StrCat("\nmany_", MetricSink::kMaxFamilies - 1, " 1\n");
  EXPECT_TRUE(text.find(last) != std::string::npos) << last;
  std::string beyond = StrCat("many_", MetricSink::kMaxFamilies, " ");
  EXPECT_TRUE(text.find(beyond) == std::string::npos) << beyond;
  std::string dropped = StrCat(kDroppedSamplesMetric,
                               "{family=\"(too many families)\",reason=\"invalid_family\"} 5\n");
  EXPECT_TRUE(text.find(dropped) != std::string::npos) << dropped;
}

TEST(MetricsTest, DefaultRegistryIsOneObject) { EXPECT_EQ(&Metrics(), &Metrics()); }

TEST(MetricsTest, RealParserReadsTheText) {
  MetricsRegistry registry;
  absl::StatusOr<Counter*> requests = registry.AddCounter(
      "vmlet_requests_total", "CRI calls\\by \"method\".\nSecond line.", {"method", "code"});
  absl::StatusOr<Gauge*> gauge = registry.AddGauge("vmlet_value", "Values.", {"v"});
  absl::StatusOr<Histogram*> latency =
      registry.AddHistogram("vmlet_rpc_seconds", "Latency.", {"method"}, {0.5, 1});
  ASSERT_TRUE(requests.ok() && gauge.ok() && latency.ok());
  (*requests)->Inc({"Run\"Pod\"\nSandbox\\", "OK"}, 3);
  (*requests)->Inc({"Version", "OK"});
  (*gauge)->Set({"caf\xC3\xA9"}, -2.5);
  (*gauge)->Set({"inf"}, std::numeric_limits<double>::infinity());
  (*gauge)->Set({"tiny"}, 1e-300);
  (*gauge)->Set({"bad utf-8 \xFF"}, 1);
  (*latency)->Observe({"Exec"}, 0.25);
  (*latency)->Observe({"Exec"}, 0.75);
  (*latency)->Observe({"Exec"}, 5);
  registry.AddCollector(
      [](MetricSink& sink) { sink.AddGauge("vmlet_vms", "VMs.", {"state"}).Add({"running"}, 2); });
  std::string parsed = ParseWithPrometheusClient(registry.RenderText());
  if (parser_missing) GTEST_SKIP() << "python3 with prometheus_client is not installed";
  std::vector<std::string> expected = {
      // The parser names a counter family without its _total.
      "family vmlet_requests counter \"CRI calls\\\\by \\\"method\\\".\\nSecond line.\"\n",
      "sample vmlet_requests_total {code=\"OK\",method=\"Run\\\"Pod\\\"\\nSandbox\\\\\"} 3.0\n",
      "sample vmlet_requests_total {code=\"OK\",method=\"Version\"} 1.0\n",
      "family vmlet_value gauge \"Values.\"\n",
      "sample vmlet_value {v=\"caf\\u00e9\"} -2.5\n",
      "sample vmlet_value {v=\"inf\"} inf\n",
      "sample vmlet_value {v=\"tiny\"} 1e-300\n",
      "sample vmlet_value {v=\"bad utf-8 \\ufffd\"} 1.0\n",
      "family vmlet_rpc_seconds histogram \"Latency.\"\n",
      "sample vmlet_rpc_seconds_bucket {le=\"0.5\",method=\"Exec\"} 1.0\n",
      "sample vmlet_rpc_seconds_bucket {le=\"1\",method=\"Exec\"} 2.0\n",
      "sample vmlet_rpc_seconds_bucket {le=\"+Inf\",method=\"Exec\"} 3.0\n",
      "sample vmlet_rpc_seconds_sum {method=\"Exec\"} 6.0\n",
      "sample vmlet_rpc_seconds_count {method=\"Exec\"} 3.0\n",
      "family vmlet_vms gauge \"VMs.\"\n",
      "sample vmlet_vms {state=\"running\"} 2.0\n",
      "family vmlet_metrics_dropped_samples counter",
  };
  for (const std::string& line : expected) EXPECT_THAT(parsed, HasSubstr(line)) << parsed;
}

}  // namespace
}  // namespace vmlet

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int result = RUN_ALL_TESTS();
  if (result == 0 && vmlet::parser_missing) {
    std::fprintf(stderr,
                 "python3 with prometheus_client (Debian: python3-prometheus-client) is missing: "
                 "the text was not checked with a real parser; skipping (exit 77)\n");
    return 77;
  }
  return result;
}
