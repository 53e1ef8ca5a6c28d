// The one place where libvirt errors become statuses. libvirt keeps the
// last error per thread: call LastError right after the failing call, on
// the same thread.
#ifndef VMLET_VMDRIVER_LIBVIRT_LIBVIRT_ERRORS_H_
#define VMLET_VMDRIVER_LIBVIRT_LIBVIRT_ERRORS_H_

#include <string_view>

#include "absl/status/status.h"

namespace vmlet::vmdriver::libvirt {

// Maps a libvirt error number (virErrorNumber) to a status code.
absl::StatusCode CodeForLibvirtError(int error_number);

// The calling thread's last libvirt error as a status with "context: "
// before libvirt's message.
absl::Status LastError(std::string_view context);

// Stops libvirt from printing every error to stderr; errors are reported
// through statuses instead. Call once at start-up.
void SilenceLibvirtErrorPrinting();

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_LIBVIRT_ERRORS_H_
