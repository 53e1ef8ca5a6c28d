#include "image/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>

#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::image {

struct Sha256Hasher::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256Hasher::Sha256Hasher() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(state_->ctx); }

void Sha256Hasher::Update(std::string_view data) {
  EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

std::string Sha256Hasher::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kSha256Prefix);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string Sha256Digest(std::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.Finish();
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening \"", path, "\""));
  Sha256Hasher hasher;
  std::string buffer(1 << 20, '\0');
  for (;;) {
    ssize_t n = read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      return ErrnoToStatus(error, StrCat("reading \"", path, "\""));
    }
    if (n == 0) break;
    hasher.Update(std::string_view(buffer.data(), static_cast<size_t>(n)));
  }
  close(fd);
  return hasher.Finish();
}

bool IsSha256Digest(std::string_view digest) {
  if (!digest.starts_with(kSha256Prefix)) return false;
  std::string_view hex = digest.substr(kSha256Prefix.size());
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateDigest(std::string_view digest, std::string_view field) {
  if (IsSha256Digest(digest)) return absl::OkStatus();
  if (digest.find(':') != std::string_view::npos && !digest.starts_with(kSha256Prefix)) {
    return absl::InvalidArgumentError(
        StrCat(field, " \"", digest, "\" uses an unsupported digest algorithm: expected sha256"));
  }
  return absl::InvalidArgumentError(
      StrCat(field, " \"", digest,
             "\" is not a digest: expected \"sha256:\" and 64 lowercase hex digits"));
}

std::string_view DigestHex(std::string_view digest) {
  return digest.starts_with(kSha256Prefix) ? digest.substr(kSha256Prefix.size()) : digest;
}

}  // namespace vmlet::image
