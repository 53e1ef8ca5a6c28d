// Network namespaces of pod sandboxes. A sandbox's namespace is pinned by a
// bind mount of its nsfs inode on a file (under run_dir/netns), as `ip netns`
// and the CRI runtimes do, so it outlives the thread that made it and can be
// handed to CNI plugins by path.
//
// Work inside a namespace runs on a short-lived thread that joins it
// (setns(2) changes only the calling thread), so no thread of vmletd ever
// changes namespace for longer than one call. Sockets and tap devices opened
// there stay in that namespace; processes started there inherit it.
#ifndef VMLET_NETWORK_NETNS_H_
#define VMLET_NETWORK_NETNS_H_

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace vmlet::network {

// Creates a new network namespace pinned at `path` (whose directory must
// exist). Brings its loopback up. ALREADY_EXISTS if `path` exists.
absl::Status CreateNetns(const std::string& path);

// Unpins and deletes the file at `path`; the namespace goes away with its
// last user. OK when `path` does not exist.
absl::Status RemoveNetns(const std::string& path);

// True when `path` is a pinned network namespace.
bool IsNetns(const std::string& path);

// Runs `fn` on a thread that has joined the namespace at `path`, waits for
// it and returns what `fn` returned. Thread-safe.
absl::Status RunInNetns(const std::string& path, const std::function<absl::Status()>& fn);

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_NETNS_H_
