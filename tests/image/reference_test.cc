// Image references and digests: normalisation as the kubelet and
// containerd do it, and the refusal of malformed input.
#include <gtest/gtest.h>

#include "image/digest.h"
#include "image/reference.h"

namespace vmlet::image {
namespace {

constexpr char kDigest[] =
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

TEST(ReferenceTest, NormalisesDockerHubNames) {
  struct Case {
    const char* text;
    const char* normal;
  } cases[] = {
      {"debian", "docker.io/library/debian:latest"},
      {"debian:12", "docker.io/library/debian:12"},
      {"library/debian:12", "docker.io/library/debian:12"},
      {"docker.io/debian", "docker.io/library/debian:latest"},
      {"index.docker.io/foo/bar:1", "docker.io/foo/bar:1"},
      {"kubevirt/fedora-cloud-container-disk-demo",
       "docker.io/kubevirt/fedora-cloud-container-disk-demo:latest"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Reference> ref = ParseReference(c.text);
    ASSERT_TRUE(ref.ok()) << c.text << ": " << ref.status();
    EXPECT_EQ(ref->String(), c.normal) << c.text;
  }
}

TEST(ReferenceTest, KeepsRegistriesPortsAndDigests) {
  absl::StatusOr<Reference> ref = ParseReference("127.0.0.1:5000/vms/tiny:1");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->domain, "127.0.0.1:5000");
  EXPECT_EQ(ref->repository, "vms/tiny");
  EXPECT_EQ(ref->tag, "1");
  EXPECT_EQ(ref->TaggedString(), "127.0.0.1:5000/vms/tiny:1");

  ref = ParseReference(std::string("localhost/tiny@") + kDigest);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->domain, "localhost");
  EXPECT_EQ(ref->tag, "");
  EXPECT_EQ(ref->digest, kDigest);
  EXPECT_EQ(ref->String(), std::string("localhost/tiny@") + kDigest);

  ref = ParseReference(std::string("registry.example:443/a/b/c:v1.2@") + kDigest);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->repository, "a/b/c");
  EXPECT_EQ(ref->tag, "v1.2");
  EXPECT_EQ(ref->DigestedString(kDigest), std::string("registry.example:443/a/b/c@") + kDigest);

  ref = ParseReference("[::1]:5000/vms/x:1");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->domain, "[::1]:5000");
}

TEST(ReferenceTest, RefusesMalformedReferences) {
  for (const char* text : {"", "UPPER/case", "a//b", "-lead", "trail-", "x:", "x:-tag",
                           "x@sha256:abc", "x@md5:9f86d081884c7d659a2feaa0c55ad015", "host:port/x",
                           "a/../b", "/abs", "x y", "ho_st:5000/x"}) {
    absl::StatusOr<Reference> ref = ParseReference(text);
    EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument) << text;
    if (!ref.ok()) EXPECT_NE(ref.status().message().find("image reference"), std::string::npos);
  }
  EXPECT_FALSE(ParseReference(std::string(300, 'a')).ok());
}

TEST(DigestTest, HashesAndValidates) {
  EXPECT_EQ(Sha256Digest("test"), kDigest);
  Sha256Hasher hasher;
  hasher.Update("te");
  hasher.Update("st");
  EXPECT_EQ(hasher.Finish(), kDigest);
  EXPECT_TRUE(IsSha256Digest(kDigest));
  EXPECT_FALSE(IsSha256Digest("sha256:ABC"));
  EXPECT_TRUE(ValidateDigest(kDigest, "digest").ok());
  absl::Status status = ValidateDigest("sha512:00", "layers[0].digest");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("layers[0].digest"), std::string::npos);
  EXPECT_NE(status.message().find("sha256"), std::string::npos);
  EXPECT_EQ(DigestHex(kDigest).size(), 64u);
}

}  // namespace
}  // namespace vmlet::image
