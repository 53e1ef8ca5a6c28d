#include "image/http_source.h"

#include <algorithm>
#include <cctype>

#include "absl/time/clock.h"
#include "base/logging.h"
#include "base/str_util.h"

namespace vmlet::image {
namespace {

constexpr Logger kLog("image");

constexpr int64_t kProgressResetBytes = 1 << 20;

// Names longer than this match no regex rule.
constexpr size_t kMaxRegexInput = 1024;

bool IsHttpUrl(std::string_view url) {
  std::string prefix(url.substr(0, 8));
  for (char& c : prefix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return prefix.starts_with("http://") || prefix.starts_with("https://");
}

// Replaces $1..$9 in `url` by the groups of `match`, and "$$" by "$".
std::string Expand(const std::string& url, const std::smatch& match) {
  std::string out;
  for (size_t i = 0; i < url.size(); ++i) {
    char next = i + 1 < url.size() ? url[i + 1] : '\0';
    if (url[i] == '$' && next >= '1' && next <= '9') {
      size_t group = static_cast<size_t>(next - '0');
      if (group < match.size() && match[group].matched) out.append(match[group].str());
      ++i;
    } else if (url[i] == '$' && next == '$') {
      out.push_back('$');
      ++i;
    } else {
      out.push_back(url[i]);
    }
  }
  return out;
}

// The total size a 2xx response announces: Content-Range's "/<total>" for a
// 206, Content-Length for a 200; -1 when unknown.
int64_t AnnouncedTotal(const HttpResponse& head) {
  auto number = [](std::string_view text) -> int64_t {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (text.empty() || text.size() > 18) return -1;
    int64_t value = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return -1;
      value = value * 10 + (c - '0');
    }
    return value;
  };
  if (head.status == 206) {
    auto it = head.headers.find("content-range");
    if (it == head.headers.end()) return -1;
    size_t slash = it->second.rfind('/');
    return slash == std::string::npos ? -1 : number(std::string_view(it->second).substr(slash + 1));
  }
  auto it = head.headers.find("content-length");
  return it == head.headers.end() ? -1 : number(it->second);
}

}  // namespace

absl::StatusOr<Translator> Translator::Create(std::vector<TranslationRule> rules) {
  Translator translator;
  for (size_t i = 0; i < rules.size(); ++i) {
    TranslationRule& rule = rules[i];
    const std::string prefix = StrCat("translation rule ", i);
    if (rule.name.empty() == rule.regex.empty()) {
      return absl::InvalidArgumentError(
          StrCat(prefix, ": expected exactly one of \"name\" and \"regex\""));
    }
    if (!IsHttpUrl(rule.url)) {
      return absl::InvalidArgumentError(
          StrCat(prefix, ": url \"", rule.url, "\" is not an http:// or https:// URL"));
    }
    CompiledRule compiled{.rule = std::move(rule)};
    if (!compiled.rule.regex.empty()) {
      // std::regex reports a bad pattern only by throwing; the exception is
      // caught here, where it is thrown, and becomes a status. Matching
      // later cannot throw for a pattern that compiled (short inputs).
      try {
        compiled.regex.emplace(compiled.rule.regex, std::regex::ECMAScript);
      } catch (const std::regex_error& error) {
        return absl::InvalidArgumentError(
            StrCat(prefix, ": regex \"", compiled.rule.regex,
                   "\" is not a valid ECMAScript regex: ", error.what()));
      }
    }
    translator.rules_.push_back(std::move(compiled));
  }
  return translator;
}

std::optional<Translator::Match> Translator::Translate(std::string_view image_name) const {
  const std::string name(image_name);
  for (const CompiledRule& compiled : rules_) {
    if (!compiled.regex) {
      if (compiled.rule.name == name) return Match{compiled.rule.url, compiled.rule.tls};
      continue;
    }
    // libstdc++'s matcher recurses per character: an overlong name (image
    // references have at most 255 characters of name) never reaches it.
    if (name.size() > kMaxRegexInput) continue;
    std::smatch match;
    if (std::regex_match(name, match, *compiled.regex)) {
      return Match{Expand(compiled.rule.url, match), compiled.rule.tls};
    }
  }
  return std::nullopt;
}

absl::Status DownloadUrl(const std::string& url, const TlsSettings& tls, const BodySink& sink,
                         const ProgressFn& progress, int attempts, absl::Duration first_backoff) {
  int64_t delivered = 0;
  int64_t total = -1;
  int64_t delivered_at_last_failure = 0;
  bool sink_failed = false;
  const BodySink counted = [&](std::string_view chunk) {
    if (total >= 0 && delivered + static_cast<int64_t>(chunk.size()) > total) {
      sink_failed = true;
      return absl::DataLossError(StrCat(url, " sent more than the ", total, " bytes it announced"));
    }
    if (absl::Status status = sink(chunk); !status.ok()) {
      sink_failed = true;
      return status;
    }
    delivered += static_cast<int64_t>(chunk.size());
    if (progress) progress(delivered, total);
    return absl::OkStatus();
  };
  HttpRequest request{.url = url, .tls = tls};
  request.on_body_start = [&](const HttpResponse& head) {
    if (head.status < 200 || head.status >= 300) return;
    // A 200 (even to a Range request) carries the whole body.
    if (int64_t announced = AnnouncedTotal(head); announced >= 0) total = announced;
  };
  for (int failures = 0;;) {
    if (total >= 0 && delivered == total && delivered > 0) return absl::OkStatus();
    request.range_start = delivered;
    absl::StatusOr<HttpResponse> response = HttpFetch(request, counted, 1 << 16);
    if (sink_failed) return response.status();
    absl::Status status;
    if (!response.ok()) {
      status = response.status();
    } else if (response->status >= 200 && response->status < 300) {
      if (total < 0 || delivered == total) return absl::OkStatus();
      status = absl::UnavailableError(
          StrCat("the download of ", url, " ended after ", delivered, " of ", total, " bytes"));
    } else if (response->status == 416 && delivered > 0) {
      return absl::OkStatus();  // Nothing after the bytes we have.
    } else if (response->status == 404) {
      return absl::NotFoundError(StrCat(url, " answered HTTP 404 (not found)"));
    } else if (IsRetryableHttpStatus(response->status)) {
      status = absl::UnavailableError(StrCat(url, " answered HTTP ", response->status));
    } else {
      return absl::FailedPreconditionError(StrCat(url, " answered HTTP ", response->status));
    }
    if (status.code() != absl::StatusCode::kUnavailable) return status;
    if (delivered - delivered_at_last_failure >= kProgressResetBytes) failures = 0;
    delivered_at_last_failure = delivered;
    if (++failures >= std::max(attempts, 1)) {
      return absl::UnavailableError(
          StrCat("gave up after ", failures, " failed tries: ", status.message()));
    }
    absl::Duration delay = RetryBackoff(first_backoff, failures);
    if (response.ok()) delay = std::max(delay, RetryAfter(*response));
    kLog.Info("downloading {}: {}; retrying in {}", url, status.message(),
              absl::FormatDuration(delay));
    absl::SleepFor(delay);
  }
}

}  // namespace vmlet::image
