#include "vmspec/vmspecs_service.h"

#include <string>
#include <vector>

#include "base/logging.h"
#include "base/str_util.h"
#include "cri/instrumented_service.h"
#include "vmspec/validate.h"

namespace vmlet::vmspec {
namespace {

constexpr Logger kLog("vmspec");

// Logs a failed call (changes at warning level, queries at debug) and
// converts its status.
grpc::Status Reply(std::string_view method, std::string_view what, const absl::Status& status,
                   bool change) {
  if (!status.ok()) {
    kLog.Log(change ? LogLevel::kWarning : LogLevel::kDebug, "{} {} failed: {}", method, what,
             status.message());
  }
  return cri::ToGrpcStatus(status);
}

std::string KeyName(std::string_view ns, std::string_view name) { return StrCat(ns, "/", name); }

// The pod a Render or GetVmStatus request names, for logs.
template <typename Request>
std::string PodName(const Request& request) {
  if (!request.pod_sandbox_id().empty()) return request.pod_sandbox_id();
  return KeyName(request.pod_namespace(), request.pod_name());
}

}  // namespace

grpc::Status VmSpecsService::Apply(grpc::ServerContext* context, const v1::ApplyRequest* request,
                                   v1::ApplyResponse* response) {
  const v1::ObjectMeta& meta = request->vm_spec().metadata();
  const std::string key = KeyName(meta.namespace_(), meta.name());
  if (deny_ != nullptr) return Reply("Apply", key, deny_->Denied("Apply", context), true);
  absl::StatusOr<v1::VmSpec> stored = store_->Apply(request->vm_spec());
  if (!stored.ok()) return Reply("Apply", key, stored.status(), true);
  const int64_t generation = stored->metadata().generation();
  for (std::string& id : cri_->PodsWithOlderSpec(meta.namespace_(), meta.name(), generation)) {
    response->add_pending_restart(std::move(id));
  }
  kLog.Info("Apply {}: generation {}, {} pods pending a restart", key, generation,
            response->pending_restart_size());
  *response->mutable_vm_spec() = *std::move(stored);
  return grpc::Status::OK;
}

grpc::Status VmSpecsService::Get(grpc::ServerContext* /*context*/, const v1::GetRequest* request,
                                 v1::GetResponse* response) {
  absl::StatusOr<v1::VmSpec> spec = store_->Get(request->namespace_(), request->name());
  if (!spec.ok()) {
    return Reply("Get", KeyName(request->namespace_(), request->name()), spec.status(), false);
  }
  *response->mutable_vm_spec() = *std::move(spec);
  return grpc::Status::OK;
}

grpc::Status VmSpecsService::List(grpc::ServerContext* /*context*/, const v1::ListRequest* request,
                                  v1::ListResponse* response) {
  for (v1::VmSpec& spec : store_->List(request->namespace_())) {
    *response->add_vm_specs() = std::move(spec);
  }
  return grpc::Status::OK;
}

grpc::Status VmSpecsService::Delete(grpc::ServerContext* context, const v1::DeleteRequest* request,
                                    v1::DeleteResponse* /*response*/) {
  const std::string key = KeyName(request->namespace_(), request->name());
  if (deny_ != nullptr) return Reply("Delete", key, deny_->Denied("Delete", context), true);
  absl::Status deleted = store_->Delete(request->namespace_(), request->name());
  if (!deleted.ok()) return Reply("Delete", key, deleted, true);
  kLog.Info("Delete {}", key);
  return grpc::Status::OK;
}

grpc::Status VmSpecsService::Validate(grpc::ServerContext* /*context*/,
                                      const v1::ValidateRequest* request,
                                      v1::ValidateResponse* /*response*/) {
  const v1::ObjectMeta& meta = request->vm_spec().metadata();
  return Reply("Validate", KeyName(meta.namespace_(), meta.name()),
               ValidateVmSpec(request->vm_spec()), false);
}

grpc::Status VmSpecsService::Render(grpc::ServerContext* /*context*/,
                                    const v1::RenderRequest* request,
                                    v1::RenderResponse* response) {
  const v1::ObjectMeta& meta = request->vm_spec().metadata();
  const std::string what =
      StrCat(KeyName(meta.namespace_(), meta.name()), " for pod ", PodName(*request));
  if (absl::Status valid = ValidateVmSpec(request->vm_spec()); !valid.ok()) {
    return Reply("Render", what, valid, false);
  }
  absl::StatusOr<std::string> xml = cri_->RenderVm(*request);
  if (!xml.ok()) return Reply("Render", what, xml.status(), false);
  response->set_domain_xml(*std::move(xml));
  return grpc::Status::OK;
}

grpc::Status VmSpecsService::GetVmStatus(grpc::ServerContext* /*context*/,
                                         const v1::GetVmStatusRequest* request,
                                         v1::VmStatus* response) {
  absl::StatusOr<v1::VmStatus> status = cri_->GetVmStatus(*request);
  if (!status.ok()) return Reply("GetVmStatus", PodName(*request), status.status(), false);
  *response = *std::move(status);
  return grpc::Status::OK;
}

}  // namespace vmlet::vmspec
