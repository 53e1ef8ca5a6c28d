// What a VM spec may say: every check Apply (and Validate) makes before a
// spec is stored, so that a stored spec always renders. The rules are those
// of the comments in api/vmlet/vmspec/v1/vmspec.proto.
//
// Each failure is INVALID_ARGUMENT whose message starts with the field path
// and names the value and what was expected, e.g.
//   spec.cpu.topology: sockets*cores*threads = 6, but cpu.count = 4
//   spec.disks[2].bus: "ide" is not a disk bus: expected "virtio", "scsi" or "sata"
//   metadata.name: "Web_1" is not a DNS-1123 subdomain: expected lower-case letters, digits, '-'
//   and '.'
// The first failure found is returned.
//
// All functions are pure: any thread may call them.
#ifndef VMLET_VMSPEC_VALIDATE_H_
#define VMLET_VMSPEC_VALIDATE_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::vmspec {

// The largest spec (serialized) Apply stores.
inline constexpr size_t kMaxVmSpecBytes = 256 << 10;

// The whole spec: its serialized size, metadata ("metadata." paths: the
// namespace, name and labels; generation, times and source are vmletd's and
// not checked) and the machine ("spec." paths).
absl::Status ValidateVmSpec(const v1::VmSpec& spec);

// A machine whose fields are at `path` ("spec" gives "spec.cpu.count";
// "" gives "cpu.count").
absl::Status ValidateMachine(const v1::Machine& machine, std::string_view path);

// A spec's key: `ns` a DNS-1123 label (a Kubernetes namespace), `name` a
// DNS-1123 subdomain. The fields are called "namespace" and "name".
absl::Status ValidateObjectKey(std::string_view ns, std::string_view name);

// The byte offset of the first byte of `text` that does not start a valid
// UTF-8 sequence (overlong forms and surrogates are invalid), or npos when
// all of it is valid. Proto string fields must hold valid UTF-8.
size_t InvalidUtf8At(std::string_view text);

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_VALIDATE_H_
