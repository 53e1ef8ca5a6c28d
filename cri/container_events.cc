#include "cri/container_events.h"

#include <utility>

#include "base/id.h"
#include "base/str_util.h"
#include "cri/convert.h"

namespace vmlet::cri {
namespace {

namespace v1 = ::runtime::v1;
using state::v1::ContainerRecord;

// The event a change of a container record is, if any. A container that
// was never visible (failed while being created) makes none.
std::optional<v1::ContainerEventType> EventOf(const ContainerRecord* before,
                                              const ContainerRecord* after) {
  using state::v1::ContainerState;
  const ContainerState was =
      before != nullptr ? before->state() : ContainerState::CONTAINER_STATE_CREATING;
  if (after == nullptr) {
    if (was == ContainerState::CONTAINER_STATE_CREATING) return std::nullopt;
    return v1::CONTAINER_DELETED_EVENT;
  }
  if (after->state() == was) return std::nullopt;
  switch (after->state()) {
    case ContainerState::CONTAINER_STATE_CREATED:
      return v1::CONTAINER_CREATED_EVENT;
    case ContainerState::CONTAINER_STATE_RUNNING:
      return v1::CONTAINER_STARTED_EVENT;
    case ContainerState::CONTAINER_STATE_EXITED:
      return v1::CONTAINER_STOPPED_EVENT;
    default:
      return std::nullopt;
  }
}

}  // namespace

absl::StatusOr<std::optional<ContainerEventHub::Event>> ContainerEventHub::Subscription::Next(
    const std::function<bool()>& cancelled, absl::Duration poll) {
  std::unique_lock lock(mu_);
  while (true) {
    if (!queue_.empty()) {
      Event event = std::move(queue_.front());
      queue_.pop_front();
      return event;
    }
    if (!end_.ok()) return end_;
    if (cancelled && cancelled()) return std::nullopt;
    ready_.wait_for(lock, absl::ToChronoMilliseconds(poll));
  }
}

std::shared_ptr<ContainerEventHub::Subscription> ContainerEventHub::Subscribe() {
  auto subscription = std::make_shared<Subscription>();
  std::lock_guard lock(mu_);
  if (shut_down_) {
    subscription->end_ = absl::UnavailableError("vmletd is shutting down");
  } else {
    subscriptions_.emplace(next_subscription_++, subscription);
  }
  return subscription;
}

size_t ContainerEventHub::subscribers() const {
  std::lock_guard lock(mu_);
  size_t live = 0;
  for (const auto& [id, weak] : subscriptions_) live += weak.expired() ? 0 : 1;
  return live;
}

uint64_t ContainerEventHub::published() const {
  std::lock_guard lock(mu_);
  return published_;
}

void ContainerEventHub::OnSandboxChange(const state::v1::SandboxRecord* before,
                                        const state::v1::SandboxRecord* after) {
  if (after == nullptr) {
    // Its containers were removed before it.
    std::lock_guard lock(mu_);
    if (before != nullptr) sandbox_status_.erase(before->id());
    return;
  }
  v1::PodSandboxStatus status = ToCriSandboxStatus(*after);
  std::lock_guard lock(mu_);
  sandbox_status_[after->id()] = std::move(status);
}

void ContainerEventHub::OnContainerChange(const ContainerRecord* before,
                                          const ContainerRecord* after) {
  std::optional<v1::ContainerEventType> type = EventOf(before, after);
  if (!type.has_value()) return;
  const ContainerRecord& record = after != nullptr ? *after : *before;
  Event event;
  event.set_container_id(record.id());
  event.set_container_event_type(*type);
  event.set_created_at(NowNanos());
  // A pod has one container: after a delete, none is left to report.
  if (after != nullptr) *event.add_containers_statuses() = ToCriContainerStatus(*after);
  {
    std::lock_guard lock(mu_);
    auto it = sandbox_status_.find(record.sandbox_id());
    if (it != sandbox_status_.end()) {
      *event.mutable_pod_sandbox_status() = it->second;
    } else {
      // The kubelet reads the pod from this status: never leave it empty.
      event.mutable_pod_sandbox_status()->set_id(record.sandbox_id());
      event.mutable_pod_sandbox_status()->set_state(v1::SANDBOX_NOTREADY);
      event.mutable_pod_sandbox_status()->mutable_metadata();
    }
  }
  Publish(event);
}

void ContainerEventHub::Publish(const Event& event) {
  std::lock_guard lock(mu_);
  ++published_;
  for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
    std::shared_ptr<Subscription> subscription = it->second.lock();
    if (subscription == nullptr) {
      it = subscriptions_.erase(it);
      continue;
    }
    bool dropped = false;
    {
      std::lock_guard queue_lock(subscription->mu_);
      if (subscription->queue_.size() >= max_queued_) {
        subscription->queue_.clear();
        subscription->end_ = absl::ResourceExhaustedError(
            StrCat("this GetContainerEvents subscriber fell more than ", max_queued_,
                   " events behind and was dropped: subscribe again and relist"));
        dropped = true;
      } else {
        subscription->queue_.push_back(event);
      }
    }
    subscription->ready_.notify_one();
    it = dropped ? subscriptions_.erase(it) : std::next(it);
  }
}

void ContainerEventHub::Shutdown() {
  std::lock_guard lock(mu_);
  shut_down_ = true;
  for (auto& [id, weak] : subscriptions_) {
    if (std::shared_ptr<Subscription> subscription = weak.lock()) {
      {
        std::lock_guard queue_lock(subscription->mu_);
        subscription->end_ = absl::UnavailableError("vmletd is shutting down");
      }
      subscription->ready_.notify_one();
    }
  }
  subscriptions_.clear();
}

}  // namespace vmlet::cri
