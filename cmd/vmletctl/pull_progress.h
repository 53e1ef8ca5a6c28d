// How `vmletctl image pull` shows a pull's progress: on a terminal, one line
// redrawn in place,
//
//   downloading  [#####...............]  123.4 MiB / 1.0 GiB  45.6 MiB/s  ETA 0:12
//
// and elsewhere (pipes, CI logs) plain lines, at most one a second and one
// per phase change:
//
//   downloading 123.4 MiB / 1.0 GiB (12%) 45.6 MiB/s
//
// Threading: single-threaded, as the whole CLI is.
#ifndef VMLET_CMD_VMLETCTL_PULL_PROGRESS_H_
#define VMLET_CMD_VMLETCTL_PULL_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace vmlet::ctl {

using ProgressClock = std::chrono::steady_clock;

// Bytes with one decimal in binary units: "512 B", "123.4 MiB", "1.0 GiB".
std::string ProgressBytes(int64_t bytes);

// A duration as a clock shows it: "0:12", "12:34", "1:02:03".
std::string ClockTime(int64_t seconds);

// A transfer rate, averaged over the last few seconds.
class RateMeter {
 public:
  // Records that `bytes` were done at `now`. Fewer bytes than before (a
  // download started over) start the average afresh.
  void Add(ProgressClock::time_point now, int64_t bytes);
  void Reset() { samples_.clear(); }
  // Bytes per second; nullopt until the samples span half a second.
  std::optional<double> Rate() const;

 private:
  std::deque<std::pair<ProgressClock::time_point, int64_t>> samples_;
};

// One progress message of a pull (vmlet.vmspec.v1.PullImageProgress).
struct PullState {
  std::string phase;  // "resolving", "waiting", "downloading", "verifying", "done".
  int64_t bytes_done = 0;
  int64_t bytes_total = -1;  // -1 while unknown.
};

class PullProgressPrinter {
 public:
  enum class Mode {
    kTerminal,  // One line redrawn with "\r".
    kPlain,     // Whole lines, throttled.
  };

  // Writes to `out`; `width` is the terminal's width in columns (0 when
  // unknown), which a terminal line never reaches.
  PullProgressPrinter(std::FILE* out, Mode mode, int width, ProgressClock::time_point start);

  // Shows `state` if it is news enough: a new phase always, otherwise at
  // most ten times a second on a terminal and once a second in plain mode.
  // Phase "done" is left to Finish.
  void Update(const PullState& state, ProgressClock::time_point now);

  // Ends the display. With `ok`, prints "done" with the bytes and the time
  // taken; otherwise only ends the terminal line, so that the error that
  // follows starts on a line of its own.
  void Finish(bool ok, ProgressClock::time_point now);

  // The lines as they would be printed now (for Update and tests).
  std::string TerminalLine() const;
  std::string PlainLine() const;

 private:
  void Draw(const std::string& line);

  std::FILE* const out_;
  const Mode mode_;
  const int width_;
  const ProgressClock::time_point start_;
  PullState state_;
  RateMeter rate_;
  ProgressClock::time_point last_printed_;
  bool drawn_ = false;  // A terminal line is on screen and not yet ended.
};

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_PULL_PROGRESS_H_
