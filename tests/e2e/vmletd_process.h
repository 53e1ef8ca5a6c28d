// The real vmletd binary as a child process of an end-to-end test.
//
// A VmletdProcess owns a fresh directory under $TEST_TMPDIR or /tmp that
// holds the config file, the CRI socket, state_dir, run_dir and the log of
// every run (stdout and stderr, appended across restarts). The config selects
// the fake VM driver, which keeps its VMs under state_dir so that they
// survive a restart of vmletd. The destructor kills a vmletd still running
// and removes the directory, whatever the test's outcome.
//
// Threading: one object is used from the test's main thread only.
#ifndef VMLET_TESTS_E2E_VMLETD_PROCESS_H_
#define VMLET_TESTS_E2E_VMLETD_PROCESS_H_

#include <sys/types.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cri/v1/api.grpc.pb.h"

namespace vmlet::e2e {

// The path of the vmletd binary from $VMLETD; empty when unset.
std::string VmletdBinary();
// The path of the vmletctl binary from $VMLETCTL; empty when unset.
std::string VmletctlBinary();

// How a child process ended.
struct ExitStatus {
  int code = -1;       // The exit code, or -1 when a signal ended the process.
  int signal = 0;      // The signal that ended it, or 0.
  std::string output;  // What it wrote to stdout (RunCommand only).
};

// Runs `argv` (argv[0] is a path) to completion, with stdout captured and
// stderr passed through to the test's stderr. Killed after `timeout`.
absl::StatusOr<ExitStatus> RunCommand(const std::vector<std::string>& argv,
                                      absl::Duration timeout = absl::Seconds(20));

// The image every fake-driver vmletd offers (a local image).
inline constexpr char kFakeImage[] = "vmlet.test/tiny:1";

class VmletdProcess {
 public:
  // Creates the directory and writes the config: the keys every test needs
  // followed by `extra_yaml` (whole lines, e.g. "bogus_key: 1\n").
  // With `fake_driver`, the config selects the fake VM driver and a local
  // image named kFakeImage; otherwise `extra_yaml` says what to use. Unless
  // `extra_yaml` sets pod_network, it is "none" (no CNI).
  explicit VmletdProcess(const std::string& extra_yaml = "", bool fake_driver = true);
  ~VmletdProcess();

  VmletdProcess(const VmletdProcess&) = delete;
  VmletdProcess& operator=(const VmletdProcess&) = delete;

  // Why the constructor could not prepare the directory, or OK.
  const absl::Status& init_status() const { return init_status_; }

  const std::string& dir() const { return dir_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& state_dir() const { return state_dir_; }
  bool running() const { return pid_ > 0; }

  // Runs vmletd (from the next start on) in the network namespace pinned at
  // `path`, through nsenter.
  void set_netns(const std::string& path) {
    wrapper_ = {"/usr/bin/nsenter", "--net=" + path, "--"};
  }
  // Runs vmletd (from the next start on) through `wrapper` (a program that
  // execs the rest of its command line, such as systemd-socket-activate).
  void set_wrapper(std::vector<std::string> wrapper) { wrapper_ = std::move(wrapper); }

  // Starts vmletd and waits until the socket answers Version, for at most
  // `timeout`. Fails (with the log's tail) if vmletd exits first.
  absl::Status Start(absl::Duration timeout = absl::Seconds(20));
  // Starts vmletd without waiting for it to serve.
  absl::Status Spawn();
  // Waits for vmletd to exit, for at most `timeout`.
  absl::StatusOr<ExitStatus> WaitForExit(absl::Duration timeout = absl::Seconds(20));
  // SIGKILL, then reaps the process: a crash, as far as vmletd can tell.
  absl::Status Kill();
  // SIGTERM, then waits for the exit.
  absl::StatusOr<ExitStatus> Terminate(absl::Duration timeout = absl::Seconds(20));
  // Kill() if running, then Start() on the same config and directories.
  absl::Status Restart();

  // RemovePodSandbox of each of `ids` (when running), for a test's clean-up:
  // the messages of the calls that failed, or OK.
  absl::Status RemovePodSandboxes(const std::vector<std::string>& ids);

  // Stubs on a channel to the socket; a new channel after every Start.
  runtime::v1::RuntimeService::Stub& runtime() { return *runtime_; }
  runtime::v1::ImageService::Stub& image() { return *image_; }

  // Everything vmletd wrote so far, over all runs.
  std::string Log() const;

 private:
  absl::Status WaitUntilServing(absl::Duration timeout);
  // Reaps the child if it has exited (waits for that when `block`); how it
  // ended, or nullopt while it runs.
  absl::StatusOr<std::optional<ExitStatus>> Reap(bool block);
  void AppendToLog(const std::string& line) const;

  absl::Status init_status_;
  std::string dir_;
  std::string config_path_;
  std::string socket_path_;
  std::string state_dir_;
  std::string log_path_;
  std::vector<std::string> wrapper_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<runtime::v1::ImageService::Stub> image_;
};

// A test fixture that starts a vmletd of its own (fake VM driver) for each
// test and prints its log when the test fails.
class VmletdFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vmletd_.init_status().ok()) << vmletd_.init_status();
    absl::Status started = vmletd_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "---- log of vmletd in " << vmletd_.dir() << " ----\n"
                << vmletd_.Log() << "---- end of the log of vmletd ----\n";
    }
  }

  VmletdProcess vmletd_;
};

}  // namespace vmlet::e2e

#endif  // VMLET_TESTS_E2E_VMLETD_PROCESS_H_
