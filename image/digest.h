// sha256 digests as OCI writes them: "sha256:<64 lowercase hex>".
#ifndef VMLET_IMAGE_DIGEST_H_
#define VMLET_IMAGE_DIGEST_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet::image {

inline constexpr std::string_view kSha256Prefix = "sha256:";

// Incremental sha256. Not thread-safe; one per stream.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view data);
  // "sha256:<hex>" of everything given to Update. Call once.
  std::string Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// "sha256:<hex>" of `data`.
std::string Sha256Digest(std::string_view data);

// "sha256:<hex>" of the file's content.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// True for "sha256:" followed by 64 lowercase hex digits.
bool IsSha256Digest(std::string_view digest);

// INVALID_ARGUMENT naming `field` and the value unless IsSha256Digest. Other
// algorithms (sha512) are refused with a message saying only sha256 is
// supported.
absl::Status ValidateDigest(std::string_view digest, std::string_view field);

// The 64 hex digits of a sha256 digest (the part after "sha256:").
std::string_view DigestHex(std::string_view digest);

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_DIGEST_H_
