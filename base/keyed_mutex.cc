#include "base/keyed_mutex.h"

#include <utility>

namespace vmlet {

struct KeyedMutex::Lock::Entry {
  std::mutex mu;
  int users = 0;  // Holders and waiters; guarded by KeyedMutex::mu_.
};

KeyedMutex::Lock::Lock(KeyedMutex* owner, std::string key, std::shared_ptr<Entry> entry)
    : owner_(owner), key_(std::move(key)), entry_(std::move(entry)) {}

KeyedMutex::Lock::~Lock() {
  if (!entry_) return;  // Moved from.
  entry_->mu.unlock();
  std::lock_guard lock(owner_->mu_);
  if (--entry_->users == 0) owner_->entries_.erase(key_);
}

KeyedMutex::Lock KeyedMutex::Acquire(std::string_view key) {
  std::shared_ptr<Lock::Entry> entry;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = entries_.try_emplace(std::string(key));
    if (inserted) it->second = std::make_shared<Lock::Entry>();
    entry = it->second;
    ++entry->users;
  }
  entry->mu.lock();
  return Lock(this, std::string(key), std::move(entry));
}

}  // namespace vmlet
