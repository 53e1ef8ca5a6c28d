// The configuration reference cannot drift from the code: the key table of
// docs/configuration.md, the commented default file contrib/vmlet.yaml
// (installed as /etc/vmlet/vmlet.yaml) and `vmletd --print-config`
// (RenderConfigYaml) must all say what ConfigKeyValues says. The source
// tree is found through $VMLET_SOURCE_ROOT, which tests/meson.build sets.
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/str_util.h"
#include "cmd/vmletd/config.h"

namespace vmlet {
namespace {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

std::string SourcePath(std::string_view relative) {
  const char* root = std::getenv("VMLET_SOURCE_ROOT");
  return StrCat(root == nullptr ? "." : root, "/", relative);
}

// Lines that say how `theirs` differs from `ours`, one per key, naming both
// sides: empty when they agree (the order of the keys does not count).
std::string Differences(const KeyValues& ours, std::string_view our_name, const KeyValues& theirs,
                        std::string_view their_name) {
  std::map<std::string, std::string> mine(ours.begin(), ours.end());
  std::map<std::string, std::string> other;
  std::string out;
  for (const auto& [key, value] : theirs) {
    if (!other.emplace(key, value).second) {
      StrAppend(&out, "key \"", key, "\" appears more than once in ", their_name, "\n");
    }
  }
  for (const auto& [key, value] : mine) {
    auto it = other.find(key);
    if (it == other.end()) {
      StrAppend(&out, "key \"", key, "\" is in ", our_name, " (\"", value, "\") but not in ",
                their_name, "\n");
    } else if (it->second != value) {
      StrAppend(&out, "key \"", key, "\": ", our_name, " says \"", value, "\", ", their_name,
                " says \"", it->second, "\"\n");
    }
  }
  for (const auto& [key, value] : other) {
    if (!mine.contains(key)) {
      StrAppend(&out, "key \"", key, "\" is in ", their_name, " (\"", value, "\") but not in ",
                our_name, "\n");
    }
  }
  return out;
}

std::string Trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return "";
  const size_t end = text.find_last_not_of(" \t");
  return std::string(text.substr(begin, end - begin + 1));
}

std::string WithoutBackquotes(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c != '`') out.push_back(c);
  }
  return Trim(out);
}

// The cells of a markdown table row ("| a | b |"); "\|" is a literal bar.
std::vector<std::string> Cells(std::string_view row) {
  std::vector<std::string> cells;
  std::string cell;
  for (size_t i = 1; i < row.size(); ++i) {  // row[0] is the leading '|'.
    if (row[i] == '\\' && i + 1 < row.size() && row[i + 1] == '|') {
      cell.push_back('|');
      ++i;
    } else if (row[i] == '|') {
      cells.push_back(Trim(cell));
      cell.clear();
    } else {
      cell.push_back(row[i]);
    }
  }
  return cells;
}

// The key and default columns of the table headed "| key | default |
// meaning |" in `markdown`; `error` says what is wrong with the table.
KeyValues ReferenceTable(const std::string& markdown, std::string* error) {
  KeyValues table;
  bool in_table = false;
  size_t line_number = 0;
  size_t start = 0;
  while (start <= markdown.size()) {
    size_t end = markdown.find('\n', start);
    if (end == std::string::npos) end = markdown.size();
    const std::string line = Trim(std::string_view(markdown).substr(start, end - start));
    start = end + 1;
    ++line_number;
    if (!in_table) {
      if (line.starts_with("|") &&
          Cells(line) == std::vector<std::string>{"key", "default", "meaning"}) {
        if (!table.empty()) {
          *error = StrCat("a second key table starts at line ", line_number);
          return {};
        }
        in_table = true;
      }
      continue;
    }
    if (!line.starts_with("|")) {
      in_table = false;
      continue;
    }
    std::vector<std::string> cells = Cells(line);
    if (cells.size() == 3 && cells[0].find_first_not_of("-: ") == std::string::npos) continue;
    if (cells.size() != 3) {
      *error = StrCat("line ", line_number, " has ", cells.size(),
                      " cells: expected key, default and meaning");
      return {};
    }
    table.emplace_back(WithoutBackquotes(cells[0]), WithoutBackquotes(cells[1]));
  }
  if (table.empty()) *error = "no table headed \"| key | default | meaning |\"";
  return table;
}

// A configuration in which every key differs from its default and every
// map and list has entries, some of them needing YAML quotes.
Config RichConfig() {
  Config config;
  config.cri_socket = "/srv/vmlet/run/cri.sock";
  config.vmspec_socket = "/srv/vmlet/run/vmspec.sock";
  config.vmspec_group = "vmlet-admins";
  config.vmspec_dir = "/srv/vmlet/vmspecs.d";
  config.state_dir = "/srv/vmlet/state";
  config.run_dir = "/srv/vmlet/run";
  config.libvirt_uri = "qemu+ssh://host.example/system";
  config.accelerator = Accelerator::kTcg;
  config.log_level = LogLevel::kDebug;
  config.shutdown_timeout_seconds = 30;
  config.default_vcpus = 4;
  config.default_memory_mib = 2048;
  config.max_vcpus = 8;
  config.max_memory_mib = 4096;
  config.stats_interval_seconds = 10;
  config.cgroup_driver = "systemd";
  config.metrics_address = "127.0.0.2:9464";
  config.local_images = {{"vmlet.local/demo:1", "/var/lib/vmlet/demo/image"},
                         {"docker.io/vms/odd:latest", "/srv/images/odd: name #1"}};
  config.registries["127.0.0.1:5000"].plain_http = true;
  image::RegistrySettings& example = config.registries["registry.example"];
  example.tls.ca_file = "/etc/vmlet/certs/registry-ca.pem";
  example.tls.cert_file = "/etc/vmlet/certs/client.pem";
  example.tls.key_file = "/etc/vmlet/certs/client-key.pem";
  example.mirrors = {"mirror.local:5000", "https://mirror2.example"};
  config.registries["lab.example:8443"].tls.insecure_skip_verify = true;
  config.registries["plain.example"];  // An entry with no settings.
  config.image_translations = {
      {.name = "cirros",
       .regex = "",
       .url = "https://download.cirros-cloud.net/0.6.2/cirros-0.6.2-x86_64-disk.img",
       .tls = {}},
      {.name = "",
       .regex = "cloud/(.*)",
       .url = "https://images.example/vm/$1.qcow2",
       .tls = {.ca_file = "/etc/vmlet/certs/images-ca.pem",
               .insecure_skip_verify = true,
               .cert_file = "/etc/vmlet/certs/c.pem",
               .key_file = "/etc/vmlet/certs/k.pem"}},
  };
  config.pod_network = "none";
  config.cni_conf_dir = "/srv/cni/net.d";
  config.cni_bin_dirs = {"/srv/cni/bin", "/usr/libexec/cni"};
  config.cni_plugin_timeout_seconds = 5;
  config.vm_driver = "fake";
  return config;
}

TEST(ConfigKeysTest, ParserAndConfigKeyValuesKnowTheSameKeys) {
  KeyValues parser;
  for (const std::string& key : KnownConfigKeys()) parser.emplace_back(key, "(known)");
  KeyValues listed;
  for (const auto& [key, value] : ConfigKeyValues(Config{})) listed.emplace_back(key, "(known)");
  EXPECT_EQ(Differences(parser, "the parser's keys", listed, "ConfigKeyValues"), "");
}

// Nested keys are read only inside their mapping, and an unknown one is
// named with the keys its mapping knows.
TEST(ConfigKeysTest, NestedKeysAreReadOnlyInsideTheirMapping) {
  const std::pair<const char*, const char*> cases[] = {
      {"cni.conf_dir: /etc/cni/net.d", "unknown key \"cni.conf_dir\" (known keys: cri_socket,"},
      {"cni:\n  colour: blue",
       "unknown key \"cni.colour\" (known keys: conf_dir, bin_dirs, plugin_timeout_seconds)"},
      {"cni: /etc/cni/net.d",
       "key \"cni\": expected a mapping with conf_dir, bin_dirs, plugin_timeout_seconds"},
      {"cni:\n  bin_dirs: []", "key \"cni.bin_dirs\": expected a non-empty list"},
      {"cni:\n  plugin_timeout_seconds: 0", "key \"cni.plugin_timeout_seconds\": value \"0\""},
  };
  for (const auto& [yaml, message] : cases) {
    absl::StatusOr<Config> config = ParseConfig(yaml, "vmlet.yaml");
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
    EXPECT_THAT(std::string(config.status().message()), ::testing::HasSubstr(message)) << yaml;
  }
  absl::StatusOr<Config> config =
      ParseConfig("cni:\n  conf_dir: /srv/net.d\n  plugin_timeout_seconds: 5\n", "vmlet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cni_conf_dir, "/srv/net.d");
  EXPECT_EQ(config->cni_plugin_timeout_seconds, 5);
  EXPECT_EQ(config->cni_bin_dirs, Config{}.cni_bin_dirs);
}

TEST(ConfigKeysTest, RendersValuesAsTheReferenceWritesDefaults) {
  KeyValues values = ConfigKeyValues(Config{});
  ASSERT_FALSE(values.empty());
  EXPECT_EQ(values.front().first, "cri_socket");
  std::map<std::string, std::string> by_key(values.begin(), values.end());
  EXPECT_EQ(by_key["cri_socket"], "/run/vmlet/cri.sock");
  EXPECT_EQ(by_key["shutdown_timeout_seconds"], "10");
  EXPECT_EQ(by_key["accelerator"], "auto");
  EXPECT_EQ(by_key["log_level"], "info");
  EXPECT_EQ(by_key["local_images"], "none");
  EXPECT_EQ(by_key["registries"], "none");
  EXPECT_EQ(by_key["image_translations"], "none");
  EXPECT_EQ(by_key["cni.bin_dirs"], "[/opt/cni/bin, /usr/lib/cni]");
  EXPECT_EQ(by_key["cni.conf_dir"], "/etc/cni/net.d");
}

// Every key that ConfigKeyValues lists is accepted by ParseConfig, alone,
// and reads back to the value it was written with.
TEST(ConfigKeysTest, EachListedKeyParsesAloneToItsOwnValue) {
  for (const auto& [key, value] : ConfigKeyValues(RichConfig())) {
    SCOPED_TRACE(key);
    const size_t dot = key.find('.');
    const std::string yaml =
        dot == std::string::npos
            ? StrCat(key, ": ", value, "\n")
            : StrCat(key.substr(0, dot), ":\n  ", key.substr(dot + 1), ": ", value, "\n");
    absl::StatusOr<Config> parsed = ParseConfig(yaml, "one key");
    ASSERT_TRUE(parsed.ok()) << "ParseConfig refuses key \"" << key << "\" with the value \""
                             << value << "\" that ConfigKeyValues gives: " << parsed.status();
    const KeyValues read_back = ConfigKeyValues(*parsed);
    std::map<std::string, std::string> read(read_back.begin(), read_back.end());
    EXPECT_EQ(read[key], value) << "key \"" << key << "\" was written as \"" << value
                                << "\" and reads back as \"" << read[key] << "\"";
  }
}

TEST(ConfigReferenceTest, TheTableHasEveryKeyWithTheCodesDefault) {
  const std::string path = SourcePath("docs/configuration.md");
  absl::StatusOr<std::string> markdown = ReadFile(path);
  ASSERT_TRUE(markdown.ok()) << markdown.status();
  std::string error;
  KeyValues table = ReferenceTable(*markdown, &error);
  ASSERT_EQ(error, "") << path;
  EXPECT_EQ(Differences(ConfigKeyValues(Config{}), "the code", table, path), "");
}

TEST(ConfigReferenceTest, TheInstalledDefaultFileGivesTheDefaults) {
  const std::string path = SourcePath("contrib/vmlet.yaml");
  absl::StatusOr<Config> config = LoadConfig(path, /*must_exist=*/true);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(Differences(ConfigKeyValues(Config{}), "Config{}", ConfigKeyValues(*config), path), "");
}

TEST(PrintConfigTest, TheDefaultsReadBackUnchanged) {
  const std::string yaml = RenderConfigYaml(Config{});
  absl::StatusOr<Config> parsed = ParseConfig(yaml, "--print-config");
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << yaml;
  EXPECT_EQ(Differences(ConfigKeyValues(Config{}), "Config{}", ConfigKeyValues(*parsed),
                        "--print-config"),
            "")
      << yaml;
}

TEST(PrintConfigTest, EveryKeyIsWrittenOut) {
  const std::string yaml = RenderConfigYaml(Config{});
  for (const std::string& key : KnownConfigKeys()) {
    const std::string last = key.substr(key.rfind('.') + 1);  // npos + 1 == 0.
    EXPECT_THAT(yaml, ::testing::HasSubstr(StrCat(last, ":"))) << yaml;
  }
}

TEST(PrintConfigTest, ARichConfigReadsBackUnchanged) {
  const Config rich = RichConfig();
  const std::string yaml = RenderConfigYaml(rich);
  absl::StatusOr<Config> parsed = ParseConfig(yaml, "--print-config");
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << yaml;
  EXPECT_EQ(
      Differences(ConfigKeyValues(rich), "the config", ConfigKeyValues(*parsed), "--print-config"),
      "")
      << yaml;
  // ConfigKeyValues writes every field of the maps and lists, so equal
  // values mean equal configurations; spot-check a few fields directly.
  EXPECT_EQ(parsed->local_images, rich.local_images);
  EXPECT_EQ(parsed->registries.at("registry.example").mirrors,
            rich.registries.at("registry.example").mirrors);
  EXPECT_TRUE(parsed->image_translations.at(1).tls.insecure_skip_verify);
  EXPECT_EQ(parsed->cni_bin_dirs, rich.cni_bin_dirs);
}

// The table parser of this test: a reference whose table lost a key or
// whose default changed is reported with both sides.
TEST(ConfigReferenceTest, ReportsWhichKeyDiffersAndWhatEachSideSays) {
  std::string error;
  KeyValues table = ReferenceTable(
      "intro\n\n| key | default | meaning |\n| --- | --- | --- |\n"
      "| `cri_socket` | `/run/other.sock` | a \\| b |\n| `made_up` | `1` | x |\n\nafter\n",
      &error);
  ASSERT_EQ(error, "");
  EXPECT_THAT(table, ::testing::ElementsAre(
                         std::pair<std::string, std::string>{"cri_socket", "/run/other.sock"},
                         std::pair<std::string, std::string>{"made_up", "1"}));
  std::string differences = Differences(
      {{"cri_socket", "/run/vmlet/cri.sock"}, {"state_dir", "/x"}}, "the code", table, "docs");
  EXPECT_THAT(
      differences,
      ::testing::HasSubstr("key \"cri_socket\": the code says \"/run/vmlet/cri.sock\", docs says "
                           "\"/run/other.sock\""));
  EXPECT_THAT(differences,
              ::testing::HasSubstr("key \"state_dir\" is in the code (\"/x\") but not in docs"));
  EXPECT_THAT(differences,
              ::testing::HasSubstr("key \"made_up\" is in docs (\"1\") but not in the code"));
}

}  // namespace
}  // namespace vmlet
