/*!
 * \file sync.h
 * \brief Spin-then-block waiting on 32-bit atomic words.
 *
 * The lane engine waits in two stages: a short bounded spin (a waiting lane usually sees the
 * awaited step finish within microseconds) and then a futex sleep on a 32-bit "wake" word
 * (Linux). Elsewhere the blocking stage falls back to yielding the processor in a loop, which
 * is correct but slower; the engine is built and tested on Linux.
 *
 * Protocol for a sleeper (see LaneEngine): read the wake word, announce "sleeping" with a
 * sequentially consistent store, re-check the condition with a sequentially consistent load,
 * then FutexWait(word, value read). A waker publishes its condition with a sequentially
 * consistent store and, only if it sees the sleeper's flag, bumps the wake word and calls
 * FutexWake. One of the two always sees the other (Dekker), so no wake-up is lost, and a waker
 * that finds nobody asleep makes no system call.
 */
#ifndef TVM_SCHED_RUNTIME_NATIVE_SYNC_H_
#define TVM_SCHED_RUNTIME_NATIVE_SYNC_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tvm_sched {
namespace lanes {

/*! \brief Tell the CPU we are in a spin loop (saves power, frees the sibling hyper-thread). */
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/*! \brief Monotonic time in nanoseconds. */
inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/*!
 * \brief Spin until ready() holds or spin_ns nanoseconds have passed.
 * \return true when ready() held, false when the spin budget ran out.
 */
template <typename Pred>
inline bool SpinUntil(Pred&& ready, int64_t spin_ns) {
  if (ready()) return true;
  if (spin_ns <= 0) return false;
  const int64_t deadline = NowNs() + spin_ns;
  for (uint32_t i = 1;; ++i) {
    CpuRelax();
    if (ready()) return true;
    if ((i & 63u) == 0 && NowNs() >= deadline) return false;
  }
}

/*! \brief Sleep while *word == expected (may return spuriously; callers re-check). */
inline void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
#if defined(__linux__)
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word must be 32-bit");
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
#else
  if (word->load(std::memory_order_acquire) == expected) std::this_thread::yield();
#endif
}

/*! \brief Like FutexWait, but for at most timeout_ns nanoseconds. */
inline void FutexWaitFor(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
#if defined(__linux__)
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout_ns / 1000000000);
  ts.tv_nsec = static_cast<long>(timeout_ns % 1000000000);  // NOLINT(runtime/int)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, &ts,
          nullptr, 0);
#else
  (void)timeout_ns;
  if (word->load(std::memory_order_acquire) == expected) std::this_thread::yield();
#endif
}

/*! \brief Wake up to `count` threads sleeping on word (after the caller changed it). */
inline void FutexWake(std::atomic<uint32_t>* word, int count) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr,
          nullptr, 0);
#else
  (void)word;
  (void)count;
#endif
}

/*!
 * \brief A thread's sleep slot: a futex word plus an "I am (about to be) asleep" flag.
 *
 * Owned by one waiting thread; any thread may Wake() it. Kept on its own cache line so that
 * wakers do not contend with the data the owner publishes.
 */
struct alignas(64) Parker {
  std::atomic<uint32_t> sleeping{0};
  std::atomic<uint32_t> word{0};

  /*!
   * \brief Wait until ready() holds: spin for spin_ns, then sleep on the futex word.
   *
   * ready() must read the awaited state with sequentially consistent loads, and whoever makes
   * it true must store with sequential consistency and then call Wake().
   */
  template <typename Pred>
  void Wait(Pred&& ready, int64_t spin_ns) {
    if (SpinUntil(ready, spin_ns)) return;
    for (;;) {
      uint32_t seen = word.load(std::memory_order_acquire);
      sleeping.store(1, std::memory_order_seq_cst);
      if (ready()) break;
      FutexWait(&word, seen);
      sleeping.store(0, std::memory_order_relaxed);
      if (ready()) return;
    }
    sleeping.store(0, std::memory_order_relaxed);
  }

  /*! \brief Wake the owner if it is asleep or about to sleep; free when it is not. */
  void Wake() {
    if (sleeping.load(std::memory_order_seq_cst) != 0) {
      word.fetch_add(1, std::memory_order_seq_cst);
      FutexWake(&word, 1);
    }
  }
};

}  // namespace lanes
}  // namespace tvm_sched

#endif  // TVM_SCHED_RUNTIME_NATIVE_SYNC_H_
