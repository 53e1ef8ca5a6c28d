#include "cmd/vmletctl/pull_progress.h"

#include <stdio.h>
#include <stdlib.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vmlet::ctl {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::DoubleNear;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// What a printer wrote, through open_memstream.
class Capture {
 public:
  Capture() : file_(::open_memstream(&data_, &size_)) {}
  ~Capture() {
    std::fclose(file_);
    std::free(data_);
  }
  std::FILE* file() { return file_; }
  std::string Text() {
    std::fflush(file_);
    return std::string(data_, size_);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

TEST(ProgressBytesTest, PrintsOneDecimalInBinaryUnits) {
  const std::pair<int64_t, std::string> cases[] = {
      {0, "0 B"},
      {1023, "1023 B"},
      {1024, "1.0 KiB"},
      {1536, "1.5 KiB"},
      {kMiB - 1, "1.0 MiB"},  // Not "1024.0 KiB".
      {123 * kMiB + 400 * 1024, "123.4 MiB"},
      {kGiB, "1.0 GiB"},
      {5 * kGiB / 2, "2.5 GiB"},
  };
  for (const auto& [bytes, text] : cases) EXPECT_EQ(ProgressBytes(bytes), text) << bytes;
}

TEST(ClockTimeTest, PrintsMinutesAndSecondsAndHoursWhenNeeded) {
  EXPECT_EQ(ClockTime(0), "0:00");
  EXPECT_EQ(ClockTime(12), "0:12");
  EXPECT_EQ(ClockTime(754), "12:34");
  EXPECT_EQ(ClockTime(3723), "1:02:03");
  EXPECT_EQ(ClockTime(-5), "0:00");
}

TEST(RateMeterTest, AveragesOverTheLastFewSeconds) {
  RateMeter meter;
  const ProgressClock::time_point t0;
  meter.Add(t0, 0);
  EXPECT_EQ(meter.Rate(), std::nullopt);
  meter.Add(t0 + milliseconds(200), 2 * kMiB);
  EXPECT_EQ(meter.Rate(), std::nullopt) << "too short a span to say";
  // 10 MiB/s for 10 s...
  for (int i = 1; i <= 10; ++i) meter.Add(t0 + seconds(i), 10 * kMiB * i);
  EXPECT_THAT(meter.Rate(), Optional(DoubleNear(10.0 * kMiB, 1)));
  // ...then 1 MiB/s for 6 s: the old speed is out of the window.
  for (int i = 1; i <= 6; ++i) meter.Add(t0 + seconds(10 + i), 100 * kMiB + kMiB * i);
  EXPECT_THAT(meter.Rate(), Optional(DoubleNear(1.0 * kMiB, 1)));
}

TEST(RateMeterTest, StartsAfreshWhenTheBytesGoBack) {
  RateMeter meter;
  const ProgressClock::time_point t0;
  meter.Add(t0, 50 * kMiB);
  meter.Add(t0 + seconds(1), 60 * kMiB);
  meter.Add(t0 + seconds(2), 0);
  EXPECT_EQ(meter.Rate(), std::nullopt);
  meter.Add(t0 + seconds(3), 2 * kMiB);
  EXPECT_THAT(meter.Rate(), Optional(DoubleNear(2.0 * kMiB, 1)));
}

TEST(PullProgressPrinterTest, DrawsABarWithRateAndEtaOnATerminal) {
  Capture out;
  const ProgressClock::time_point t0;
  PullProgressPrinter printer(out.file(), PullProgressPrinter::Mode::kTerminal, 0, t0);
  printer.Update({.phase = "resolving"}, t0);
  EXPECT_EQ(printer.TerminalLine(), "resolving");
  printer.Update({.phase = "downloading", .bytes_done = 0, .bytes_total = kGiB}, t0);
  printer.Update({.phase = "downloading", .bytes_done = 256 * kMiB, .bytes_total = kGiB},
                 t0 + seconds(4));
  // 64 MiB/s, 768 MiB to go: 12 s.
  EXPECT_EQ(printer.TerminalLine(),
            "downloading  [#####...............]  256.0 MiB / 1.0 GiB  64.0 MiB/s  ETA 0:12");
  printer.Update({.phase = "verifying", .bytes_done = kGiB, .bytes_total = kGiB}, t0 + seconds(20));
  EXPECT_EQ(printer.TerminalLine(), "verifying    [####################]  1.0 GiB / 1.0 GiB");
  printer.Update({.phase = "done", .bytes_done = kGiB, .bytes_total = kGiB}, t0 + seconds(21));
  printer.Update({.phase = "done", .bytes_done = 0, .bytes_total = 0}, t0 + seconds(21));
  printer.Finish(true, t0 + seconds(21));
  const std::string text = out.Text();
  EXPECT_EQ(text,
            "\rresolving\x1b[K"
            "\rdownloading  [....................]  0 B / 1.0 GiB\x1b[K"
            "\rdownloading  [#####...............]  256.0 MiB / 1.0 GiB  64.0 MiB/s  ETA 0:12\x1b[K"
            "\rverifying    [####################]  1.0 GiB / 1.0 GiB\x1b[K"
            "\rdone 1.0 GiB in 0:21\x1b[K\n");
}

TEST(PullProgressPrinterTest, ShowsBytesWithoutABarWhenTheTotalIsUnknown) {
  Capture out;
  const ProgressClock::time_point t0;
  PullProgressPrinter printer(out.file(), PullProgressPrinter::Mode::kTerminal, 0, t0);
  printer.Update({.phase = "downloading", .bytes_done = 0, .bytes_total = -1}, t0);
  EXPECT_EQ(printer.TerminalLine(), "downloading");
  printer.Update({.phase = "downloading", .bytes_done = 3 * kMiB, .bytes_total = -1},
                 t0 + seconds(1));
  EXPECT_EQ(printer.TerminalLine(), "downloading  3.0 MiB  3.0 MiB/s");
  EXPECT_EQ(printer.PlainLine(), "downloading 3.0 MiB 3.0 MiB/s");
}

TEST(PullProgressPrinterTest, CutsTheLineToTheTerminalWidth) {
  Capture out;
  const ProgressClock::time_point t0;
  PullProgressPrinter printer(out.file(), PullProgressPrinter::Mode::kTerminal, 20, t0);
  printer.Update({.phase = "downloading", .bytes_done = 1, .bytes_total = kGiB}, t0);
  EXPECT_EQ(out.Text(), "\rdownloading  [.....\x1b[K");
}

TEST(PullProgressPrinterTest, PrintsPlainLinesAtMostOnceASecondOrPerPhase) {
  Capture out;
  const ProgressClock::time_point t0;
  PullProgressPrinter printer(out.file(), PullProgressPrinter::Mode::kPlain, 0, t0);
  printer.Update({.phase = "resolving"}, t0);
  printer.Update({.phase = "downloading", .bytes_done = 0, .bytes_total = kGiB}, t0);
  for (int i = 1; i <= 25; ++i) {  // Every 200 ms, as vmletd sends them.
    printer.Update({.phase = "downloading", .bytes_done = 8 * kMiB * i, .bytes_total = kGiB},
                   t0 + milliseconds(200 * i));
  }
  printer.Update({.phase = "verifying", .bytes_done = kGiB, .bytes_total = kGiB}, t0 + seconds(6));
  printer.Finish(true, t0 + seconds(7));
  EXPECT_EQ(out.Text(),
            "resolving\n"
            "downloading 0 B / 1.0 GiB (0%)\n"
            "downloading 40.0 MiB / 1.0 GiB (3%) 40.0 MiB/s\n"
            "downloading 80.0 MiB / 1.0 GiB (7%) 40.0 MiB/s\n"
            "downloading 120.0 MiB / 1.0 GiB (11%) 40.0 MiB/s\n"
            "downloading 160.0 MiB / 1.0 GiB (15%) 40.0 MiB/s\n"
            "downloading 200.0 MiB / 1.0 GiB (19%) 40.0 MiB/s\n"
            "verifying 1.0 GiB / 1.0 GiB (100%)\n"
            "done 1.0 GiB in 0:07\n");
}

TEST(PullProgressPrinterTest, EndsTheTerminalLineOnFailureWithoutSayingDone) {
  Capture out;
  const ProgressClock::time_point t0;
  PullProgressPrinter printer(out.file(), PullProgressPrinter::Mode::kTerminal, 0, t0);
  printer.Update({.phase = "resolving"}, t0);
  printer.Finish(false, t0 + seconds(1));
  EXPECT_EQ(out.Text(), "\rresolving\x1b[K\n");

  Capture plain;
  PullProgressPrinter quiet_failure(plain.file(), PullProgressPrinter::Mode::kPlain, 0, t0);
  quiet_failure.Update({.phase = "resolving"}, t0);
  quiet_failure.Finish(false, t0 + seconds(1));
  EXPECT_THAT(plain.Text(), Not(HasSubstr("done")));
}

}  // namespace
}  // namespace vmlet::ctl
