#include "image/reference.h"

#include <cctype>

#include "base/str_util.h"
#include "image/digest.h"

namespace vmlet::image {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A path component: lowercase alphanumerics joined by ".", "_", "__" or runs
// of "-".
bool IsPathComponent(std::string_view part) {
  if (part.empty() || !IsLowerAlnum(part.front()) || !IsLowerAlnum(part.back())) return false;
  for (size_t i = 0; i < part.size(); ++i) {
    char c = part[i];
    if (IsLowerAlnum(c) || c == '-') continue;
    if (c == '.' && IsLowerAlnum(part[i + 1])) continue;
    if (c == '_') {
      if (IsLowerAlnum(part[i + 1])) continue;
      if (part[i + 1] == '_' && i + 2 < part.size() && IsLowerAlnum(part[i + 2])) {
        ++i;
        continue;
      }
    }
    return false;
  }
  return true;
}

// host[:port], where host is a DNS name or a bracketed IPv6 address.
bool IsDomain(std::string_view domain) {
  std::string_view host = domain;
  if (host.starts_with('[')) {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (char c : host.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    }
    host = host.substr(close + 1);
    if (host.empty()) return true;
    if (!host.starts_with(':')) return false;
    std::string_view port = host.substr(1);
    if (port.empty()) return false;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
  }
  size_t colon = host.find(':');
  if (colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  if (host.empty()) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    std::string_view label = host.substr(start, end - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

bool IsTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(tag.front())) return false;
  for (char c : tag) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("image reference \"", text, "\" is invalid: ", why));
}

}  // namespace

std::string Reference::Name() const { return StrCat(domain, "/", repository); }

std::string Reference::TaggedString() const {
  return tag.empty() ? std::string() : StrCat(Name(), ":", tag);
}

std::string Reference::DigestedString(std::string_view with_digest) const {
  return StrCat(Name(), "@", with_digest);
}

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) StrAppend(&out, ":", tag);
  if (!digest.empty()) StrAppend(&out, "@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(std::string_view text) {
  if (text.empty()) return Invalid(text, "it is empty: expected [host[:port]/]path[:tag][@digest]");
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    if (!IsSha256Digest(ref.digest)) {
      return Invalid(text, StrCat("the digest \"", ref.digest,
                                  "\" is not \"sha256:\" followed by 64 lowercase hex digits"));
    }
    rest = rest.substr(0, at);
  }
  // A tag follows the last ':' after the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (!IsTag(ref.tag)) {
      return Invalid(text, StrCat("the tag \"", ref.tag,
                                  "\" must be 1 to 128 letters, digits, '_', '.' or '-', not "
                                  "starting with '.' or '-'"));
    }
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(text, "the repository name is empty");
  if (rest.size() > 255) return Invalid(text, "the name is longer than 255 characters");
  // The first component is a registry host when it looks like one.
  slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  if (slash != std::string_view::npos &&
      (first.find_first_of(".:[") != std::string_view::npos || first == "localhost")) {
    if (!IsDomain(first)) {
      return Invalid(
          text, StrCat("the registry \"", first, "\" is not a host name with an optional port"));
    }
    ref.domain = std::string(first);
    rest = rest.substr(slash + 1);
  } else {
    ref.domain = std::string(kDockerHubDomain);
  }
  if (ref.domain == "index.docker.io" || ref.domain == "registry-1.docker.io") {
    ref.domain = std::string(kDockerHubDomain);
  }
  size_t start = 0;
  for (;;) {
    size_t end = rest.find('/', start);
    std::string_view part = rest.substr(start, end == std::string_view::npos ? end : end - start);
    if (!IsPathComponent(part)) {
      return Invalid(text, StrCat("the path component \"", part,
                                  "\" must be lowercase letters and digits, separated by '.', '_', "
                                  "'__' or '-'"));
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  ref.repository = std::string(rest);
  if (ref.domain == kDockerHubDomain && ref.repository.find('/') == std::string::npos) {
    ref.repository = StrCat("library/", ref.repository);
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace vmlet::image
