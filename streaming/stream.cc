#include "streaming/stream.h"

namespace vmlet::streaming {

std::string HeaderValue(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "";
}

}  // namespace vmlet::streaming
