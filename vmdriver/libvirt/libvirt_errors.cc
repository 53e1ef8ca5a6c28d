#include "vmdriver/libvirt/libvirt_errors.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "base/str_util.h"

namespace vmlet::vmdriver::libvirt {
namespace {

void IgnoreError(void* /*user_data*/, virErrorPtr /*error*/) {}

}  // namespace

absl::StatusCode CodeForLibvirtError(int error_number) {
  switch (error_number) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_DOMAIN_METADATA:
      return absl::StatusCode::kNotFound;
    case VIR_ERR_DOM_EXIST:
      return absl::StatusCode::kAlreadyExists;
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_AGENT_UNRESPONSIVE:  // The guest runs no agent, or it hangs.
    case VIR_ERR_AGENT_UNSYNCED:
      return absl::StatusCode::kFailedPrecondition;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_XML_INVALID_SCHEMA:
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_CONFIG_UNSUPPORTED:
      return absl::StatusCode::kInvalidArgument;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_RPC:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_UNAVAILABLE:
      return absl::StatusCode::kUnavailable;
    case VIR_ERR_OPERATION_TIMEOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case VIR_ERR_OPERATION_DENIED:
    case VIR_ERR_ACCESS_DENIED:
      return absl::StatusCode::kPermissionDenied;
    case VIR_ERR_NO_MEMORY:
      return absl::StatusCode::kResourceExhausted;
    case VIR_ERR_NO_SUPPORT:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status LastError(std::string_view context) {
  virErrorPtr error = virGetLastError();
  if (error == nullptr) {
    return absl::InternalError(StrCat(context, ": libvirt: unknown error"));
  }
  return absl::Status(
      CodeForLibvirtError(error->code),
      StrCat(context, ": libvirt: ", error->message != nullptr ? error->message : "no message"));
}

void SilenceLibvirtErrorPrinting() { virSetErrorFunc(nullptr, IgnoreError); }

}  // namespace vmlet::vmdriver::libvirt
