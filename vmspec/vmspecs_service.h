// vmlet.vmspec.v1.VmSpecs on the VM-spec socket: stores, lists and deletes
// VM specs (SpecStore), checks and renders them, and reports what a pod's
// VM runs with (cri::CriService).
//
// Threading: every method runs on a gRPC sync worker and may run
// concurrently with the others; the store and the CRI service lock for
// themselves.
#ifndef VMLET_VMSPEC_VMSPECS_SERVICE_H_
#define VMLET_VMSPEC_VMSPECS_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "cri/cri_service.h"
#include "vmlet/vmspec/v1/vmspec.grpc.pb.h"
#include "vmspec/peer_auth.h"
#include "vmspec/spec_store.h"

namespace vmlet::vmspec {

class VmSpecsService final : public v1::VmSpecs::Service {
 public:
  // `store`, `cri` and `deny` must outlive the service. With `deny` (the
  // read-only server of peer_auth.h), Apply and Delete answer
  // PERMISSION_DENIED; the other methods work as usual.
  VmSpecsService(SpecStore* store, cri::CriService* cri, const PeerAccess* deny = nullptr)
      : store_(store), cri_(cri), deny_(deny) {}

  grpc::Status Apply(grpc::ServerContext* context, const v1::ApplyRequest* request,
                     v1::ApplyResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest* request,
                   v1::GetResponse* response) override;
  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest* request,
                    v1::ListResponse* response) override;
  grpc::Status Delete(grpc::ServerContext* context, const v1::DeleteRequest* request,
                      v1::DeleteResponse* response) override;
  grpc::Status Validate(grpc::ServerContext* context, const v1::ValidateRequest* request,
                        v1::ValidateResponse* response) override;
  grpc::Status Render(grpc::ServerContext* context, const v1::RenderRequest* request,
                      v1::RenderResponse* response) override;
  grpc::Status GetVmStatus(grpc::ServerContext* context, const v1::GetVmStatusRequest* request,
                           v1::VmStatus* response) override;

 private:
  SpecStore* const store_;
  cri::CriService* const cri_;
  const PeerAccess* const deny_;
};

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_VMSPECS_SERVICE_H_
