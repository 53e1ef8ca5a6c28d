// CNI: configuration files, plugin results of every format, and the plugin
// runs of ADD/DEL/CHECK against fake plugins (shell scripts that record what
// they were given) and, as root, against Debian's bridge, host-local and
// portmap plugins in network namespaces the test makes.
#include "network/cni.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "base/str_util.h"
#include "network/netns.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::network {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Json = nlohmann::json;

// ---------------------------------------------------------------------------
// Results

TEST(ParseCniResultTest, Reads1_0_0) {
  absl::StatusOr<CniResult> result = ParseCniResult(R"({
    "cniVersion": "1.0.0",
    "interfaces": [
      {"name": "cni0", "mac": "aa:bb:cc:00:00:01"},
      {"name": "eth0", "mac": "aa:bb:cc:00:00:02", "sandbox": "/run/netns/x"}],
    "ips": [
      {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1},
      {"address": "fd00::5/64", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "10.96.0.0/12"}],
    "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
            "search": ["svc.cluster.local"], "options": ["ndots:5"]}
  })");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cni_version, "1.0.0");
  ASSERT_EQ(result->interfaces.size(), 2u);
  EXPECT_EQ(result->interfaces[1].name, "eth0");
  EXPECT_EQ(result->interfaces[1].mac, "aa:bb:cc:00:00:02");
  EXPECT_EQ(result->interfaces[1].sandbox, "/run/netns/x");
  EXPECT_EQ(result->interfaces[0].sandbox, "");
  ASSERT_EQ(result->ips.size(), 2u);
  EXPECT_EQ(result->ips[0].address, "10.1.0.5");
  EXPECT_EQ(result->ips[0].prefix_length, 16);
  EXPECT_EQ(result->ips[0].gateway, "10.1.0.1");
  EXPECT_EQ(result->ips[0].interface, 1);
  EXPECT_FALSE(result->ips[0].ipv6);
  EXPECT_EQ(result->ips[1].address, "fd00::5");
  EXPECT_EQ(result->ips[1].prefix_length, 64);
  EXPECT_TRUE(result->ips[1].ipv6);
  ASSERT_EQ(result->routes.size(), 2u);
  EXPECT_EQ(result->routes[0].destination, "0.0.0.0/0");
  EXPECT_EQ(result->routes[0].gateway, "10.1.0.1");
  EXPECT_EQ(result->routes[1].gateway, "");
  EXPECT_THAT(result->dns.servers, ElementsAre("10.96.0.10"));
  EXPECT_THAT(result->dns.searches, ElementsAre("cluster.local", "svc.cluster.local"));
  EXPECT_THAT(result->dns.options, ElementsAre("ndots:5"));
  EXPECT_THAT(result->json, ::testing::StartsWith("{"));
}

TEST(ParseCniResultTest, Reads0_4_0And0_3_1WithIpVersions) {
  for (const char* version : {"0.4.0", "0.3.1", "0.3.0"}) {
    absl::StatusOr<CniResult> result = ParseCniResult(StrCat(R"({"cniVersion": ")", version, R"(",
      "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:00:00:02", "sandbox": "/proc/1/ns/net"}],
      "ips": [{"version": "4", "address": "10.22.0.7/24", "gateway": "10.22.0.1", "interface": 0},
              {"version": "6", "address": "2001:db8::7/64"}],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dns": {"domain": "example.com", "search": ["example.com", "other.com"]}})"));
    ASSERT_TRUE(result.ok()) << version << ": " << result.status();
    EXPECT_EQ(result->cni_version, version);
    ASSERT_EQ(result->ips.size(), 2u);
    EXPECT_EQ(result->ips[0].address, "10.22.0.7");
    EXPECT_EQ(result->ips[0].interface, 0);
    EXPECT_TRUE(result->ips[1].ipv6);
    EXPECT_EQ(result->ips[1].interface, -1);
    EXPECT_THAT(result->dns.searches, ElementsAre("example.com", "other.com"));  // Not twice.
  }
}

TEST(ParseCniResultTest, Reads0_2_0Ip4AndIp6Objects) {
  absl::StatusOr<CniResult> result = ParseCniResult(R"({"cniVersion": "0.2.0",
    "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
    "ip6": {"ip": "fd00::5/64"},
    "dns": {"nameservers": ["8.8.8.8"]}})");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->interfaces, IsEmpty());
  ASSERT_EQ(result->ips.size(), 2u);
  EXPECT_EQ(result->ips[0].address, "10.1.0.5");
  EXPECT_EQ(result->ips[0].prefix_length, 16);
  EXPECT_EQ(result->ips[0].gateway, "10.1.0.1");
  EXPECT_EQ(result->ips[0].interface, -1);
  EXPECT_EQ(result->ips[1].address, "fd00::5");
  EXPECT_TRUE(result->ips[1].ipv6);
  ASSERT_EQ(result->routes.size(), 1u);
  EXPECT_EQ(result->routes[0].gateway, "10.1.0.1");
  EXPECT_THAT(result->dns.servers, ElementsAre("8.8.8.8"));
}

TEST(ParseCniResultTest, RejectsMalformedResultsNamingTheField) {
  struct Case {
    const char* json;
    const char* field;
  };
  const Case cases[] = {
      {"not json", "expected a JSON object"},
      {"[1]", "expected a JSON object"},
      {R"({"ips": []})", "\"cniVersion\""},
      {R"({"cniVersion": "0.5.0"})", "\"cniVersion\" must be one of"},
      {R"({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5"}]})", "\"ips[0].address\""},
      {R"({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/33"}]})", "\"ips[0].address\""},
      {R"({"cniVersion": "1.0.0", "ips": [{"address": "x/24"}]})", "\"ips[0].address\""},
      {R"({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24", "gateway": "fd00::1"}]})",
       "\"ips[0].gateway\""},
      {R"({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24", "interface": 0}]})",
       "\"ips[0].interface\""},
      {R"({"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.1.0.5/24"}]})",
       "\"ips[0].version\""},
      {R"({"cniVersion": "1.0.0", "ips": {}})", "\"ips\""},
      {R"({"cniVersion": "1.0.0", "interfaces": [{"mac": "aa:bb:cc:dd:ee:ff"}]})",
       "\"interfaces[0].name\""},
      {R"({"cniVersion": "1.0.0", "routes": [{"gw": "10.1.0.1"}]})", "\"routes[0].dst\""},
      {R"({"cniVersion": "1.0.0", "dns": {"nameservers": "10.0.0.1"}})", "\"dns.nameservers\""},
      {R"({"cniVersion": "0.2.0", "ip4": {"ip": "fd00::1/64"}})", "\"ip4.ip\""},
      {R"({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/8", "routes": [{}]}})",
       "\"ip4.routes[0].dst\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CniResult> result = ParseCniResult(c.json);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(c.field)) << c.json;
  }
}

// ---------------------------------------------------------------------------
// Configuration

TEST(ParseCniConfigTest, ReadsAListAndNormalisesIt) {
  absl::StatusOr<CniConfig> config = ParseCniConfig(R"({
    "cniVersion": "0.4.0", "name": "k8s-pod-network", "disableCheck": "true",
    "plugins": [{"type": "bridge", "bridge": "cni0"},
                {"type": "portmap", "capabilities": {"portMappings": true}}]})",
                                                    "10-net.conflist", false);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "k8s-pod-network");
  EXPECT_EQ(config->cni_version, "0.4.0");
  EXPECT_TRUE(config->disable_check);
  ASSERT_EQ(config->plugins.size(), 2u);
  EXPECT_EQ(config->plugins[0].type, "bridge");
  EXPECT_EQ(Json::parse(config->plugins[0].json),
            Json::parse(R"({"type":"bridge","bridge":"cni0"})"));
  EXPECT_EQ(config->plugins[1].type, "portmap");
  // The normalised list parses back to the same configuration.
  absl::StatusOr<CniConfig> again = ParseCniConfig(config->json, "again", false);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->json, config->json);
  EXPECT_EQ(again->plugins.size(), 2u);
}

TEST(ParseCniConfigTest, WrapsASinglePluginFileIntoAList) {
  absl::StatusOr<CniConfig> config = ParseCniConfig(
      R"({"cniVersion": "0.3.1", "name": "mynet", "type": "bridge", "ipam": {"type": "host-local"}})",
      "10-mynet.conf", true);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cni_version, "0.3.1");
  ASSERT_EQ(config->plugins.size(), 1u);
  EXPECT_EQ(config->plugins[0].type, "bridge");
  Json list = Json::parse(config->json);
  EXPECT_EQ(list["name"], "mynet");
  EXPECT_EQ(list["cniVersion"], "0.3.1");
  ASSERT_EQ(list["plugins"].size(), 1u);
  EXPECT_EQ(list["plugins"][0]["ipam"]["type"], "host-local");
}

TEST(ParseCniConfigTest, CniVersionsPicksTheHighestSupported) {
  absl::StatusOr<CniConfig> config = ParseCniConfig(
      R"({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "9.9.9", "1.1.0"], "name": "n",
          "plugins": [{"type": "bridge"}]})",
      "x.conflist", false);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cni_version, "1.1.0");
  EXPECT_EQ(Json::parse(config->json)["cniVersion"], "1.1.0");
}

TEST(ParseCniConfigTest, RejectsBadConfigurationsNamingSourceAndField) {
  struct Case {
    const char* json;
    bool single;
    const char* message;
  };
  const Case cases[] = {
      {"{", false, "src: not valid JSON"},
      {R"({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]})", false, "src: \"name\""},
      {R"({"cniVersion": "1.0.0", "name": "a b", "plugins": [{"type": "bridge"}]})", false,
       "src: \"name\" must be a network name"},
      {R"({"name": "n", "plugins": [{"type": "bridge"}]})", false,
       "src: \"cniVersion\" must be one of 0.1.0"},
      {R"({"cniVersion": "2.0.0", "name": "n", "plugins": [{"type": "bridge"}]})", false,
       "src: \"cniVersion\" must be one of"},
      {R"({"cniVersion": "1.0.0", "name": "n"})", false, "src: \"plugins\" must be a non-empty"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": []})", false, "src: \"plugins\""},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../bin/sh"}]})", false,
       "src: \"plugins[0].type\""},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "a"}, {}]})", false,
       "src: \"plugins[1].type\""},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "a", "capabilities": []}]})",
       false, "src: \"plugins[0].capabilities\""},
      {R"({"cniVersion": "1.0.0", "name": "n", "disableCheck": 3, "plugins": [{"type": "a"}]})",
       false, "src: \"disableCheck\""},
      {R"({"cniVersion": "1.0.0", "name": "n"})", true, "src: \"type\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CniConfig> config = ParseCniConfig(c.json, "src", c.single);
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.message)) << c.json;
  }
}

class LoadCniConfigTest : public ::testing::Test {
 protected:
  void Write(const std::string& name, const std::string& contents) {
    ASSERT_TRUE(WriteFileAtomically(dir_.path() + "/" + name, contents, 0644).ok());
  }
  vmlet::testing::TempDir dir_;
};

TEST_F(LoadCniConfigTest, TakesTheFirstValidFileInLexicalOrder) {
  Write("20-b.conflist",
        R"({"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]})");
  Write("10-a.conf", R"({"cniVersion": "1.0.0", "name": "a", "type": "ptp"})");
  Write("30-c.json", R"({"cniVersion": "1.0.0", "name": "c", "type": "ptp"})");
  absl::StatusOr<CniConfig> config = LoadCniConfig(dir_.path());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "a");
  EXPECT_EQ(config->path, dir_.path() + "/10-a.conf");
  EXPECT_EQ(Json::parse(config->json)["plugins"][0]["type"], "ptp");
}

TEST_F(LoadCniConfigTest, SkipsInvalidFilesAndIgnoresOthers) {
  Write("05-broken.conflist", "{not json");
  Write("06-noname.conf", R"({"cniVersion": "1.0.0", "type": "bridge"})");
  Write("07-future.conflist",
        R"({"cniVersion": "9.0.0", "name": "f", "plugins": [{"type": "x"}]})");
  Write("08-readme.txt", "not a configuration");
  ASSERT_EQ(mkdir((dir_.path() + "/09-dir.conf").c_str(), 0755), 0);
  Write("10-good.json", R"({"cniVersion": "0.4.0", "name": "good", "type": "bridge"})");
  absl::StatusOr<CniConfig> config = LoadCniConfig(dir_.path());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "good");
  EXPECT_EQ(config->path, dir_.path() + "/10-good.json");
}

TEST_F(LoadCniConfigTest, WithoutAValidFileListsEachSkippedFileAndWhy) {
  Write("05-broken.conflist", "{not json");
  Write("06-noname.conf", R"({"cniVersion": "1.0.0", "type": "bridge"})");
  Write("08-readme.txt", "not a configuration");
  absl::StatusOr<CniConfig> config = LoadCniConfig(dir_.path());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(config.status().message()),
            StrCat("no valid CNI network configuration in ", dir_.path(),
                   ": 05-broken.conflist: not valid JSON; 06-noname.conf: \"name\" must be a "
                   "network name of letters, digits, '_', '.' and '-', starting with a letter or "
                   "digit, but it is missing"));
}

TEST_F(LoadCniConfigTest, AnEmptyOrMissingDirectoryIsAFailedPrecondition) {
  absl::StatusOr<CniConfig> config = LoadCniConfig(dir_.path());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(config.status().message()),
            StrCat("no valid CNI network configuration in ", dir_.path(),
                   ": it has no *.conflist, *.conf or *.json file"));
  config = LoadCniConfig(dir_.path() + "/missing");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr(StrCat("no valid CNI network configuration in ", dir_.path(), "/missing")));
}

// ---------------------------------------------------------------------------
// Running fake plugins

std::string Result(const std::string& version, const std::string& address) {
  return StrCat(
      R"({"cniVersion": ")", version,
      R"(", "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "/ns"}],)",
      R"( "ips": [{"address": ")", address, R"(", "interface": 0}]})");
}

class CniRunnerTest : public ::testing::Test {
 protected:
  CniRunnerTest() {
    EXPECT_TRUE(MakeDirs(bin_).ok());
    EXPECT_TRUE(MakeDirs(log_).ok());
    runtime_.container_id = "sandbox1";
    runtime_.netns_path = "/run/vmlet/netns/sandbox1";
    runtime_.pod_namespace = "default";
    runtime_.pod_name = "web-0";
    runtime_.pod_uid = "0f0e-11";
  }

  // A plugin `type` that records its stdin, environment and call, then runs
  // `body` (sh).
  void Plugin(const std::string& type, const std::string& body) {
    std::string script =
        StrCat("#!/bin/sh\n", "log=", log_, "\n", "cat > \"$log/", type, ".$CNI_COMMAND.stdin\"\n",
               "env > \"$log/", type, ".$CNI_COMMAND.env\"\n", "echo \"", type,
               " $CNI_COMMAND\" >> \"$log/calls\"\n", body, "\n");
    ASSERT_TRUE(WriteFileAtomically(StrCat(bin_, "/", type), script, 0755).ok());
  }
  // A plugin that prints `result` for ADD and nothing for DEL/CHECK.
  void ResultPlugin(const std::string& type, const std::string& result) {
    Plugin(type, StrCat("[ \"$CNI_COMMAND\" = ADD ] && cat <<'EOF'\n", result, "\nEOF\nexit 0"));
  }

  CniConfig Config(const std::string& version, const std::vector<std::string>& plugins,
                   bool disable_check = false) {
    Json list = {{"cniVersion", version}, {"name", "testnet"}, {"plugins", Json::array()}};
    if (disable_check) list["disableCheck"] = true;
    for (const std::string& plugin : plugins) list["plugins"].push_back(Json::parse(plugin));
    absl::StatusOr<CniConfig> config = ParseCniConfig(list.dump(), "test", false);
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : CniConfig();
  }

  Json Stdin(const std::string& type, const std::string& command) {
    absl::StatusOr<std::string> text = ReadFile(StrCat(log_, "/", type, ".", command, ".stdin"));
    EXPECT_TRUE(text.ok()) << text.status();
    return Json::parse(text.ok() ? *text : "null");
  }
  // The value of `key` in the recorded environment of a run.
  std::string Env(const std::string& type, const std::string& command, const std::string& key) {
    absl::StatusOr<std::string> text = ReadFile(StrCat(log_, "/", type, ".", command, ".env"));
    EXPECT_TRUE(text.ok()) << text.status();
    std::string prefix = StrCat("\n", key, "=");
    std::string all = StrCat("\n", text.ok() ? *text : "");
    size_t at = all.find(prefix);
    if (at == std::string::npos) return "<unset>";
    size_t begin = at + prefix.size();
    return all.substr(begin, all.find('\n', begin) - begin);
  }
  std::vector<std::string> Calls() {
    absl::StatusOr<std::string> text = ReadFile(log_ + "/calls");
    std::vector<std::string> calls;
    if (!text.ok()) return calls;
    for (size_t begin = 0; begin < text->size();) {
      size_t end = text->find('\n', begin);
      calls.push_back(text->substr(begin, end - begin));
      begin = end + 1;
    }
    return calls;
  }

  vmlet::testing::TempDir dir_;
  const std::string bin_ = dir_.path() + "/bin";
  const std::string log_ = dir_.path() + "/log";
  CniRuntime runtime_;
};

TEST_F(CniRunnerTest, AddChainsPrevResultAndFiltersRuntimeConfigByCapability) {
  ResultPlugin("first", Result("1.0.0", "10.0.0.2/24"));
  ResultPlugin("second", Result("1.0.0", "10.0.0.3/24"));
  ResultPlugin("third", Result("1.0.0", "10.0.0.4/24"));
  CniConfig config =
      Config("1.0.0",
             {R"({"type": "first", "capabilities": {"portMappings": true, "dns": false}, "x": 1})",
              R"({"type": "second", "capabilities": {"dns": true, "bandwidth": true}})",
              R"({"type": "third", "runtimeConfig": {"stale": true}})"});
  runtime_.port_mappings = {
      {.host_port = 8080, .container_port = 80, .protocol = "TCP"},
      {.host_port = 0, .container_port = 81},
      {.host_port = 5353, .container_port = 53, .protocol = "udp", .host_ip = "127.0.0.1"}};
  runtime_.dns =
      CniDns{.servers = {"10.96.0.10"}, .searches = {"svc.local"}, .options = {"ndots:5"}};
  runtime_.bandwidth = CniBandwidth{
      .ingress_rate = 1000000, .ingress_burst = 2000, .egress_rate = 3000000, .egress_burst = 4000};
  CniRunner runner({bin_});
  absl::StatusOr<CniResult> result = runner.Add(config, runtime_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->ips.size(), 1u);
  EXPECT_EQ(result->ips[0].address, "10.0.0.4");
  EXPECT_THAT(Calls(), ElementsAre("first ADD", "second ADD", "third ADD"));

  Json first = Stdin("first", "ADD");
  EXPECT_EQ(first["name"], "testnet");
  EXPECT_EQ(first["cniVersion"], "1.0.0");
  EXPECT_EQ(first["x"], 1);
  EXPECT_FALSE(first.contains("prevResult"));
  EXPECT_EQ(first["runtimeConfig"], Json::parse(R"({"portMappings": [
      {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
      {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]})"));

  Json second = Stdin("second", "ADD");
  EXPECT_EQ(second["prevResult"], Json::parse(Result("1.0.0", "10.0.0.2/24")));
  EXPECT_EQ(second["runtimeConfig"], Json::parse(R"({
      "dns": {"servers": ["10.96.0.10"], "searches": ["svc.local"], "options": ["ndots:5"]},
      "bandwidth": {"ingressRate": 1000000, "ingressBurst": 2000,
                    "egressRate": 3000000, "egressBurst": 4000}})"));

  Json third = Stdin("third", "ADD");
  EXPECT_EQ(third["prevResult"], Json::parse(Result("1.0.0", "10.0.0.3/24")));
  EXPECT_EQ(third["runtimeConfig"], Json::parse(R"({"stale": true})"));  // Left as configured.
}

TEST_F(CniRunnerTest, PluginsGetTheCniEnvironmentAndOurs) {
  ResultPlugin("envcheck", Result("1.0.0", "10.0.0.2/24"));
  ASSERT_EQ(setenv("CNI_STRAY", "from-our-environment", 1), 0);
  ASSERT_EQ(setenv("VMLET_CNI_TEST", "kept", 1), 0);
  CniRunner runner({dir_.path() + "/empty", bin_});
  absl::Status status = runner.Add(Config("1.0.0", {R"({"type": "envcheck"})"}), runtime_).status();
  unsetenv("CNI_STRAY");
  unsetenv("VMLET_CNI_TEST");
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_COMMAND"), "ADD");
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_CONTAINERID"), "sandbox1");
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_NETNS"), "/run/vmlet/netns/sandbox1");
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_IFNAME"), "eth0");
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_ARGS"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
            "K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=0f0e-11");
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_PATH"), StrCat(dir_.path(), "/empty:", bin_));
  EXPECT_EQ(Env("envcheck", "ADD", "CNI_STRAY"), "<unset>");
  EXPECT_EQ(Env("envcheck", "ADD", "VMLET_CNI_TEST"), "kept");
  EXPECT_NE(Env("envcheck", "ADD", "PATH"), "<unset>");
}

TEST_F(CniRunnerTest, AResultWithoutAVersionIsInTheConfigurationsVersion) {
  ResultPlugin("unversioned", R"({"ips": [{"version": "4", "address": "10.0.0.9/8"}]})");
  CniRunner runner({bin_});
  absl::StatusOr<CniResult> result =
      runner.Add(Config("0.3.1", {R"({"type": "unversioned"})"}), runtime_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cni_version, "0.3.1");
  EXPECT_TRUE(ParseCniResult(result->json).ok());
}

TEST_F(CniRunnerTest, DelRunsInReverseWithPrevResultAndContinuesAfterAnError) {
  ResultPlugin("first", Result("1.0.0", "10.0.0.2/24"));
  Plugin("second", R"([ "$CNI_COMMAND" = DEL ] && echo "cannot delete" >&2 && exit 2; exit 0)");
  ResultPlugin("third", Result("1.0.0", "10.0.0.4/24"));
  CniConfig config =
      Config("1.0.0", {R"({"type": "first"})", R"({"type": "second"})", R"({"type": "third"})"});
  absl::StatusOr<CniResult> previous = ParseCniResult(Result("1.0.0", "10.0.0.4/24"));
  ASSERT_TRUE(previous.ok());
  CniRunner runner({bin_});
  absl::Status status = runner.Del(config, runtime_, &*previous);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(std::string(status.message()),
            "CNI plugin \"second\" of network \"testnet\" failed DEL: exited with code 2: "
            "cannot delete");
  EXPECT_THAT(Calls(), ElementsAre("third DEL", "second DEL", "first DEL"));
  for (const char* type : {"first", "second", "third"}) {
    EXPECT_EQ(Stdin(type, "DEL")["prevResult"], Json::parse(previous->json)) << type;
    EXPECT_EQ(Env(type, "DEL", "CNI_COMMAND"), "DEL");
  }
}

TEST_F(CniRunnerTest, DelBefore0_4_0OrWithoutAResultSendsNoPrevResult) {
  ResultPlugin("only", Result("0.3.1", "10.0.0.2/24"));
  absl::StatusOr<CniResult> previous = ParseCniResult(Result("0.3.1", "10.0.0.2/24"));
  ASSERT_TRUE(previous.ok());
  CniRunner runner({bin_});
  ASSERT_TRUE(runner.Del(Config("0.3.1", {R"({"type": "only"})"}), runtime_, &*previous).ok());
  EXPECT_FALSE(Stdin("only", "DEL").contains("prevResult"));
  ASSERT_TRUE(runner.Del(Config("1.0.0", {R"({"type": "only"})"}), runtime_, nullptr).ok());
  EXPECT_FALSE(Stdin("only", "DEL").contains("prevResult"));
}

TEST_F(CniRunnerTest, ThePluginsErrorObjectBecomesTheStatus) {
  struct Case {
    std::string body;
    absl::StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {R"(echo '{"cniVersion": "1.0.0", "code": 7, "msg": "invalid network config", "details": "no bridge"}'; exit 1)",
       absl::StatusCode::kInternal,
       "CNI plugin \"failing\" of network \"testnet\" failed ADD: invalid network config: "
       "no bridge (code 7)"},
      {R"(echo '{"cniVersion": "1.0.0", "code": 11, "msg": "try again later"}'; exit 1)",
       absl::StatusCode::kUnavailable,
       "CNI plugin \"failing\" of network \"testnet\" failed ADD: try again later (code 11)"},
      {"echo '  something broke  ' >&2; echo 'partial'; exit 3", absl::StatusCode::kInternal,
       "CNI plugin \"failing\" of network \"testnet\" failed ADD: exited with code 3: "
       "something broke; partial"},
      {"exit 4", absl::StatusCode::kInternal,
       "CNI plugin \"failing\" of network \"testnet\" failed ADD: exited with code 4"},
      {"echo 'not a result'", absl::StatusCode::kInternal,
       "CNI plugin \"failing\" of network \"testnet\" returned an unusable ADD result: "
       "CNI result: expected a JSON object, got \"not a result\""},
  };
  CniRunner runner({bin_});
  for (const Case& c : cases) {
    Plugin("failing", c.body);
    absl::Status status =
        runner.Add(Config("1.0.0", {R"({"type": "failing"})"}), runtime_).status();
    EXPECT_EQ(status.code(), c.code) << c.body;
    EXPECT_EQ(std::string(status.message()), c.message);
  }
}

TEST_F(CniRunnerTest, AddStopsAtTheFirstFailingPlugin) {
  Plugin("failing", "exit 1");
  ResultPlugin("after", Result("1.0.0", "10.0.0.2/24"));
  CniRunner runner({bin_});
  EXPECT_FALSE(
      runner.Add(Config("1.0.0", {R"({"type": "failing"})", R"({"type": "after"})"}), runtime_)
          .ok());
  EXPECT_THAT(Calls(), ElementsAre("failing ADD"));
}

TEST_F(CniRunnerTest, AMissingPluginIsAFailedPrecondition) {
  CniRunner runner({"/opt/cni/bin", bin_});
  absl::Status status = runner.Add(Config("1.0.0", {R"({"type": "bridge"})"}), runtime_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(status.message()),
            StrCat("CNI plugin \"bridge\" not found in /opt/cni/bin:", bin_));
}

TEST_F(CniRunnerTest, APluginPastTheTimeoutIsDeadlineExceeded) {
  Plugin("slow", "exec sleep 30");
  CniRunner runner({bin_}, absl::Milliseconds(300));
  absl::Status status = runner.Add(Config("1.0.0", {R"({"type": "slow"})"}), runtime_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("CNI plugin \"slow\" of network \"testnet\" failed ADD"));
}

TEST_F(CniRunnerTest, CheckRunsOnlyFrom0_4_0AndWithoutDisableCheck) {
  ResultPlugin("checked", Result("1.0.0", "10.0.0.2/24"));
  absl::StatusOr<CniResult> previous = ParseCniResult(Result("1.0.0", "10.0.0.2/24"));
  ASSERT_TRUE(previous.ok());
  CniRunner runner({bin_});
  EXPECT_TRUE(runner.Check(Config("0.3.1", {R"({"type": "checked"})"}), runtime_, *previous).ok());
  EXPECT_TRUE(runner
                  .Check(Config("1.0.0", {R"({"type": "checked"})"}, /*disable_check=*/true),
                         runtime_, *previous)
                  .ok());
  EXPECT_THAT(Calls(), IsEmpty());

  EXPECT_TRUE(runner.Check(Config("0.4.0", {R"({"type": "checked"})"}), runtime_, *previous).ok());
  EXPECT_THAT(Calls(), ElementsAre("checked CHECK"));
  EXPECT_EQ(Stdin("checked", "CHECK")["prevResult"], Json::parse(previous->json));

  Plugin("checked", R"(echo '{"code": 100, "msg": "eth0 is gone"}'; exit 1)");
  absl::Status status =
      runner.Check(Config("1.0.0", {R"({"type": "checked"})"}), runtime_, *previous);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(std::string(status.message()),
            "CNI plugin \"checked\" of network \"testnet\" failed CHECK: eth0 is gone (code 100)");
}

TEST_F(CniRunnerTest, BadPodNamesAreInvalidArguments) {
  ResultPlugin("ok", Result("1.0.0", "10.0.0.2/24"));
  CniConfig config = Config("1.0.0", {R"({"type": "ok"})"});
  CniRunner runner({bin_});
  for (auto mutate : std::vector<std::function<void(CniRuntime&)>>{
           [](CniRuntime& r) { r.pod_name = "web;K8S_POD_UID=x"; },
           [](CniRuntime& r) { r.pod_namespace = "a=b"; }, [](CniRuntime& r) { r.pod_uid = "u;"; },
           [](CniRuntime& r) { r.container_id = "../x"; },
           [](CniRuntime& r) { r.ifname = "an-interface-name-too-long"; }}) {
    CniRuntime runtime = runtime_;
    mutate(runtime);
    EXPECT_EQ(runner.Add(config, runtime).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(runner.Del(config, runtime, nullptr).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(Calls(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Debian's plugins in namespaces made by the test

std::string IptablesSave() {
  absl::StatusOr<ProcessResult> result = RunProcess({"iptables-save"});
  return result.ok() ? result->output : StrCat("iptables-save failed: ", result.status().message());
}

TEST(CniRealPluginsTest, BridgeHostLocalAndPortmapAddAndDelete) {
  if (geteuid() != 0 || access("/usr/lib/cni/bridge", X_OK) != 0 ||
      access("/usr/lib/cni/portmap", X_OK) != 0 || access("/usr/sbin/iptables-save", X_OK) != 0) {
    GTEST_SKIP() << "needs root, /usr/lib/cni/{bridge,host-local,portmap} and iptables";
  }
  vmlet::testing::TempDir dir;
  const std::string node = dir.path() + "/node";
  const std::string pod = dir.path() + "/pod";
  const std::string data_dir = dir.path() + "/ipam";
  ScopeGuard remove_namespaces([&] {
    RemoveNetns(pod).IgnoreError();
    RemoveNetns(node).IgnoreError();
  });
  ASSERT_TRUE(CreateNetns(node).ok());
  ASSERT_TRUE(CreateNetns(pod).ok());

  Json list = {
      {"cniVersion", "1.0.0"},
      {"name", "vmlettest"},
      {"plugins",
       {{{"type", "bridge"},
         {"bridge", "vmlettest0"},
         {"isGateway", true},
         {"ipMasq", true},
         {"ipam",
          {{"type", "host-local"},
           {"ranges", {{{{"subnet", "10.250.7.0/24"}}}}},
           {"routes", {{{"dst", "0.0.0.0/0"}}}},
           {"dataDir", data_dir}}}},
        {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}, {"snat", true}}}}};
  absl::StatusOr<CniConfig> config = ParseCniConfig(list.dump(), "test", false);
  ASSERT_TRUE(config.ok()) << config.status();
  CniRuntime runtime;
  runtime.container_id = "vmletcnitest0123456789";
  runtime.netns_path = pod;
  runtime.pod_namespace = "default";
  runtime.pod_name = "cni-test";
  runtime.pod_uid = "6b4c1a2e";
  runtime.port_mappings = {{.host_port = 18080, .container_port = 80}};
  CniRunner runner({"/usr/lib/cni"});

  absl::StatusOr<CniResult> result;
  ASSERT_TRUE(RunInNetns(node, [&] {
                result = runner.Add(*config, runtime);
                return absl::OkStatus();
              }).ok());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_FALSE(result->ips.empty());
  const CniIp& ip = result->ips[0];
  EXPECT_THAT(ip.address, ::testing::StartsWith("10.250.7."));
  EXPECT_EQ(ip.prefix_length, 24);
  EXPECT_EQ(ip.gateway, "10.250.7.1");
  ASSERT_GE(ip.interface, 0);
  const CniInterface& iface = result->interfaces[ip.interface];
  EXPECT_EQ(iface.name, "eth0");
  EXPECT_EQ(iface.sandbox, pod);
  EXPECT_EQ(iface.mac.size(), 17u) << iface.mac;
  const std::string lease = StrCat(data_dir, "/vmlettest/", ip.address);
  EXPECT_EQ(access(lease.c_str(), F_OK), 0) << lease;

  // The pod's eth0 has the address, and the node has the hostPort rules.
  std::string pod_addresses;
  ASSERT_TRUE(
      RunInNetns(pod, [&] {
        absl::StatusOr<ProcessResult> shown = RunProcess({"ip", "-o", "addr", "show", "eth0"});
        if (shown.ok()) pod_addresses = shown->output;
        return shown.status();
      }).ok());
  EXPECT_THAT(pod_addresses, HasSubstr(StrCat(ip.address, "/24")));
  std::string rules;
  ASSERT_TRUE(RunInNetns(node, [&] {
                rules = IptablesSave();
                return absl::OkStatus();
              }).ok());
  EXPECT_THAT(rules, HasSubstr(runtime.container_id));
  EXPECT_THAT(rules, HasSubstr("18080"));

  // CHECK passes on the fresh network. (Not through portmap: Debian 12's
  // portmap 1.1.1 fails CHECK of IPv4-only pods looking for ip6tables rules,
  // containernetworking/plugins#819.)
  CniConfig bridge_only = *config;
  bridge_only.plugins.resize(1);
  absl::Status check;
  ASSERT_TRUE(RunInNetns(node, [&] {
                check = runner.Check(bridge_only, runtime, *result);
                return absl::OkStatus();
              }).ok());
  EXPECT_TRUE(check.ok()) << check;

  for (int round = 0; round < 2; ++round) {  // DEL twice: the second finds nothing to do.
    absl::Status del;
    ASSERT_TRUE(RunInNetns(node, [&] {
                  del = runner.Del(*config, runtime, &*result);
                  return absl::OkStatus();
                }).ok());
    EXPECT_TRUE(del.ok()) << "round " << round << ": " << del;
  }
  EXPECT_NE(access(lease.c_str(), F_OK), 0) << lease;
  ASSERT_TRUE(RunInNetns(node, [&] {
                rules = IptablesSave();
                return absl::OkStatus();
              }).ok());
  EXPECT_THAT(rules, Not(HasSubstr(runtime.container_id)));
  EXPECT_THAT(rules, Not(HasSubstr(":CNI-DN-")));
  EXPECT_THAT(rules, Not(HasSubstr("18080")));
}

}  // namespace
}  // namespace vmlet::network
