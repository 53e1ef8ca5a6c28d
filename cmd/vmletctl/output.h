// How vmletctl prints: aligned tables for people, JSON or YAML for scripts.
#ifndef VMLET_CMD_VMLETCTL_OUTPUT_H_
#define VMLET_CMD_VMLETCTL_OUTPUT_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

namespace vmlet::ctl {

// A table whose columns are as wide as their widest cell, separated by
// three spaces; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);
  void Print(std::FILE* out = stdout) const;

 private:
  std::vector<std::vector<std::string>> rows_;  // The header first.
};

// `json` (compact or not) printed as `format` says: "json" indented as
// IndentJson does, "yaml" as JsonToYaml.
void PrintStructured(std::string_view json, std::string_view format);

// `message` in protobuf's JSON mapping (lowerCamelCase field names, 64-bit
// numbers as strings, well-known types such as Struct as plain JSON, fields
// at their defaults included), printed as PrintStructured does.
void PrintMessage(const google::protobuf::Message& message, std::string_view format);

// Well-formed JSON as block-style YAML, keys in their order: strings plain
// when that reads back as the same string, else double-quoted; numbers,
// booleans and null as they are; empty objects and arrays as {} and [].
std::string JsonToYaml(std::string_view json);

// `text` as a JSON string literal, quoted and escaped.
std::string JsonQuote(std::string_view text);

// Compact JSON `json` indented by one space a level, one value a line; keys
// keep their order.
std::string IndentJson(std::string_view json);

// The time since `created_at_ns` (Unix nanoseconds): "42s", "7m", "5h", "3d".
std::string Age(int64_t created_at_ns);

// The first 13 characters of an id, as crictl shows them; "sha256:" is
// dropped first.
std::string ShortId(const std::string& id);

// Bytes in binary units: "512MiB", "1GiB", "1.5GiB", "900B".
std::string FormatBytes(uint64_t bytes);

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_OUTPUT_H_
