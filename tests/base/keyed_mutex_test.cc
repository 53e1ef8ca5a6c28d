#include "base/keyed_mutex.h"

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace vmlet {
namespace {

constexpr int kThreads = 8;
constexpr int kIterations = 200;

// Raises `max_seen` to `value` if it is larger.
void RaiseMax(std::atomic<int>& max_seen, int value) {
  int seen = max_seen.load();
  while (value > seen && !max_seen.compare_exchange_weak(seen, value)) {
  }
}

TEST(KeyedMutexTest, SerialisesHoldersOfTheSameKey) {
  KeyedMutex mutex;
  std::atomic<int> holders{0};
  std::atomic<int> max_holders{0};
  int unguarded_counter = 0;  // Only ever touched with the key held.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        KeyedMutex::Lock lock = mutex.Acquire("sandbox");
        RaiseMax(max_holders, ++holders);
        // Widen the window in which a second holder would be seen.
        std::this_thread::yield();
        ++unguarded_counter;
        --holders;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(max_holders.load(), 1);
  EXPECT_EQ(unguarded_counter, kThreads * kIterations);
}

TEST(KeyedMutexTest, HoldingOneKeyDoesNotBlockAnother) {
  KeyedMutex mutex;
  std::promise<void> a_held;
  std::promise<void> release_a;
  std::thread holder([&] {
    KeyedMutex::Lock lock = mutex.Acquire("a");
    a_held.set_value();
    release_a.get_future().wait();
  });
  a_held.get_future().wait();
  {
    // Would never return (and the test would time out) if "b" waited for "a".
    KeyedMutex::Lock lock = mutex.Acquire("b");
  }
  release_a.set_value();
  holder.join();
}

TEST(KeyedMutexTest, SameKeyInAnotherKeyedMutexIsIndependent) {
  KeyedMutex first;
  KeyedMutex second;
  KeyedMutex::Lock held = first.Acquire("key");
  KeyedMutex::Lock lock = second.Acquire("key");
}

TEST(KeyedMutexTest, AReleasedKeyCanBeAcquiredAgain) {
  KeyedMutex mutex;
  for (int i = 0; i < 3; ++i) {
    KeyedMutex::Lock lock = mutex.Acquire("key");
  }
}

TEST(KeyedMutexTest, AMovedLockKeepsTheKeyUntilTheNewOwnerGoesAway) {
  KeyedMutex mutex;
  std::atomic<bool> acquired{false};
  std::thread waiter;
  {
    KeyedMutex::Lock original = mutex.Acquire("key");
    KeyedMutex::Lock owner = std::move(original);
    {
      // Destroying the moved-from lock must not release the key.
      KeyedMutex::Lock discarded = std::move(original);
    }
    waiter = std::thread([&] {
      KeyedMutex::Lock lock = mutex.Acquire("key");
      acquired = true;
    });
    // The waiter may or may not have started to wait; either way it cannot
    // hold the key while `owner` does.
    EXPECT_FALSE(acquired.load());
  }
  waiter.join();
  EXPECT_TRUE(acquired.load());
}

TEST(KeyedMutexTest, ManyDistinctKeysComeAndGo) {
  KeyedMutex mutex;
  std::vector<std::thread> threads;
  std::atomic<int> acquisitions{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        // Each thread shares every key with one neighbour so that entries are
        // created, shared and dropped concurrently.
        std::string key = std::to_string((t / 2) * kIterations + i);
        KeyedMutex::Lock lock = mutex.Acquire(key);
        ++acquisitions;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(acquisitions.load(), kThreads * kIterations);
  // Every entry was dropped cleanly: each key is free again.
  for (int i = 0; i < kThreads / 2 * kIterations; ++i) {
    KeyedMutex::Lock lock = mutex.Acquire(std::to_string(i));
  }
}

}  // namespace
}  // namespace vmlet
