// A scope guard runs its function when it goes out of scope unless it was
// dismissed. Long operations register one undo per acquired resource and
// dismiss them all once the operation has succeeded.
#ifndef VMLET_BASE_SCOPE_GUARD_H_
#define VMLET_BASE_SCOPE_GUARD_H_

#include <utility>

namespace vmlet {

template <typename F>
class [[nodiscard]] ScopeGuard {
 public:
  explicit ScopeGuard(F undo) : undo_(std::move(undo)) {}
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ~ScopeGuard() {
    if (active_) undo_();
  }

  void Dismiss() { active_ = false; }

 private:
  F undo_;
  bool active_ = true;
};

}  // namespace vmlet

#endif  // VMLET_BASE_SCOPE_GUARD_H_
