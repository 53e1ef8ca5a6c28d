#include "network/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/process.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/netns.h"

namespace vmlet::network {
namespace {

// Taps are made multi-queue, so that a VM may open one queue or several
// (a NIC with queue pairs). Taps made by a vmletd before that are
// single-queue and take only their own flags.
constexpr short kTapFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
constexpr short kSingleQueueTapFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

absl::Status CheckIfName(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("interface name \"", name, "\" is not valid: expected 1 to 15 characters"));
  }
  return absl::OkStatus();
}

ifreq Request(const std::string& name) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return ifr;
}

// Runs in the namespace: a socket for interface ioctls.
absl::StatusOr<int> ControlSocket() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "opening a socket for interface settings");
  return fd;
}

absl::StatusOr<LinkInfo> GetLink(const std::string& name) {
  VMLET_RETURN_IF_ERROR(CheckIfName(name));
  VMLET_ASSIGN_OR_RETURN(int fd, ControlSocket());
  ScopeGuard close_fd([fd] { ::close(fd); });
  LinkInfo info;
  ifreq ifr = Request(name);
  if (::ioctl(fd, SIOCGIFINDEX, &ifr) != 0) {
    if (errno == ENODEV) {
      return absl::NotFoundError(StrCat("network interface \"", name, "\" does not exist"));
    }
    return ErrnoToStatus(errno, StrCat("looking up interface \"", name, "\""));
  }
  info.index = ifr.ifr_ifindex;
  ifr = Request(name);
  if (::ioctl(fd, SIOCGIFMTU, &ifr) != 0) {
    return ErrnoToStatus(errno, StrCat("reading the MTU of \"", name, "\""));
  }
  info.mtu = ifr.ifr_mtu;
  ifr = Request(name);
  if (::ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
    return ErrnoToStatus(errno, StrCat("reading the MAC of \"", name, "\""));
  }
  const auto* mac = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  info.mac = fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2],
                         mac[3], mac[4], mac[5]);
  return info;
}

absl::StatusOr<int> AttachTap(const std::string& name) {
  VMLET_RETURN_IF_ERROR(CheckIfName(name));
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "opening /dev/net/tun");
  ScopeGuard close_fd([fd] { ::close(fd); });
  ifreq ifr = Request(name);
  ifr.ifr_flags = kTapFlags;
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    // EINVAL: the tap exists, single-queue.
    if (errno != EINVAL) return ErrnoToStatus(errno, StrCat("attaching to tap \"", name, "\""));
    ifr = Request(name);
    ifr.ifr_flags = kSingleQueueTapFlags;
    if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
      return ErrnoToStatus(errno, StrCat("attaching to tap \"", name, "\""));
    }
  }
  close_fd.Dismiss();
  return fd;
}

absl::Status SetUp(const std::string& name, int mtu) {
  VMLET_ASSIGN_OR_RETURN(int fd, ControlSocket());
  ScopeGuard close_fd([fd] { ::close(fd); });
  ifreq ifr = Request(name);
  ifr.ifr_mtu = mtu;
  if (::ioctl(fd, SIOCSIFMTU, &ifr) != 0) {
    return ErrnoToStatus(errno, StrCat("setting the MTU of \"", name, "\" to ", mtu));
  }
  ifr = Request(name);
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    return ErrnoToStatus(errno, StrCat("reading flags of \"", name, "\""));
  }
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
    return ErrnoToStatus(errno, StrCat("bringing \"", name, "\" up"));
  }
  return absl::OkStatus();
}

// Ingress of `from` (frames arriving on it) goes out of `to`, at filter
// priority 2 (priority 1 is for exceptions).
absl::Status Redirect(const std::string& from, const std::string& to) {
  // A re-run after an interrupted setup starts from a clean ingress qdisc.
  (void)RunProcess({"tc", "qdisc", "del", "dev", from, "ingress"});
  VMLET_RETURN_IF_ERROR(RunProcessOk({"tc", "qdisc", "add", "dev", from, "ingress"}));
  return RunProcessOk({"tc",     "filter",   "add", "dev",      from,     "parent",
                       "ffff:",  "prio",     "2",   "protocol", "all",    "u32",
                       "match",  "u32",      "0",   "0",        "action", "mirred",
                       "egress", "redirect", "dev", to});
}

}  // namespace

absl::StatusOr<LinkInfo> GetLinkInNetns(const std::string& netns_path, const std::string& name) {
  LinkInfo info;
  VMLET_RETURN_IF_ERROR(RunInNetns(netns_path, [&]() -> absl::Status {
    VMLET_ASSIGN_OR_RETURN(info, GetLink(name));
    return absl::OkStatus();
  }));
  return info;
}

absl::Status WireTapInNetns(const std::string& netns_path, const std::string& cni_ifname,
                            const std::string& tap) {
  return RunInNetns(netns_path, [&]() -> absl::Status {
    VMLET_ASSIGN_OR_RETURN(LinkInfo cni, GetLink(cni_ifname));
    {
      VMLET_ASSIGN_OR_RETURN(int fd, AttachTap(tap));
      ScopeGuard close_fd([fd] { ::close(fd); });
      if (::ioctl(fd, TUNSETPERSIST, 1) != 0) {
        return ErrnoToStatus(errno, StrCat("making tap \"", tap, "\" persistent"));
      }
    }
    VMLET_RETURN_IF_ERROR(SetUp(tap, cni.mtu));
    // The CNI interface keeps its addresses: plugins read them back at DEL
    // (the bridge plugin finds its masquerade rules by them). They answer
    // for nothing here: tc takes every frame that arrives on it before the
    // namespace's stack could see it, so the VM alone owns the pod's IP.
    VMLET_RETURN_IF_ERROR(Redirect(cni_ifname, tap));
    VMLET_RETURN_IF_ERROR(Redirect(tap, cni_ifname));
    // DHCP from the VM stays here: a filter that matches without an
    // action ends classification, so the frame is not redirected. (No
    // "drop" action: gact is not in every kernel; the namespace has no
    // address and no socket bound to port 67, and vmletd's packet socket
    // has seen the frame already.) Assumes an IPv4 header without options,
    // as DHCP clients send.
    return RunProcessOk({"tc",    "filter", "add",      "dev",      tap,      "parent",
                         "ffff:", "prio",   "1",        "protocol", "ip",     "u32",
                         "match", "ip",     "protocol", "17",       "0xff",   "match",
                         "ip",    "dport",  "67",       "0xffff",   "flowid", "ffff:1"});
  });
}

absl::Status DeleteTapInNetns(const std::string& netns_path, const std::string& tap) {
  if (!IsNetns(netns_path)) return absl::OkStatus();
  return RunInNetns(netns_path, [&]() -> absl::Status {
    if (absl::StatusOr<LinkInfo> link = GetLink(tap); absl::IsNotFound(link.status())) {
      return absl::OkStatus();
    }
    VMLET_ASSIGN_OR_RETURN(int fd, AttachTap(tap));
    ScopeGuard close_fd([fd] { ::close(fd); });
    if (::ioctl(fd, TUNSETPERSIST, 0) != 0) {
      return ErrnoToStatus(errno, StrCat("deleting tap \"", tap, "\""));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<int>> OpenTapQueuesInNetns(const std::string& netns_path,
                                                      const std::string& tap, int queues) {
  if (queues < 1) {
    return absl::InvalidArgumentError(
        StrCat("opening tap \"", tap, "\" with ", queues, " queues: expected at least 1"));
  }
  std::vector<int> fds;
  ScopeGuard close_fds([&fds] {
    for (int fd : fds) ::close(fd);
  });
  VMLET_RETURN_IF_ERROR(RunInNetns(netns_path, [&]() -> absl::Status {
    VMLET_RETURN_IF_ERROR(GetLink(tap).status());
    for (int queue = 0; queue < queues; ++queue) {
      absl::StatusOr<int> fd = AttachTap(tap);
      if (!fd.ok() && queue > 0) {
        return absl::FailedPreconditionError(
            StrCat("opening queue ", queue + 1, " of ", queues, " of tap \"", tap,
                   "\": the tap takes one queue only (", fd.status().message(),
                   "); a pod made before vmlet had multiqueue taps needs a new sandbox"));
      }
      VMLET_RETURN_IF_ERROR(fd.status());
      fds.push_back(*fd);
    }
    return absl::OkStatus();
  }));
  close_fds.Dismiss();
  return fds;
}

absl::StatusOr<int> OpenTapInNetns(const std::string& netns_path, const std::string& tap) {
  VMLET_ASSIGN_OR_RETURN(std::vector<int> fds, OpenTapQueuesInNetns(netns_path, tap, 1));
  return fds.front();
}

}  // namespace vmlet::network
