#include "network/pod_network.h"

#include <utility>

#include "base/fault_point.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/netns.h"
#include "network/tap.h"

namespace vmlet::network {
namespace {

constexpr Logger kLog("network");

// The interface CNI creates in the pod's namespace, and the VM's tap there.
constexpr char kCniInterface[] = "eth0";
constexpr char kVmTap[] = "tap0";

std::string Cidr(const CniIp& ip) { return StrCat(ip.address, "/", ip.prefix_length); }

bool IsDefaultRoute(const CniRoute& route) {
  return route.destination == "0.0.0.0/0" || route.destination == "::/0";
}

// The MAC CNI reports for its interface in the sandbox, if any.
std::string CniMac(const CniResult& result) {
  for (const CniInterface& iface : result.interfaces) {
    if (iface.name == kCniInterface && !iface.sandbox.empty() && !iface.mac.empty()) {
      return iface.mac;
    }
  }
  return "";
}

}  // namespace

PodNetwork::PodNetwork(PodNetworkOptions options)
    : options_(std::move(options)), cni_(options_.cni_bin_dirs, options_.cni_timeout) {}

absl::Status PodNetwork::Ready() const {
  if (options_.mode == "none") return absl::OkStatus();
  return LoadCniConfig(options_.cni_conf_dir).status();
}

CniRuntime PodNetwork::Runtime(const PodNetworkConfig& config, const PodNetworkState& state) const {
  CniRuntime runtime;
  runtime.container_id = config.sandbox_id;
  runtime.netns_path = state.netns_path;
  runtime.ifname = kCniInterface;
  runtime.pod_namespace = config.pod_namespace;
  runtime.pod_name = config.pod_name;
  runtime.pod_uid = config.pod_uid;
  runtime.port_mappings = config.port_mappings;
  if (!config.dns.servers.empty() || !config.dns.searches.empty() || !config.dns.options.empty()) {
    runtime.dns = config.dns;
  }
  runtime.bandwidth = config.bandwidth;
  return runtime;
}

absl::Status PodNetwork::Setup(
    const PodNetworkConfig& config, PodNetworkState* state,
    const std::function<absl::Status(const PodNetworkState&)>& checkpoint) {
  ScopeGuard undo([&] {
    if (absl::Status status = Teardown(config, state); !status.ok()) {
      kLog.Warning("undoing the network of sandbox {}: {}", config.sandbox_id, status.ToString());
    }
  });
  // Fails before anything exists when there is no configuration.
  std::optional<CniConfig> cni;
  if (options_.mode != "none") {
    VMLET_ASSIGN_OR_RETURN(cni, LoadCniConfig(options_.cni_conf_dir));
  }

  state->netns_path = StrCat(options_.netns_dir, "/", config.sandbox_id);
  VMLET_RETURN_IF_ERROR(checkpoint(*state));
  VMLET_FAULT_POINT("network.setup.after_netns_intent");
  VMLET_RETURN_IF_ERROR(
      Annotate(CreateNetns(state->netns_path),
               StrCat("creating the network namespace of sandbox \"", config.sandbox_id, "\"")));
  VMLET_FAULT_POINT("network.setup.after_netns");
  if (!cni) {
    undo.Dismiss();
    return absl::OkStatus();
  }

  // Recorded before ADD: an ADD cut short by a crash is still deleted.
  state->cni_config = cni->json;
  VMLET_RETURN_IF_ERROR(checkpoint(*state));
  VMLET_FAULT_POINT("network.setup.before_cni_add");
  VMLET_ASSIGN_OR_RETURN(CniResult result, cni_.Add(*cni, Runtime(config, *state)));
  VMLET_FAULT_POINT("network.setup.after_cni_add");
  state->cni_result = result.json;
  state->ips.clear();
  // IPv4 first: the kubelet takes the first address as the pod IP.
  for (bool v6 : {false, true}) {
    for (const CniIp& ip : result.ips) {
      if (ip.ipv6 == v6) state->ips.push_back(ip.address);
    }
  }
  if (state->ips.empty()) {
    return absl::FailedPreconditionError(
        StrCat("CNI network \"", cni->name, "\" gave sandbox \"", config.sandbox_id,
               "\" no IP address: expected at least one in the ADD result"));
  }
  VMLET_ASSIGN_OR_RETURN(LinkInfo link, GetLinkInNetns(state->netns_path, kCniInterface));
  state->mac = CniMac(result);
  if (state->mac.empty()) state->mac = link.mac;
  state->tap = kVmTap;
  VMLET_RETURN_IF_ERROR(checkpoint(*state));
  VMLET_FAULT_POINT("network.setup.after_tap_intent");
  VMLET_RETURN_IF_ERROR(
      Annotate(WireTapInNetns(state->netns_path, kCniInterface, state->tap),
               StrCat("wiring the VM tap of sandbox \"", config.sandbox_id, "\"")));
  VMLET_FAULT_POINT("network.setup.after_tap");
  VMLET_RETURN_IF_ERROR(Restore(config, *state));
  VMLET_FAULT_POINT("network.setup.after_dhcp");
  undo.Dismiss();
  kLog.Info("sandbox {}: network \"{}\" gave {} (MAC {})", config.sandbox_id, cni->name,
            fmt::join(state->ips, ", "), state->mac);
  return absl::OkStatus();
}

absl::Status PodNetwork::Restore(const PodNetworkConfig& config, const PodNetworkState& state) {
  if (state.netns_path.empty()) return absl::OkStatus();
  if (!IsNetns(state.netns_path)) {
    return absl::FailedPreconditionError(StrCat(
        "the network namespace \"", state.netns_path, "\" of sandbox \"", config.sandbox_id,
        "\" is gone (the node restarted?): expected it to exist while the sandbox is ready"));
  }
  if (state.tap.empty()) return absl::OkStatus();
  absl::StatusOr<DhcpLease> lease = Lease(config, state);
  if (absl::IsInvalidArgument(lease.status())) {
    // An IPv6-only pod: the guest gets its addresses from the seed only.
    kLog.Info("sandbox {}: no DHCP: {}", config.sandbox_id, lease.status().message());
    return absl::OkStatus();
  }
  VMLET_RETURN_IF_ERROR(lease.status());
  return Annotate(dhcp_.Serve(config.sandbox_id, state.netns_path, state.tap, *lease),
                  StrCat("serving DHCP to sandbox \"", config.sandbox_id, "\""));
}

absl::Status PodNetwork::Teardown(const PodNetworkConfig& config, PodNetworkState* state) {
  dhcp_.Stop(config.sandbox_id);
  if (!state->tap.empty()) {
    VMLET_RETURN_IF_ERROR(
        Annotate(DeleteTapInNetns(state->netns_path, state->tap),
                 StrCat("removing the VM tap of sandbox \"", config.sandbox_id, "\"")));
    VMLET_FAULT_POINT("network.teardown.after_tap");
    state->tap.clear();
  }
  if (!state->cni_config.empty()) {
    VMLET_ASSIGN_OR_RETURN(CniConfig cni,
                           ParseCniConfig(state->cni_config, "the recorded network configuration",
                                          /*single_plugin=*/false));
    std::optional<CniResult> previous;
    if (!state->cni_result.empty()) {
      if (absl::StatusOr<CniResult> parsed = ParseCniResult(state->cni_result); parsed.ok()) {
        previous = *std::move(parsed);
      }
    }
    // The namespace may be gone already (a node reboot): plugins are asked
    // to release what they hold anyway, without it, as the spec says.
    CniRuntime runtime = Runtime(config, *state);
    if (!IsNetns(state->netns_path)) runtime.netns_path.clear();
    VMLET_RETURN_IF_ERROR(cni_.Del(cni, runtime, previous ? &*previous : nullptr));
    VMLET_FAULT_POINT("network.teardown.after_cni_del");
    state->cni_config.clear();
    state->cni_result.clear();
  }
  if (!state->netns_path.empty()) {
    VMLET_RETURN_IF_ERROR(RemoveNetns(state->netns_path));
    VMLET_FAULT_POINT("network.teardown.after_netns");
    state->netns_path.clear();
  }
  state->mac.clear();
  return absl::OkStatus();
}

absl::StatusOr<DhcpLease> PodNetwork::Lease(const PodNetworkConfig& config,
                                            const PodNetworkState& state) {
  VMLET_ASSIGN_OR_RETURN(CniResult result, ParseCniResult(state.cni_result));
  DhcpLease lease;
  lease.client_mac = state.mac;
  for (const CniIp& ip : result.ips) {
    if (ip.ipv6) continue;
    lease.address = ip.address;
    lease.prefix_length = ip.prefix_length;
    lease.gateway = ip.gateway;
    break;
  }
  if (lease.address.empty()) {
    return absl::InvalidArgumentError(
        StrCat("sandbox \"", config.sandbox_id, "\" has no IPv4 address to lease"));
  }
  for (const CniRoute& route : result.routes) {
    if (route.destination.find(':') != std::string::npos) continue;
    if (IsDefaultRoute(route)) {
      if (lease.gateway.empty()) lease.gateway = route.gateway;
      continue;
    }
    lease.routes.push_back(
        DhcpRoute{.destination = route.destination,
                  .gateway = route.gateway.empty() ? lease.gateway : route.gateway});
  }
  // The kubelet's dns_config wins; CNI's DNS is the fallback.
  const CniDns& dns = config.dns.servers.empty() ? result.dns : config.dns;
  lease.dns_servers = dns.servers;
  lease.search_domains = config.dns.searches.empty() ? result.dns.searches : config.dns.searches;
  lease.dns_options = config.dns.options.empty() ? result.dns.options : config.dns.options;
  lease.hostname = config.hostname;
  if (!state.netns_path.empty() && IsNetns(state.netns_path) && !state.tap.empty()) {
    if (absl::StatusOr<LinkInfo> tap = GetLinkInNetns(state.netns_path, state.tap); tap.ok()) {
      lease.mtu = tap->mtu;
    }
  }
  return lease;
}

CloudInitSeed PodNetwork::Seed(const PodNetworkConfig& config, const PodNetworkState& state) {
  CloudInitSeed seed;
  seed.instance_id = config.sandbox_id;
  seed.hostname = config.hostname;
  seed.dns_servers = config.dns.servers;
  seed.search_domains = config.dns.searches;
  seed.dns_options = config.dns.options;
  if (state.tap.empty() || state.mac.empty()) return seed;
  absl::StatusOr<CniResult> result = ParseCniResult(state.cni_result);
  if (!result.ok()) return seed;
  seed.mac = state.mac;
  seed.interface_name = kCniInterface;
  for (const CniIp& ip : result->ips) {
    seed.addresses.push_back(Cidr(ip));
    if (!ip.gateway.empty()) {
      seed.routes.push_back(
          SeedRoute{.destination = ip.ipv6 ? "::/0" : "0.0.0.0/0", .gateway = ip.gateway});
    }
  }
  for (const CniRoute& route : result->routes) {
    if (route.gateway.empty()) continue;
    bool duplicate = false;
    for (const SeedRoute& known : seed.routes) {
      duplicate |= known.destination == route.destination;
    }
    if (!duplicate) {
      seed.routes.push_back(SeedRoute{.destination = route.destination, .gateway = route.gateway});
    }
  }
  if (seed.dns_servers.empty()) seed.dns_servers = result->dns.servers;
  if (seed.search_domains.empty()) seed.search_domains = result->dns.searches;
  return seed;
}

}  // namespace vmlet::network
