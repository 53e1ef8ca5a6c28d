// End-to-end tests of pod networking with the real parts: vmletd with the
// libvirt driver booting the test guest under TCG, Debian's CNI plugins
// (bridge + host-local + portmap) and iptables.
//
// Everything network-side happens in namespaces this test makes and removes:
//
//   "node" namespace (vmletd runs here, through nsenter)
//     bridge vmlet-e2e0 10.250.9.1/24 (made by the bridge plugin as gateway)
//       |-- veth -> pod namespace eth0 (CNI) -- tc -- tap0 -- the VM, 10.250.9.x
//       '-- cbr0 -> "client" namespace eth0 10.250.9.250/24 (same bridge)
//     crt0 10.251.0.1/30 -> "client" namespace eth1 10.251.0.2/30 (routed;
//                           the node's hostPorts are reached here)
//
// QEMU runs under libvirtd in the host's namespace; it gets the tap as an
// open descriptor. Skipped (exit 77) without root, libvirtd, QEMU, the
// plugins or the guest's packages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/netns.h"
#include "streaming/client.h"
#include "tests/e2e/test_guest.h"
#include "tests/e2e/vmletd_process.h"
#include "vmlet/vmspec/v1/vmspec.grpc.pb.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kUri = kLibvirtUri;
constexpr char kNsenter[] = "/usr/bin/nsenter";
constexpr char kPluginDir[] = "/usr/lib/cni";
constexpr char kImage[] = "vmlet.test/guest:net";

constexpr char kBridge[] = "vmlet-e2e0";
constexpr char kGateway[] = "10.250.9.1";
constexpr char kNodeRoutedIp[] = "10.251.0.1";
constexpr int kHostPort = 18080;

// Runs `argv` inside the namespace pinned at `netns`; its output, or a
// message starting with "FAILED" when it did not exit 0.
std::string In(const std::string& netns, std::vector<std::string> argv,
               absl::Duration timeout = absl::Seconds(20)) {
  argv.insert(argv.begin(), {kNsenter, "--net=" + netns, "--"});
  absl::StatusOr<ExitStatus> result = RunCommand(argv, timeout);
  if (!result.ok()) return StrCat("FAILED: ", result.status().message());
  if (result->code != 0) return StrCat("FAILED (exit ", result->code, "): ", result->output);
  return result->output;
}

// An HTTP/1.0 GET of "/" at `ip`:`port` from a thread in `netns`: the
// body, or a message starting with "FAILED".
std::string HttpGet(const std::string& netns, const std::string& ip, int port) {
  std::string response;
  absl::Status done = network::RunInNetns(netns, [&]() -> absl::Status {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, "socket");
    ScopeGuard close_fd([fd] { ::close(fd); });
    timeval timeout{.tv_sec = 5, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &address.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return ErrnoToStatus(errno, StrCat("connecting to ", ip, ":", port));
    }
    const std::string request = StrCat("GET / HTTP/1.0\r\nHost: ", ip, "\r\n\r\n");
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
      return ErrnoToStatus(errno, "sending the request");
    }
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n < 0) return ErrnoToStatus(errno, "reading the response");
      if (n == 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
    return absl::OkStatus();
  });
  if (!done.ok()) return StrCat("FAILED: ", done.message());
  const size_t body = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.") || body == std::string::npos) {
    return StrCat("FAILED: not an HTTP response: ", response);
  }
  return response.substr(body + 4);
}

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace_ = StrCat("net-", GenerateId().substr(0, 8));
    std::string yaml =
        StrCat("vm_driver: libvirt\nlibvirt_uri: ", kUri, "\naccelerator: tcg\npod_network: cni\n",
               "stats_interval_seconds: 1\n", "local_images:\n  \"", kImage, "\": ", GuestDir(),
               "/layouts/net\n");
    vmletd_ = std::make_unique<VmletdProcess>(
        yaml + "cni:\n  conf_dir: CONF\n  bin_dirs: [BIN, " + kPluginDir + "]\n",
        /*fake_driver=*/false);
    ASSERT_TRUE(vmletd_->init_status().ok()) << vmletd_->init_status();
    dir_ = vmletd_->dir();
    ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);  // QEMU reaches the VM's files.
    // The config names CONF and BIN: now that the directory exists, say where.
    std::string config = ReadAll(vmletd_->config_path());
    config.replace(config.find("CONF"), 4, conf_dir());
    config.replace(config.find("BIN"), 3, bin_dir());
    ASSERT_TRUE(WriteFileAtomically(vmletd_->config_path(), config).ok());
    ASSERT_TRUE(MakeDirs(conf_dir(), 0755).ok());
    ASSERT_TRUE(MakeDirs(bin_dir(), 0755).ok());
    ASSERT_TRUE(MakeDirs(dir_ + "/ipam", 0755).ok());
    ASSERT_TRUE(
        WriteFileAtomically(StrCat(conf_dir(), "/10-vmlet-e2e.conflist"), NetworkConfig(), 0644)
            .ok());
    MakeNamespaces();
    vmletd_->set_netns(node_);
    absl::Status started = vmletd_->Start();
    ASSERT_TRUE(started.ok()) << started << "\n" << vmletd_->Log();
  }

  void TearDown() override {
    if (vmletd_) {
      absl::Status removed = vmletd_->RemovePodSandboxes(sandboxes_);
      EXPECT_TRUE(removed.ok()) << removed;
    }
    // Never leave a domain behind, even when the test failed.
    std::istringstream lines(Virsh({"list", "--all", "--name"}));
    for (std::string name; std::getline(lines, name);) {
      if (name.find(namespace_) == std::string::npos) continue;
      ADD_FAILURE() << "domain " << name << " is left";
      Virsh({"destroy", name});
      Virsh({"undefine", name});
    }
    if (HasFailure() && vmletd_) std::fprintf(stderr, "vmletd log:\n%s\n", vmletd_->Log().c_str());
    // The test's own namespaces take the bridge, the veths and the
    // iptables rules with them; vmletd_'s destructor unpins what vmletd
    // left in run_dir.
    if (!client_.empty()) (void)network::RemoveNetns(client_);
    if (!node_.empty()) (void)network::RemoveNetns(node_);
    vmletd_.reset();
  }

  std::string conf_dir() const { return dir_ + "/net.d"; }
  std::string bin_dir() const { return dir_ + "/cni-bin"; }

  std::string NetworkConfig() const {
    return StrCat(R"({"cniVersion": "1.0.0", "name": "vmlet-e2e", "plugins": [
  {"type": "bridge", "bridge": ")",
                  kBridge, R"(", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "dataDir": ")",
                  dir_, R"(/ipam",
            "ranges": [[{"subnet": "10.250.9.0/24", "rangeStart": "10.250.9.10",
                         "rangeEnd": "10.250.9.200", "gateway": ")",
                  kGateway, R"("}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
]})");
  }

  void MakeNamespaces() {
    node_ = dir_ + "/node.netns";
    client_ = dir_ + "/client.netns";
    ASSERT_TRUE(network::CreateNetns(node_).ok());
    ASSERT_TRUE(network::CreateNetns(client_).ok());
    for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
             {"ip", "link", "add", kBridge, "type", "bridge"},
             {"ip", "link", "set", kBridge, "up"},
             {"sysctl", "-qw", "net.ipv4.ip_forward=1"},
             {"ip", "link", "add", "cbr0", "type", "veth", "peer", "name", "eth0", "netns",
              client_},
             {"ip", "link", "set", "cbr0", "master", kBridge, "up"},
             {"ip", "link", "add", "crt0", "type", "veth", "peer", "name", "eth1", "netns",
              client_},
             {"ip", "address", "add", StrCat(kNodeRoutedIp, "/30"), "dev", "crt0"},
             {"ip", "link", "set", "crt0", "up"},
         }) {
      ASSERT_THAT(In(node_, step), Not(HasSubstr("FAILED")));
    }
    for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
             {"ip", "address", "add", "10.250.9.250/24", "dev", "eth0"},
             {"ip", "link", "set", "eth0", "up"},
             {"ip", "address", "add", "10.251.0.2/30", "dev", "eth1"},
             {"ip", "link", "set", "eth1", "up"},
             {"ip", "route", "add", "default", "via", kNodeRoutedIp},
         }) {
      ASSERT_THAT(In(client_, step), Not(HasSubstr("FAILED")));
    }
  }

  v1::PodSandboxConfig PodConfig(const std::string& name) {
    v1::PodSandboxConfig config;
    config.mutable_metadata()->set_name(name);
    config.mutable_metadata()->set_namespace_(namespace_);
    config.mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    config.set_hostname(name);
    config.set_log_directory(StrCat(dir_, "/logs/", name));
    config.mutable_dns_config()->add_servers("10.250.9.53");
    config.mutable_dns_config()->add_searches(StrCat(namespace_, ".svc.cluster.local"));
    config.mutable_dns_config()->add_searches("cluster.local");
    config.mutable_dns_config()->add_options("ndots:5");
    v1::PortMapping* port = config.add_port_mappings();
    port->set_protocol(v1::TCP);
    port->set_container_port(80);
    port->set_host_port(kHostPort);
    return config;
  }

  grpc::Status RunPod(const v1::PodSandboxConfig& config, std::string* id) {
    grpc::ClientContext context;
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    v1::RunPodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&context, request, &response);
    if (status.ok()) {
      sandboxes_.push_back(response.pod_sandbox_id());
      *id = response.pod_sandbox_id();
    }
    return status;
  }

  v1::PodSandboxStatus SandboxStatus(const std::string& id) {
    grpc::ClientContext context;
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    v1::PodSandboxStatusResponse response;
    grpc::Status status = vmletd_->runtime().PodSandboxStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  v1::RuntimeCondition NetworkCondition() {
    grpc::ClientContext context;
    v1::StatusResponse response;
    grpc::Status status = vmletd_->runtime().Status(&context, v1::StatusRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const v1::RuntimeCondition& condition : response.status().conditions()) {
      if (condition.type() == "NetworkReady") return condition;
    }
    ADD_FAILURE() << "no NetworkReady condition";
    return {};
  }

  grpc::Status StopPod(const std::string& id) {
    grpc::ClientContext context;
    v1::StopPodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse response;
    return vmletd_->runtime().StopPodSandbox(&context, request, &response);
  }

  grpc::Status RemovePod(const std::string& id) {
    grpc::ClientContext context;
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse response;
    return vmletd_->runtime().RemovePodSandbox(&context, request, &response);
  }

  // Asserts that nothing of any pod is left: no namespace in run_dir, no
  // veth on the node besides the test's own, no lease, no port mapping.
  void ExpectNothingLeft(const std::string& sandbox_id) {
    absl::StatusOr<std::vector<std::string>> netns = ListDirectory(dir_ + "/run/netns");
    ASSERT_TRUE(netns.ok()) << netns.status();
    EXPECT_THAT(*netns, ::testing::IsEmpty()) << "a pod network namespace is left";
    std::string links = In(node_, {"ip", "-o", "link", "show"});
    EXPECT_THAT(links, Not(HasSubstr("FAILED")));
    EXPECT_THAT(links, Not(HasSubstr("veth"))) << "a pod's veth is left:\n" << links;
    absl::StatusOr<std::vector<std::string>> leases = ListDirectory(dir_ + "/ipam/vmlet-e2e");
    if (leases.ok()) {
      for (const std::string& name : *leases) {
        EXPECT_THAT(name, Not(::testing::StartsWith("10.250.9."))) << "a lease is left";
      }
    }
    std::string rules = In(node_, {"iptables-save", "-t", "nat"});
    EXPECT_THAT(rules, Not(HasSubstr("FAILED")));
    EXPECT_THAT(rules, Not(HasSubstr("CNI-DN-"))) << "a port mapping is left:\n" << rules;
    if (!sandbox_id.empty()) {
      EXPECT_THAT(rules, Not(HasSubstr(sandbox_id)));
    }
  }

  // Port-forward through vmletd's streaming server. It listens on the
  // loopback of the node namespace, where vmletd runs: the client connects
  // from a thread in there (its sockets stay in that namespace).
  void ExpectPortForwardWorks(const std::string& id, const std::string& pod) {
    for (streaming::WireProtocol wire :
         {streaming::WireProtocol::kSpdy, streaming::WireProtocol::kWebSocket}) {
      grpc::ClientContext context;
      v1::PortForwardRequest request;
      request.set_pod_sandbox_id(id);
      request.add_port(80);
      v1::PortForwardResponse response;
      grpc::Status status = vmletd_->runtime().PortForward(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      std::unique_ptr<streaming::PortForwardSession> session;
      absl::Status connected = network::RunInNetns(node_, [&]() -> absl::Status {
        VMLET_ASSIGN_OR_RETURN(session, streaming::ConnectPortForward(
                                            response.url(), {.wire = wire, .ports = {80, 7}}));
        return absl::OkStatus();
      });
      ASSERT_TRUE(connected.ok()) << connected;
      absl::StatusOr<streaming::PortForwardSession::Connection> web = session->Open(80);
      absl::StatusOr<streaming::PortForwardSession::Connection> echo = session->Open(7);
      ASSERT_TRUE(web.ok()) << web.status();
      ASSERT_TRUE(echo.ok()) << echo.status();
      // Both are open at once; each gets its own answer.
      ASSERT_TRUE(echo->data->Write("ping over port-forward\n").ok());
      ASSERT_TRUE(web->data->Write("GET / HTTP/1.0\r\nHost: pod\r\n\r\n").ok());
      std::string echoed;
      while (echoed.find('\n') == std::string::npos) {
        absl::StatusOr<std::string> chunk = echo->data->Read();
        ASSERT_TRUE(chunk.ok() && !chunk->empty()) << echoed;
        echoed += *chunk;
      }
      EXPECT_EQ(echoed, "ping over port-forward\n");
      std::string page;
      while (page.find(StrCat("vmlet guest ", pod, "\n")) == std::string::npos) {
        absl::StatusOr<std::string> chunk = web->data->Read();
        ASSERT_TRUE(chunk.ok() && !chunk->empty()) << page;
        page += *chunk;
      }
      EXPECT_THAT(page, ::testing::StartsWith("HTTP/1."));
      if (wire == streaming::WireProtocol::kSpdy) {
        // A port nothing listens on: the error stream says so.
        absl::StatusOr<streaming::PortForwardSession::Connection> closed = session->Open(9);
        ASSERT_TRUE(closed.ok()) << closed.status();
        EXPECT_THAT(streaming::ReadAll(*closed->error).value_or(""),
                    HasSubstr("error forwarding port 9"));
      }
      session->Close();
    }
  }

  // After traffic to the pod: its stats show it on eth0 (the interface of
  // its namespace that tc joins to the VM's tap), and so do its metrics.
  void ExpectNetworkFigures(const std::string& id) {
    v1::PodSandboxStats stats;
    ASSERT_TRUE(WaitFor(
        [&] {
          grpc::ClientContext context;
          v1::PodSandboxStatsRequest request;
          request.set_pod_sandbox_id(id);
          v1::PodSandboxStatsResponse response;
          if (!vmletd_->runtime().PodSandboxStats(&context, request, &response).ok()) return false;
          stats = response.stats();
          const v1::NetworkInterfaceUsage& eth0 = stats.linux().network().default_interface();
          return eth0.rx_bytes().value() > 0 && eth0.tx_bytes().value() > 0;
        },
        absl::Seconds(30)))
        << "no traffic in the pod's network figures:\n"
        << stats.DebugString();
    const v1::NetworkUsage& network = stats.linux().network();
    EXPECT_EQ(network.default_interface().name(), "eth0");
    EXPECT_GT(network.timestamp(), 0);
    ASSERT_GE(network.interfaces_size(), 1);
    for (const v1::NetworkInterfaceUsage& interface : network.interfaces()) {
      EXPECT_NE(interface.name(), "lo");
    }

    grpc::ClientContext context;
    v1::ListPodSandboxMetricsResponse metrics;
    grpc::Status listed = vmletd_->runtime().ListPodSandboxMetrics(
        &context, v1::ListPodSandboxMetricsRequest(), &metrics);
    ASSERT_TRUE(listed.ok()) << listed.error_message();
    std::map<std::string, uint64_t> eth0;  // Series name -> value.
    for (const v1::PodSandboxMetrics& pod : metrics.pod_metrics()) {
      if (pod.pod_sandbox_id() != id) continue;
      for (const v1::Metric& metric : pod.metrics()) {
        if (metric.label_values_size() == 4 && metric.label_values(3) == "eth0") {
          eth0[metric.name()] = metric.value().value();
        }
      }
    }
    EXPECT_GT(eth0["container_network_receive_bytes_total"], 0u) << metrics.DebugString();
    EXPECT_GT(eth0["container_network_receive_packets_total"], 0u);
    EXPECT_GT(eth0["container_network_transmit_bytes_total"], 0u);
    EXPECT_GT(eth0["container_network_transmit_packets_total"], 0u);
    EXPECT_TRUE(eth0.contains("container_network_receive_errors_total"));
    EXPECT_TRUE(eth0.contains("container_network_receive_packets_dropped_total"));
    EXPECT_TRUE(eth0.contains("container_network_transmit_errors_total"));
    EXPECT_TRUE(eth0.contains("container_network_transmit_packets_dropped_total"));
  }

  std::unique_ptr<VmletdProcess> vmletd_;
  std::string dir_;
  std::string namespace_;
  std::string node_;
  std::string client_;
  std::vector<std::string> sandboxes_;
};

TEST_F(NetworkTest, TheVmTakesThePodAddressDnsHostnameAndHostPort) {
  EXPECT_TRUE(NetworkCondition().status());
  const std::string pod = StrCat("web-", GenerateId().substr(0, 6));
  std::string id;
  grpc::Status ran = RunPod(PodConfig(pod), &id);
  ASSERT_TRUE(ran.ok()) << ran.error_message();

  // The kubelet reads the pod IP here.
  v1::PodSandboxStatus status = SandboxStatus(id);
  const std::string ip = status.network().ip();
  ASSERT_THAT(ip, ::testing::StartsWith("10.250.9.")) << status.DebugString();
  EXPECT_EQ(status.linux().namespaces().options().network(), v1::POD);
  EXPECT_TRUE(network::IsNetns(StrCat(dir_, "/run/netns/", id)));

  const std::string container = CreateAndStartVm(vmletd_->runtime(), id, kImage);
  const std::string log = StrCat(dir_, "/logs/", pod, "/vm/0.log");
  ASSERT_TRUE(WaitFor([&] {
    return ReadAll(log).find("VMLET-GUEST-NET-READY") != std::string::npos;
  })) << "the guest did not get its network; console:\n"
      << ReadAll(log);
  const std::string console = ReadAll(log);
  // DHCP gave the pod's address, gateway, hostname and MTU.
  EXPECT_THAT(console, HasSubstr(StrCat("VMLET-GUEST-DHCP ip=", ip, " mask=24 router=", kGateway,
                                        " hostname=", pod, " mtu=1500")));
  // The kubelet's dns_config reached the guest's resolv.conf.
  EXPECT_THAT(console, HasSubstr(StrCat("VMLET-GUEST-RESOLV: search ", namespace_,
                                        ".svc.cluster.local cluster.local")));
  EXPECT_THAT(console, HasSubstr("VMLET-GUEST-RESOLV: nameserver 10.250.9.53"));
  EXPECT_THAT(console, HasSubstr("VMLET-GUEST-RESOLV: options ndots:5"));
  // The cloud-init seed is attached and names the host.
  EXPECT_THAT(console, HasSubstr(StrCat("VMLET-GUEST-SEED local-hostname: \"", pod, "\"")));

  // A neighbour on the same bridge reaches the guest at the pod IP.
  EXPECT_EQ(HttpGet(client_, ip, 80), StrCat("vmlet guest ", pod, "\n"));
  // The hostPort on the node reaches the guest too.
  EXPECT_EQ(HttpGet(client_, kNodeRoutedIp, kHostPort), StrCat("vmlet guest ", pod, "\n"));

  // kubectl port-forward: two connections at once on one SPDY session, to
  // the guest's HTTP server and its TCP echo, and one over WebSocket.
  ExpectPortForwardWorks(id, pod);
  ExpectNetworkFigures(id);

  // A restart of vmletd keeps the network (and the DHCP responder) up.
  ASSERT_TRUE(vmletd_->Restart().ok()) << vmletd_->Log();
  EXPECT_EQ(SandboxStatus(id).network().ip(), ip);
  EXPECT_EQ(HttpGet(client_, ip, 80), StrCat("vmlet guest ", pod, "\n"));

  // Stopping the pod gives everything back.
  grpc::Status stopped = StopPod(id);
  ASSERT_TRUE(stopped.ok()) << stopped.error_message();
  ExpectNothingLeft(id);
  EXPECT_THAT(HttpGet(client_, ip, 80), HasSubstr("FAILED"));
  grpc::Status removed = RemovePod(id);
  ASSERT_TRUE(removed.ok()) << removed.error_message();
  sandboxes_.clear();
  ExpectNothingLeft(id);
  (void)container;
}

TEST_F(NetworkTest, ANicWithTwoQueuePairsCarriesThePodsTraffic) {
  // A VM spec asks for 2 vCPUs and 2 queue pairs on the pod's NIC: the
  // pod's tap is opened twice and the guest's virtio-net uses both.
  namespace spec_v1 = ::vmlet::vmspec::v1;
  auto specs = spec_v1::VmSpecs::NewStub(grpc::CreateChannel(
      StrCat("unix:", dir_, "/vmspec.sock"), grpc::InsecureChannelCredentials()));
  spec_v1::ApplyRequest apply;
  apply.mutable_vm_spec()->mutable_metadata()->set_namespace_(namespace_);
  apply.mutable_vm_spec()->mutable_metadata()->set_name("multiqueue");
  apply.mutable_vm_spec()->mutable_spec()->mutable_cpu()->set_count(2);
  apply.mutable_vm_spec()->mutable_spec()->add_nics()->set_queues(2);
  {
    grpc::ClientContext context;
    spec_v1::ApplyResponse applied;
    grpc::Status status = specs->Apply(&context, apply, &applied);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const std::string pod = StrCat("mq-", GenerateId().substr(0, 6));
  v1::PodSandboxConfig config = PodConfig(pod);
  config.clear_port_mappings();
  (*config.mutable_annotations())["vmlet.io/vmspec"] = "multiqueue";
  std::string id;
  grpc::Status ran = RunPod(config, &id);
  ASSERT_TRUE(ran.ok()) << ran.error_message();
  const std::string ip = SandboxStatus(id).network().ip();
  const std::string container = CreateAndStartVm(vmletd_->runtime(), id, kImage);
  ASSERT_FALSE(container.empty());
  const std::string log = StrCat(dir_, "/logs/", pod, "/vm/0.log");
  ASSERT_TRUE(WaitFor([&] {
    return ReadAll(log).find("VMLET-GUEST-NET-READY") != std::string::npos;
  })) << "the guest did not get its network; console:\n"
      << ReadAll(log);
  EXPECT_THAT(ReadAll(log), HasSubstr("VMLET-GUEST-NICS eth0:2"));
  EXPECT_EQ(HttpGet(client_, ip, 80), StrCat("vmlet guest ", pod, "\n"));

  grpc::Status stopped = StopPod(id);
  ASSERT_TRUE(stopped.ok()) << stopped.error_message();
  grpc::Status removed = RemovePod(id);
  ASSERT_TRUE(removed.ok()) << removed.error_message();
  sandboxes_.clear();
  ExpectNothingLeft(id);
}

TEST_F(NetworkTest, AFailingPluginFailsRunPodSandboxCleanly) {
  // bridge succeeds (a veth and a lease exist), then the next plugin fails:
  // vmletd must DEL what bridge made and remove the namespace.
  const std::string plugin = bin_dir() + "/vmlet-e2e-fail";
  ASSERT_TRUE(WriteFileAtomically(plugin, R"(#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion": "1.0.0", "code": 100, "msg": "vmlet-e2e-fail refuses ADD", "details": "on purpose"}'
  exit 1
fi
exit 0
)",
                                  0755)
                  .ok());
  std::string failing = NetworkConfig();
  failing.replace(failing.find(R"({"type": "portmap")"), 0, R"({"type": "vmlet-e2e-fail"}, )");
  const std::string failing_path = conf_dir() + "/05-failing.conflist";
  ASSERT_TRUE(WriteFileAtomically(failing_path, failing, 0644).ok());

  std::string id;
  grpc::Status ran = RunPod(PodConfig("failing"), &id);
  EXPECT_FALSE(ran.ok());
  EXPECT_THAT(ran.error_message(), HasSubstr("vmlet-e2e-fail refuses ADD"));
  EXPECT_THAT(ran.error_message(), HasSubstr("on purpose"));
  ExpectNothingLeft("");

  grpc::ClientContext context;
  v1::ListPodSandboxResponse listed;
  ASSERT_TRUE(
      vmletd_->runtime().ListPodSandbox(&context, v1::ListPodSandboxRequest(), &listed).ok());
  EXPECT_EQ(listed.items_size(), 0);

  // With the failing configuration gone, the same pod starts.
  ASSERT_TRUE(RemoveFileIfExists(failing_path).ok());
  ran = RunPod(PodConfig("failing"), &id);
  ASSERT_TRUE(ran.ok()) << ran.error_message();
  EXPECT_THAT(SandboxStatus(id).network().ip(), ::testing::StartsWith("10.250.9."));
}

TEST_F(NetworkTest, NoConfigurationMeansNetworkNotReady) {
  const std::string config = conf_dir() + "/10-vmlet-e2e.conflist";
  ASSERT_EQ(::rename(config.c_str(), (config + ".off").c_str()), 0);
  v1::RuntimeCondition condition = NetworkCondition();
  EXPECT_FALSE(condition.status());
  EXPECT_EQ(condition.reason(), "NetworkPluginNotReady");
  EXPECT_THAT(condition.message(), HasSubstr(conf_dir()));
  std::string id;
  grpc::Status ran = RunPod(PodConfig("unready"), &id);
  EXPECT_EQ(ran.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << ran.error_message();
  ExpectNothingLeft("");
  ASSERT_EQ(::rename((config + ".off").c_str(), config.c_str()), 0);
  EXPECT_TRUE(NetworkCondition().status());
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "pod networking needs root (namespaces, CNI); skipping (exit 77)\n");
    return 77;
  }
  if (int prepared = vmlet::e2e::PrepareTestGuest(
          {vmlet::e2e::kNsenter, "/usr/lib/cni/bridge", "/usr/lib/cni/host-local",
           "/usr/lib/cni/portmap", "/usr/sbin/tc", "/usr/sbin/iptables-save"});
      prepared != 0) {
    return prepared;
  }
  // The guest's image: a command line that waits for the ACPI power button;
  // the network comes up on its own.
  const std::string layout = vmlet::e2e::GuestDir() + "/layouts/net";
  if (absl::Status laid_out = vmlet::e2e::MakeGuestLayout(layout, "console=ttyS0 quiet panic=-1");
      !laid_out.ok()) {
    std::fprintf(stderr, "%s\n", std::string(laid_out.message()).c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
