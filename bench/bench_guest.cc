#include "bench/bench_guest.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "base/file_util.h"
#include "base/status.h"
#include "base/str_util.h"
#include "bench/leftovers.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::bench {

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

int CheckAndBuildGuest(const GuestSetup& setup) {
  if (setup.vmletd.empty() || setup.guest_dir.empty()) {
    std::fprintf(stderr, "no vmletd or guest directory ($VMLETD, $VMLET_GUEST_DIR); skipping\n");
    return 77;
  }
  if (::access(setup.qemu.c_str(), X_OK) != 0 || ::access(kVirsh, X_OK) != 0) {
    std::fprintf(stderr, "QEMU or virsh is not installed; skipping (exit 77)\n");
    return 77;
  }
  auto version = e2e::RunCommand({kVirsh, "-c", kLibvirtUri, "version"});
  if (!version.ok() || version->code != 0) {
    std::fprintf(stderr, "libvirtd is not reachable at %s; skipping (exit 77)\n", kLibvirtUri);
    return 77;
  }
  if (!setup.build_guest.empty()) {
    auto built = e2e::RunCommand({"/bin/sh", setup.build_guest, setup.guest_dir}, absl::Minutes(2));
    if (!built.ok() || built->code == 77) {
      std::fprintf(stderr, "the test guest cannot be built here; skipping (exit 77)\n");
      return 77;
    }
    if (built->code != 0) {
      std::fprintf(stderr, "building the test guest failed (exit %d)\n", built->code);
      return 1;
    }
  }
  if (::access((setup.guest_dir + "/vmlinuz").c_str(), R_OK) != 0 ||
      ::access((setup.guest_dir + "/initrd.gz").c_str(), R_OK) != 0) {
    std::fprintf(stderr, "no vmlinuz and initrd.gz in \"%s\"; skipping (exit 77)\n",
                 setup.guest_dir.c_str());
    return 77;
  }
  return 0;
}

absl::StatusOr<std::string> MakeGuestImage(const std::string& guest_dir, std::string_view cmdline) {
  std::string dir = "/tmp/vmlet-bench-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  RegisterTempDir(dir);
  if (::chmod(dir.c_str(), 0755) != 0) return ErrnoToStatus(errno, StrCat("chmod \"", dir, "\""));
  VMLET_RETURN_IF_ERROR(MakeDirs(dir + "/boot", 0755));
  if (::link((guest_dir + "/vmlinuz").c_str(), (dir + "/boot/vmlinuz").c_str()) != 0 ||
      ::link((guest_dir + "/initrd.gz").c_str(), (dir + "/boot/initrd").c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("linking the guest into \"", dir, "\""));
  }
  VMLET_RETURN_IF_ERROR(WriteFileAtomically(dir + "/boot/cmdline", cmdline, 0644));
  return dir;
}

}  // namespace vmlet::bench
