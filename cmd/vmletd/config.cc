#include "cmd/vmletd/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <map>

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/host_port.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet {
namespace {

using Setter = std::function<absl::Status(const YAML::Node&, Config&)>;

absl::Status BadValue(std::string_view key, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(
      StrCat("key \"", key, "\": value \"", value, "\" is invalid: expected ", expected));
}

absl::StatusOr<std::string> Scalar(std::string_view key, const YAML::Node& node) {
  if (!node.IsScalar()) {
    return absl::InvalidArgumentError(StrCat("key \"", key, "\": expected a single value"));
  }
  return node.Scalar();
}

Setter AbsolutePath(std::string Config::*field, std::string_view key) {
  return [field, key](const YAML::Node& node, Config& config) -> absl::Status {
    VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, node));
    if (value.empty() || value[0] != '/') return BadValue(key, value, "an absolute path");
    if (value.size() > 4000) return BadValue(key, value.substr(0, 40) + "...", "a shorter path");
    config.*field = value;
    return absl::OkStatus();
  };
}

Setter BoundedInt(int Config::*field, std::string_view key, int min, int max) {
  return [field, key, min, max](const YAML::Node& node, Config& config) -> absl::Status {
    VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, node));
    int number = 0;
    if (!YAML::convert<int>::decode(node, number) || number < min || number > max) {
      return BadValue(key, value, StrCat("a whole number from ", min, " to ", max));
    }
    config.*field = number;
    return absl::OkStatus();
  };
}

absl::Status SetLocalImages(const YAML::Node& node, Config& config) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        "key \"local_images\": expected a mapping of image name to an absolute directory");
  }
  for (const auto& entry : node) {
    if (!entry.first.IsScalar() || entry.first.Scalar().empty()) {
      return absl::InvalidArgumentError("key \"local_images\": image names must be strings");
    }
    const std::string& name = entry.first.Scalar();
    std::string field = StrCat("local_images.", name);
    VMLET_ASSIGN_OR_RETURN(std::string dir, Scalar(field, entry.second));
    if (dir.empty() || dir[0] != '/') return BadValue(field, dir, "an absolute directory");
    config.local_images[name] = dir;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Bool(std::string_view key, const YAML::Node& node) {
  VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, node));
  bool result = false;
  if (!YAML::convert<bool>::decode(node, result)) return BadValue(key, value, "true or false");
  return result;
}

absl::StatusOr<std::string> AbsoluteFile(std::string_view key, const YAML::Node& node) {
  VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, node));
  if (value.empty() || value[0] != '/') return BadValue(key, value, "an absolute file path");
  return value;
}

// Reads the TLS keys of a mapping (ca_file, insecure_skip_verify,
// cert_file, key_file) into `tls`; true when `name` is one of them.
absl::StatusOr<bool> TlsKey(std::string_view prefix, const std::string& name,
                            const YAML::Node& value, image::TlsSettings& tls) {
  std::string key = StrCat(prefix, ".", name);
  if (name == "ca_file") {
    VMLET_ASSIGN_OR_RETURN(tls.ca_file, AbsoluteFile(key, value));
  } else if (name == "cert_file") {
    VMLET_ASSIGN_OR_RETURN(tls.cert_file, AbsoluteFile(key, value));
  } else if (name == "key_file") {
    VMLET_ASSIGN_OR_RETURN(tls.key_file, AbsoluteFile(key, value));
  } else if (name == "insecure_skip_verify") {
    VMLET_ASSIGN_OR_RETURN(tls.insecure_skip_verify, Bool(key, value));
  } else {
    return false;
  }
  return true;
}

absl::Status CheckClientCert(std::string_view prefix, const image::TlsSettings& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        StrCat("key \"", prefix, "\": cert_file and key_file must be given together"));
  }
  return absl::OkStatus();
}

absl::Status SetRegistries(const YAML::Node& node, Config& config) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        "key \"registries\": expected a mapping of registry host[:port] to its settings");
  }
  for (const auto& entry : node) {
    if (!entry.first.IsScalar() || entry.first.Scalar().empty() ||
        entry.first.Scalar().find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          "key \"registries\": each key must be a registry host[:port] such as "
          "\"registry.example:5000\"");
    }
    const std::string host = entry.first.Scalar();
    const std::string prefix = StrCat("registries.", host);
    if (!entry.second.IsMap()) {
      return absl::InvalidArgumentError(
          StrCat("key \"", prefix,
                 "\": expected a mapping with insecure, ca_file, insecure_skip_verify, cert_file, "
                 "key_file, mirrors"));
    }
    image::RegistrySettings settings;
    for (const auto& item : entry.second) {
      const std::string name = item.first.Scalar();
      const std::string key = StrCat(prefix, ".", name);
      VMLET_ASSIGN_OR_RETURN(bool tls_key, TlsKey(prefix, name, item.second, settings.tls));
      if (tls_key) continue;
      if (name == "insecure") {
        VMLET_ASSIGN_OR_RETURN(settings.plain_http, Bool(key, item.second));
      } else if (name == "mirrors") {
        if (!item.second.IsSequence()) {
          return absl::InvalidArgumentError(
              StrCat("key \"", key, "\": expected a list of mirror hosts or http(s) URLs"));
        }
        for (const auto& mirror : item.second) {
          VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, mirror));
          if (value.empty()) return BadValue(key, value, "a mirror host or http(s) URL");
          settings.mirrors.push_back(value);
        }
      } else {
        return absl::InvalidArgumentError(
            StrCat("unknown key \"", key,
                   "\" (known keys: insecure, ca_file, insecure_skip_verify, cert_file, key_file, "
                   "mirrors)"));
      }
    }
    VMLET_RETURN_IF_ERROR(CheckClientCert(prefix, settings.tls));
    config.registries[host] = std::move(settings);
  }
  return absl::OkStatus();
}

absl::Status SetImageTranslations(const YAML::Node& node, Config& config) {
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError(
        "key \"image_translations\": expected a list of rules with name or regex, url and "
        "optional tls");
  }
  std::vector<image::TranslationRule> rules;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string prefix = StrCat("image_translations[", i, "]");
    const YAML::Node& item = node[i];
    if (!item.IsMap()) {
      return absl::InvalidArgumentError(
          StrCat("key \"", prefix, "\": expected a mapping with name or regex, url, tls"));
    }
    image::TranslationRule rule;
    for (const auto& field : item) {
      const std::string name = field.first.Scalar();
      const std::string key = StrCat(prefix, ".", name);
      if (name == "name") {
        VMLET_ASSIGN_OR_RETURN(rule.name, Scalar(key, field.second));
      } else if (name == "regex") {
        VMLET_ASSIGN_OR_RETURN(rule.regex, Scalar(key, field.second));
      } else if (name == "url") {
        VMLET_ASSIGN_OR_RETURN(rule.url, Scalar(key, field.second));
      } else if (name == "tls") {
        if (!field.second.IsMap()) {
          return absl::InvalidArgumentError(StrCat(
              "key \"", key,
              "\": expected a mapping with ca_file, insecure_skip_verify, cert_file, key_file"));
        }
        for (const auto& tls_item : field.second) {
          const std::string tls_name = tls_item.first.Scalar();
          VMLET_ASSIGN_OR_RETURN(bool known, TlsKey(key, tls_name, tls_item.second, rule.tls));
          if (!known) {
            return absl::InvalidArgumentError(
                StrCat("unknown key \"", key, ".", tls_name,
                       "\" (known keys: ca_file, insecure_skip_verify, cert_file, key_file)"));
          }
        }
        VMLET_RETURN_IF_ERROR(CheckClientCert(key, rule.tls));
      } else {
        return absl::InvalidArgumentError(
            StrCat("unknown key \"", key, "\" (known keys: name, regex, url, tls)"));
      }
    }
    rules.push_back(std::move(rule));
  }
  // The rules are checked as a whole (regexes, URLs) by the translator.
  absl::StatusOr<image::Translator> translator = image::Translator::Create(rules);
  if (!translator.ok()) return Annotate(translator.status(), "key \"image_translations\"");
  config.image_translations = std::move(rules);
  return absl::OkStatus();
}

absl::Status SetCniBinDirs(const YAML::Node& node, Config& config) {
  constexpr std::string_view kKey = "cni.bin_dirs";
  if (!node.IsSequence() || node.size() == 0) {
    return absl::InvalidArgumentError(
        "key \"cni.bin_dirs\": expected a non-empty list of absolute directories");
  }
  config.cni_bin_dirs.clear();
  for (const auto& item : node) {
    VMLET_ASSIGN_OR_RETURN(std::string dir, Scalar(kKey, item));
    if (dir.empty() || dir[0] != '/' || dir.find(':') != std::string::npos) {
      return BadValue(kKey, dir, "an absolute directory without ':'");
    }
    config.cni_bin_dirs.push_back(dir);
  }
  return absl::OkStatus();
}

// Writes a value of a map or list key into `out`. An empty one is written
// in flow style ("{}", "[]") whatever the emitter's default.
using Emit = std::function<void(YAML::Emitter& out, const Config&)>;

void EmitTls(YAML::Emitter& out, const image::TlsSettings& tls) {
  if (!tls.ca_file.empty()) out << YAML::Key << "ca_file" << YAML::Value << tls.ca_file;
  if (tls.insecure_skip_verify) {
    out << YAML::Key << "insecure_skip_verify" << YAML::Value << true;
  }
  if (!tls.cert_file.empty()) out << YAML::Key << "cert_file" << YAML::Value << tls.cert_file;
  if (!tls.key_file.empty()) out << YAML::Key << "key_file" << YAML::Value << tls.key_file;
}

bool TlsEmpty(const image::TlsSettings& tls) {
  return tls.ca_file.empty() && !tls.insecure_skip_verify && tls.cert_file.empty() &&
         tls.key_file.empty();
}

void EmitStringList(YAML::Emitter& out, const std::vector<std::string>& list) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& item : list) out << item;
  out << YAML::EndSeq;
}

void EmitLocalImages(YAML::Emitter& out, const Config& config) {
  if (config.local_images.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [name, dir] : config.local_images) {
    out << YAML::Key << name << YAML::Value << dir;
  }
  out << YAML::EndMap;
}

void EmitRegistries(YAML::Emitter& out, const Config& config) {
  if (config.registries.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [host, settings] : config.registries) {
    out << YAML::Key << host << YAML::Value;
    if (!settings.plain_http && TlsEmpty(settings.tls) && settings.mirrors.empty()) {
      out << YAML::Flow;
    }
    out << YAML::BeginMap;
    if (settings.plain_http) out << YAML::Key << "insecure" << YAML::Value << true;
    EmitTls(out, settings.tls);
    if (!settings.mirrors.empty()) {
      out << YAML::Key << "mirrors" << YAML::Value;
      EmitStringList(out, settings.mirrors);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

void EmitImageTranslations(YAML::Emitter& out, const Config& config) {
  if (config.image_translations.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const image::TranslationRule& rule : config.image_translations) {
    out << YAML::BeginMap;
    if (!rule.name.empty()) out << YAML::Key << "name" << YAML::Value << rule.name;
    if (!rule.regex.empty()) out << YAML::Key << "regex" << YAML::Value << rule.regex;
    out << YAML::Key << "url" << YAML::Value << rule.url;
    if (!TlsEmpty(rule.tls)) {
      out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
      EmitTls(out, rule.tls);
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

// One configuration key: how it is parsed and how its value is written.
// Exactly one of `scalar` (a single value, written as it is) and
// `collection` (a map or list, with `empty` saying when it holds nothing)
// is set.
struct KeySpec {
  std::string_view key;  // Dotted for nested keys: "cni.conf_dir".
  Setter set;
  std::function<std::string(const Config&)> scalar;
  Emit collection;
  std::function<bool(const Config&)> empty;
};

KeySpec PathKey(std::string_view key, std::string Config::*field) {
  return {.key = key, .set = AbsolutePath(field, key), .scalar = [field](const Config& config) {
            return config.*field;
          }};
}

// A path that may be left unset, "" or none (the feature it names is then
// off); the reference writes the unset value as none.
KeySpec OptionalPathKey(std::string_view key, std::string Config::*field) {
  return {.key = key,
          .set = [key, field](const YAML::Node& node, Config& config) -> absl::Status {
            if (node.IsNull()) {
              config.*field = "";
              return absl::OkStatus();
            }
            VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, node));
            if (value.empty() || value == "none") {
              config.*field = "";
              return absl::OkStatus();
            }
            return AbsolutePath(field, key)(node, config);
          },
          .scalar =
              [field](const Config& config) {
                return config.*field == "" ? std::string("none") : config.*field;
              }};
}

KeySpec IntKey(std::string_view key, int Config::*field, int min, int max) {
  return {.key = key,
          .set = BoundedInt(field, key, min, max),
          .scalar = [field](const Config& config) { return StrCat(config.*field); }};
}

// A string key whose value is one of `allowed`.
KeySpec ChoiceKey(std::string_view key, std::string Config::*field,
                  std::vector<std::string_view> allowed, std::string_view expected) {
  return {.key = key,
          .set = [key, field, allowed, expected](const YAML::Node& node,
                                                 Config& config) -> absl::Status {
            VMLET_ASSIGN_OR_RETURN(std::string value, Scalar(key, node));
            for (std::string_view choice : allowed) {
              if (value == choice) {
                config.*field = value;
                return absl::OkStatus();
              }
            }
            return BadValue(key, value, expected);
          },
          .scalar = [field](const Config& config) { return config.*field; }};
}

// Every key, in the order of the reference (docs/configuration.md). The
// parser, ConfigKeyValues and RenderConfigYaml all read this one table.
const std::vector<KeySpec>& Keys() {
  static const auto* keys = new std::vector<KeySpec>{
      PathKey("cri_socket", &Config::cri_socket),
      PathKey("vmspec_socket", &Config::vmspec_socket),
      {.key = "vmspec_group",
       .set = [](const YAML::Node& node, Config& config) -> absl::Status {
         if (node.IsNull()) {
           config.vmspec_group = "";
           return absl::OkStatus();
         }
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("vmspec_group", node));
         if (value.empty() || value == "none") {
           config.vmspec_group = "";
           return absl::OkStatus();
         }
         // POSIX portable names, as groupadd takes them (also "$" last).
         bool valid = value.size() <= 32 && value[0] != '-';
         for (size_t i = 0; i < value.size() && valid; ++i) {
           const char c = value[i];
           valid = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '-' || c == '.' || (c == '$' && i + 1 == value.size());
         }
         if (!valid) {
           return BadValue("vmspec_group", value,
                           "a group name (letters, digits, '_', '-', '.'; at most 32) or none");
         }
         config.vmspec_group = value;
         return absl::OkStatus();
       },
       .scalar =
           [](const Config& config) {
             return config.vmspec_group.empty() ? std::string("none") : config.vmspec_group;
           }},
      OptionalPathKey("vmspec_dir", &Config::vmspec_dir),
      PathKey("state_dir", &Config::state_dir),
      PathKey("run_dir", &Config::run_dir),
      {.key = "libvirt_uri",
       .set = [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("libvirt_uri", node));
         if (value.find(":/") == std::string::npos) {
           return BadValue("libvirt_uri", value, "a libvirt URI such as qemu:///system");
         }
         config.libvirt_uri = value;
         return absl::OkStatus();
       },
       .scalar = [](const Config& config) { return config.libvirt_uri; }},
      {.key = "accelerator",
       .set = [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("accelerator", node));
         for (Accelerator accelerator :
              {Accelerator::kAuto, Accelerator::kKvm, Accelerator::kTcg}) {
           if (value == AcceleratorName(accelerator)) {
             config.accelerator = accelerator;
             return absl::OkStatus();
           }
         }
         return BadValue("accelerator", value, "one of auto, kvm, tcg");
       },
       .scalar =
           [](const Config& config) { return std::string(AcceleratorName(config.accelerator)); }},
      {.key = "log_level",
       .set = [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("log_level", node));
         absl::StatusOr<LogLevel> level = ParseLogLevel(value);
         if (!level.ok()) return BadValue("log_level", value, "one of debug, info, warning, error");
         config.log_level = *level;
         return absl::OkStatus();
       },
       .scalar = [](const Config& config) { return std::string(LogLevelName(config.log_level)); }},
      IntKey("shutdown_timeout_seconds", &Config::shutdown_timeout_seconds, 0, 3600),
      IntKey("default_vcpus", &Config::default_vcpus, 1, 512),
      IntKey("default_memory_mib", &Config::default_memory_mib, 16, 4 * 1024 * 1024),
      IntKey("max_vcpus", &Config::max_vcpus, 0, 512),
      IntKey("max_memory_mib", &Config::max_memory_mib, 0, 4 * 1024 * 1024),
      IntKey("stats_interval_seconds", &Config::stats_interval_seconds, 1, 3600),
      ChoiceKey("cgroup_driver", &Config::cgroup_driver, {"auto", "systemd", "cgroupfs"},
                "one of auto, systemd, cgroupfs"),
      {.key = "metrics_address",
       .set = [](const YAML::Node& node, Config& config) -> absl::Status {
         if (node.IsNull()) {
           config.metrics_address = "";
           return absl::OkStatus();
         }
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("metrics_address", node));
         if (value.empty() || value == "none") {
           config.metrics_address = "";
           return absl::OkStatus();
         }
         if (!ParseHostPort(value).ok()) {
           return BadValue("metrics_address", value,
                           "HOST:PORT with an IP address, such as 127.0.0.1:9464 or [::1]:9464, "
                           "or none");
         }
         config.metrics_address = value;
         return absl::OkStatus();
       },
       .scalar =
           [](const Config& config) {
             return config.metrics_address.empty() ? std::string("none") : config.metrics_address;
           }},
      {.key = "local_images",
       .set = SetLocalImages,
       .collection = EmitLocalImages,
       .empty = [](const Config& config) { return config.local_images.empty(); }},
      {.key = "registries",
       .set = SetRegistries,
       .collection = EmitRegistries,
       .empty = [](const Config& config) { return config.registries.empty(); }},
      {.key = "image_translations",
       .set = SetImageTranslations,
       .collection = EmitImageTranslations,
       .empty = [](const Config& config) { return config.image_translations.empty(); }},
      ChoiceKey("pod_network", &Config::pod_network, {"cni", "none"}, "cni or none"),
      PathKey("cni.conf_dir", &Config::cni_conf_dir),
      {.key = "cni.bin_dirs",
       .set = SetCniBinDirs,
       .collection = [](YAML::Emitter& out,
                        const Config& config) { EmitStringList(out, config.cni_bin_dirs); },
       .empty = [](const Config& config) { return config.cni_bin_dirs.empty(); }},
      IntKey("cni.plugin_timeout_seconds", &Config::cni_plugin_timeout_seconds, 1, 3600),
      {.key = "streaming.address",
       .set = [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("streaming.address", node));
         in6_addr address;
         if (::inet_pton(AF_INET, value.c_str(), &address) != 1 &&
             ::inet_pton(AF_INET6, value.c_str(), &address) != 1) {
           return BadValue("streaming.address", value,
                           "an IPv4 or IPv6 address such as 127.0.0.1 (no host name)");
         }
         config.streaming_address = value;
         return absl::OkStatus();
       },
       .scalar = [](const Config& config) { return config.streaming_address; }},
      IntKey("streaming.port", &Config::streaming_port, 0, 65535),
      OptionalPathKey("streaming.tls_cert_file", &Config::streaming_tls_cert_file),
      OptionalPathKey("streaming.tls_key_file", &Config::streaming_tls_key_file),
      ChoiceKey("vm_driver", &Config::vm_driver, {"libvirt", "fake"},
                "libvirt (\"fake\" is for the test suite only)"),
  };
  return *keys;
}

// "cni" for "cni.conf_dir"; the key itself for a top-level key.
std::string_view SectionOf(std::string_view key) { return key.substr(0, key.find('.')); }

const KeySpec* FindKey(std::string_view key) {
  for (const KeySpec& spec : Keys()) {
    if (spec.key == key) return &spec;
  }
  return nullptr;
}

// The names allowed at the top level (`section` empty) or inside a section,
// in the reference's order.
std::vector<std::string> NamesIn(std::string_view section) {
  std::vector<std::string> names;
  for (const KeySpec& spec : Keys()) {
    std::string_view name = spec.key;
    if (section.empty()) {
      name = SectionOf(name);
    } else if (SectionOf(name) == section && name.size() > section.size()) {
      name.remove_prefix(section.size() + 1);
    } else {
      continue;
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.emplace_back(name);
  }
  return names;
}

absl::Status SetSection(std::string_view section, const YAML::Node& node, Config& config) {
  const std::string known = absl::StrJoin(NamesIn(section), ", ");
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        StrCat("key \"", section, "\": expected a mapping with ", known));
  }
  for (const auto& entry : node) {
    const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
    const std::string key = StrCat(section, ".", name);
    const KeySpec* spec = FindKey(key);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          StrCat("unknown key \"", key, "\" (known keys: ", known, ")"));
    }
    VMLET_RETURN_IF_ERROR(spec->set(entry.second, config));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseNode(const YAML::Node& root) {
  Config config;
  if (!root || root.IsNull()) return config;  // An empty file: all defaults.
  if (!root.IsMap()) {
    return absl::InvalidArgumentError("the top level must be a mapping of key: value");
  }
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) {
      return absl::InvalidArgumentError("keys must be plain strings");
    }
    const std::string& key = entry.first.Scalar();
    if (key.find('.') == std::string::npos) {  // Dotted keys are written nested.
      if (const KeySpec* spec = FindKey(key); spec != nullptr) {
        VMLET_RETURN_IF_ERROR(spec->set(entry.second, config));
        continue;
      }
      if (!NamesIn(key).empty()) {
        VMLET_RETURN_IF_ERROR(SetSection(key, entry.second, config));
        continue;
      }
    }
    return absl::InvalidArgumentError(
        StrCat("unknown key \"", key, "\" (known keys: ", absl::StrJoin(NamesIn(""), ", "), ")"));
  }
  if (config.streaming_tls_cert_file.empty() != config.streaming_tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "streaming.tls_cert_file and streaming.tls_key_file: set both (TLS) or neither");
  }
  return config;
}

// The value of `spec` in `config` as ConfigKeyValues writes it.
std::string ValueOf(const KeySpec& spec, const Config& config) {
  if (spec.scalar) return spec.scalar(config);
  if (spec.empty(config)) return "none";
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  spec.collection(out, config);
  return out.c_str();
}

void EmitValue(YAML::Emitter& out, const KeySpec& spec, const Config& config) {
  if (spec.scalar) {
    out << spec.scalar(config);
  } else {
    spec.collection(out, config);
  }
}

}  // namespace

std::string_view AcceleratorName(Accelerator accelerator) {
  switch (accelerator) {
    case Accelerator::kAuto:
      return "auto";
    case Accelerator::kKvm:
      return "kvm";
    case Accelerator::kTcg:
      return "tcg";
  }
  return "unknown";
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml, std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat("config \"", source, "\": line ", e.mark.line + 1, ": ", e.msg));
  }
  absl::StatusOr<Config> config;
  try {
    config = ParseNode(root);
  } catch (const YAML::Exception& e) {
    config = absl::InvalidArgumentError(e.what());
  }
  if (!config.ok()) return Annotate(config.status(), StrCat("config \"", source, "\""));
  return config;
}

std::vector<std::string> KnownConfigKeys() {
  std::vector<std::string> keys;
  for (const KeySpec& spec : Keys()) keys.emplace_back(spec.key);
  return keys;
}

std::vector<std::pair<std::string, std::string>> ConfigKeyValues(const Config& config) {
  std::vector<std::pair<std::string, std::string>> values;
  for (const KeySpec& spec : Keys()) values.emplace_back(spec.key, ValueOf(spec, config));
  return values;
}

std::string RenderConfigYaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::Comment(
             "vmletd configuration in effect (vmletd --print-config): every key, defaults "
             "included")
      << YAML::BeginMap;
  std::vector<std::string_view> done;  // Sections written already.
  for (const KeySpec& spec : Keys()) {
    const std::string_view section = SectionOf(spec.key);
    if (section.size() == spec.key.size()) {
      out << YAML::Key << std::string(spec.key) << YAML::Value;
      EmitValue(out, spec, config);
      continue;
    }
    if (std::find(done.begin(), done.end(), section) != done.end()) continue;
    done.push_back(section);
    out << YAML::Key << std::string(section) << YAML::Value << YAML::BeginMap;
    for (const KeySpec& nested : Keys()) {
      if (SectionOf(nested.key) != section || nested.key.size() == section.size()) continue;
      out << YAML::Key << std::string(nested.key.substr(section.size() + 1)) << YAML::Value;
      EmitValue(out, nested, config);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return StrCat(out.c_str(), "\n");
}

absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (!must_exist && absl::IsNotFound(text.status())) return Config{};
    return Annotate(text.status(), "reading config");
  }
  return ParseConfig(*text, path);
}

}  // namespace vmlet
