// Helpers for tests of the CRI layer: a temporary state directory, a
// CriService over a FakeVmDriver, and kubelet-like request builders.
#ifndef VMLET_TESTS_CRI_CRI_TEST_UTIL_H_
#define VMLET_TESTS_CRI_CRI_TEST_UTIL_H_

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "cri/cri_service.h"
#include "tests/cri/fake_pod_network.h"
#include "vmdriver/fake_vm_driver.h"

namespace vmlet::testing {

// A directory under $TEST_TMPDIR or /tmp, removed with everything in it when
// the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The local image every CriFixture offers (its kernel is a placeholder).
inline constexpr char kTestImage[] = "vmlet.test/tiny:1";

runtime::v1::PodSandboxConfig SandboxConfig(const std::string& name, uint32_t attempt = 0);
runtime::v1::ContainerConfig ContainerConfig(const std::string& name, uint32_t attempt = 0);

// A CriService on a fresh state dir with a persisting FakeVmDriver.
// Restart() drops both and builds them again from what is on disk, as a
// restart of vmletd would.
class CriFixture : public ::testing::Test {
 protected:
  CriFixture() { Restart(); }

  void Restart();

  std::string RunSandbox(const std::string& name, uint32_t attempt = 0);
  std::string CreateContainer(const std::string& sandbox_id, const std::string& name,
                              uint32_t attempt = 0);
  runtime::v1::PodSandboxStatus SandboxStatus(const std::string& id);
  runtime::v1::ContainerStatus ContainerStatus(const std::string& id);

  TempDir dir_;
  std::unique_ptr<vmdriver::FakeVmDriver> driver_;
  // Survives Restart(), as the node's namespaces survive vmletd.
  FakePodNetwork network_;
  std::unique_ptr<cri::CriService> service_;
};

}  // namespace vmlet::testing

#endif  // VMLET_TESTS_CRI_CRI_TEST_UTIL_H_
