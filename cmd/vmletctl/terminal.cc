#include "cmd/vmletctl/terminal.h"

#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

namespace vmlet::ctl {
namespace {

// The terminal settings to restore; set only while stdin is in raw mode.
// Read by the signal handler, hence plain globals.
termios g_saved_termios;
volatile sig_atomic_t g_raw = 0;

void RestoreTerminal() {
  if (g_raw) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
    g_raw = 0;
  }
}

// Async-signal-safe: restores the terminal, then dies of the signal as it
// would have without the handler.
void OnSignal(int signal) {
  RestoreTerminal();
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

}  // namespace

std::optional<char> ParseEscape(const std::string& text) {
  if (text.size() == 1) return text[0];
  if (text.size() != 2 || text[0] != '^') return std::nullopt;
  if (text[1] == '?') return static_cast<char>(0x7f);
  char c = static_cast<char>(std::toupper(static_cast<unsigned char>(text[1])));
  if (c < '@' || c > '_') return std::nullopt;
  return static_cast<char>(c ^ 0x40);
}

std::string EscapeName(char c) {
  if (c == 0x7f) return "^?";
  if (static_cast<unsigned char>(c) < 0x20) return std::string{'^', static_cast<char>(c ^ 0x40)};
  return std::string(1, c);
}

RawTerminal::RawTerminal(bool enable) {
  if (!enable || !::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &g_saved_termios) != 0) {
    return;
  }
  for (int signal : {SIGTERM, SIGINT, SIGHUP}) ::signal(signal, OnSignal);
  termios raw = g_saved_termios;
  ::cfmakeraw(&raw);
  if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) g_raw = 1;
}

RawTerminal::~RawTerminal() { RestoreTerminal(); }

const char* RawTerminal::newline() const { return g_raw ? "\r\n" : "\n"; }

bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

InputEnd PumpStdin(std::optional<char> escape, int stop_fd,
                   const std::function<bool(std::string_view)>& send) {
  char buffer[4096];
  while (true) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return InputEnd::kStopped;
    }
    if (fds[1].revents != 0) return InputEnd::kStopped;
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof(buffer));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return InputEnd::kEndOfInput;
    std::string_view input(buffer, static_cast<size_t>(n));
    bool escaped = false;
    if (escape.has_value()) {
      if (size_t at = input.find(*escape); at != std::string_view::npos) {
        input = input.substr(0, at);
        escaped = true;
      }
    }
    if (!input.empty() && !send(input)) return InputEnd::kSendFailed;
    if (escaped) return InputEnd::kEscape;
  }
}

}  // namespace vmlet::ctl
