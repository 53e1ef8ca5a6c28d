#include "network/cni.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/logging.h"
#include "base/process.h"
#include "base/status.h"
#include "base/str_util.h"

extern char** environ;

namespace vmlet::network {
namespace {

using Json = nlohmann::json;

constexpr Logger kLog("cni");

// Plugin error code of SPEC.md: "Try again later".
constexpr int kTryAgainLater = 11;
// Plugin output quoted in error messages is cut to this size.
constexpr size_t kMaxQuotedOutput = 2000;

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Shown(const Json* value) {
  if (value == nullptr) return "missing";
  std::string text = Dump(*value);
  if (text.size() > 80) text = StrCat(text.substr(0, 77), "...");
  return StrCat("not ", text);
}

absl::Status BadField(std::string_view source, std::string_view field, std::string_view expected,
                      const Json* value) {
  std::string_view separator = value == nullptr ? ", but it is " : ", ";
  return absl::InvalidArgumentError(
      StrCat(source, ": \"", field, "\" must be ", expected, separator, Shown(value)));
}

const Json* Member(const Json& object, const std::string& key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// libcni's rule for network names and container ids.
bool IsCniName(std::string_view name) {
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  };
  return !name.empty() && allowed(name[0]) && name[0] != '_' && name[0] != '.' && name[0] != '-' &&
         std::all_of(name.begin(), name.end(), allowed);
}

// A plugin of a list (or the single plugin of a .conf file).
absl::StatusOr<CniPlugin> ParsePlugin(const Json& object, std::string_view source,
                                      std::string_view field) {
  if (!object.is_object()) return BadField(source, field, "an object", &object);
  const std::string type_field = StrCat(field.empty() ? "" : StrCat(field, "."), "type");
  const Json* type = Member(object, "type");
  if (type == nullptr || !type->is_string() || type->get<std::string>().empty() ||
      type->get<std::string>().find('/') != std::string::npos || *type == "." || *type == "..") {
    return BadField(source, type_field, "the name of a plugin binary", type);
  }
  if (const Json* capabilities = Member(object, "capabilities"); capabilities != nullptr) {
    if (!capabilities->is_object() ||
        !std::all_of(capabilities->begin(), capabilities->end(),
                     [](const Json& enabled) { return enabled.is_boolean(); })) {
      return BadField(source, StrCat(field.empty() ? "" : StrCat(field, "."), "capabilities"),
                      "an object of booleans", capabilities);
    }
  }
  return CniPlugin{.type = type->get<std::string>(), .json = Dump(object)};
}

// The configuration's cniVersion: "cniVersion", or the highest supported
// version of "cniVersions" and "cniVersion" (CNI 1.1).
absl::StatusOr<std::string> ChooseVersion(const Json& doc, std::string_view source) {
  constexpr std::string_view kSupported = "one of 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0";
  const Json* version = Member(doc, "cniVersion");
  if (version != nullptr && !version->is_string()) {
    return BadField(source, "cniVersion", kSupported, version);
  }
  std::string chosen = version != nullptr ? version->get<std::string>() : "";
  if (const Json* versions = Member(doc, "cniVersions"); versions != nullptr) {
    if (!versions->is_array()) {
      return BadField(source, "cniVersions", "an array of version strings", versions);
    }
    for (const Json& candidate : *versions) {
      if (!candidate.is_string()) {
        return BadField(source, "cniVersions", "an array of version strings", versions);
      }
      std::string text = candidate.get<std::string>();
      if (IsSupportedCniVersion(text) &&
          (!IsSupportedCniVersion(chosen) || CompareCniVersions(text, chosen) > 0)) {
        chosen = text;
      }
    }
  }
  if (!IsSupportedCniVersion(chosen)) {
    const Json* versions = Member(doc, "cniVersions");
    if (version == nullptr && versions != nullptr) {
      return BadField(source, "cniVersions", StrCat("an array holding ", kSupported), versions);
    }
    return BadField(source, "cniVersion", kSupported, version);
  }
  return chosen;
}

absl::StatusOr<bool> ParseDisableCheck(const Json& doc, std::string_view source) {
  const Json* value = Member(doc, "disableCheck");
  if (value == nullptr) return false;
  if (value->is_boolean()) return value->get<bool>();
  if (*value == "true" || *value == "false") return *value == "true";
  return BadField(source, "disableCheck", "true or false", value);
}

std::string Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  std::string trimmed(text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1));
  if (trimmed.size() > kMaxQuotedOutput)
    trimmed = StrCat(trimmed.substr(0, kMaxQuotedOutput), "...");
  return trimmed;
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string joined;
  for (const std::string& part : parts) {
    if (!joined.empty()) joined.append(separator);
    joined.append(part);
  }
  return joined;
}

// libcni's rule for interface names (and the kernel's length limit).
bool IsInterfaceName(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
  });
}

absl::Status ValidateRuntime(const CniRuntime& runtime) {
  if (!IsCniName(runtime.container_id)) {
    return absl::InvalidArgumentError(
        StrCat("CNI container id \"", runtime.container_id,
               "\" must be letters, digits, '_', '.' and '-', starting with a letter or digit"));
  }
  if (!IsInterfaceName(runtime.ifname)) {
    return absl::InvalidArgumentError(
        StrCat("CNI interface name \"", runtime.ifname,
               "\" must be 1 to 15 characters without '/', ':' or spaces"));
  }
  for (auto [key, value] :
       {std::pair<std::string_view, std::string_view>{"K8S_POD_NAMESPACE", runtime.pod_namespace},
        {"K8S_POD_NAME", runtime.pod_name},
        {"K8S_POD_UID", runtime.pod_uid}}) {
    if (value.find_first_of(";=") != std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("CNI argument ", key, " \"", value, "\" must not contain ';' or '='"));
    }
  }
  return absl::OkStatus();
}

// The runtimeConfig of one plugin: what the runtime has for each capability
// the plugin enables.
Json RuntimeConfig(const Json& plugin, const CniRuntime& runtime) {
  Json config = Json::object();
  const Json* capabilities = Member(plugin, "capabilities");
  auto enabled = [&](const std::string& name) {
    if (capabilities == nullptr || !capabilities->is_object()) return false;
    const Json* value = Member(*capabilities, name);
    return value != nullptr && *value == true;
  };
  if (enabled("portMappings")) {
    Json mappings = Json::array();
    for (const CniPortMapping& mapping : runtime.port_mappings) {
      if (mapping.host_port <= 0) continue;
      std::string protocol = mapping.protocol;
      std::transform(protocol.begin(), protocol.end(), protocol.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      Json entry = {{"hostPort", mapping.host_port},
                    {"containerPort", mapping.container_port},
                    {"protocol", protocol.empty() ? "tcp" : protocol}};
      if (!mapping.host_ip.empty()) entry["hostIP"] = mapping.host_ip;
      mappings.push_back(std::move(entry));
    }
    config["portMappings"] = std::move(mappings);
  }
  if (enabled("dns") && runtime.dns) {
    config["dns"] = {{"servers", runtime.dns->servers},
                     {"searches", runtime.dns->searches},
                     {"options", runtime.dns->options}};
  }
  if (enabled("bandwidth") && runtime.bandwidth) {
    config["bandwidth"] = {{"ingressRate", runtime.bandwidth->ingress_rate},
                           {"ingressBurst", runtime.bandwidth->ingress_burst},
                           {"egressRate", runtime.bandwidth->egress_rate},
                           {"egressBurst", runtime.bandwidth->egress_burst}};
  }
  return config;
}

// The message of a failed plugin run: the spec's error object when it
// printed one ({"code", "msg", "details"}), else what it wrote.
absl::Status PluginFailure(std::string_view context, const ProcessResult& run) {
  Json error = Json::parse(run.output, nullptr, /*allow_exceptions=*/false);
  const Json* code = error.is_object() ? Member(error, "code") : nullptr;
  const Json* msg = error.is_object() ? Member(error, "msg") : nullptr;
  if (code != nullptr && code->is_number_integer() && msg != nullptr && msg->is_string()) {
    const Json* details = Member(error, "details");
    std::string text = StrCat(context, ": ", msg->get<std::string>());
    if (details != nullptr && details->is_string() && !details->get<std::string>().empty()) {
      StrAppend(&text, ": ", details->get<std::string>());
    }
    StrAppend(&text, " (code ", code->get<int64_t>(), ")");
    return code->get<int64_t>() == kTryAgainLater ? absl::UnavailableError(text)
                                                  : absl::InternalError(text);
  }
  std::vector<std::string> said;
  for (const std::string* output : {&run.error_output, &run.output}) {
    if (std::string trimmed = Trim(*output); !trimmed.empty()) said.push_back(std::move(trimmed));
  }
  std::string text = StrCat(context, ": exited with code ", run.exit_code);
  if (!said.empty()) StrAppend(&text, ": ", Join(said, "; "));
  return absl::InternalError(text);
}

}  // namespace

absl::StatusOr<CniConfig> ParseCniConfig(std::string_view json, std::string_view source,
                                         bool single_plugin) {
  Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError(StrCat(source, ": not valid JSON"));
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(StrCat(source, ": expected a JSON object, not ", Dump(doc)));
  }
  CniConfig config;
  const Json* name = Member(doc, "name");
  if (name == nullptr || !name->is_string() || !IsCniName(name->get<std::string>())) {
    return BadField(source, "name",
                    "a network name of letters, digits, '_', '.' and '-', starting with a letter "
                    "or digit",
                    name);
  }
  config.name = name->get<std::string>();
  VMLET_ASSIGN_OR_RETURN(config.cni_version, ChooseVersion(doc, source));
  if (single_plugin) {
    VMLET_ASSIGN_OR_RETURN(CniPlugin plugin, ParsePlugin(doc, source, ""));
    config.plugins.push_back(std::move(plugin));
    Json list = {{"cniVersion", config.cni_version}, {"name", config.name}};
    list["plugins"] = Json::array({doc});
    config.json = Dump(list);
    return config;
  }
  VMLET_ASSIGN_OR_RETURN(config.disable_check, ParseDisableCheck(doc, source));
  const Json* plugins = Member(doc, "plugins");
  if (plugins == nullptr || !plugins->is_array() || plugins->empty()) {
    return BadField(source, "plugins", "a non-empty array of plugin objects", plugins);
  }
  for (size_t i = 0; i < plugins->size(); ++i) {
    VMLET_ASSIGN_OR_RETURN(CniPlugin plugin,
                           ParsePlugin((*plugins)[i], source, StrCat("plugins[", i, "]")));
    config.plugins.push_back(std::move(plugin));
  }
  doc["cniVersion"] = config.cni_version;
  config.json = Dump(doc);
  return config;
}

absl::StatusOr<CniConfig> LoadCniConfig(const std::string& conf_dir) {
  const std::string context = StrCat("no valid CNI network configuration in ", conf_dir);
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(conf_dir);
  if (!names.ok()) {
    return absl::FailedPreconditionError(StrCat(context, ": ", names.status().message()));
  }
  std::vector<std::string> skipped;
  for (const std::string& name : *names) {
    std::string_view extension =
        std::string_view(name).substr(std::min(name.rfind('.'), name.size()));
    if (extension != ".conflist" && extension != ".conf" && extension != ".json") continue;
    const std::string path = StrCat(conf_dir, "/", name);
    struct stat info;
    if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) continue;
    absl::StatusOr<std::string> text = ReadFile(path);
    absl::StatusOr<CniConfig> config = text.ok()
                                           ? ParseCniConfig(*text, name, extension != ".conflist")
                                           : Annotate(text.status(), name);
    if (config.ok()) {
      config->path = path;
      if (!skipped.empty()) {
        kLog.Debug("using CNI network \"{}\" from {}, skipped: {}", config->name, path,
                   Join(skipped, "; "));
      }
      return config;
    }
    skipped.push_back(std::string(config.status().message()));
  }
  if (skipped.empty()) {
    return absl::FailedPreconditionError(
        StrCat(context, ": it has no *.conflist, *.conf or *.json file"));
  }
  return absl::FailedPreconditionError(StrCat(context, ": ", Join(skipped, "; ")));
}

CniRunner::CniRunner(std::vector<std::string> bin_dirs, absl::Duration timeout)
    : bin_dirs_(std::move(bin_dirs)), timeout_(timeout) {}

absl::StatusOr<std::string> CniRunner::RunPlugin(std::string_view command, const CniConfig& config,
                                                 size_t plugin, const CniRuntime& runtime,
                                                 const std::string* prev_result) const {
  const CniPlugin& spec = config.plugins[plugin];
  const std::string context =
      StrCat("CNI plugin \"", spec.type, "\" of network \"", config.name, "\" failed ", command);
  std::string binary;
  for (const std::string& dir : bin_dirs_) {
    std::string candidate = StrCat(dir, "/", spec.type);
    struct stat info;
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      binary = std::move(candidate);
      break;
    }
  }
  if (binary.empty()) {
    return absl::FailedPreconditionError(
        StrCat("CNI plugin \"", spec.type, "\" not found in ", Join(bin_dirs_, ":")));
  }

  Json stdin_json = Json::parse(spec.json, nullptr, /*allow_exceptions=*/false);
  if (!stdin_json.is_object()) {
    return absl::InvalidArgumentError(StrCat(context, ": its configuration is not a JSON object"));
  }
  stdin_json["name"] = config.name;
  stdin_json["cniVersion"] = config.cni_version;
  if (prev_result != nullptr && !prev_result->empty()) {
    Json previous = Json::parse(*prev_result, nullptr, /*allow_exceptions=*/false);
    if (!previous.is_object()) {
      return absl::InvalidArgumentError(
          StrCat(context, ": the previous result is not a JSON object"));
    }
    stdin_json["prevResult"] = std::move(previous);
  }
  if (Json runtime_config = RuntimeConfig(stdin_json, runtime); !runtime_config.empty()) {
    stdin_json["runtimeConfig"] = std::move(runtime_config);
  }

  ProcessOptions options;
  options.stdin_data = Dump(stdin_json);
  options.separate_stderr = true;
  options.timeout = timeout_;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::string_view(*entry).substr(0, 4) != "CNI_") options.env.push_back(*entry);
  }
  options.env.push_back(StrCat("CNI_COMMAND=", command));
  options.env.push_back(StrCat("CNI_CONTAINERID=", runtime.container_id));
  options.env.push_back(StrCat("CNI_NETNS=", runtime.netns_path));
  options.env.push_back(StrCat("CNI_IFNAME=", runtime.ifname));
  options.env.push_back(StrCat("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=", runtime.pod_namespace,
                               ";K8S_POD_NAME=", runtime.pod_name, ";K8S_POD_INFRA_CONTAINER_ID=",
                               runtime.container_id, ";K8S_POD_UID=", runtime.pod_uid));
  options.env.push_back(StrCat("CNI_PATH=", Join(bin_dirs_, ":")));

  kLog.Debug("{} {} for {} (network \"{}\")", binary, command, runtime.container_id, config.name);
  absl::StatusOr<ProcessResult> run = RunProcess({binary}, options);
  if (!run.ok()) return Annotate(run.status(), context);
  if (run->exit_code != 0) return PluginFailure(context, *run);
  if (std::string said = Trim(run->error_output); !said.empty()) {
    kLog.Debug("{} {} for {} said: {}", spec.type, command, runtime.container_id, said);
  }
  return std::move(run->output);
}

absl::StatusOr<CniResult> CniRunner::Add(const CniConfig& config, const CniRuntime& runtime) const {
  VMLET_RETURN_IF_ERROR(ValidateRuntime(runtime));
  if (runtime.netns_path.empty()) {
    return absl::InvalidArgumentError("CNI ADD needs the network namespace's path (CNI_NETNS)");
  }
  std::optional<CniResult> result;
  for (size_t i = 0; i < config.plugins.size(); ++i) {
    VMLET_ASSIGN_OR_RETURN(std::string output,
                           RunPlugin("ADD", config, i, runtime, result ? &result->json : nullptr));
    // As libcni: a result without a version is in the configuration's.
    Json doc = Json::parse(output, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && !doc.contains("cniVersion")) {
      doc["cniVersion"] = config.cni_version;
      output = Dump(doc);
    }
    absl::StatusOr<CniResult> parsed = ParseCniResult(output);
    if (!parsed.ok()) {
      return absl::InternalError(
          StrCat("CNI plugin \"", config.plugins[i].type, "\" of network \"", config.name,
                 "\" returned an unusable ADD result: ", parsed.status().message()));
    }
    result = std::move(*parsed);
  }
  if (!result) {
    return absl::InvalidArgumentError(StrCat("CNI network \"", config.name, "\" has no plugins"));
  }
  return std::move(*result);
}

absl::Status CniRunner::Del(const CniConfig& config, const CniRuntime& runtime,
                            const CniResult* previous) const {
  VMLET_RETURN_IF_ERROR(ValidateRuntime(runtime));
  const std::string* prev_result = nullptr;
  if (previous != nullptr && CompareCniVersions(config.cni_version, "0.4.0") >= 0) {
    prev_result = &previous->json;
  }
  absl::Status first_error;
  for (size_t i = config.plugins.size(); i-- > 0;) {
    absl::StatusOr<std::string> output = RunPlugin("DEL", config, i, runtime, prev_result);
    if (!output.ok()) {
      kLog.Warning("{}", output.status().message());
      if (first_error.ok()) first_error = output.status();
    }
  }
  return first_error;
}

absl::Status CniRunner::Check(const CniConfig& config, const CniRuntime& runtime,
                              const CniResult& previous) const {
  if (CompareCniVersions(config.cni_version, "0.4.0") < 0 || config.disable_check) {
    return absl::OkStatus();
  }
  VMLET_RETURN_IF_ERROR(ValidateRuntime(runtime));
  for (size_t i = 0; i < config.plugins.size(); ++i) {
    VMLET_RETURN_IF_ERROR(RunPlugin("CHECK", config, i, runtime, &previous.json).status());
  }
  return absl::OkStatus();
}

}  // namespace vmlet::network
