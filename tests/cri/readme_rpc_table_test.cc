// The README's table "Every CRI RPC" names every RPC of the proto, and what
// it says of each unary RPC holds: one marked unimplemented answers
// UNIMPLEMENTED, any other does not (each is called with an empty request
// through a real gRPC server over the fake driver).
#include <cstdlib>
#include <future>
#include <map>
#include <sstream>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/str_util.h"
#include "cri/instrumented_service.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

// RPC name -> status ("supported", "partial", "unimplemented").
std::map<std::string, std::string> ReadmeTable() {
  const char* root = std::getenv("VMLET_SOURCE_ROOT");
  absl::StatusOr<std::string> readme = ReadFile(StrCat(root != nullptr ? root : ".", "/README.md"));
  EXPECT_TRUE(readme.ok()) << readme.status();
  std::map<std::string, std::string> table;
  if (!readme.ok()) return table;
  const size_t start = readme->find("### Every CRI RPC");
  EXPECT_NE(start, std::string::npos) << "README.md has no section \"### Every CRI RPC\"";
  if (start == std::string::npos) return table;
  std::istringstream lines(readme->substr(start));
  std::string line;
  std::getline(lines, line);  // The heading.
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.starts_with("| `")) {
      in_table = true;
      const size_t name_end = line.find('`', 3);
      const std::string name = line.substr(3, name_end - 3);
      const size_t status_start = line.find("| ", name_end) + 2;
      const std::string status =
          line.substr(status_start, line.find(" |", status_start) - status_start);
      EXPECT_TRUE(table.emplace(name, status).second) << "twice in the table: " << name;
    } else if (in_table && !line.starts_with("|")) {
      break;
    }
  }
  return table;
}

class ReadmeRpcTableTest : public vmlet::testing::CriFixture {};

TEST_F(ReadmeRpcTableTest, EveryRpcIsListedAndTheTableIsTrue) {
  std::map<std::string, std::string> table = ReadmeTable();
  RuntimeServiceAdapter runtime(service_.get());
  ImageServiceAdapter images(service_.get());
  grpc::ServerBuilder builder;
  const std::string socket = StrCat(dir_.path(), "/cri.sock");
  builder.AddListeningPort(StrCat("unix:", socket), grpc::InsecureServerCredentials());
  builder.RegisterService(&runtime);
  builder.RegisterService(&images);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  grpc::GenericStub stub(
      grpc::CreateChannel(StrCat("unix:", socket), grpc::InsecureChannelCredentials()));

  int checked = 0;
  for (const char* name : {"runtime.v1.RuntimeService", "runtime.v1.ImageService"}) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* method = service->method(i);
      auto row = table.find(method->name());
      ASSERT_NE(row, table.end()) << "README.md's table lacks " << method->name();
      const std::string listed = row->second;
      EXPECT_TRUE(listed == "supported" || listed == "partial" || listed == "unimplemented")
          << method->name() << ": " << listed;
      table.erase(row);
      if (method->server_streaming() || method->client_streaming()) continue;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      grpc::Slice empty("", 0);  // No bytes: every field at its default.
      grpc::ByteBuffer request(&empty, 1), response;
      std::promise<grpc::Status> done;
      stub.UnaryCall(&context, StrCat("/", service->full_name(), "/", method->name()), {}, &request,
                     &response, [&done](grpc::Status s) { done.set_value(s); });
      grpc::Status status = done.get_future().get();
      const bool unimplemented = status.error_code() == grpc::StatusCode::UNIMPLEMENTED;
      EXPECT_EQ(unimplemented, listed == "unimplemented")
          << method->name() << " is " << listed << " in README.md but answers "
          << status.error_code() << " " << status.error_message();
      ++checked;
    }
  }
  EXPECT_TRUE(table.empty()) << "README.md lists an RPC the proto lacks: " << table.begin()->first;
  EXPECT_GT(checked, 30);
  server->Shutdown();
}

}  // namespace
}  // namespace vmlet::cri
