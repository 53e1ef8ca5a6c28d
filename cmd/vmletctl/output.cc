#include "cmd/vmletctl/output.h"

#include <algorithm>
#include <cctype>

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

namespace {

// Converts well-formed JSON to block-style YAML, keeping the order of keys.
// Recursive descent over the text; malformed input ends the output early
// (vmletctl only converts JSON it made itself).
class JsonToYamlConverter {
 public:
  explicit JsonToYamlConverter(std::string_view json) : json_(json) {}

  std::string Convert() {
    std::string out;
    SkipSpace();
    if (pos_ < json_.size()) Block(0, out);
    return out;
  }

 private:
  void SkipSpace() {
    while (pos_ < json_.size() && std::isspace(static_cast<unsigned char>(json_[pos_]))) ++pos_;
  }
  char Peek() {
    SkipSpace();
    return pos_ < json_.size() ? json_[pos_] : '\0';
  }

  // Whether the value at pos_ is a non-empty object or array.
  bool AtNonEmptyContainer() {
    const char c = Peek();
    if (c != '{' && c != '[') return false;
    size_t next = pos_ + 1;
    while (next < json_.size() && std::isspace(static_cast<unsigned char>(json_[next]))) ++next;
    return next < json_.size() && json_[next] != '}' && json_[next] != ']';
  }

  // The raw text of the scalar (or empty container) at pos_.
  std::string_view RawScalar() {
    const size_t start = pos_;
    const char c = Peek();
    if (c == '"') {
      for (++pos_; pos_ < json_.size() && json_[pos_] != '"'; ++pos_) {
        if (json_[pos_] == '\\') ++pos_;
      }
      ++pos_;
    } else if (c == '{' || c == '[') {
      ++pos_;
      SkipSpace();
      ++pos_;  // The closing bracket.
      return c == '{' ? "{}" : "[]";
    } else {
      while (pos_ < json_.size() && json_[pos_] != ',' && json_[pos_] != '}' &&
             json_[pos_] != ']' && !std::isspace(static_cast<unsigned char>(json_[pos_]))) {
        ++pos_;
      }
    }
    return json_.substr(start, std::min(pos_, json_.size()) - start);
  }

  // A scalar as YAML: a string plain when that reads back as the same
  // string, else double-quoted (a JSON string literal is a valid YAML
  // double-quoted scalar); numbers, booleans and null as they are.
  std::string Scalar() {
    std::string_view raw = RawScalar();
    if (!raw.starts_with('"')) return std::string(raw);
    std::string_view text = raw.substr(1, raw.size() >= 2 ? raw.size() - 2 : 0);
    return PlainIsSafe(text) ? std::string(text) : std::string(raw);
  }

  static bool PlainIsSafe(std::string_view text) {
    if (text.empty() ||
        !(std::isalpha(static_cast<unsigned char>(text[0])) || text[0] == '/' || text[0] == '_')) {
      return false;
    }
    for (char c : text) {
      if (!std::isalnum(static_cast<unsigned char>(c)) &&
          std::string_view("_./@+-:=").find(c) == std::string_view::npos) {
        return false;  // Spaces, quotes, escapes, '#', ',', brackets, non-ASCII.
      }
    }
    if (text.back() == ':') return false;
    std::string lower(text);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static constexpr std::string_view kSpecial[] = {"true", "false", "yes", "no",   "on",   "off",
                                                    "null", "y",     "n",   ".inf", ".nan", "~"};
    return std::find(std::begin(kSpecial), std::end(kSpecial), lower) == std::end(kSpecial);
  }

  // Writes the value at pos_ as a block whose lines start with `indent`
  // spaces; a scalar is written as one such line.
  void Block(int indent, std::string& out) {
    const std::string pad(static_cast<size_t>(indent), ' ');
    if (!AtNonEmptyContainer()) {
      StrAppend(&out, pad, Scalar(), "\n");
      return;
    }
    const char open = json_[pos_++];
    const char close = open == '{' ? '}' : ']';
    while (Peek() != close && pos_ < json_.size()) {
      if (open == '{') {
        std::string key = Scalar();
        if (Peek() == ':') ++pos_;
        if (AtNonEmptyContainer()) {
          StrAppend(&out, pad, key, ":\n");
          Block(indent + 2, out);
        } else {
          StrAppend(&out, pad, key, ": ", Scalar(), "\n");
        }
      } else {
        // The item as a block two deeper, its first line's indentation
        // replaced by "- ".
        std::string item;
        Block(indent + 2, item);
        StrAppend(&out, pad, "- ", std::string_view(item).substr(static_cast<size_t>(indent) + 2));
      }
      if (Peek() == ',') ++pos_;
    }
    ++pos_;  // The closing bracket.
  }

  std::string_view json_;
  size_t pos_ = 0;
};

}  // namespace

std::string JsonToYaml(std::string_view json) { return JsonToYamlConverter(json).Convert(); }

void PrintStructured(std::string_view json, std::string_view format) {
  const std::string text = format == "yaml" ? JsonToYaml(json) : IndentJson(json);
  std::fputs(text.c_str(), stdout);
}

void PrintMessage(const google::protobuf::Message& message, std::string_view format) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  PrintStructured(json, format);
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
