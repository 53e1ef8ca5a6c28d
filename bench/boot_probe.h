// The two clocks of the boot benchmark: when a guest's console first shows
// output and when it shows a marker, read from vmlet's CRI log file
// (LogWatcher) or from a plain QEMU's serial port on a pipe (BootPlainQemu).
// Times come from std::chrono::steady_clock.
#ifndef VMLET_BENCH_BOOT_PROBE_H_
#define VMLET_BENCH_BOOT_PROBE_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vmlet::bench {

using Clock = std::chrono::steady_clock;

// Milliseconds, for reports.
inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// When a console first held a byte and when it first held the marker.
struct ConsoleTimes {
  Clock::time_point first_byte;
  Clock::time_point marker;
};

// Watches a file that only grows (a CRI log) with inotify, on a thread of its
// own, from Start until the marker appears, the deadline passes or the
// watcher is destroyed. vmletd writes the log a whole line at a time, so the
// first byte shows when the first line is complete.
//
// Threads: Start, Wait and the destructor are called from one thread.
class LogWatcher {
 public:
  // Fails if `path` does not exist yet.
  static absl::StatusOr<std::unique_ptr<LogWatcher>> Start(std::string path, std::string marker,
                                                           absl::Duration timeout);
  LogWatcher(const LogWatcher&) = delete;
  LogWatcher& operator=(const LogWatcher&) = delete;
  ~LogWatcher();

  // Waits for the watching thread to end; DEADLINE_EXCEEDED (with what the
  // file held) if the marker did not appear in time.
  absl::StatusOr<ConsoleTimes> Wait();

 private:
  LogWatcher(std::string path, std::string marker, int inotify_fd, int wake_fd,
             Clock::time_point deadline);
  void Run();  // The watching thread.
  void Stop();

  const std::string path_;
  const std::string marker_;
  const int inotify_fd_;
  const int wake_fd_;  // eventfd, readable once the watcher is told to stop.
  const Clock::time_point deadline_;
  // Written by the watching thread only, read after it was joined.
  std::string text_;
  std::optional<Clock::time_point> first_byte_;
  std::optional<Clock::time_point> marker_seen_;
  absl::Status error_;
  std::thread thread_;
};

struct PlainQemuOptions {
  std::string qemu = "/usr/bin/qemu-system-x86_64";
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  int memory_mib = 256;
};

// How long a plain QEMU took from exec to its first console byte, its
// first complete console line and the marker.
struct PlainBootTimes {
  Clock::duration first_byte;
  Clock::duration first_line;
  Clock::duration marker;
};

// Runs `qemu-system-x86_64 -machine pc,accel=tcg -serial stdio ...` with
// the serial port on a pipe until `marker` has appeared and a line has ended
// (or `timeout` passes), then kills and reaps it. Times are measured from
// just before fork.
absl::StatusOr<PlainBootTimes> BootPlainQemu(const PlainQemuOptions& options,
                                             const std::string& marker, absl::Duration timeout);

}  // namespace vmlet::bench

#endif  // VMLET_BENCH_BOOT_PROBE_H_
