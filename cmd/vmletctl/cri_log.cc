#include "cmd/vmletctl/cri_log.h"

#include <optional>

namespace vmlet::ctl {
namespace {

struct LogLine {
  std::string_view stream;
  bool partial = false;
  std::string_view content;
};

// Cuts `text` at the first space: the part before it, the rest after it.
std::optional<std::string_view> NextField(std::string_view& text) {
  size_t space = text.find(' ');
  if (space == std::string_view::npos || space == 0) return std::nullopt;
  std::string_view field = text.substr(0, space);
  text.remove_prefix(space + 1);
  return field;
}

std::optional<LogLine> ParseLine(std::string_view line) {
  std::optional<std::string_view> timestamp = NextField(line);
  std::optional<std::string_view> stream = NextField(line);
  if (!timestamp.has_value() || !stream.has_value()) return std::nullopt;
  if (*stream != "stdout" && *stream != "stderr") return std::nullopt;
  // The tags end the prefix; an empty full line may have no space after them.
  std::string_view tags = line;
  std::string_view content;
  if (size_t space = line.find(' '); space != std::string_view::npos) {
    tags = line.substr(0, space);
    content = line.substr(space + 1);
  }
  std::string_view first_tag = tags.substr(0, tags.find(':'));
  if (first_tag != "P" && first_tag != "F") return std::nullopt;
  return LogLine{.stream = *stream, .partial = first_tag == "P", .content = content};
}

}  // namespace

void CriLogDecoder::Feed(std::string_view data) {
  while (!data.empty()) {
    size_t newline = data.find('\n');
    if (newline == std::string_view::npos) {
      incomplete_.append(data);
      return;
    }
    if (incomplete_.empty()) {
      DecodeLine(data.substr(0, newline));
    } else {
      incomplete_.append(data.substr(0, newline));
      std::string line = std::move(incomplete_);
      incomplete_.clear();
      DecodeLine(line);
    }
    data.remove_prefix(newline + 1);
  }
}

void CriLogDecoder::DecodeLine(std::string_view line) {
  std::optional<LogLine> parsed = ParseLine(line);
  if (!parsed.has_value()) {
    sink_("stdout", std::string(line) + "\n");
  } else if (parsed->partial) {
    sink_(parsed->stream, parsed->content);
  } else {
    sink_(parsed->stream, std::string(parsed->content) + "\n");
  }
}

void CriLogDecoder::Flush() {
  if (incomplete_.empty()) return;
  std::string line = std::move(incomplete_);
  incomplete_.clear();
  DecodeLine(line);
}

}  // namespace vmlet::ctl
