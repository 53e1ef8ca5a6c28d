// The vmlet side of the boot benchmark: pods booted through a real vmletd
// the way the kubelet does it, one at a time, with the latency of each step.
//
// Threads: one object is used from one thread.
#ifndef VMLET_BENCH_POD_BOOTER_H_
#define VMLET_BENCH_POD_BOOTER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::bench {

struct PodBootOptions {
  std::string pod_namespace;
  std::string image;   // A local image of the vmletd.
  std::string marker;  // What the guest prints once it runs.
  int memory_mib = 256;
  absl::Duration boot_timeout = absl::Seconds(180);
};

// One pod booted through vmlet, in milliseconds.
struct PodSample {
  double run_pod = 0;               // RunPodSandbox.
  double create = 0;                // CreateContainer: defines the domain, QEMU up paused.
  double start = 0;                 // StartContainer: resumes it.
  double start_to_first_byte = 0;   // StartContainer sent -> the CRI log's first byte.
  double start_to_marker = 0;       // StartContainer sent -> the marker in the CRI log.
  double create_to_first_byte = 0;  // CreateContainer sent -> the CRI log's first byte.
};

class PodBooter {
 public:
  PodBooter(e2e::VmletdProcess& vmletd, PodBootOptions options)
      : vmletd_(vmletd), options_(std::move(options)) {}

  // RunPodSandbox, CreateContainer (1 vCPU, options.memory_mib) and
  // StartContainer for a pod called `name`, waits for the marker in its log,
  // then stops and removes the pod.
  absl::StatusOr<PodSample> Boot(const std::string& name);

  // Stops and removes every pod still there; the first error.
  absl::Status RemoveAll();

 private:
  // StopPodSandbox then RemovePodSandbox, as the kubelet does.
  absl::Status Remove(const std::string& sandbox);

  e2e::VmletdProcess& vmletd_;
  const PodBootOptions options_;
  std::vector<std::string> sandboxes_;  // Created and not removed yet.
};

}  // namespace vmlet::bench

#endif  // VMLET_BENCH_POD_BOOTER_H_
