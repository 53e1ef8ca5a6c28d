// vmlet.vmspec.v1.Console on the VM-spec socket: attaches a client to the
// serial console of a container's VM (`vmletctl console`). Output reaches
// every attached client; input from any of them is typed into the console.
#ifndef VMLET_VMSPEC_CONSOLE_SERVICE_H_
#define VMLET_VMSPEC_CONSOLE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>

#include "cri/cri_service.h"
#include "vmdriver/vm_driver.h"
#include "vmlet/vmspec/v1/console.grpc.pb.h"

namespace vmlet::vmspec {

namespace v1 = ::vmlet::vmspec::v1;

class ConsoleService final : public v1::Console::Service {
 public:
  // Output not yet sent to a slow client is kept up to this size; beyond
  // it the oldest bytes are dropped (the console itself never waits).
  static constexpr size_t kMaxPendingOutputBytes = 1 << 20;

  // `cri` (which resolves container ids) and `driver` must outlive the
  // service.
  ConsoleService(cri::CriService* cri, vmdriver::VmDriver* driver) : cri_(cri), driver_(driver) {}

  // Runs on a gRPC sync worker for the whole session, plus one thread of
  // its own that reads the client's input; returns once the client
  // half-closes or cancels, typing into the console fails (the VM stopped)
  // or the server shuts down.
  grpc::Status Attach(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ConsoleOutput, v1::ConsoleInput>* stream) override;

 private:
  cri::CriService* const cri_;
  vmdriver::VmDriver* const driver_;
};

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_CONSOLE_SERVICE_H_
