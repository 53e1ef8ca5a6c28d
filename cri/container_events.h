// Container lifecycle events for GetContainerEvents (the kubelet's evented
// PLEG). The container store reports every change of a record; the hub
// turns changes of state into CONTAINER_CREATED/STARTED/STOPPED/DELETED
// events, each with the pod's sandbox status and the container's status as
// they were at that change, and queues them for every subscriber.
//
// Publishing never blocks on a subscriber: each has a bounded queue, and a
// subscriber that falls more than kMaxQueuedEvents behind is dropped (its
// stream ends with RESOURCE_EXHAUSTED, as the kubelet then relists).
#ifndef VMLET_CRI_CONTAINER_EVENTS_H_
#define VMLET_CRI_CONTAINER_EVENTS_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cri/v1/api.pb.h"
#include "vmlet/state/v1/records.pb.h"

namespace vmlet::cri {

inline constexpr size_t kMaxQueuedEvents = 4096;

class ContainerEventHub {
 public:
  using Event = ::runtime::v1::ContainerEventResponse;

  explicit ContainerEventHub(size_t max_queued = kMaxQueuedEvents) : max_queued_(max_queued) {}

  // One subscriber's queue. Next may be called from one thread at a time.
  class Subscription {
   public:
    // The next event; nullopt when `cancelled` returned true (polled every
    // `poll`), RESOURCE_EXHAUSTED when this subscriber fell too far behind,
    // UNAVAILABLE when the hub shut down.
    absl::StatusOr<std::optional<Event>> Next(const std::function<bool()>& cancelled,
                                              absl::Duration poll = absl::Milliseconds(200));

   private:
    friend class ContainerEventHub;
    std::mutex mu_;
    std::condition_variable ready_;
    std::deque<Event> queue_;
    absl::Status end_;  // Not OK once the subscription is over.
  };

  // Events published after this call reach the subscription until it is
  // destroyed (unsubscribing) or dropped. Any thread.
  std::shared_ptr<Subscription> Subscribe();
  size_t subscribers() const;
  uint64_t published() const;

  // Observers of the stores, to be called under the store's lock (they take
  // only the hub's leaf locks). A sandbox's last status is kept for the
  // events of its containers.
  void OnSandboxChange(const state::v1::SandboxRecord* before,
                       const state::v1::SandboxRecord* after);
  void OnContainerChange(const state::v1::ContainerRecord* before,
                         const state::v1::ContainerRecord* after);

  // Ends every subscription with UNAVAILABLE (vmletd is stopping).
  void Shutdown();

 private:
  void Publish(const Event& event);

  const size_t max_queued_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::weak_ptr<Subscription>> subscriptions_;
  uint64_t next_subscription_ = 1;
  std::map<std::string, ::runtime::v1::PodSandboxStatus> sandbox_status_;
  uint64_t published_ = 0;
  bool shut_down_ = false;
};

}  // namespace vmlet::cri

#endif  // VMLET_CRI_CONTAINER_EVENTS_H_
