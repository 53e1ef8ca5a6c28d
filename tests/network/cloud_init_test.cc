// The cloud-init NoCloud seed: the YAML documents, their validation and the
// ISO image.
#include "network/cloud_init.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/process.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::network {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// yaml-cpp tags a quoted scalar "!" and a plain one "?": PyYAML (cloud-init)
// keeps a quoted scalar a string, and resolves a plain one by its looks.
constexpr char kQuoted[] = "!";
constexpr char kPlain[] = "?";

CloudInitSeed PodSeed() {
  CloudInitSeed seed;
  seed.instance_id = "3f2a9c";
  seed.hostname = "web-0";
  seed.mac = "52:54:00:12:34:56";  // All digits: base 60 to YAML 1.1 when plain.
  seed.addresses = {"10.99.0.5/24", "fd00::5/64"};
  seed.routes = {{"0.0.0.0/0", "10.99.0.1"}, {"::/0", "fd00::1"}};
  seed.dns_servers = {"10.96.0.10", "fd00::a"};
  seed.search_domains = {"default.svc.cluster.local", "svc.cluster.local"};
  seed.dns_options = {"ndots:5", "edns0"};
  seed.mtu = 1450;
  return seed;
}

std::vector<std::string> Strings(const YAML::Node& sequence) {
  std::vector<std::string> values;
  for (const YAML::Node& node : sequence) {
    EXPECT_EQ(node.Tag(), kQuoted) << node.as<std::string>();
    values.push_back(node.as<std::string>());
  }
  return values;
}

void ExpectQuoted(const YAML::Node& node, const std::string& expected) {
  ASSERT_TRUE(node.IsScalar());
  EXPECT_EQ(node.as<std::string>(), expected);
  EXPECT_EQ(node.Tag(), kQuoted) << expected;
}

// --- meta-data ---

TEST(MetaDataTest, HoldsInstanceIdAndLocalHostname) {
  YAML::Node doc = YAML::Load(RenderMetaData(PodSeed()));
  ASSERT_TRUE(doc.IsMap());
  EXPECT_EQ(doc.size(), 2u);
  ExpectQuoted(doc["instance-id"], "3f2a9c");
  ExpectQuoted(doc["local-hostname"], "web-0");
}

TEST(MetaDataTest, HostnamesThatLookLikeOtherTypesStayStrings) {
  for (const char* hostname : {"yes", "123", "null", "on", "1e3", "0x1f"}) {
    SCOPED_TRACE(hostname);
    CloudInitSeed seed = PodSeed();
    seed.hostname = hostname;
    seed.instance_id = "12345";
    ASSERT_TRUE(ValidateCloudInitSeed(seed).ok());
    YAML::Node doc = YAML::Load(RenderMetaData(seed));
    ExpectQuoted(doc["local-hostname"], hostname);
    ExpectQuoted(doc["instance-id"], "12345");
  }
}

TEST(MetaDataTest, LeavesOutAnUnsetHostname) {
  CloudInitSeed seed;
  seed.instance_id = "abc";
  YAML::Node doc = YAML::Load(RenderMetaData(seed));
  EXPECT_EQ(doc.size(), 1u);
  EXPECT_FALSE(doc["local-hostname"]);
}

// --- network-config ---

TEST(NetworkConfigTest, DescribesTheNicMatchedByMac) {
  CloudInitSeed seed = PodSeed();
  seed.mac = "52:54:00:AB:CD:EF";
  YAML::Node doc = YAML::Load(RenderNetworkConfig(seed));
  EXPECT_EQ(doc["version"].as<int>(), 2);
  EXPECT_EQ(doc["version"].Tag(), kPlain);
  ASSERT_TRUE(doc["ethernets"].IsMap());
  EXPECT_EQ(doc["ethernets"].size(), 1u);
  YAML::Node nic = doc["ethernets"]["eth0"];
  ASSERT_TRUE(nic.IsMap());
  ExpectQuoted(nic["match"]["macaddress"], "52:54:00:ab:cd:ef");
  ExpectQuoted(nic["set-name"], "eth0");
  EXPECT_THAT(Strings(nic["addresses"]), ElementsAre("10.99.0.5/24", "fd00::5/64"));
  EXPECT_FALSE(nic["dhcp4"]);
  EXPECT_EQ(nic["mtu"].as<int>(), 1450);
  ASSERT_EQ(nic["routes"].size(), 2u);
  ExpectQuoted(nic["routes"][0]["to"], "0.0.0.0/0");
  ExpectQuoted(nic["routes"][0]["via"], "10.99.0.1");
  ExpectQuoted(nic["routes"][1]["to"], "::/0");
  ExpectQuoted(nic["routes"][1]["via"], "fd00::1");
  EXPECT_THAT(Strings(nic["nameservers"]["addresses"]), ElementsAre("10.96.0.10", "fd00::a"));
  EXPECT_THAT(Strings(nic["nameservers"]["search"]),
              ElementsAre("default.svc.cluster.local", "svc.cluster.local"));
  EXPECT_FALSE(nic["nameservers"]["options"]);  // Options go to vendor-data only.
}

TEST(NetworkConfigTest, AnAllDigitMacStaysAString) {
  YAML::Node doc = YAML::Load(RenderNetworkConfig(PodSeed()));
  ExpectQuoted(doc["ethernets"]["eth0"]["match"]["macaddress"], "52:54:00:12:34:56");
}

TEST(NetworkConfigTest, UsesTheInterfaceNameAsKeyAndSetName) {
  CloudInitSeed seed = PodSeed();
  seed.interface_name = "ens3";
  YAML::Node doc = YAML::Load(RenderNetworkConfig(seed));
  EXPECT_FALSE(doc["ethernets"]["eth0"]);
  ExpectQuoted(doc["ethernets"]["ens3"]["set-name"], "ens3");
}

TEST(NetworkConfigTest, WithoutMacItIsOnlyTheVersion) {
  CloudInitSeed seed;
  seed.instance_id = "abc";
  seed.dns_servers = {"10.96.0.10"};
  std::string text = RenderNetworkConfig(seed);
  EXPECT_EQ(text, "version: 2\n");
  YAML::Node doc = YAML::Load(text);
  EXPECT_EQ(doc.size(), 1u);
  EXPECT_FALSE(doc["ethernets"]);
}

TEST(NetworkConfigTest, ANicWithoutAddressesUsesDhcpAndLeavesOutEmptyParts) {
  CloudInitSeed seed;
  seed.instance_id = "abc";
  seed.mac = "52:54:00:12:34:56";
  YAML::Node nic = YAML::Load(RenderNetworkConfig(seed))["ethernets"]["eth0"];
  EXPECT_TRUE(nic["dhcp4"].as<bool>());
  EXPECT_EQ(nic["dhcp4"].Tag(), kPlain);
  for (const char* key : {"addresses", "routes", "mtu", "nameservers"}) {
    EXPECT_FALSE(nic[key]) << key;
  }
}

// --- vendor-data ---

TEST(VendorDataTest, ManagesResolvConfAndTheHostname) {
  CloudInitSeed seed = PodSeed();
  seed.hostname = "web-0.nginx.default.svc.cluster.local";
  std::string text = RenderVendorData(seed);
  EXPECT_THAT(text, StartsWith("#cloud-config\n"));
  YAML::Node doc = YAML::Load(text);
  ExpectQuoted(doc["hostname"], "web-0");
  ExpectQuoted(doc["fqdn"], "web-0.nginx.default.svc.cluster.local");
  EXPECT_FALSE(doc["preserve_hostname"].as<bool>());
  EXPECT_TRUE(doc["manage_resolv_conf"].as<bool>());
  YAML::Node resolv = doc["resolv_conf"];
  EXPECT_THAT(Strings(resolv["nameservers"]), ElementsAre("10.96.0.10", "fd00::a"));
  EXPECT_THAT(Strings(resolv["searchdomains"]),
              ElementsAre("default.svc.cluster.local", "svc.cluster.local"));
  ASSERT_TRUE(resolv["options"].IsMap());
  EXPECT_EQ(resolv["options"].size(), 2u);
  EXPECT_EQ(resolv["options"]["ndots"].as<int>(), 5);
  EXPECT_EQ(resolv["options"]["ndots"].Tag(), kPlain);  // An integer to PyYAML.
  EXPECT_TRUE(resolv["options"]["edns0"].as<bool>());
  EXPECT_EQ(resolv["options"]["edns0"].Tag(), kPlain);
}

TEST(VendorDataTest, AShortHostnameHasNoFqdn) {
  YAML::Node doc = YAML::Load(RenderVendorData(PodSeed()));
  ExpectQuoted(doc["hostname"], "web-0");
  EXPECT_FALSE(doc["fqdn"]);
}

TEST(VendorDataTest, ARepeatedOptionKeepsItsLastValue) {
  CloudInitSeed seed = PodSeed();
  seed.dns_options = {"ndots:2", "rotate", "ndots:5", "timeout:1"};
  YAML::Node options = YAML::Load(RenderVendorData(seed))["resolv_conf"]["options"];
  ASSERT_EQ(options.size(), 3u);
  EXPECT_EQ(options["ndots"].as<int>(), 5);
  EXPECT_TRUE(options["rotate"].as<bool>());
  EXPECT_EQ(options["timeout"].as<int>(), 1);
}

TEST(VendorDataTest, OnlyTheGivenDnsPartsAreWritten) {
  CloudInitSeed seed;
  seed.instance_id = "abc";
  seed.search_domains = {"example.com"};
  YAML::Node doc = YAML::Load(RenderVendorData(seed));
  EXPECT_TRUE(doc["manage_resolv_conf"].as<bool>());
  EXPECT_FALSE(doc["resolv_conf"]["nameservers"]);
  EXPECT_FALSE(doc["resolv_conf"]["options"]);
  EXPECT_THAT(Strings(doc["resolv_conf"]["searchdomains"]), ElementsAre("example.com"));
  EXPECT_FALSE(doc["hostname"]);
  EXPECT_FALSE(doc["preserve_hostname"]);
}

TEST(VendorDataTest, NothingToSayIsAnEmptyCloudConfig) {
  CloudInitSeed seed;
  seed.instance_id = "abc";
  EXPECT_EQ(RenderVendorData(seed), "#cloud-config\n{}\n");
}

// --- validation ---

TEST(ValidateTest, AcceptsAFullSeedAndAMinimalOne) {
  EXPECT_TRUE(ValidateCloudInitSeed(PodSeed()).ok()) << ValidateCloudInitSeed(PodSeed());
  CloudInitSeed minimal;
  minimal.instance_id = "abc";
  EXPECT_TRUE(ValidateCloudInitSeed(minimal).ok());
  CloudInitSeed longest = PodSeed();
  // 253 characters: three labels of 63, one of 61.
  longest.hostname = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                     std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(longest.hostname.size(), 253u);
  longest.user_data = "#!/bin/sh\n\techo \"h\xc3\xa9llo\"\r\n";  // Tabs, CRLF, UTF-8.
  longest.search_domains.push_back("example.com.");
  longest.dns_servers.push_back("2001:db8::53");
  EXPECT_TRUE(ValidateCloudInitSeed(longest).ok()) << ValidateCloudInitSeed(longest);
}

TEST(ValidateTest, RefusesBadFieldsNamingThem) {
  struct Case {
    const char* what;
    std::function<void(CloudInitSeed&)> change;
    const char* field;  // Expected in the message.
    std::string value;  // Expected in the message, when not empty.
  };
  const std::vector<Case> cases = {
      {"empty instance id", [](CloudInitSeed& s) { s.instance_id = ""; }, "instance_id", ""},
      {"short mac", [](CloudInitSeed& s) { s.mac = "52:54:00:12:34"; }, "mac", "52:54:00:12:34"},
      {"non-hex mac", [](CloudInitSeed& s) { s.mac = "52:54:00:12:34:zz"; }, "mac",
       "52:54:00:12:34:zz"},
      {"dash mac", [](CloudInitSeed& s) { s.mac = "52-54-00-12-34-56"; }, "mac",
       "52-54-00-12-34-56"},
      {"interface name", [](CloudInitSeed& s) { s.interface_name = "a-much-too-long-name"; },
       "interface_name", "a-much-too-long-name"},
      {"interface slash", [](CloudInitSeed& s) { s.interface_name = "eth/0"; }, "interface_name",
       "eth/0"},
      {"address octet", [](CloudInitSeed& s) { s.addresses[1] = "10.0.0.300/24"; }, "addresses[1]",
       "10.0.0.300/24"},
      {"address no prefix", [](CloudInitSeed& s) { s.addresses[0] = "10.0.0.5"; }, "addresses[0]",
       "10.0.0.5"},
      {"address prefix", [](CloudInitSeed& s) { s.addresses[0] = "10.0.0.5/33"; }, "addresses[0]",
       "10.0.0.5/33"},
      {"ipv6 prefix", [](CloudInitSeed& s) { s.addresses[1] = "fd00::5/129"; }, "addresses[1]",
       "fd00::5/129"},
      {"route destination", [](CloudInitSeed& s) { s.routes[0].destination = "default"; },
       "routes[0].destination", "default"},
      {"route host bits", [](CloudInitSeed& s) { s.routes[0].destination = "10.99.0.5/24"; },
       "routes[0].destination", "10.99.0.5/24"},
      {"route gateway", [](CloudInitSeed& s) { s.routes[1].gateway = "gw"; }, "routes[1].gateway",
       "gw"},
      {"route family", [](CloudInitSeed& s) { s.routes[1].gateway = "10.99.0.1"; },
       "routes[1].gateway", "10.99.0.1"},
      {"dns server", [](CloudInitSeed& s) { s.dns_servers[0] = "10.96.0"; }, "dns_servers[0]",
       "10.96.0"},
      {"search domain", [](CloudInitSeed& s) { s.search_domains[1] = "svc cluster"; },
       "search_domains[1]", "svc cluster"},
      {"dns option", [](CloudInitSeed& s) { s.dns_options[0] = "ndots:five"; }, "dns_options[0]",
       "ndots:five"},
      {"hostname dash", [](CloudInitSeed& s) { s.hostname = "-web"; }, "hostname", "-web"},
      {"hostname underscore", [](CloudInitSeed& s) { s.hostname = "web_0"; }, "hostname", "web_0"},
      {"hostname empty label", [](CloudInitSeed& s) { s.hostname = "web..svc"; }, "hostname",
       "web..svc"},
      {"hostname trailing dot", [](CloudInitSeed& s) { s.hostname = "web."; }, "hostname", "web."},
      {"hostname label", [](CloudInitSeed& s) { s.hostname = std::string(64, 'a'); }, "hostname",
       std::string(64, 'a')},
      {"hostname length",
       [](CloudInitSeed& s) {
         s.hostname = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                      std::string(63, 'c') + "." + std::string(62, 'd');
       },
       "hostname", ""},
      {"mtu negative", [](CloudInitSeed& s) { s.mtu = -1; }, "mtu", "-1"},
      {"mtu large", [](CloudInitSeed& s) { s.mtu = 70000; }, "mtu", "70000"},
      {"control in instance id", [](CloudInitSeed& s) { s.instance_id = "a\nb"; }, "instance_id",
       "a\\nb"},
      {"control in hostname", [](CloudInitSeed& s) { s.hostname = "web\x01"; }, "hostname",
       "web\\x01"},
      {"control in search", [](CloudInitSeed& s) { s.search_domains[0] = "a\tb"; },
       "search_domains[0]", ""},
      {"c1 control", [](CloudInitSeed& s) { s.instance_id = "a\xc2\x85"; }, "instance_id", ""},
      {"bad utf-8", [](CloudInitSeed& s) { s.instance_id = "a\xff"; }, "instance_id", ""},
      {"control in user data", [](CloudInitSeed& s) { s.user_data = "#cloud-config\n\x07"; },
       "user_data", "byte 14"},
      {"nul in user data", [](CloudInitSeed& s) { s.user_data = std::string("#!/bin/sh\n\0", 11); },
       "user_data", ""},
      {"too big", [](CloudInitSeed& s) { s.user_data = std::string(64 * 1024 + 1, 'x'); }, "65536",
       ""},
      {"addresses without mac", [](CloudInitSeed& s) { s.mac = ""; }, "addresses", ""},
      {"mtu without mac",
       [](CloudInitSeed& s) {
         s.mac = "";
         s.addresses.clear();
         s.routes.clear();
       },
       "mtu", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    CloudInitSeed seed = PodSeed();
    c.change(seed);
    absl::Status status = ValidateCloudInitSeed(seed);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
    if (!c.value.empty()) {
      EXPECT_THAT(std::string(status.message()), HasSubstr(c.value));
    }
  }
}

// --- the ISO image ---

struct IsoFile {
  std::string contents;
  mode_t mode = 0;
};

// The entries of the ISO image at `path`, read with libarchive, but for its
// root directory (".").
std::map<std::string, IsoFile> ReadIso(const std::string& path) {
  std::map<std::string, IsoFile> files;
  struct archive* archive = archive_read_new();
  archive_read_support_format_iso9660(archive);
  EXPECT_EQ(archive_read_open_filename(archive, path.c_str(), 10240), ARCHIVE_OK)
      << archive_error_string(archive);
  struct archive_entry* entry;
  while (archive_read_next_header(archive, &entry) == ARCHIVE_OK) {
    if (std::string(archive_entry_pathname(entry)) == ".") {
      EXPECT_EQ(archive_entry_filetype(entry), static_cast<mode_t>(AE_IFDIR));
      continue;
    }
    IsoFile file;
    file.mode = archive_entry_mode(entry);
    char buffer[4096];
    la_ssize_t n;
    while ((n = archive_read_data(archive, buffer, sizeof(buffer))) > 0) {
      file.contents.append(buffer, static_cast<size_t>(n));
    }
    EXPECT_EQ(n, 0) << archive_error_string(archive);
    files[archive_entry_pathname(entry)] = file;
  }
  archive_read_free(archive);
  return files;
}

// blkid from PATH or the sbin directories, or "" when it is not installed.
std::string FindBlkid() {
  std::string path = "/usr/sbin:/sbin:/usr/bin:/bin";
  if (const char* env = std::getenv("PATH")) path = std::string(env) + ":" + path;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string candidate = path.substr(start, end - start) + "/blkid";
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

class NoCloudSeedTest : public ::testing::Test {
 protected:
  std::string SeedPath() const { return dir_.path() + "/seed.iso"; }
  bool Exists(const std::string& path) const { return ::access(path.c_str(), F_OK) == 0; }
  // Temporary files of the atomic write ("seed.iso.tmp-..."), left behind.
  std::vector<std::string> TempFiles() const {
    std::vector<std::string> found;
    for (const std::string& name :
         ListDirectory(dir_.path()).value_or(std::vector<std::string>{})) {
      if (name.starts_with("seed.iso.tmp-")) found.push_back(name);
    }
    return found;
  }
  vmlet::testing::TempDir dir_;
};

TEST_F(NoCloudSeedTest, HoldsExactlyTheFourFiles) {
  CloudInitSeed seed = PodSeed();
  seed.user_data = "#cloud-config\npackages: [curl]\n";
  ASSERT_TRUE(WriteNoCloudSeed(SeedPath(), seed).ok());
  std::map<std::string, IsoFile> files = ReadIso(SeedPath());
  std::vector<std::string> names;
  for (const auto& [name, file] : files) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("meta-data", "network-config", "user-data", "vendor-data"));
  EXPECT_EQ(files["meta-data"].contents, RenderMetaData(seed));
  EXPECT_EQ(files["network-config"].contents, RenderNetworkConfig(seed));
  EXPECT_EQ(files["vendor-data"].contents, RenderVendorData(seed));
  EXPECT_EQ(files["user-data"].contents, seed.user_data);
  for (const auto& [name, file] : files) {
    EXPECT_EQ(file.mode, S_IFREG | 0644) << name;
  }
  EXPECT_THAT(TempFiles(), ::testing::IsEmpty());
}

TEST_F(NoCloudSeedTest, EmptyUserDataIsAnEmptyCloudConfig) {
  CloudInitSeed seed;
  seed.instance_id = "abc";
  ASSERT_TRUE(WriteNoCloudSeed(SeedPath(), seed).ok());
  EXPECT_EQ(ReadIso(SeedPath())["user-data"].contents, "#cloud-config\n{}\n");
}

TEST_F(NoCloudSeedTest, IsLabelledCidataAndWorldReadable) {
  // The mode is 0644 whatever the umask.
  mode_t old_umask = ::umask(077);
  absl::Status status = WriteNoCloudSeed(SeedPath(), PodSeed());
  ::umask(old_umask);
  ASSERT_TRUE(status.ok()) << status;
  struct stat st;
  ASSERT_EQ(::stat(SeedPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);

  absl::StatusOr<std::string> image = ReadFile(SeedPath());
  ASSERT_TRUE(image.ok());
  ASSERT_GT(image->size(), 32768u + 72u);
  EXPECT_EQ(image->substr(32768, 6), std::string("\x01"
                                                 "CD001",
                                                 6));
  EXPECT_EQ(image->substr(32768 + 40, 32), "cidata" + std::string(26, ' '));

  std::string blkid = FindBlkid();
  if (blkid.empty()) {
    std::cerr << "blkid is not installed; not checking its view\n";
    return;
  }
  absl::StatusOr<ProcessResult> result =
      RunProcess({blkid, "-c", "/dev/null", "-o", "export", SeedPath()});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output;
  EXPECT_THAT(result->output, HasSubstr("TYPE=iso9660\n"));
  EXPECT_THAT(result->output, HasSubstr("LABEL=cidata\n"));
}

TEST_F(NoCloudSeedTest, RewritingReplacesTheSeedAtomically) {
  CloudInitSeed first = PodSeed();
  first.instance_id = "first";
  ASSERT_TRUE(WriteNoCloudSeed(SeedPath(), first).ok());
  int old_fd = ::open(SeedPath().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(old_fd, 0);
  struct stat old_st;
  ASSERT_EQ(::fstat(old_fd, &old_st), 0);
  // A stray file beside it (a crash's leftover) is no obstacle.
  ASSERT_TRUE(WriteFileAtomically(SeedPath() + ".tmp", "junk").ok());

  CloudInitSeed second = PodSeed();
  second.instance_id = "second";
  ASSERT_TRUE(WriteNoCloudSeed(SeedPath(), second).ok());
  EXPECT_EQ(ReadIso(SeedPath())["meta-data"].contents, RenderMetaData(second));
  // A new inode took the name; whoever had the old one open still reads it whole.
  struct stat new_st;
  ASSERT_EQ(::stat(SeedPath().c_str(), &new_st), 0);
  EXPECT_NE(new_st.st_ino, old_st.st_ino);
  EXPECT_EQ(old_st.st_nlink, 1u);
  ASSERT_EQ(::fstat(old_fd, &old_st), 0);
  EXPECT_EQ(old_st.st_nlink, 0u);
  ::close(old_fd);
}

TEST_F(NoCloudSeedTest, AnInvalidSeedLeavesTheOldOneAlone) {
  ASSERT_TRUE(WriteNoCloudSeed(SeedPath(), PodSeed()).ok());
  absl::StatusOr<std::string> before = ReadFile(SeedPath());
  ASSERT_TRUE(before.ok());
  CloudInitSeed bad = PodSeed();
  bad.mac = "nope";
  EXPECT_EQ(WriteNoCloudSeed(SeedPath(), bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(SeedPath()).value_or(""), *before);
  EXPECT_THAT(TempFiles(), ::testing::IsEmpty());
}

TEST_F(NoCloudSeedTest, AFailedRenameLeavesNoTmp) {
  // The image is written, then cannot take the name of a directory.
  ASSERT_TRUE(MakeDirs(SeedPath()).ok());
  absl::Status status = WriteNoCloudSeed(SeedPath(), PodSeed());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("renaming"));
  EXPECT_THAT(TempFiles(), ::testing::IsEmpty());
  struct stat st;
  ASSERT_EQ(::stat(SeedPath().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(NoCloudSeedTest, AnUnwritableDirectoryFailsAndLeavesNoTmp) {
  const std::string dir = dir_.path() + "/ro";
  ASSERT_TRUE(MakeDirs(dir, 0555).ok());
  ASSERT_EQ(::chmod(dir.c_str(), 0555), 0);
  // Root writes through modes; /proc refuses new files even to root.
  const bool privileged = ::access(dir.c_str(), W_OK) == 0;
  const std::string path = (privileged ? std::string("/proc") : dir) + "/vmlet-seed-test.iso";
  absl::Status status = WriteNoCloudSeed(path, PodSeed());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(path + ".tmp"));
  EXPECT_FALSE(Exists(path + ".tmp"));
  EXPECT_FALSE(Exists(path));
  ::chmod(dir.c_str(), 0755);  // So that TempDir can remove it.
}

TEST_F(NoCloudSeedTest, AMissingDirectoryIsNotFound) {
  EXPECT_EQ(WriteNoCloudSeed(dir_.path() + "/missing/seed.iso", PodSeed()).code(),
            absl::StatusCode::kNotFound);
}

// --- input from annotations and VM specs ---

TEST(MetaDataTest, SshKeysBecomePublicKeys) {
  CloudInitSeed seed = PodSeed();
  seed.ssh_authorized_keys = {"ssh-ed25519 AAAAC3Nz alice", "ssh-rsa AAAAB3 bob@host"};
  YAML::Node doc = YAML::Load(RenderMetaData(seed));
  EXPECT_THAT(Strings(doc["public-keys"]),
              ElementsAre("ssh-ed25519 AAAAC3Nz alice", "ssh-rsa AAAAB3 bob@host"));
  EXPECT_FALSE(YAML::Load(RenderMetaData(PodSeed()))["public-keys"]);
}

TEST(MetaDataTest, UserMetaDataIsMergedAndVmletKeysWin) {
  CloudInitSeed seed = PodSeed();
  seed.ssh_authorized_keys = {"ssh-rsa AAAA a"};
  seed.meta_data =
      "instance-id: theirs\nlocal-hostname: theirs\npublic-keys: [x]\n"
      "availability-zone: rack-3\ntags: {role: db}\n";
  YAML::Node doc = YAML::Load(RenderMetaData(seed));
  ExpectQuoted(doc["instance-id"], "3f2a9c");
  ExpectQuoted(doc["local-hostname"], "web-0");
  EXPECT_THAT(Strings(doc["public-keys"]), ElementsAre("ssh-rsa AAAA a"));
  EXPECT_EQ(doc["availability-zone"].as<std::string>(), "rack-3");
  EXPECT_EQ(doc["tags"]["role"].as<std::string>(), "db");
  EXPECT_EQ(doc.size(), 5u);
}

TEST(NetworkConfigTest, AUserNetworkConfigReplacesTheGeneratedOne) {
  CloudInitSeed seed = PodSeed();
  seed.network_config = "version: 1\nconfig:\n- type: physical\n  name: eth0\n";
  EXPECT_EQ(RenderNetworkConfig(seed), seed.network_config);
  seed.network_config = "version: 2";  // A final line break is added.
  EXPECT_EQ(RenderNetworkConfig(seed), "version: 2\n");
}

TEST(ValidateTest, ChecksTheUserDocumentsAndKeys) {
  struct Case {
    const char* what;
    std::function<void(CloudInitSeed&)> change;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"network config too big",
       [](CloudInitSeed& s) { s.network_config = "version: 2\n" + std::string(65536, '#'); },
       "network_config is 65547 bytes, more than the 65536 allowed"},
      {"meta data too big", [](CloudInitSeed& s) { s.meta_data = std::string(65537, '#'); },
       "meta_data is 65537 bytes"},
      {"control in network config", [](CloudInitSeed& s) { s.network_config = "version: 2\x01"; },
       "network_config has a control character"},
      {"meta data not a map", [](CloudInitSeed& s) { s.meta_data = "- a\n- b\n"; },
       "meta_data is not a YAML map"},
      {"meta data not YAML", [](CloudInitSeed& s) { s.meta_data = "a: [1\n"; },
       "meta_data is not YAML"},
      {"meta data nested deep",
       [](CloudInitSeed& s) {
         s.meta_data = "a: " + std::string(100, '[') + std::string(100, ']');
       },
       "meta_data nests flow collections"},
      {"empty ssh key", [](CloudInitSeed& s) { s.ssh_authorized_keys = {""}; },
       "ssh_authorized_keys[0] is 0 bytes"},
      {"long ssh key",
       [](CloudInitSeed& s) { s.ssh_authorized_keys = {"ssh-rsa " + std::string(8192, 'A')}; },
       "ssh_authorized_keys[0] is 8200 bytes"},
      {"ssh key with a line break",
       [](CloudInitSeed& s) {
         s.ssh_authorized_keys = {"ok", "ssh-rsa A\nssh-rsa B"};
       },
       "ssh_authorized_keys[1]"},
      {"all files over 256 KiB",
       [](CloudInitSeed& s) {
         s.user_data = "#cloud-config\n" + std::string(65000, '#');
         s.network_config = "version: 2\n" + std::string(65000, '#');
         s.meta_data = "a: b\n" + std::string(65000, '#');
         for (int i = 0; i < 24; ++i) s.ssh_authorized_keys.push_back(std::string(8000, 'A'));
       },
       "more than the 262144 allowed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    CloudInitSeed seed = PodSeed();
    c.change(seed);
    absl::Status status = ValidateCloudInitSeed(seed);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.expected));
  }
  CloudInitSeed good = PodSeed();
  good.user_data = "#cloud-config\n" + std::string(60000, '#');
  good.network_config = "version: 2\n\tethernets: {}\r\n";
  good.meta_data = "# nothing but a comment\n";
  good.ssh_authorized_keys = {"ssh-rsa AAAA \xc3\xa9t\xc3\xa9"};
  EXPECT_TRUE(ValidateCloudInitSeed(good).ok()) << ValidateCloudInitSeed(good);
}

TEST_F(NoCloudSeedTest, CarriesTheUserInput) {
  CloudInitSeed seed = PodSeed();
  seed.user_data = "#cloud-config\nruncmd: [reboot]\n";
  seed.network_config = "version: 2\nethernets: {}\n";
  seed.ssh_authorized_keys = {"ssh-ed25519 AAAA k"};
  seed.meta_data = "zone: z1\n";
  ASSERT_TRUE(WriteNoCloudSeed(SeedPath(), seed).ok());
  std::map<std::string, IsoFile> files = ReadIso(SeedPath());
  EXPECT_EQ(files["user-data"].contents, seed.user_data);
  EXPECT_EQ(files["network-config"].contents, seed.network_config);
  YAML::Node meta = YAML::Load(files["meta-data"].contents);
  EXPECT_THAT(Strings(meta["public-keys"]), ElementsAre("ssh-ed25519 AAAA k"));
  EXPECT_EQ(meta["zone"].as<std::string>(), "z1");
}

}  // namespace
}  // namespace vmlet::network
