// The terminal side of vmletctl's interactive commands (console, attach,
// exec -t): raw mode restored on every way out, and the escape character.
#ifndef VMLET_CMD_VMLETCTL_TERMINAL_H_
#define VMLET_CMD_VMLETCTL_TERMINAL_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace vmlet::ctl {

inline constexpr char kDefaultEscape = 0x1d;  // ^], as virsh console.

// "^]" -> 0x1d, "^a" and "^A" -> 0x01, "^?" -> 0x7f, "~" -> '~'.
std::optional<char> ParseEscape(const std::string& text);

// "^]" for 0x1d, the character itself when printable.
std::string EscapeName(char c);

// Raw mode for the object's lifetime when stdin is a terminal (and
// `enable`); the terminal is restored by the destructor and on SIGTERM,
// SIGINT and SIGHUP. Main thread only; one at a time.
class RawTerminal {
 public:
  explicit RawTerminal(bool enable = true);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

  // Line ends for our own messages: raw mode does not turn \n into \r\n.
  const char* newline() const;
};

// Writes all of `bytes` to `fd`; false when it cannot.
bool WriteAll(int fd, std::string_view bytes);

// Why PumpStdin returned.
enum class InputEnd { kEscape, kEndOfInput, kSendFailed, kStopped };

// Reads stdin and hands what it reads to `send` until the escape character
// (nullopt: none), end of input, `send` returning false, or `stop_fd`
// becoming readable (a pipe the caller writes to from another thread).
// Bytes before the escape character are sent.
InputEnd PumpStdin(std::optional<char> escape, int stop_fd,
                   const std::function<bool(std::string_view)>& send);

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_TERMINAL_H_
