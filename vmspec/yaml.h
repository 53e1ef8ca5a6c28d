// The YAML form of VM specs (`vmletctl spec apply -f`, the files of
// vmspec_dir): the vmlet.vmspec.v1 messages field for field, keys being the
// proto field names. Parsing checks the form only (known keys, scalar types,
// one member of a oneof); ValidateVmSpec (vmspec/validate.h) checks meaning.
//
//   metadata:
//     namespace: default
//     name: web
//   spec:
//     cpu: {count: 4}
//     memory: {size: 8Gi}
//     disks:
//     - name: data
//       empty: {size: 100Gi}
//
// Both functions are pure: any thread may call them.
#ifndef VMLET_VMSPEC_YAML_H_
#define VMLET_VMSPEC_YAML_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::vmspec {

// Limits of ParseVmSpecYaml's input.
inline constexpr size_t kMaxVmSpecYamlBytes = 1 << 20;
inline constexpr int kMaxVmSpecYamlDepth = 32;
inline constexpr int kMaxVmSpecYamlDocuments = 100;

// One or more YAML documents (separated by "---") as specs, in order; empty
// documents are skipped, so "" gives no specs. Keys are the proto field
// names; a key the message does not have, a key given twice, a value of the
// wrong kind (booleans are true or false, integers are decimal and in the
// field's range, strings are taken as written, maps are string to string)
// and two members of one oneof are INVALID_ARGUMENT, as
// "<origin>:<line>:<column>: <field path>: <what>". A null value leaves the
// field unset. Input over the limits above is INVALID_ARGUMENT too.
absl::StatusOr<std::vector<v1::VmSpec>> ParseVmSpecYaml(std::string_view yaml,
                                                        std::string_view origin);

// `spec` as one YAML document (no "---"): only the fields that are set, keys
// in proto field order, map entries sorted by key. ParseVmSpecYaml reads it
// back as an equal message.
std::string VmSpecToYaml(const v1::VmSpec& spec);

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_YAML_H_
