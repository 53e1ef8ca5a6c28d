// The overlay benchmark: how long CreateQcow2Overlay takes to give a VM its
// copy-on-write root disk, against `qemu-img create -b` for the same base,
// measured in the same run, interleaved. The overlay must cost the same
// whatever the base's size: a 1 GiB and a 10 GiB sparse raw base, and a
// 1 GiB qcow2 base.
//
//   meson test -C build --benchmark overlay
//   build/bench/overlay_bench --runs 50
//
// Targets (issue 4): under 20 ms for the 1 GiB and the 10 GiB base, and the
// same for both within noise. They are reported, not enforced: the exit code
// is 0 whenever the measurement succeeded, 1 if an overlay could not be
// made, 77 (skipped) without qemu-img. Files are made under $TMPDIR (or
// /tmp) and removed.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/file_util.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "image/qcow2_overlay.h"

namespace vmlet::bench {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr double kTargetMs = 20;
// Two medians of a few milliseconds are "the same" when they differ by at
// most this ratio or this much.
constexpr double kSameRatio = 1.25;
constexpr double kSameMs = 1.0;

struct Base {
  std::string name;
  std::string path;
  std::string format;
  std::vector<double> ours_ms;
  std::vector<double> qemu_img_ms;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double P90(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, values.size() * 9 / 10)];
}

template <typename F>
absl::StatusOr<double> TimeMs(F run) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = run();
  const auto end = std::chrono::steady_clock::now();
  if (!status.ok()) return status;
  return std::chrono::duration<double, std::milli>(end - start).count();
}

absl::Status MakeRawBase(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("creating \"", path, "\""));
  int rc = ::ftruncate(fd, static_cast<off_t>(size));
  int saved_errno = errno;
  ::close(fd);
  if (rc != 0) return ErrnoToStatus(saved_errno, StrCat("sizing \"", path, "\""));
  return absl::OkStatus();
}

absl::Status Measure(std::vector<Base>& bases, const std::string& dir, int runs) {
  const std::string overlay = StrCat(dir, "/overlay.qcow2");
  // One untimed round first: page cache, qemu-img's binary and libraries.
  for (int round = -1; round < runs; ++round) {
    for (Base& base : bases) {
      VMLET_ASSIGN_OR_RETURN(double ours, TimeMs([&] {
                               return image::CreateQcow2Overlay(overlay, base.path, base.format);
                             }));
      VMLET_RETURN_IF_ERROR(RemoveFileIfExists(overlay));
      VMLET_ASSIGN_OR_RETURN(double qemu_img, TimeMs([&] {
                               return RunProcessOk({"qemu-img", "create", "-q", "-f", "qcow2", "-F",
                                                    base.format, "-b", base.path, overlay});
                             }));
      VMLET_RETURN_IF_ERROR(RemoveFileIfExists(overlay));
      if (round < 0) continue;
      base.ours_ms.push_back(ours);
      base.qemu_img_ms.push_back(qemu_img);
    }
  }
  return absl::OkStatus();
}

void Report(const std::vector<Base>& bases, int runs) {
  fmt::print(
      "\noverlay benchmark: {} runs per base, CreateQcow2Overlay and qemu-img create -b "
      "interleaved\n(ours fsyncs the overlay and its directory; qemu-img does not)\n\n",
      runs);
  fmt::print("{:<22}{:>12}{:>12}{:>18}{:>15}{:>15}\n", "base", "ours median", "ours p90",
             "qemu-img median", "qemu-img p90", "ours/qemu-img");
  for (const Base& base : bases) {
    const double ours = Median(base.ours_ms);
    const double qemu_img = Median(base.qemu_img_ms);
    fmt::print("{:<22}{:>9.2f} ms{:>9.2f} ms{:>15.2f} ms{:>12.2f} ms{:>15.2f}\n", base.name, ours,
               P90(base.ours_ms), qemu_img, P90(base.qemu_img_ms), ours / qemu_img);
  }
  const double one = Median(bases[0].ours_ms);
  const double ten = Median(bases[1].ours_ms);
  const bool same = ten / one <= kSameRatio && one / ten <= kSameRatio;
  const bool close = std::abs(ten - one) <= kSameMs;
  fmt::print(
      "\nours, 10 GiB / 1 GiB raw base: {:.2f}   target: the same within noise "
      "(ratio within {:.2f} or {:.1f} ms apart): {}\n",
      ten / one, kSameRatio, kSameMs, same || close ? "PASS" : "FAIL");
  fmt::print("ours, 1 GiB raw base:  {:6.2f} ms   target < {:.0f} ms: {}\n", one, kTargetMs,
             one < kTargetMs ? "PASS" : "FAIL");
  fmt::print("ours, 10 GiB raw base: {:6.2f} ms   target < {:.0f} ms: {}\n", ten, kTargetMs,
             ten < kTargetMs ? "PASS" : "FAIL");
}

int Main(int argc, char** argv) {
  int runs = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
      if (runs <= 0) {
        std::fprintf(stderr, "--runs: \"%s\" is not a positive count\n", argv[i]);
        return 1;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--runs N]\n", argv[0]);
      return 1;
    }
  }
  absl::StatusOr<ProcessResult> version = RunProcess({"qemu-img", "--version"});
  if (!version.ok() || version->exit_code != 0) {
    std::fprintf(stderr, "qemu-img is not installed (package qemu-utils); skipping (exit 77)\n");
    return 77;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = StrCat(tmp != nullptr ? tmp : "/tmp", "/vmlet-overlay-bench-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    std::fprintf(stderr, "creating a directory in %s failed\n", tmp != nullptr ? tmp : "/tmp");
    return 1;
  }
  ScopeGuard remove_dir([&dir] { (void)RemoveTree(dir); });

  std::vector<Base> bases = {
      {.name = "raw 1 GiB (sparse)", .path = dir + "/base-1g.raw", .format = "raw"},
      {.name = "raw 10 GiB (sparse)", .path = dir + "/base-10g.raw", .format = "raw"},
      {.name = "qcow2 1 GiB", .path = dir + "/base-1g.qcow2", .format = "qcow2"},
  };
  absl::Status status = MakeRawBase(bases[0].path, kGiB);
  if (status.ok()) status = MakeRawBase(bases[1].path, 10 * kGiB);
  if (status.ok()) {
    status = RunProcessOk({"qemu-img", "create", "-q", "-f", "qcow2", bases[2].path, "1G"});
  }
  if (status.ok()) status = Measure(bases, dir, runs);
  if (!status.ok()) {
    std::fprintf(stderr, "overlay benchmark failed: %s\n", status.ToString().c_str());
    return 1;
  }
  Report(bases, runs);
  return 0;
}

}  // namespace
}  // namespace vmlet::bench

int main(int argc, char** argv) { return vmlet::bench::Main(argc, argv); }
