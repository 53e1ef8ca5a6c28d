// Images from plain HTTP(S) URLs, as virtlet does: operator-written rules
// translate an image name into the URL of a disk image, which is then
// downloaded with retries and resumed after a dropped connection.
#ifndef VMLET_IMAGE_HTTP_SOURCE_H_
#define VMLET_IMAGE_HTTP_SOURCE_H_

#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "image/http_client.h"

namespace vmlet::image {

struct TranslationRule {
  std::string name;   // Exact image name, or:
  std::string regex;  // ECMAScript regex matching the whole name; groups are $1..$9 in `url`.
  std::string url;    // http:// or https://; "$$" is a literal "$".
  TlsSettings tls;
};

// Immutable once created: Translate may be called from any thread.
class Translator {
 public:
  // INVALID_ARGUMENT naming the rule index and field for a bad regex, both or
  // neither of name/regex, or a url that is not http(s).
  static absl::StatusOr<Translator> Create(std::vector<TranslationRule> rules);

  struct Match {
    std::string url;
    TlsSettings tls;
  };
  // The first matching rule's URL (with $N replaced by the regex's groups;
  // a group that did not take part is empty), or nullopt. Names over 1024
  // characters match no regex rule.
  std::optional<Match> Translate(std::string_view image_name) const;

 private:
  struct CompiledRule {
    TranslationRule rule;
    std::optional<std::regex> regex;  // Unset for a `name` rule.
  };
  std::vector<CompiledRule> rules_;
};

// Downloads `url` to `sink` with retries (the registry blob policy: 408/429/
// 5xx and transport errors retried with backoff from `first_backoff`; a try
// that brought at least 1 MiB does not count) and Range resume; each byte
// reaches the sink once. 404 is NOT_FOUND; other 4xx FAILED_PRECONDITION
// naming the url and the status. `progress` gets the total from
// Content-Length (-1 when unknown).
absl::Status DownloadUrl(const std::string& url, const TlsSettings& tls, const BodySink& sink,
                         const ProgressFn& progress = nullptr, int attempts = 4,
                         absl::Duration first_backoff = absl::Milliseconds(200));

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_HTTP_SOURCE_H_
