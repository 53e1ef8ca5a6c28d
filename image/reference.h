// OCI image references, parsed and normalised the way the kubelet and
// containerd do: "debian" is "docker.io/library/debian:latest",
// "127.0.0.1:5000/vms/tiny:1" keeps its registry, and a reference may carry
// a tag, a digest, or both ("name:tag@sha256:...").
#ifndef VMLET_IMAGE_REFERENCE_H_
#define VMLET_IMAGE_REFERENCE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace vmlet::image {

inline constexpr std::string_view kDockerHubDomain = "docker.io";

struct Reference {
  std::string domain;      // "docker.io", "127.0.0.1:5000", "registry.example".
  std::string repository;  // "library/debian", "vms/tiny".
  std::string tag;         // Empty when only a digest was given.
  std::string digest;      // "sha256:<hex>", or empty.

  // "domain/repository".
  std::string Name() const;
  // "domain/repository:tag" (empty without a tag).
  std::string TaggedString() const;
  // "domain/repository@digest" for the given digest.
  std::string DigestedString(std::string_view with_digest) const;
  // The full normalised reference: Name()[":" tag]["@" digest].
  std::string String() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// Parses and normalises `text`: the domain defaults to docker.io (whose
// one-component repositories get "library/"), and the tag to "latest" when
// neither a tag nor a digest is given. INVALID_ARGUMENT names the reference
// and says what was expected.
absl::StatusOr<Reference> ParseReference(std::string_view text);

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_REFERENCE_H_
