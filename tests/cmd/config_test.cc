#include "cmd/vmletd/config.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

void ExpectDefaults(const Config& config) {
  EXPECT_EQ(config.cri_socket, "/run/vmlet/cri.sock");
  EXPECT_EQ(config.vmspec_socket, "/run/vmlet/vmspec.sock");
  EXPECT_EQ(config.state_dir, "/var/lib/vmlet");
  EXPECT_EQ(config.run_dir, "/run/vmlet");
  EXPECT_EQ(config.libvirt_uri, "qemu:///system");
  EXPECT_EQ(config.accelerator, Accelerator::kAuto);
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
  EXPECT_EQ(config.shutdown_timeout_seconds, 10);
  EXPECT_EQ(config.vm_driver, "libvirt");
}

TEST(ParseConfigTest, AnEmptyConfigGivesEveryDefault) {
  const std::vector<std::string> cases = {"", "\n", "# only a comment\n", "---\n", "~\n"};
  for (const std::string& text : cases) {
    SCOPED_TRACE("\"" + text + "\"");
    absl::StatusOr<Config> config = ParseConfig(text, "vmlet.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    ExpectDefaults(*config);
  }
}

TEST(ParseConfigTest, DefaultConfigHasEveryDefault) { ExpectDefaults(Config{}); }

TEST(ParseConfigTest, ParsesEveryKey) {
  absl::StatusOr<Config> config = ParseConfig(R"(
# vmletd test configuration
cri_socket: /tmp/vmlet/cri.sock
vmspec_socket: /tmp/vmlet/vmspec.sock
state_dir: /tmp/vmlet/state
run_dir: "/tmp/vmlet/run"
libvirt_uri: qemu+ssh://host/system
accelerator: tcg
log_level: debug
shutdown_timeout_seconds: 30
vm_driver: fake
)",
                                              "vmlet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cri_socket, "/tmp/vmlet/cri.sock");
  EXPECT_EQ(config->vmspec_socket, "/tmp/vmlet/vmspec.sock");
  EXPECT_EQ(config->state_dir, "/tmp/vmlet/state");
  EXPECT_EQ(config->run_dir, "/tmp/vmlet/run");
  EXPECT_EQ(config->libvirt_uri, "qemu+ssh://host/system");
  EXPECT_EQ(config->accelerator, Accelerator::kTcg);
  EXPECT_EQ(config->log_level, LogLevel::kDebug);
  EXPECT_EQ(config->shutdown_timeout_seconds, 30);
  EXPECT_EQ(config->vm_driver, "fake");
}

TEST(ParseConfigTest, KeysLeftOutKeepTheirDefaults) {
  absl::StatusOr<Config> config = ParseConfig("log_level: error\n", "vmlet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log_level, LogLevel::kError);
  Config expected;
  expected.log_level = LogLevel::kError;
  EXPECT_EQ(config->state_dir, expected.state_dir);
  EXPECT_EQ(config->cri_socket, expected.cri_socket);
  EXPECT_EQ(config->shutdown_timeout_seconds, expected.shutdown_timeout_seconds);
}

TEST(ParseConfigTest, ParsesEveryAccelerator) {
  struct Case {
    std::string text;
    Accelerator accelerator;
  };
  const std::vector<Case> cases = {
      {"auto", Accelerator::kAuto}, {"kvm", Accelerator::kKvm}, {"tcg", Accelerator::kTcg}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<Config> config = ParseConfig("accelerator: " + c.text, "vmlet.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->accelerator, c.accelerator);
    EXPECT_EQ(AcceleratorName(c.accelerator), c.text);
  }
}

TEST(ParseConfigTest, ParsesEveryLogLevel) {
  struct Case {
    std::string text;
    LogLevel level;
  };
  const std::vector<Case> cases = {{"debug", LogLevel::kDebug},
                                   {"info", LogLevel::kInfo},
                                   {"warning", LogLevel::kWarning},
                                   {"warn", LogLevel::kWarning},
                                   {"error", LogLevel::kError}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<Config> config = ParseConfig("log_level: " + c.text, "vmlet.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->log_level, c.level);
  }
}

TEST(ParseConfigTest, AcceptsShutdownTimeoutsAtTheEdgesOfTheRange) {
  for (int seconds : {0, 1, 3600}) {
    SCOPED_TRACE(seconds);
    absl::StatusOr<Config> config =
        ParseConfig("shutdown_timeout_seconds: " + std::to_string(seconds), "vmlet.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->shutdown_timeout_seconds, seconds);
  }
}

TEST(ParseConfigTest, RefusesBadInputNamingTheKeyAndTheValue) {
  struct Case {
    std::string yaml;
    // Every one must appear in the message.
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {"cri_sockett: /run/x.sock",
       {"unknown key \"cri_sockett\"", "known keys: ", "cri_socket", "vmspec_socket", "state_dir",
        "run_dir", "libvirt_uri", "accelerator", "log_level", "shutdown_timeout_seconds",
        "vm_driver"}},
      {"cri_socket: run/vmlet/cri.sock", {"\"cri_socket\"", "\"run/vmlet/cri.sock\"", "absolute"}},
      {"vmspec_socket: vmspec.sock", {"\"vmspec_socket\"", "\"vmspec.sock\"", "absolute"}},
      {"state_dir: var/lib/vmlet", {"\"state_dir\"", "\"var/lib/vmlet\"", "absolute"}},
      {"run_dir: ./run", {"\"run_dir\"", "\"./run\"", "absolute"}},
      {"run_dir: ''", {"\"run_dir\"", "value \"\"", "absolute"}},
      {"libvirt_uri: qemu", {"\"libvirt_uri\"", "\"qemu\""}},
      {"accelerator: xen", {"\"accelerator\"", "\"xen\"", "auto, kvm, tcg"}},
      {"log_level: verbose", {"\"log_level\"", "\"verbose\""}},
      {"shutdown_timeout_seconds: -1", {"\"shutdown_timeout_seconds\"", "\"-1\""}},
      {"shutdown_timeout_seconds: ten", {"\"shutdown_timeout_seconds\"", "\"ten\""}},
      {"shutdown_timeout_seconds: 1.5", {"\"shutdown_timeout_seconds\"", "\"1.5\""}},
      {"shutdown_timeout_seconds: 10s", {"\"shutdown_timeout_seconds\"", "\"10s\""}},
      {"shutdown_timeout_seconds: 3601", {"\"shutdown_timeout_seconds\"", "\"3601\""}},
      {"shutdown_timeout_seconds: 99999999999",
       {"\"shutdown_timeout_seconds\"", "\"99999999999\""}},
      {"vm_driver: qemu", {"\"vm_driver\"", "\"qemu\""}},
      // A mapping or a list where one value is expected.
      {"state_dir: {path: /var/lib/vmlet}", {"\"state_dir\"", "single value"}},
      {"log_level: [debug, info]", {"\"log_level\"", "single value"}},
      {"accelerator:\n  kvm: true", {"\"accelerator\"", "single value"}},
      // A key with no value.
      {"cri_socket:", {"\"cri_socket\"", "single value"}},
      // The document itself is not a mapping.
      {"- cri_socket: /run/x.sock\n- state_dir: /x", {"top level", "mapping"}},
      {"just some words", {"top level", "mapping"}},
      {"? [a, b]\n: c", {"keys must be plain strings"}},
      // Not YAML at all.
      {"log_level: info\ncri_socket: [unterminated\n", {"line "}},
      {"log_level: info\n  bad indentation: here\n", {"line 2"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    absl::StatusOr<Config> config = ParseConfig(c.yaml, "/etc/vmlet/test.yaml");
    ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
    std::string message = Message(config.status());
    EXPECT_THAT(message, StartsWith("config \"/etc/vmlet/test.yaml\": "));
    for (const std::string& mention : c.mentions) EXPECT_THAT(message, HasSubstr(mention));
  }
}

TEST(ParseConfigTest, RefusesAVeryLongPathWithoutQuotingItWhole) {
  std::string path = "/" + std::string(5000, 'p');
  absl::StatusOr<Config> config = ParseConfig("state_dir: " + path, "vmlet.yaml");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  EXPECT_THAT(Message(config.status()), AllOf(HasSubstr("\"state_dir\""), HasSubstr("...")));
  EXPECT_LT(config.status().message().size(), 200u);
}

class LoadConfigTest : public ::testing::Test {
 protected:
  std::string PathOf(const std::string& name) const { return dir_.path() + "/" + name; }

  testing::TempDir dir_;
};

TEST_F(LoadConfigTest, AMissingOptionalFileGivesTheDefaults) {
  absl::StatusOr<Config> config = LoadConfig(PathOf("vmlet.yaml"), /*must_exist=*/false);
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectDefaults(*config);
}

TEST_F(LoadConfigTest, AMissingRequiredFileIsAnErrorNamingIt) {
  std::string path = PathOf("vmlet.yaml");
  absl::StatusOr<Config> config = LoadConfig(path, /*must_exist=*/true);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound) << config.status();
  EXPECT_THAT(Message(config.status()), HasSubstr(path));
}

TEST_F(LoadConfigTest, ParsesTheFile) {
  std::string path = PathOf("vmlet.yaml");
  ASSERT_TRUE(WriteFileAtomically(path, "state_dir: /srv/vmlet\naccelerator: kvm\n").ok());
  for (bool must_exist : {false, true}) {
    SCOPED_TRACE(must_exist);
    absl::StatusOr<Config> config = LoadConfig(path, must_exist);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->state_dir, "/srv/vmlet");
    EXPECT_EQ(config->accelerator, Accelerator::kKvm);
    EXPECT_EQ(config->run_dir, "/run/vmlet");
  }
}

TEST_F(LoadConfigTest, ABadFileIsAnErrorNamingTheFile) {
  std::string path = PathOf("vmlet.yaml");
  ASSERT_TRUE(WriteFileAtomically(path, "log_level: loud\n").ok());
  absl::StatusOr<Config> config = LoadConfig(path, /*must_exist=*/false);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  EXPECT_THAT(Message(config.status()), AllOf(HasSubstr("\"" + path + "\""),
                                              HasSubstr("\"log_level\""), HasSubstr("\"loud\"")));
}

TEST_F(LoadConfigTest, AnUnreadablePathIsAnErrorEvenWhenOptional) {
  // A directory exists but cannot be read as a file.
  absl::StatusOr<Config> config = LoadConfig(dir_.path(), /*must_exist=*/false);
  EXPECT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr(dir_.path()));
}

}  // namespace
}  // namespace vmlet

namespace vmlet {
namespace {

TEST(ConfigVmDefaultsTest, DefaultVcpusMemoryAndLocalImagesParse) {
  absl::StatusOr<Config> config = ParseConfig(
      "default_vcpus: 2\ndefault_memory_mib: 1024\nlocal_images:\n"
      "  \"vmlet.local/demo:1\": /var/lib/vmlet/demo\n",
      "vmlet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->default_vcpus, 2);
  EXPECT_EQ(config->default_memory_mib, 1024);
  ASSERT_EQ(config->local_images.size(), 1u);
  EXPECT_EQ(config->local_images.at("vmlet.local/demo:1"), "/var/lib/vmlet/demo");
}

TEST(ConfigVmDefaultsTest, BadVmDefaultsNameTheKeyAndValue) {
  const std::pair<const char*, const char*> cases[] = {
      {"default_vcpus: 0", "\"default_vcpus\": value \"0\""},
      {"default_memory_mib: 8", "\"default_memory_mib\": value \"8\""},
      {"local_images: [a]", "\"local_images\": expected a mapping"},
      {"local_images:\n  demo: relative/dir", "\"local_images.demo\": value \"relative/dir\""},
  };
  for (const auto& [yaml, message] : cases) {
    absl::StatusOr<Config> config = ParseConfig(yaml, "vmlet.yaml");
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
    EXPECT_THAT(std::string(config.status().message()), ::testing::HasSubstr(message)) << yaml;
  }
}

TEST(ConfigImagesTest, RegistriesAndTranslationsParse) {
  absl::StatusOr<Config> config = ParseConfig(
      "registries:\n"
      "  \"127.0.0.1:5000\":\n"
      "    insecure: true\n"
      "  registry.example:\n"
      "    ca_file: /etc/vmlet/ca.pem\n"
      "    cert_file: /etc/vmlet/c.pem\n"
      "    key_file: /etc/vmlet/k.pem\n"
      "    mirrors: [\"mirror.local:5000\", \"https://m2.example\"]\n"
      "image_translations:\n"
      "  - name: cirros\n"
      "    url: https://example.org/cirros.img\n"
      "  - regex: 'cloud/(.*)'\n"
      "    url: https://images.example/$1.qcow2\n"
      "    tls: {insecure_skip_verify: true}\n",
      "vmlet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->registries.size(), 2u);
  EXPECT_TRUE(config->registries.at("127.0.0.1:5000").plain_http);
  const image::RegistrySettings& example = config->registries.at("registry.example");
  EXPECT_FALSE(example.plain_http);
  EXPECT_EQ(example.tls.ca_file, "/etc/vmlet/ca.pem");
  EXPECT_EQ(example.tls.key_file, "/etc/vmlet/k.pem");
  EXPECT_THAT(example.mirrors, ::testing::ElementsAre("mirror.local:5000", "https://m2.example"));
  ASSERT_EQ(config->image_translations.size(), 2u);
  EXPECT_EQ(config->image_translations[0].name, "cirros");
  EXPECT_EQ(config->image_translations[1].regex, "cloud/(.*)");
  EXPECT_TRUE(config->image_translations[1].tls.insecure_skip_verify);
}

TEST(ConfigImagesTest, BadRegistriesAndTranslationsNameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"registries: [a]", "\"registries\": expected a mapping"},
      {"registries:\n  r.example:\n    insecure: maybe", "\"registries.r.example.insecure\""},
      {"registries:\n  r.example:\n    ca_file: rel.pem", "\"registries.r.example.ca_file\""},
      {"registries:\n  r.example:\n    colour: blue",
       "unknown key \"registries.r.example.colour\""},
      {"registries:\n  r.example:\n    cert_file: /c.pem", "given together"},
      {"image_translations: {a: b}", "\"image_translations\": expected a list"},
      {"image_translations:\n  - name: x\n    url: https://a/b\n    port: 1",
       "unknown key \"image_translations[0].port\""},
      {"image_translations:\n  - regex: '('\n    url: https://a/b", "image_translations"},
      {"image_translations:\n  - name: x\n    url: ftp://a/b", "image_translations"},
  };
  for (const auto& [yaml, message] : cases) {
    absl::StatusOr<Config> config = ParseConfig(yaml, "vmlet.yaml");
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
    EXPECT_THAT(std::string(config.status().message()), ::testing::HasSubstr(message)) << yaml;
  }
}

}  // namespace
}  // namespace vmlet
