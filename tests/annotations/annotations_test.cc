// vmlet.io/ annotations: every key with accepted and refused values, the
// size limits and the keys that only a pod may carry.
#include "annotations/annotations.h"

#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vmlet::annotations {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kEd25519[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8bXn3pSgpMRKMwpjZ6k8xTfOI6gIl3u7lNq0E6dDdl alice@host";
constexpr char kRsa[] = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob";

absl::StatusOr<VmTunables> Parse(const std::string& key, const std::string& value,
                                 Scope scope = Scope::kPod) {
  return ParseVmTunables({{key, value}}, "config.annotations", scope);
}

VmTunables ParseOk(const std::string& key, const std::string& value) {
  absl::StatusOr<VmTunables> tunables = Parse(key, value);
  EXPECT_TRUE(tunables.ok()) << key << "=" << value << ": " << tunables.status();
  return tunables.ok() ? *tunables : VmTunables{};
}

TEST(ParseVmTunablesTest, IgnoresOtherKeysAndSetsNothingWithoutVmletKeys) {
  absl::StatusOr<VmTunables> tunables = ParseVmTunables(
      {{"kubernetes.io/config.seen", "x"}, {"vmlet.iox/vcpus", "abc"}}, "config.annotations");
  ASSERT_TRUE(tunables.ok()) << tunables.status();
  EXPECT_EQ(tunables->vcpus, 0);
  EXPECT_EQ(tunables->memory_bytes, 0u);
  EXPECT_EQ(tunables->root_disk_bytes, 0u);
  EXPECT_EQ(tunables->vmspec, "");
  EXPECT_EQ(tunables->machine.ByteSizeLong(), 0u);
}

TEST(ParseVmTunablesTest, ReadsEveryKeyTogether) {
  absl::StatusOr<VmTunables> tunables =
      ParseVmTunables({{"vmlet.io/vcpus", "4"},
                       {"vmlet.io/memory", "2Gi"},
                       {"vmlet.io/cpu-model", "Skylake-Server"},
                       {"vmlet.io/machine", "q35"},
                       {"vmlet.io/firmware", "uefi-secure"},
                       {"vmlet.io/disk-bus", "sata"},
                       {"vmlet.io/nic-model", "e1000e"},
                       {"vmlet.io/root-disk-size", "20Gi"},
                       {"vmlet.io/cloud-init-user-data", "#cloud-config\npackages: [htop]\n"},
                       {"vmlet.io/cloud-init-network-config", "version: 2\nethernets: {}\n"},
                       {"vmlet.io/ssh-keys", std::string(kEd25519) + "\n" + kRsa + "\n"},
                       {"vmlet.io/vmspec", "db-large"}},
                      "config.annotations");
  ASSERT_TRUE(tunables.ok()) << tunables.status();
  EXPECT_EQ(tunables->vcpus, 4);
  EXPECT_EQ(tunables->memory_bytes, uint64_t{2} << 30);
  EXPECT_EQ(tunables->root_disk_bytes, uint64_t{20} << 30);
  EXPECT_EQ(tunables->vmspec, "db-large");
  const vmspec::v1::Machine& machine = tunables->machine;
  EXPECT_EQ(machine.cpu().mode(), "custom");
  EXPECT_EQ(machine.cpu().model(), "Skylake-Server");
  EXPECT_EQ(machine.cpu().count(), 0u);  // vCPUs are in `vcpus`.
  EXPECT_EQ(machine.machine_type(), "q35");
  EXPECT_EQ(machine.firmware().type(), "uefi");
  EXPECT_TRUE(machine.firmware().secure_boot());
  ASSERT_EQ(machine.disks_size(), 1);
  EXPECT_EQ(machine.disks(0).name(), "root");
  EXPECT_TRUE(machine.disks(0).has_root());
  EXPECT_EQ(machine.disks(0).root().size(), "");  // The size is in `root_disk_bytes`.
  EXPECT_EQ(machine.disks(0).bus(), "sata");
  ASSERT_EQ(machine.nics_size(), 1);
  EXPECT_EQ(machine.nics(0).model(), "e1000e");
  EXPECT_EQ(machine.cloud_init().user_data(), "#cloud-config\npackages: [htop]\n");
  EXPECT_EQ(machine.cloud_init().network_config(), "version: 2\nethernets: {}\n");
  EXPECT_THAT(machine.cloud_init().ssh_authorized_keys(), ElementsAre(kEd25519, kRsa));
}

TEST(ParseVmTunablesTest, AcceptsGoodValuesOfEachKey) {
  EXPECT_EQ(ParseOk("vmlet.io/vcpus", "1").vcpus, 1);
  EXPECT_EQ(ParseOk("vmlet.io/vcpus", "512").vcpus, 512);
  EXPECT_EQ(ParseOk("vmlet.io/memory", "16Mi").memory_bytes, uint64_t{16} << 20);
  EXPECT_EQ(ParseOk("vmlet.io/memory", "1.5Gi").memory_bytes, uint64_t{3} << 29);
  EXPECT_EQ(ParseOk("vmlet.io/memory", "1G").memory_bytes, 1000000000u);
  EXPECT_EQ(ParseOk("vmlet.io/root-disk-size", "10737418240").root_disk_bytes, uint64_t{10} << 30);
  for (const char* mode : {"host-passthrough", "host-model"}) {
    VmTunables tunables = ParseOk("vmlet.io/cpu-model", mode);
    EXPECT_EQ(tunables.machine.cpu().mode(), mode);
    EXPECT_EQ(tunables.machine.cpu().model(), "");
  }
  for (const char* model : {"qemu64", "EPYC-Rome", "Cascadelake-Server-v4", "Icelake_x.1"}) {
    VmTunables tunables = ParseOk("vmlet.io/cpu-model", model);
    EXPECT_EQ(tunables.machine.cpu().mode(), "custom");
    EXPECT_EQ(tunables.machine.cpu().model(), model);
  }
  for (const char* type : {"pc", "q35", "pc-q35-7.2", "pc-i440fx-7.2", "pc-q35-2.12.1"}) {
    EXPECT_EQ(ParseOk("vmlet.io/machine", type).machine.machine_type(), type);
  }
  EXPECT_EQ(ParseOk("vmlet.io/firmware", "bios").machine.firmware().type(), "bios");
  VmTunables uefi = ParseOk("vmlet.io/firmware", "uefi");
  EXPECT_EQ(uefi.machine.firmware().type(), "uefi");
  EXPECT_FALSE(uefi.machine.firmware().secure_boot());
  for (const char* bus : {"virtio", "scsi", "sata"}) {
    EXPECT_EQ(ParseOk("vmlet.io/disk-bus", bus).machine.disks(0).bus(), bus);
  }
  for (const char* model : {"virtio", "e1000", "e1000e", "rtl8139"}) {
    EXPECT_EQ(ParseOk("vmlet.io/nic-model", model).machine.nics(0).model(), model);
  }
  for (const char* user_data :
       {"#cloud-config\n{}\n", "#!/bin/sh\necho hi\n", "#include\nhttp://example/x\n",
        "## template: jinja\n#cloud-config\n", "Content-Type: multipart/mixed; boundary=x\n",
        "#cloud-config\nwrite_files:\n- content: \"caf\xc3\xa9\"\n\tpath: /x\n"}) {
    EXPECT_EQ(ParseOk("vmlet.io/cloud-init-user-data", user_data).machine.cloud_init().user_data(),
              user_data);
  }
  for (const char* config :
       {"version: 1\nconfig: []\n", "version: 2\n", "network:\n  version: 2\n  ethernets: {}\n"}) {
    EXPECT_EQ(
        ParseOk("vmlet.io/cloud-init-network-config", config).machine.cloud_init().network_config(),
        config);
  }
  // Blank lines, comments, CRLF and surrounding spaces are fine.
  VmTunables keys =
      ParseOk("vmlet.io/ssh-keys", std::string("# team\r\n\n  ") + kEd25519 + "  \r\n" + kRsa);
  EXPECT_THAT(keys.machine.cloud_init().ssh_authorized_keys(), ElementsAre(kEd25519, kRsa));
  for (const std::string name : {"db", "db-large", "a.b-c.d", "0"}) {
    EXPECT_EQ(ParseOk("vmlet.io/vmspec", name).vmspec, name);
  }
  const std::string longest(253, 'a');
  EXPECT_EQ(ParseOk("vmlet.io/vmspec", longest).vmspec, longest);
}

struct BadCase {
  std::string key;
  std::string value;
  std::string expected;  // In the message, beside the key.
};

TEST(ParseVmTunablesTest, RefusesBadValuesNamingFieldValueAndForm) {
  const std::vector<BadCase> cases = {
      {"vmlet.io/vcpus", "0", "1 to 512"},
      {"vmlet.io/vcpus", "513", "1 to 512"},
      {"vmlet.io/vcpus", "-1", "1 to 512"},
      {"vmlet.io/vcpus", "2.5", "1 to 512"},
      {"vmlet.io/vcpus", "04", "1 to 512"},
      {"vmlet.io/vcpus", "", "1 to 512"},
      {"vmlet.io/vcpus", "99999999999999999999", "1 to 512"},
      {"vmlet.io/memory", "15Mi", "at least 16Mi"},
      {"vmlet.io/memory", "lots", "at least 16Mi"},
      {"vmlet.io/memory", "1Pi", "at least 16Mi"},
      {"vmlet.io/memory", "", "at least 16Mi"},
      {"vmlet.io/root-disk-size", "big", "20Gi"},
      {"vmlet.io/root-disk-size", "0", "20Gi"},
      {"vmlet.io/cpu-model", "", "host-passthrough"},
      {"vmlet.io/cpu-model", "host passthrough", "host-passthrough"},
      {"vmlet.io/cpu-model", "-cpu", "QEMU CPU model"},
      {"vmlet.io/cpu-model", "qemu64,+vmx", "QEMU CPU model"},
      {"vmlet.io/cpu-model", std::string(65, 'a'), "QEMU CPU model"},
      {"vmlet.io/machine", "q35,accel=kvm", "pc-q35-7.2"},
      {"vmlet.io/machine", "pc-q35-", "pc-q35-7.2"},
      {"vmlet.io/machine", "pc-q35-7", "pc-q35-7.2"},
      {"vmlet.io/machine", "pc-q35-7..2", "pc-q35-7.2"},
      {"vmlet.io/machine", "microvm", "pc-q35-7.2"},
      {"vmlet.io/firmware", "UEFI", "uefi-secure"},
      {"vmlet.io/firmware", "efi", "uefi-secure"},
      {"vmlet.io/disk-bus", "ide", "\"virtio\", \"scsi\" or \"sata\""},
      {"vmlet.io/nic-model", "ne2k_pci", "rtl8139"},
      {"vmlet.io/cloud-init-user-data", "packages: [htop]\n", "#cloud-config"},
      {"vmlet.io/cloud-init-user-data", "", "#cloud-config"},
      {"vmlet.io/cloud-init-user-data", "#cloud-config\n\x01", "control character"},
      {"vmlet.io/cloud-init-user-data", "#cloud-config\n\xff", "invalid UTF-8"},
      {"vmlet.io/cloud-init-network-config", "version: 3\n", "version: 2"},
      {"vmlet.io/cloud-init-network-config", "ethernets: {}\n", "version: 2"},
      {"vmlet.io/cloud-init-network-config", "[1, 2]", "version: 2"},
      {"vmlet.io/cloud-init-network-config", "version: [2\n", "is not YAML"},
      {"vmlet.io/cloud-init-network-config", std::string(1000, '[') + std::string(1000, ']'),
       "nested"},
      {"vmlet.io/ssh-keys", "", "no key"},
      {"vmlet.io/ssh-keys", "# only a comment\n", "no key"},
      {"vmlet.io/ssh-keys", "ssh-foo AAAA x", "authorized key"},
      {"vmlet.io/ssh-keys", "ssh-rsa", "authorized key"},
      {"vmlet.io/ssh-keys", "ssh-rsa not*base64", "authorized key"},
      {"vmlet.io/ssh-keys", std::string(kRsa) + "\nssh-rsa AAAA\x01", "line 2"},
      {"vmlet.io/vmspec", "", "DNS-1123 subdomain"},
      {"vmlet.io/vmspec", "DB", "DNS-1123 subdomain"},
      {"vmlet.io/vmspec", "-db", "DNS-1123 subdomain"},
      {"vmlet.io/vmspec", "db-", "DNS-1123 subdomain"},
      {"vmlet.io/vmspec", "db..x", "DNS-1123 subdomain"},
      {"vmlet.io/vmspec", "ns/db", "DNS-1123 subdomain"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.key + "=" + c.value.substr(0, 40));
    absl::StatusOr<VmTunables> tunables = Parse(c.key, c.value);
    ASSERT_FALSE(tunables.ok());
    EXPECT_EQ(tunables.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(tunables.status().message()),
                AllOf(HasSubstr("config.annotations[\"" + c.key + "\"]"), HasSubstr(c.expected)));
  }
}

TEST(ParseVmTunablesTest, AVmspecNameOver253IsRefused) {
  absl::StatusOr<VmTunables> tunables = Parse("vmlet.io/vmspec", std::string(254, 'a'));
  EXPECT_EQ(tunables.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseVmTunablesTest, QuotesTheValueCutTo64Characters) {
  absl::StatusOr<VmTunables> tunables = Parse("vmlet.io/machine", std::string(200, 'x'));
  ASSERT_FALSE(tunables.ok());
  const std::string message(tunables.status().message());
  EXPECT_THAT(message, HasSubstr("\"" + std::string(64, 'x') + "...\""));
  EXPECT_THAT(message, Not(HasSubstr(std::string(65, 'x'))));
}

TEST(ParseVmTunablesTest, AnUnknownKeyIsAnErrorListingTheKnownOnes) {
  absl::StatusOr<VmTunables> tunables = Parse("vmlet.io/cpus", "4");
  ASSERT_FALSE(tunables.ok());
  EXPECT_EQ(tunables.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tunables.status().message()),
              AllOf(HasSubstr("config.annotations[\"vmlet.io/cpus\"] is not a vmlet annotation"),
                    HasSubstr("vmlet.io/vcpus"), HasSubstr("vmlet.io/vmspec")));
  // An unknown key is reported as unknown whatever its value's size.
  tunables = Parse("vmlet.io/x", std::string(10000, 'a'));
  EXPECT_THAT(std::string(tunables.status().message()), HasSubstr("is not a vmlet annotation"));
}

TEST(ParseVmTunablesTest, PodKeysAreRefusedOnAContainer) {
  for (const auto& [key, value] :
       std::map<std::string, std::string>{{"vmlet.io/vmspec", "db"},
                                          {"vmlet.io/ssh-keys", kRsa},
                                          {"vmlet.io/cloud-init-user-data", "#cloud-config\n"},
                                          {"vmlet.io/cloud-init-network-config", "version: 2"}}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(Parse(key, value, Scope::kPod).ok());
    absl::StatusOr<VmTunables> tunables = Parse(key, value, Scope::kContainer);
    ASSERT_FALSE(tunables.ok());
    EXPECT_EQ(tunables.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(tunables.status().message()),
                AllOf(HasSubstr(key), HasSubstr("is a pod annotation")));
  }
  // VM keys may be set on either.
  EXPECT_TRUE(Parse("vmlet.io/vcpus", "2", Scope::kContainer).ok());
}

TEST(ParseVmTunablesTest, EnforcesSizeLimits) {
  // Cloud-init documents: 64 KiB each.
  std::string user_data = "#cloud-config\n";
  user_data += std::string(kMaxCloudInitBytes - user_data.size(), '#');
  EXPECT_TRUE(Parse("vmlet.io/cloud-init-user-data", user_data).ok());
  absl::StatusOr<VmTunables> tunables = Parse("vmlet.io/cloud-init-user-data", user_data + "#");
  EXPECT_THAT(std::string(tunables.status().message()),
              AllOf(HasSubstr("65537 bytes"), HasSubstr("at most 65536")));
  // Other keys: 256 bytes.
  tunables = Parse("vmlet.io/cpu-model", std::string(257, 'a'));
  EXPECT_THAT(std::string(tunables.status().message()), HasSubstr("at most 256 bytes"));
  // SSH keys: at most 32, each at most 8 KiB.
  std::string keys;
  for (int i = 0; i < 32; ++i) keys += std::string(kRsa) + "\n";
  EXPECT_EQ(Parse("vmlet.io/ssh-keys", keys)->machine.cloud_init().ssh_authorized_keys_size(), 32);
  tunables = Parse("vmlet.io/ssh-keys", keys + kRsa);
  EXPECT_THAT(std::string(tunables.status().message()), HasSubstr("more than 32 keys"));
  const std::string long_key = "ssh-rsa " + std::string(8 * 1024, 'A');
  tunables = Parse("vmlet.io/ssh-keys", long_key);
  EXPECT_THAT(std::string(tunables.status().message()),
              AllOf(HasSubstr("line 1"), HasSubstr("at most 8192 bytes per key")));
  // All vmlet.io/ annotations together: 256 KiB.
  std::map<std::string, std::string> big = {
      {"vmlet.io/cloud-init-user-data", user_data},
      {"vmlet.io/cloud-init-network-config", "version: 2\n" + std::string(60000, '#')},
      {"vmlet.io/ssh-keys", keys},
      {"other.io/large", std::string(300 * 1024, 'x')},  // Not counted.
  };
  EXPECT_TRUE(ParseVmTunables(big, "config.annotations").ok());
  std::string many_keys;
  for (int i = 0; i < 32; ++i) many_keys += "ssh-rsa " + std::string(7990, 'A') + "\n";
  big["vmlet.io/ssh-keys"] = many_keys;  // 250 KiB, with the rest over 256 KiB.
  tunables = ParseVmTunables(big, "config.annotations");
  EXPECT_EQ(tunables.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tunables.status().message()), HasSubstr("at most 256 KiB in all"));
}

TEST(ParseByteQuantityTest, ReadsKubernetesQuantities) {
  EXPECT_EQ(*ParseByteQuantity("512Mi"), uint64_t{512} << 20);
  EXPECT_EQ(*ParseByteQuantity("1k"), 1000u);
  EXPECT_EQ(*ParseByteQuantity("1"), 1u);
  EXPECT_FALSE(ParseByteQuantity("").ok());
  EXPECT_FALSE(ParseByteQuantity("1Qi").ok());
  EXPECT_FALSE(ParseByteQuantity(".5Gi").ok());
  EXPECT_FALSE(ParseByteQuantity("0").ok());
}

TEST(IsDns1123SubdomainTest, FollowsKubernetes) {
  EXPECT_TRUE(IsDns1123Subdomain("a"));
  EXPECT_TRUE(IsDns1123Subdomain("my-spec.v2"));
  EXPECT_FALSE(IsDns1123Subdomain(""));
  EXPECT_FALSE(IsDns1123Subdomain("a_b"));
  EXPECT_FALSE(IsDns1123Subdomain("a."));
  EXPECT_FALSE(IsDns1123Subdomain(".a"));
  EXPECT_FALSE(IsDns1123Subdomain(std::string(254, 'a')));
}

}  // namespace
}  // namespace vmlet::annotations
