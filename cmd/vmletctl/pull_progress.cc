#include "cmd/vmletctl/pull_progress.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "base/str_util.h"

namespace vmlet::ctl {
namespace {

// The rate is the average over this much of the recent past...
constexpr auto kRateWindow = std::chrono::seconds(5);
// ...once the samples span at least this much.
constexpr auto kMinRateSpan = std::chrono::milliseconds(500);

constexpr auto kTerminalInterval = std::chrono::milliseconds(100);
constexpr auto kPlainInterval = std::chrono::seconds(1);

constexpr int kBarWidth = 20;
// "downloading", the longest phase: the bar starts in the same column in
// every phase.
constexpr int kPhaseWidth = 11;

bool HasBytes(const PullState& state) { return state.bytes_done > 0 || state.bytes_total > 0; }

}  // namespace

std::string ProgressBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return StrCat(bytes, " B");
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  // 1023.96 KiB would print as "1024.0 KiB": it is "1.0 MiB".
  while (value >= 1023.95 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string ClockTime(int64_t seconds) {
  seconds = std::max<int64_t>(0, seconds);
  if (seconds >= 3600) {
    return fmt::format("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
  }
  return fmt::format("{}:{:02}", seconds / 60, seconds % 60);
}

void RateMeter::Add(ProgressClock::time_point now, int64_t bytes) {
  if (!samples_.empty() && bytes < samples_.back().second) samples_.clear();
  samples_.emplace_back(now, bytes);
  // One sample at or before the window's start stays, so that the average
  // spans the whole window.
  while (samples_.size() > 2 && samples_[1].first <= now - kRateWindow) samples_.pop_front();
}

std::optional<double> RateMeter::Rate() const {
  if (samples_.size() < 2) return std::nullopt;
  const auto span = samples_.back().first - samples_.front().first;
  if (span < kMinRateSpan) return std::nullopt;
  return static_cast<double>(samples_.back().second - samples_.front().second) /
         std::chrono::duration<double>(span).count();
}

PullProgressPrinter::PullProgressPrinter(std::FILE* out, Mode mode, int width,
                                         ProgressClock::time_point start)
    : out_(out), mode_(mode), width_(width), start_(start) {}

std::string PullProgressPrinter::TerminalLine() const {
  std::string line = fmt::format("{:<{}}", state_.phase, kPhaseWidth);
  if (HasBytes(state_)) {
    if (state_.bytes_total > 0) {
      const double fraction = std::clamp(
          static_cast<double>(state_.bytes_done) / static_cast<double>(state_.bytes_total), 0.0,
          1.0);
      const int filled = static_cast<int>(fraction * kBarWidth);
      StrAppend(&line, "  [", std::string(filled, '#'), std::string(kBarWidth - filled, '.'), "]  ",
                ProgressBytes(state_.bytes_done), " / ", ProgressBytes(state_.bytes_total));
    } else {
      StrAppend(&line, "  ", ProgressBytes(state_.bytes_done));
    }
    std::optional<double> rate = rate_.Rate();
    if (state_.phase == "downloading" && rate.has_value()) {
      StrAppend(&line, "  ", ProgressBytes(static_cast<int64_t>(*rate)), "/s");
      if (state_.bytes_total > 0 && *rate > 0 && state_.bytes_done <= state_.bytes_total) {
        const double left = static_cast<double>(state_.bytes_total - state_.bytes_done) / *rate;
        StrAppend(&line, "  ETA ", ClockTime(static_cast<int64_t>(std::ceil(left))));
      }
    }
  }
  line.erase(line.find_last_not_of(' ') + 1);
  return line;
}

std::string PullProgressPrinter::PlainLine() const {
  std::string line = state_.phase;
  if (!HasBytes(state_)) return line;
  StrAppend(&line, " ", ProgressBytes(state_.bytes_done));
  if (state_.bytes_total > 0) {
    const int64_t percent =
        std::clamp<int64_t>(static_cast<int64_t>(static_cast<double>(state_.bytes_done) * 100 /
                                                 static_cast<double>(state_.bytes_total)),
                            0, 100);
    StrAppend(&line, " / ", ProgressBytes(state_.bytes_total), " (", percent, "%)");
  }
  std::optional<double> rate = rate_.Rate();
  if (state_.phase == "downloading" && rate.has_value()) {
    StrAppend(&line, " ", ProgressBytes(static_cast<int64_t>(*rate)), "/s");
  }
  return line;
}

void PullProgressPrinter::Draw(const std::string& line) {
  std::string_view shown = line;
  // A line as wide as the terminal wraps, and "\r" then redraws only its
  // last part.
  if (width_ > 1 && shown.size() >= static_cast<size_t>(width_)) {
    shown = shown.substr(0, static_cast<size_t>(width_ - 1));
  }
  std::fprintf(out_, "\r%.*s\x1b[K", static_cast<int>(shown.size()), shown.data());
  std::fflush(out_);
  drawn_ = true;
}

void PullProgressPrinter::Update(const PullState& state, ProgressClock::time_point now) {
  if (state.phase == "done") {
    // The last message carries the image id, not the bytes: keep those.
    state_.phase = state.phase;
    if (HasBytes(state)) {
      state_.bytes_done = state.bytes_done;
      state_.bytes_total = state.bytes_total;
    }
    return;
  }
  const bool new_phase = state.phase != state_.phase;
  if (new_phase) rate_.Reset();
  if (state.phase == "downloading") rate_.Add(now, state.bytes_done);
  state_ = state;
  const auto interval = mode_ == Mode::kTerminal ? kTerminalInterval : kPlainInterval;
  if (!new_phase && now - last_printed_ < interval) return;
  last_printed_ = now;
  if (mode_ == Mode::kTerminal) {
    Draw(TerminalLine());
  } else {
    std::fprintf(out_, "%s\n", PlainLine().c_str());
    std::fflush(out_);
  }
}

void PullProgressPrinter::Finish(bool ok, ProgressClock::time_point now) {
  if (ok) {
    std::string line = "done";
    if (state_.bytes_done > 0) StrAppend(&line, " ", ProgressBytes(state_.bytes_done));
    const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - start_);
    StrAppend(&line, " in ", ClockTime(elapsed.count()));
    if (mode_ == Mode::kTerminal) {
      Draw(line);
      std::fputc('\n', out_);
    } else {
      std::fprintf(out_, "%s\n", line.c_str());
    }
  } else if (drawn_) {
    std::fputc('\n', out_);
  }
  drawn_ = false;
  std::fflush(out_);
}

}  // namespace vmlet::ctl
