// What a benchmark run must not leave behind, and its removal: the libvirt
// domains of its pods (found by their pod namespace), its temporary
// directories and, on a signal, its child processes.
//
// Threads: any; the registry has a lock of its own.
#ifndef VMLET_BENCH_LEFTOVERS_H_
#define VMLET_BENCH_LEFTOVERS_H_

#include <string>

#include "absl/status/statusor.h"

namespace vmlet::bench {

inline constexpr char kVirsh[] = "/usr/bin/virsh";
inline constexpr char kLibvirtUri[] = "qemu:///system";

// The pod namespace of this run: its domains are named "vmlet-<namespace>-...".
void RegisterNamespace(const std::string& pod_namespace);
// A directory to remove, with everything in it, at the end.
void RegisterTempDir(const std::string& dir);

// Destroys and undefines every domain of the registered namespace and
// removes the registered directories. How many domains it found: none, after
// a run that cleaned up after itself.
absl::StatusOr<int> CleanUpLeftovers();

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, which every thread
// started later inherits (so call it first in main), and starts a thread
// that waits for them: on one, it kills this process's children (vmletd, a
// plain QEMU), calls CleanUpLeftovers and exits with 128 + the signal.
void StartSignalThread();

}  // namespace vmlet::bench

#endif  // VMLET_BENCH_LEFTOVERS_H_
