#include "cmd/vmletctl/flags.h"

#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "base/str_util.h"

namespace vmlet::ctl {

int UsageError(std::string_view command, std::string_view message) {
  std::fprintf(stderr, "vmletctl: %s\nRun \"vmletctl %s%s--help\" for usage.\n",
               std::string(message).c_str(), std::string(command).c_str(),
               command.empty() ? "" : " ");
  return kExitUsage;
}

FlagSet::FlagSet(std::string command, std::string usage)
    : command_(std::move(command)), usage_(std::move(usage)) {}

void FlagSet::AddString(std::string_view names, std::string* value) {
  Add(names, Kind::kString, value, 0);
}

void FlagSet::AddInt(std::string_view names, int64_t* value, int64_t min) {
  Add(names, Kind::kInt, value, min);
}

void FlagSet::AddBool(std::string_view names, bool* value) { Add(names, Kind::kBool, value, 0); }

void FlagSet::AddChoice(std::string_view names, std::string* value,
                        std::vector<std::string> choices) {
  Add(names, Kind::kChoice, value, 0).choices = std::move(choices);
}

FlagSet::Flag& FlagSet::Add(std::string_view names, Kind kind, void* value, int64_t min) {
  Flag flag{.names = {}, .kind = kind, .value = value, .min = min, .choices = {}};
  while (!names.empty()) {
    size_t bar = names.find('|');
    flag.names.emplace_back(names.substr(0, bar));
    names = bar == std::string_view::npos ? std::string_view() : names.substr(bar + 1);
  }
  flags_.push_back(std::move(flag));
  return flags_.back();
}

const FlagSet::Flag* FlagSet::Find(std::string_view name) const {
  for (const Flag& flag : flags_) {
    for (const std::string& spelling : flag.names) {
      if (spelling == name) return &flag;
    }
  }
  return nullptr;
}

bool FlagSet::Set(const Flag& flag, std::string_view name, const std::string& text) const {
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.value) = text;
      return true;
    case Kind::kInt: {
      int64_t number = 0;
      if (!absl::SimpleAtoi(text, &number) || number < flag.min) {
        Error(StrCat(name, " \"", text, "\" is invalid: expected a whole number of at least ",
                     flag.min));
        return false;
      }
      *static_cast<int64_t*>(flag.value) = number;
      return true;
    }
    case Kind::kChoice: {
      std::string expected;
      for (const std::string& choice : flag.choices) {
        if (choice == text) {
          *static_cast<std::string*>(flag.value) = text;
          return true;
        }
        StrAppend(&expected, expected.empty() ? "" : " or ", choice);
      }
      Error(StrCat(name, " \"", text, "\" is invalid: expected ", expected));
      return false;
    }
    case Kind::kBool:
      if (text == "true" || text == "1") {
        *static_cast<bool*>(flag.value) = true;
      } else if (text == "false" || text == "0") {
        *static_cast<bool*>(flag.value) = false;
      } else {
        Error(StrCat(name, " \"", text, "\" is invalid: expected true or false"));
        return false;
      }
      return true;
  }
  return false;
}

std::optional<int> FlagSet::Parse(std::span<const std::string> args, size_t min_positional,
                                  size_t max_positional) {
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_ended || arg == "-" || !arg.starts_with("-")) {
      positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage_.c_str(), stdout);
      return kExitOk;
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    const Flag* flag = Find(name);
    if (flag == nullptr)
      return Error(StrCat("unknown option \"", name, "\" for \"", command_, "\""));
    if (equals != std::string::npos) {
      if (!Set(*flag, name, arg.substr(equals + 1))) return kExitUsage;
    } else if (flag->kind == Kind::kBool) {
      *static_cast<bool*>(flag->value) = true;
    } else if (i + 1 >= args.size()) {
      return Error(StrCat(name, " needs a value"));
    } else if (!Set(*flag, name, args[++i])) {
      return kExitUsage;
    }
  }
  if (positional_.size() < min_positional) {
    return Error(StrCat("\"", command_, "\" needs ",
                        max_positional > min_positional ? "at least " : "", min_positional,
                        " argument", min_positional == 1 ? "" : "s", ", got ", positional_.size()));
  }
  if (positional_.size() > max_positional) {
    return Error(StrCat("\"", command_, "\" takes at most ", max_positional, " argument",
                        max_positional == 1 ? "" : "s", ", got ", positional_.size(), " (\"",
                        positional_[max_positional], "\" is one too many)"));
  }
  return std::nullopt;
}

}  // namespace vmlet::ctl
