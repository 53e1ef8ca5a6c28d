// vmlet.vmspec.v1.Images on the VM-spec socket: pulls with progress and
// disk imports, into the same image store the CRI serves.
#ifndef VMLET_VMSPEC_IMAGES_SERVICE_H_
#define VMLET_VMSPEC_IMAGES_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "image/image_store.h"
#include "vmlet/vmspec/v1/images.grpc.pb.h"

namespace vmlet::vmspec {

namespace v1 = ::vmlet::vmspec::v1;

class ImagesService final : public v1::Images::Service {
 public:
  // `store` must outlive the service.
  explicit ImagesService(image::ImageStore* store) : store_(store) {}

  grpc::Status PullImage(grpc::ServerContext* context, const v1::PullImageRequest* request,
                         grpc::ServerWriter<v1::PullImageProgress>* writer) override;
  grpc::Status ImportImage(grpc::ServerContext* context, const v1::ImportImageRequest* request,
                           v1::ImportImageResponse* response) override;

 private:
  image::ImageStore* const store_;
};

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_IMAGES_SERVICE_H_
