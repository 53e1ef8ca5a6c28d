// Reading the CRI log format that vmletd writes for the kubelet:
//
//   2026-11-22T10:00:00.123456789Z stdout F a whole line
//   2026-11-22T10:00:00.223456789Z stdout P the first part of a long li
//   2026-11-22T10:00:00.323456789Z stdout F ne, and its end
//
// Each line is a timestamp, a stream (stdout or stderr), tags (the first is
// P for a partial line, F for the full one or the last part) and the
// content. CriLogDecoder strips the prefixes and joins partial lines: the
// content of a P line is passed on at once, without a newline, so that the
// next line of its stream continues it (a guest's "login: " prompt shows up
// before the guest writes a newline).
#ifndef VMLET_CMD_VMLETCTL_CRI_LOG_H_
#define VMLET_CMD_VMLETCTL_CRI_LOG_H_

#include <functional>
#include <string>
#include <string_view>

namespace vmlet::ctl {

class CriLogDecoder {
 public:
  // Receives decoded text of stream "stdout" or "stderr": the content of a
  // line, followed by a newline unless the line is partial. Lines that are
  // not in the CRI format are passed on unchanged, as "stdout".
  using Sink = std::function<void(std::string_view stream, std::string_view text)>;

  explicit CriLogDecoder(Sink sink) : sink_(std::move(sink)) {}

  // Decodes the next bytes of the file; an incomplete last line waits for
  // the rest.
  void Feed(std::string_view data);

  // Decodes an unterminated last line, e.g. at the end of a file that is no
  // longer written.
  void Flush();

 private:
  void DecodeLine(std::string_view line);

  Sink sink_;
  std::string incomplete_;  // Bytes after the last '\n'.
};

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_CRI_LOG_H_
