#include "cri/sandbox_network.h"

#include <charconv>
#include <cstdint>
#include <limits>

#include "base/str_util.h"

namespace vmlet::cri {
namespace {

// Kubernetes' traffic shaping annotations, in bits per second.
constexpr char kIngressBandwidth[] = "kubernetes.io/ingress-bandwidth";
constexpr char kEgressBandwidth[] = "kubernetes.io/egress-bandwidth";

// A Kubernetes quantity without fractions: "10M", "1Gi", "500k", "100000".
absl::StatusOr<int64_t> ParseBitRate(std::string_view key, std::string_view value) {
  int64_t number = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
  std::string_view suffix(end, static_cast<size_t>(value.data() + value.size() - end));
  int64_t multiplier = 0;
  static constexpr std::pair<std::string_view, int64_t> kSuffixes[] = {
      {"", 1},
      {"k", 1000},
      {"M", 1000 * 1000},
      {"G", int64_t{1000} * 1000 * 1000},
      {"T", int64_t{1000} * 1000 * 1000 * 1000},
      {"Ki", 1024},
      {"Mi", 1024 * 1024},
      {"Gi", int64_t{1024} * 1024 * 1024},
      {"Ti", int64_t{1024} * 1024 * 1024 * 1024},
  };
  for (const auto& [name, factor] : kSuffixes) {
    if (suffix == name) multiplier = factor;
  }
  if (error != std::errc() || end == value.data() || number <= 0 || multiplier == 0 ||
      number > std::numeric_limits<int64_t>::max() / multiplier) {
    return absl::InvalidArgumentError(
        StrCat("config.annotations[\"", key, "\"] \"", value,
               "\" is not a bandwidth: expected a positive whole quantity of bits per second, "
               "like \"10M\" or \"1Gi\""));
  }
  return number * multiplier;
}

network::CniDns DnsOf(const v1::DNSConfig& dns) {
  return network::CniDns{
      .servers = {dns.servers().begin(), dns.servers().end()},
      .searches = {dns.searches().begin(), dns.searches().end()},
      .options = {dns.options().begin(), dns.options().end()},
  };
}

std::string ProtocolName(v1::Protocol protocol) {
  switch (protocol) {
    case v1::UDP:
      return "udp";
    case v1::SCTP:
      return "sctp";
    default:
      return "tcp";
  }
}

}  // namespace

absl::StatusOr<network::PodNetworkConfig> PodNetworkConfigOf(const SandboxRecord& record) {
  const v1::PodSandboxConfig& config = record.config();
  network::PodNetworkConfig out{
      .sandbox_id = record.id(),
      .pod_namespace = config.metadata().namespace_(),
      .pod_name = config.metadata().name(),
      .pod_uid = config.metadata().uid(),
      .hostname = config.hostname(),
      .port_mappings = {},
      .dns = DnsOf(config.dns_config()),
      .bandwidth = std::nullopt,
  };
  for (const v1::PortMapping& mapping : config.port_mappings()) {
    if (mapping.host_port() <= 0) continue;  // Only published ports need CNI.
    out.port_mappings.push_back(network::CniPortMapping{
        .host_port = mapping.host_port(),
        .container_port = mapping.container_port(),
        .protocol = ProtocolName(mapping.protocol()),
        .host_ip = mapping.host_ip(),
    });
  }
  for (const char* key : {kIngressBandwidth, kEgressBandwidth}) {
    auto it = config.annotations().find(key);
    if (it == config.annotations().end()) continue;
    VMLET_ASSIGN_OR_RETURN(int64_t rate, ParseBitRate(key, it->second));
    if (!out.bandwidth) out.bandwidth.emplace();
    // As containerd does: the burst is not limited.
    const int64_t burst = std::numeric_limits<int32_t>::max();
    if (key == kIngressBandwidth) {
      out.bandwidth->ingress_rate = rate;
      out.bandwidth->ingress_burst = burst;
    } else {
      out.bandwidth->egress_rate = rate;
      out.bandwidth->egress_burst = burst;
    }
  }
  return out;
}

network::PodNetworkState PodNetworkStateOf(const SandboxRecord& record) {
  const state::v1::SandboxNetwork& net = record.network();
  return network::PodNetworkState{
      .netns_path = net.netns_path(),
      .cni_config = net.cni_config(),
      .cni_result = net.cni_result(),
      .ips = {net.ips().begin(), net.ips().end()},
      .mac = net.mac(),
      .tap = net.tap(),
  };
}

void SetPodNetworkState(const network::PodNetworkState& state, SandboxRecord* record) {
  state::v1::SandboxNetwork* net = record->mutable_network();
  net->set_netns_path(state.netns_path);
  net->set_cni_config(state.cni_config);
  net->set_cni_result(state.cni_result);
  net->mutable_ips()->Assign(state.ips.begin(), state.ips.end());
  net->set_mac(state.mac);
  net->set_tap(state.tap);
}

}  // namespace vmlet::cri
