// The cloud-init NoCloud seed of a VM pod: an ISO9660 image labelled
// "cidata" holding meta-data, user-data, network-config (network config
// version 2) and vendor-data, attached read-only to the VM. A guest running
// cloud-init takes its hostname, addresses, routes and DNS from it; the
// addresses come from CNI, DNS from the kubelet's dns_config.
//
// Every function here is pure or touches only the files it is given, so any
// thread may call them; callers serialise writes of the same seed path.
#ifndef VMLET_NETWORK_CLOUD_INIT_H_
#define VMLET_NETWORK_CLOUD_INIT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace vmlet::network {

struct SeedRoute {
  std::string destination;  // CIDR, "0.0.0.0/0" or "::/0" for default
  std::string gateway;      // An IP of the destination's family.
};

struct CloudInitSeed {
  std::string instance_id;  // meta-data instance-id (vmlet passes the sandbox id); required
  std::string hostname;     // meta-data local-hostname; optional
  // The NIC: when `mac` is empty there is no network-config file content
  // beyond `version: 2` with no ethernets (a pod without network), and
  // addresses, routes and mtu must be empty.
  std::string mac;                      // match.macaddress, lower case
  std::string interface_name = "eth0";  // set-name and the ethernets key
  // CIDR, IPv4 and IPv6: "10.99.0.5/24", "fd00::5/64". None: the NIC uses
  // DHCPv4 (dhcp4: true).
  std::vector<std::string> addresses;
  std::vector<SeedRoute> routes;            // includes the default routes; routes: [{to, via}]
  std::vector<std::string> dns_servers;     // nameservers.addresses
  std::vector<std::string> search_domains;  // nameservers.search
  // resolv.conf options ("ndots:5", "edns0"); only in vendor-data.
  std::vector<std::string> dns_options;
  int mtu = 0;            // mtu when > 0
  std::string user_data;  // verbatim; empty -> "#cloud-config\n{}\n"
  // From the pod's annotations or its VM spec:
  // meta-data public-keys, one authorized key each (single lines).
  std::vector<std::string> ssh_authorized_keys;
  // A network config (version 1 or 2) written verbatim instead of the one
  // generated from mac, addresses, routes, DNS and mtu.
  std::string network_config;
  // A YAML map whose keys are added to meta-data; instance-id,
  // local-hostname and public-keys stay vmlet's (a user key of that name is
  // left out).
  std::string meta_data;
};

// INVALID_ARGUMENT naming the field and value: empty instance_id, bad MAC,
// bad CIDR/IP, hostname that is not a DNS name (RFC 1123, <= 253), control
// characters anywhere (user_data, network_config and meta_data may hold
// tabs and line breaks), invalid UTF-8, user_data, network_config or
// meta_data over 64 KiB, an SSH key over 8 KiB, meta_data that is not a
// YAML map, total size of the four files over 256 KiB.
absl::Status ValidateCloudInitSeed(const CloudInitSeed& seed);

// The Render* functions expect a valid seed (see ValidateCloudInitSeed).
// meta-data: instance-id, local-hostname, public-keys, then meta_data's
// other keys.
std::string RenderMetaData(const CloudInitSeed& seed);
// network-config: network_config when given, else version: 2, ethernets:
// {<interface_name>: {...}}.
std::string RenderNetworkConfig(const CloudInitSeed& seed);
// A "#cloud-config" document: when dns_servers/search_domains/dns_options are
// given, manage_resolv_conf: true and resolv_conf: {nameservers,
// searchdomains, options: {opt: value|true}} ("ndots:5" -> ndots: 5,
// "edns0" -> edns0: true; a repeated option keeps its last value);
// hostname (its first label), fqdn (when it has dots) and
// preserve_hostname: false when hostname is set.
std::string RenderVendorData(const CloudInitSeed& seed);

// Validates, writes the ISO to `path` + ".tmp", fsyncs, renames it to `path`
// (mode 0644) and fsyncs the directory. On failure `path` is left as it was
// and the .tmp file is removed. Any thread; not concurrently for one path.
absl::Status WriteNoCloudSeed(const std::string& path, const CloudInitSeed& seed);

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_CLOUD_INIT_H_
