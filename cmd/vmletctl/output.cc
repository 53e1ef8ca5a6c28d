#include "cmd/vmletctl/output.h"

#include <algorithm>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/str_util.h"

namespace vmlet::ctl {

Table::Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

void Table::AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

void Table::Print(std::FILE* out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 3, ' ');
    }
    line += '\n';
    std::fputs(line.c_str(), out);
  }
}

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::fputs(json.c_str(), stdout);
}

std::string JsonQuote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string IndentJson(std::string_view json) {
  std::string out;
  int depth = 0;
  bool in_string = false;
  auto newline = [&] {
    out += '\n';
    out.append(static_cast<size_t>(depth), ' ');
  };
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < json.size()) {
        out += json[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[':
        out += c;
        if (i + 1 < json.size() && (json[i + 1] == '}' || json[i + 1] == ']')) {
          out += json[++i];  // Empty: stays on the line.
        } else {
          ++depth;
          newline();
        }
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      case ' ':
      case '\n':
      case '\t':
      case '\r':
        break;  // Whitespace between tokens is redone.
      default:
        out += c;
    }
  }
  out += '\n';
  return out;
}

std::string Age(int64_t created_at_ns) {
  absl::Duration age = absl::Now() - absl::FromUnixNanos(created_at_ns);
  if (age < absl::Minutes(1)) return StrCat(std::max<int64_t>(0, absl::ToInt64Seconds(age)), "s");
  if (age < absl::Hours(1)) return StrCat(absl::ToInt64Minutes(age), "m");
  if (age < absl::Hours(48)) return StrCat(absl::ToInt64Hours(age), "h");
  return StrCat(absl::ToInt64Hours(age) / 24, "d");
}

std::string ShortId(const std::string& id) {
  std::string_view view = id;
  if (view.starts_with("sha256:")) view.remove_prefix(7);
  return std::string(view.substr(0, 13));
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  uint64_t whole = bytes;
  while (unit + 1 < std::size(kUnits) && whole >= 1024) {
    whole /= 1024;
    ++unit;
  }
  const uint64_t scale = uint64_t{1} << (10 * unit);
  if (bytes % scale == 0) return StrCat(bytes / scale, kUnits[unit]);
  return fmt::format("{:.1f}{}", static_cast<double>(bytes) / static_cast<double>(scale),
                     kUnits[unit]);
}

}  // namespace vmlet::ctl
