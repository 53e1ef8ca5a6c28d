// String concatenation that takes std::string_view. Debian's Abseil is built
// with its own absl::string_view (not an alias of std::string_view), so
// absl::StrCat cannot take the std::string_view our interfaces use; this
// small replacement takes both, and integers.
#ifndef VMLET_BASE_STR_UTIL_H_
#define VMLET_BASE_STR_UTIL_H_

#include <concepts>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "absl/strings/string_view.h"

namespace vmlet {
namespace strings_internal {

inline void Append(std::string& out, std::string_view piece) { out.append(piece); }
inline void Append(std::string& out, const char* piece) { out.append(piece); }
inline void Append(std::string& out, const std::string& piece) { out.append(piece); }
inline void Append(std::string& out, absl::string_view piece) {
  out.append(piece.data(), piece.size());
}
inline void Append(std::string& out, char c) { out.push_back(c); }
template <typename T>
requires(std::integral<T> && !std::same_as<T, char> &&
         !std::same_as<T, bool>) void Append(std::string& out, T value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

}  // namespace strings_internal

template <typename... Pieces>
std::string StrCat(const Pieces&... pieces) {
  std::string out;
  (strings_internal::Append(out, pieces), ...);
  return out;
}

template <typename... Pieces>
void StrAppend(std::string* out, const Pieces&... pieces) {
  (strings_internal::Append(*out, pieces), ...);
}

// absl::string_view (as status messages are) as a std::string_view.
inline std::string_view ToStd(absl::string_view view) { return {view.data(), view.size()}; }

}  // namespace vmlet

// Lets fmt (and so the logger) format absl::string_view, e.g. status messages.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view view, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(view.data(), view.size()),
                                                    ctx);
  }
};

#endif  // VMLET_BASE_STR_UTIL_H_
