// What a vmletd and its pods can leave behind, as a snapshot that two
// points of a test compare: take one before, one after, Diff them.
//
//   LeakSnapshot before = TakeLeakSnapshot(node.Scope());
//   ... pods come and go, vmletd is killed and restarted ...
//   std::vector<std::string> leaks = Diff(before, TakeLeakSnapshot(node.Scope()));
//   EXPECT_THAT(leaks, IsEmpty());
//
// A snapshot holds, each as a set of readable strings:
//   domains    libvirt domains (qemu:///system) whose name holds the pod
//              namespace, or whose vmlet metadata names this vmletd's VM
//              directory as its instance
//   state      every file and directory under state_dir (records, pods/<id>/
//              seeds, vms/<id>/ overlays and disks, images/ blobs and tmp/)
//   run        every file and directory under run_dir (netns pins, console
//              sockets and their directories)
//   mounts     mount points under the scope's directory (pinned namespaces)
//   links      network interfaces of the node namespace (veths; taps live in
//              the pods' namespaces, which are pinned under run_dir)
//   ipam       host-local allocations: files of the IPAM data directory other
//              than its lock and last_reserved_ip files
//   iptables   per-pod CNI chains and the rules that name a pod (iptables-save
//              of the node namespace; portmap's shared CNI-HOSTPORT-* chains
//              are not per pod and not listed)
//   processes  processes whose command line names the scope's directory,
//              other than vmletd (QEMU, CNI plugins)
// Diff also reports every temporary file (`*.tmp`, images/tmp/ entries)
// of the later snapshot, new or not: none may outlive a call.
//
// Any thread; each call runs a few commands (virsh, ip, iptables-save).
#ifndef VMLET_TESTS_E2E_LEAK_CHECK_H_
#define VMLET_TESTS_E2E_LEAK_CHECK_H_

#include <set>
#include <string>
#include <vector>

namespace vmlet::e2e {

// Where to look; an empty field skips its part.
struct LeakScope {
  std::string dir;            // The test's directory (mounts, processes).
  std::string state_dir;      // vmletd's state_dir.
  std::string run_dir;        // vmletd's run_dir.
  std::string vm_instance;    // <state_dir>/vms: the instance in domain metadata.
  std::string pod_namespace;  // Domains whose name holds it belong to the test.
  std::string node_netns;     // Pinned namespace whose links and iptables to read.
  std::string ipam_dir;       // host-local's dataDir.
};

struct LeakSnapshot {
  std::set<std::string> domains;
  std::set<std::string> state;
  std::set<std::string> run;
  std::set<std::string> mounts;
  std::set<std::string> links;
  std::set<std::string> ipam;
  std::set<std::string> iptables;
  std::set<std::string> processes;
  // What could not be read (a failed command): a snapshot with errors
  // proves nothing, and Diff reports them.
  std::vector<std::string> errors;
};

LeakSnapshot TakeLeakSnapshot(const LeakScope& scope);

// One line per leak ("domain vmlet-ns-pod-1a2b3c4d", "state file
// vms/<id>/root.qcow2", ...): what `after` has and `before` had not, every
// temporary file of `after`, and the errors of both. Empty: nothing leaked.
std::vector<std::string> Diff(const LeakSnapshot& before, const LeakSnapshot& after);

// The lines of Diff joined for a test's failure message.
std::string FormatLeaks(const std::vector<std::string>& leaks);

}  // namespace vmlet::e2e

#endif  // VMLET_TESTS_E2E_LEAK_CHECK_H_
