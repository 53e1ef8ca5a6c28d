// One mutex per key, created on first use and dropped when nobody holds or
// waits for it. Serialises state-changing operations on one object (one
// "job" at a time per sandbox or VM) while different objects proceed in
// parallel.
#ifndef VMLET_BASE_KEYED_MUTEX_H_
#define VMLET_BASE_KEYED_MUTEX_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace vmlet {

class KeyedMutex {
 public:
  class [[nodiscard]] Lock {
   public:
    Lock(Lock&&) = default;
    Lock& operator=(Lock&&) = delete;
    ~Lock();

   private:
    friend class KeyedMutex;
    struct Entry;
    Lock(KeyedMutex* owner, std::string key, std::shared_ptr<Entry> entry);
    KeyedMutex* owner_;
    std::string key_;
    std::shared_ptr<Entry> entry_;
  };

  // Blocks until the mutex of `key` is held by the caller.
  Lock Acquire(std::string_view key);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Lock::Entry>, std::less<>> entries_;
};

}  // namespace vmlet

#endif  // VMLET_BASE_KEYED_MUTEX_H_
