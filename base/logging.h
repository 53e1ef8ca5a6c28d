// A small fmt-based logging facade. Every component logs under a category:
//
//   constexpr vmlet::Logger kLog("cri");
//   kLog.Info("started sandbox {}", id);
//
// Lines go to stderr as "<RFC 3339 time> <level> <category>: <message>".
// Thread-safe: any thread may log; each line is written with one write(2).
#ifndef VMLET_BASE_LOGGING_H_
#define VMLET_BASE_LOGGING_H_

#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "absl/status/statusor.h"

namespace vmlet {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning" (or "warn") and "error".
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view text);
std::string_view LogLevelName(LogLevel level);

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void WriteLogLine(LogLevel level, std::string_view category, std::string_view message);

class Logger {
 public:
  explicit constexpr Logger(std::string_view category) : category_(category) {}

  template <typename... Args>
  void Debug(fmt::format_string<Args...> format, Args&&... args) const {
    Log(LogLevel::kDebug, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void Info(fmt::format_string<Args...> format, Args&&... args) const {
    Log(LogLevel::kInfo, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void Warning(fmt::format_string<Args...> format, Args&&... args) const {
    Log(LogLevel::kWarning, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void Error(fmt::format_string<Args...> format, Args&&... args) const {
    Log(LogLevel::kError, format, std::forward<Args>(args)...);
  }

  template <typename... Args>
  void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) const {
    if (!LogEnabled(level)) return;
    WriteLogLine(level, category_, fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  std::string_view category_;
};

}  // namespace vmlet

#endif  // VMLET_BASE_LOGGING_H_
