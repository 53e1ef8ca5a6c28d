#include "cmd/vmletd/config.h"

#include <cerrno>
#include <functional>
#include <map>

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_join.h"
#include "base/file_util.h"
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

// cni: {conf_dir: DIR, bin_dirs: [DIR, ...], plugin_timeout_seconds: N}
absl::Status SetCni(const YAML::Node& node, Config& config) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        "key \"cni\": expected a mapping with conf_dir, bin_dirs, plugin_timeout_seconds");
  }
  for (const auto& entry : node) {
    const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
    const std::string key = StrCat("cni.", name);
    if (name == "conf_dir") {
      VMLET_RETURN_IF_ERROR(
          AbsolutePath(&Config::cni_conf_dir, "cni.conf_dir")(entry.second, config));
    } else if (name == "bin_dirs") {
      if (!entry.second.IsSequence() || entry.second.size() == 0) {
        return absl::InvalidArgumentError(
            "key \"cni.bin_dirs\": expected a non-empty list of absolute directories");
      }
      config.cni_bin_dirs.clear();
      for (const auto& item : entry.second) {
        VMLET_ASSIGN_OR_RETURN(std::string dir, Scalar(key, item));
        if (dir.empty() || dir[0] != '/' || dir.find(':') != std::string::npos) {
          return BadValue(key, dir, "an absolute directory without ':'");
        }
        config.cni_bin_dirs.push_back(dir);
      }
    } else if (name == "plugin_timeout_seconds") {
      VMLET_RETURN_IF_ERROR(BoundedInt(&Config::cni_plugin_timeout_seconds,
                                       "cni.plugin_timeout_seconds", 1,
                                       3600)(entry.second, config));
    } else {
      return absl::InvalidArgumentError(StrCat(
          "unknown key \"", key, "\" (known keys: conf_dir, bin_dirs, plugin_timeout_seconds)"));
    }
  }
  return absl::OkStatus();
}

const std::map<std::string, Setter, std::less<>>& Setters() {
  static const auto* setters = new std::map<std::string, Setter, std::less<>>{
      {"cri_socket", AbsolutePath(&Config::cri_socket, "cri_socket")},
      {"vmspec_socket", AbsolutePath(&Config::vmspec_socket, "vmspec_socket")},
      {"state_dir", AbsolutePath(&Config::state_dir, "state_dir")},
      {"run_dir", AbsolutePath(&Config::run_dir, "run_dir")},
      {"libvirt_uri",
       [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("libvirt_uri", node));
         if (value.find(":/") == std::string::npos) {
           return BadValue("libvirt_uri", value, "a libvirt URI such as qemu:///system");
         }
         config.libvirt_uri = value;
         return absl::OkStatus();
       }},
      {"accelerator",
       [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("accelerator", node));
         if (value == "auto") {
           config.accelerator = Accelerator::kAuto;
         } else if (value == "kvm") {
           config.accelerator = Accelerator::kKvm;
         } else if (value == "tcg") {
           config.accelerator = Accelerator::kTcg;
         } else {
           return BadValue("accelerator", value, "one of auto, kvm, tcg");
         }
         return absl::OkStatus();
       }},
      {"log_level",
       [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("log_level", node));
         absl::StatusOr<LogLevel> level = ParseLogLevel(value);
         if (!level.ok()) return BadValue("log_level", value, "one of debug, info, warning, error");
         config.log_level = *level;
         return absl::OkStatus();
       }},
      {"shutdown_timeout_seconds",
       BoundedInt(&Config::shutdown_timeout_seconds, "shutdown_timeout_seconds", 0, 3600)},
      {"default_vcpus", BoundedInt(&Config::default_vcpus, "default_vcpus", 1, 512)},
      {"default_memory_mib",
       BoundedInt(&Config::default_memory_mib, "default_memory_mib", 16, 4 * 1024 * 1024)},
      {"local_images", SetLocalImages},
      {"registries", SetRegistries},
      {"image_translations", SetImageTranslations},
      {"pod_network",
       [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("pod_network", node));
         if (value != "cni" && value != "none") {
           return BadValue("pod_network", value, "cni or none");
         }
         config.pod_network = value;
         return absl::OkStatus();
       }},
      {"cni", SetCni},
      {"vm_driver",
       [](const YAML::Node& node, Config& config) -> absl::Status {
         VMLET_ASSIGN_OR_RETURN(std::string value, Scalar("vm_driver", node));
         if (value != "libvirt" && value != "fake") {
           return BadValue("vm_driver", value, "libvirt (\"fake\" is for the test suite only)");
         }
         config.vm_driver = value;
         return absl::OkStatus();
       }},
  };
  return *setters;
}

std::string KnownKeys() {
  std::vector<std::string> keys;
  for (const auto& [key, setter] : Setters()) keys.push_back(key);
  return absl::StrJoin(keys, ", ");
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
    auto setter = Setters().find(key);
    if (setter == Setters().end()) {
      return absl::InvalidArgumentError(
          StrCat("unknown key \"", key, "\" (known keys: ", KnownKeys(), ")"));
    }
    VMLET_RETURN_IF_ERROR(setter->second(entry.second, config));
  }
  return config;
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

absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (!must_exist && absl::IsNotFound(text.status())) return Config{};
    return Annotate(text.status(), "reading config");
  }
  return ParseConfig(*text, path);
}

}  // namespace vmlet
