// Command-line parsing for one vmletctl command: its options, its positional
// arguments and its --help.
//
// Threading: single-threaded, as the whole CLI is.
#ifndef VMLET_CMD_VMLETCTL_FLAGS_H_
#define VMLET_CMD_VMLETCTL_FLAGS_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmlet::ctl {

// Exit codes of the CLI.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // An RPC or the work failed.
inline constexpr int kExitUsage = 2;    // Unknown command or option, bad value.

// Prints "vmletctl: <message>" and a hint to `command --help` to stderr;
// returns kExitUsage.
int UsageError(std::string_view command, std::string_view message);

// The options a command accepts. Options take the forms "--name VALUE" and
// "--name=VALUE"; boolean ones take no value. "--help" and "-h" print the
// usage. "--" ends the options.
class FlagSet {
 public:
  // `command` names the command in messages ("cri stop"); `usage` is printed
  // for --help.
  FlagSet(std::string command, std::string usage);

  // `names` lists the spellings separated by '|', e.g. "-o|--output".
  void AddString(std::string_view names, std::string* value);
  // A whole number of at least `min`.
  void AddInt(std::string_view names, int64_t* value, int64_t min = 0);
  void AddBool(std::string_view names, bool* value);
  // One of `choices`.
  void AddChoice(std::string_view names, std::string* value, std::vector<std::string> choices);
  // "-o|--output": table, json or yaml.
  void AddOutput(std::string* value) { AddChoice("-o|--output", value, {"table", "json", "yaml"}); }

  // Parses `args` (the words after the command's name) and checks that
  // between `min_positional` and `max_positional` positional arguments were
  // given. Returns nullopt to go on, or the exit code to end with: kExitOk
  // after --help, kExitUsage after a usage error (already reported).
  std::optional<int> Parse(std::span<const std::string> args, size_t min_positional,
                           size_t max_positional);

  const std::vector<std::string>& positional() const { return positional_; }
  const std::string& command() const { return command_; }

  // Reports a usage error found by the command itself (e.g. a missing
  // required option); returns kExitUsage.
  int Error(std::string_view message) const { return UsageError(command_, message); }

 private:
  enum class Kind { kString, kInt, kBool, kChoice };
  struct Flag {
    std::vector<std::string> names;
    Kind kind;
    void* value;
    int64_t min = 0;
    std::vector<std::string> choices;
  };

  Flag& Add(std::string_view names, Kind kind, void* value, int64_t min);
  const Flag* Find(std::string_view name) const;
  // Stores `text` into `flag`; false (after reporting) if it does not parse.
  bool Set(const Flag& flag, std::string_view name, const std::string& text) const;

  std::string command_;
  std::string usage_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
};

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_FLAGS_H_
