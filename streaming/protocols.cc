#include "streaming/protocols.h"

#include <algorithm>
#include <charconv>

#include "base/status.h"
#include "base/str_util.h"
#include "nlohmann/json.hpp"

namespace vmlet::streaming {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) StrAppend(&out, out.empty() ? "" : ", ", item);
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && HexDigit(text[i + 1]) >= 0 &&
               HexDigit(text[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> HeaderValues(const Headers& headers, std::string_view name) {
  std::vector<std::string> values;
  for (const auto& [key, value] : headers) {
    if (key != name) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = Trim(rest.substr(0, comma));
      if (!item.empty()) values.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return values;
}

absl::StatusOr<std::string> NegotiateProtocol(const std::vector<std::string>& client,
                                              const std::vector<std::string>& server) {
  if (client.empty()) return std::string();
  for (const std::string& wanted : client) {
    if (std::find(server.begin(), server.end(), wanted) != server.end()) return wanted;
  }
  return absl::InvalidArgumentError(StrCat("no common stream protocol: the client offers [",
                                           Join(client), "], vmlet supports [", Join(server), "]"));
}

std::string ExitStatusJson(int exit_code) {
  nlohmann::json status = {{"metadata", nlohmann::json::object()}};
  if (exit_code == 0) {
    status["status"] = "Success";
  } else {
    status["status"] = "Failure";
    status["message"] =
        StrCat("command terminated with non-zero exit code: exit status ", exit_code);
    status["reason"] = "NonZeroExitCode";
    status["details"] = {
        {"causes", {{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}}}};
  }
  return status.dump();
}

std::string ErrorStatusJson(const absl::Status& error) {
  nlohmann::json status = {{"metadata", nlohmann::json::object()},
                           {"status", "Failure"},
                           {"message", std::string(error.message())},
                           {"reason", "InternalError"},
                           {"details", {{"causes", {{{"message", std::string(error.message())}}}}}},
                           {"code", 500}};
  return status.dump();
}

absl::StatusOr<int> ParseErrorStream(std::string_view protocol, std::string_view content) {
  if (content.empty()) return 0;
  if (protocol != kProtocolV4 && protocol != kProtocolV5) {
    return absl::UnknownError(std::string(content));
  }
  nlohmann::json status = nlohmann::json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (!status.is_object() || !status.contains("status") || !status["status"].is_string()) {
    return absl::UnknownError(StrCat("unreadable status on the error stream: ", content));
  }
  if (status["status"] == "Success") return 0;
  if (status.value("reason", "") == "NonZeroExitCode" && status.contains("details")) {
    for (const auto& cause : status["details"].value("causes", nlohmann::json::array())) {
      if (cause.value("reason", "") != "ExitCode") continue;
      std::string text = cause.value("message", "");
      int code = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
      if (ec == std::errc() && end == text.data() + text.size()) return code;
    }
  }
  return absl::UnknownError(status.value("message", std::string(content)));
}

std::vector<std::string> QueryValues(std::string_view query, std::string_view name) {
  std::vector<std::string> values;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq)) == name) {
      values.push_back(eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return values;
}

}  // namespace vmlet::streaming
