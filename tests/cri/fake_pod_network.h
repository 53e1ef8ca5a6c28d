// A PodNetwork for cri/'s unit tests: no namespace, no CNI; hands out
// 10.88.0.N and records what it was asked to do.
#ifndef VMLET_TESTS_CRI_FAKE_POD_NETWORK_H_
#define VMLET_TESTS_CRI_FAKE_POD_NETWORK_H_

#include <mutex>
#include <set>
#include <string>

#include "network/pod_network.h"

namespace vmlet::testing {

class FakePodNetwork : public network::PodNetwork {
 public:
  FakePodNetwork() : network::PodNetwork(network::PodNetworkOptions{.mode = "none"}) {}

  absl::Status Ready() const override {
    std::lock_guard lock(mu_);
    return ready_;
  }

  absl::Status Setup(
      const network::PodNetworkConfig& config, network::PodNetworkState* state,
      const std::function<absl::Status(const network::PodNetworkState&)>& checkpoint) override {
    std::lock_guard lock(mu_);
    state->netns_path = "/fake/netns/" + config.sandbox_id;
    if (absl::Status status = checkpoint(*state); !status.ok()) return status;
    if (!setup_error_.ok()) {
      state->netns_path.clear();
      return setup_error_;
    }
    state->ips = {"10.88.0." + std::to_string(++next_), "fd00::" + std::to_string(next_)};
    active_.insert(config.sandbox_id);
    last_config_ = config;
    return absl::OkStatus();
  }

  absl::Status Teardown(const network::PodNetworkConfig& config,
                        network::PodNetworkState* state) override {
    std::lock_guard lock(mu_);
    if (!teardown_error_.ok()) return teardown_error_;
    active_.erase(config.sandbox_id);
    state->netns_path.clear();
    state->cni_config.clear();
    state->tap.clear();
    ++teardowns_;
    return absl::OkStatus();
  }

  absl::Status Restore(const network::PodNetworkConfig& config,
                       const network::PodNetworkState& /*state*/) override {
    std::lock_guard lock(mu_);
    if (lost_) return absl::FailedPreconditionError("the namespace is gone");
    active_.insert(config.sandbox_id);
    return absl::OkStatus();
  }

  void SetReady(absl::Status status) {
    std::lock_guard lock(mu_);
    ready_ = std::move(status);
  }
  void FailSetup(absl::Status status) {
    std::lock_guard lock(mu_);
    setup_error_ = std::move(status);
  }
  void FailTeardown(absl::Status status) {
    std::lock_guard lock(mu_);
    teardown_error_ = std::move(status);
  }
  void LoseNamespaces() {
    std::lock_guard lock(mu_);
    lost_ = true;
  }
  std::set<std::string> Active() const {
    std::lock_guard lock(mu_);
    return active_;
  }
  network::PodNetworkConfig LastConfig() const {
    std::lock_guard lock(mu_);
    return last_config_;
  }

 private:
  mutable std::mutex mu_;
  absl::Status ready_;
  absl::Status setup_error_;
  absl::Status teardown_error_;
  bool lost_ = false;
  int next_ = 0;
  int teardowns_ = 0;
  std::set<std::string> active_;
  network::PodNetworkConfig last_config_;
};

}  // namespace vmlet::testing

#endif  // VMLET_TESTS_CRI_FAKE_POD_NETWORK_H_
