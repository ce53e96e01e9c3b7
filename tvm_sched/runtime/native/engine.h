/*!
 * \file engine.h
 * \brief The native lane engine: one persistent OS thread per lane, atomic waits.
 *
 * Contract (tvm_sched.runtime's "Lane engine interface"): Run() executes every lane's steps
 * once, concurrently, each lane in its order and each step only after the steps it waits on;
 * it returns when all lanes finished. A step is `funcs[func](*args)` with arguments resolved
 * at construction, so a step's call allocates nothing.
 *
 * Synchronisation: each lane publishes a 64-bit progress word (run generation << 32 | number
 * of its steps finished) after each step, with release semantics, so "step s of lane M is done
 * in run g" is `progress[M] >= (g << 32 | pos(s) + 1)` and progress from earlier runs never
 * satisfies a later one. A waiting lane spins for `spin_ns`, then sleeps on its futex (see
 * sync.h); the finishing lane wakes only the lanes that wait on that very step, and only if
 * they sleep. Idle lanes wait for the next run the same way.
 *
 * Work sharing (steal_ns >= 0): a lane's steps still run one after another in the lane's
 * order, but not always on the lane's own thread. Each lane also has a `claimed` word (run
 * generation << 32 | steps taken); a thread takes the next step of a lane with a CAS on it,
 * once the lane's previous step is done and the step's waits are met. A thread first takes
 * its own lane's next step; when that is blocked it takes another lane's next step that has
 * been ready and untaken for steal_ns (its own thread is busy elsewhere, asleep, or lost its
 * core to another process). So a lane that falls behind hands its ready steps to an idle
 * thread, and every step still starts only after everything that happens-before it in the plan
 * (its lane's previous step and its waits): the arena stays safe. A thread leaves the run when
 * every step of every lane is taken; an idle thread spins, then sleeps with a timeout
 * (kStealPollNs) so it looks for steps to take now and then.
 *
 * Owners (EngineOptions::owners): threads and lanes need not be one to one. A thread may own
 * several lanes -- the queues tvm_sched.runtime.queues cuts from one lane of a plan, each a
 * chain of steps that must run in order anyway -- and takes the first of them whose next step
 * is ready, in lane order, before it looks at other threads' lanes (after steal_ns, as above).
 * Without sharing (steal_ns = -1) a thread runs only its own lanes. Pinning, thread-pool sizing
 * and sleeping are per thread.
 *
 * Errors: the first step that throws sets the abort flag and records "step s (name) on lane l
 * failed: <kind>: <message>"; every lane stops before its next step (waits also end on abort),
 * and Run() throws that message as ffi::Error(RuntimeError). The engine stays usable.
 *
 * Lifetime: threads start in the constructor (which returns once every lane has configured its
 * TVM pool and affinity) and are joined by Close() or the destructor (RAII). Run() and Close()
 * are serialised by a mutex, so they may be called from any thread except the engine's own
 * lanes (a kernel calling them would deadlock; they throw RuntimeError instead).
 */
#ifndef TVM_SCHED_RUNTIME_NATIVE_ENGINE_H_
#define TVM_SCHED_RUNTIME_NATIVE_ENGINE_H_

#include <tvm/ffi/any.h>
#include <tvm/ffi/function.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "affinity.h"
#include "lane_plan.h"
#include "sync.h"

namespace tvm_sched {
namespace lanes {

/*! \brief Engine settings. */
struct EngineOptions {
  int threads_per_lane = 1;  // TVM thread-pool size of each lane's thread
  bool pin = true;           // pin lanes to disjoint cores where possible
  int64_t spin_ns = 50000;   // how long a waiting thread spins before it sleeps
  // Work sharing: a thread whose own lane is blocked runs the next step of another lane once
  // that step has been ready (its lane's previous step done, its waits met) and untaken for
  // steal_ns; -1: never (each lane only on its own thread).
  int64_t steal_ns = 20000;
  // Per lane, the thread that owns it (threads: 0 .. max + 1); empty: lane l on thread l.
  // A thread may own several lanes (queues cut from one lane of a plan): it runs the first of
  // its own lanes whose next step is ready, and other threads' lanes as work sharing allows.
  std::vector<int> owners;
};

class LaneEngine {
 public:
  /*!
   * \param funcs The function table.
   * \param plan A plan from CompilePlan (function indices already checked against funcs).
   * \param args Every step's arguments, step after step (CompiledStep::arg_begin indexes it).
   * \param step_names Optional names of the steps for error messages (empty: none).
   * \param options Engine settings.
   * \throws ffi::Error (RuntimeError) when a thread cannot be started.
   */
  LaneEngine(std::vector<tvm::ffi::Function> funcs, CompiledPlan plan,
             std::vector<tvm::ffi::Any> args, std::vector<std::string> step_names,
             EngineOptions options);
  ~LaneEngine();
  LaneEngine(const LaneEngine&) = delete;
  LaneEngine& operator=(const LaneEngine&) = delete;

  /*! \brief Run every lane once; throws ffi::Error naming the failed step on a kernel error. */
  void Run();
  /*! \brief Stop and join the lane threads (idempotent). */
  void Close();

  int num_lanes() const { return static_cast<int>(plan_.lanes.size()); }
  int num_threads() const { return static_cast<int>(scan_.size()); }
  int64_t num_steps() const { return plan_.num_steps; }
  int64_t num_waits() const { return static_cast<int64_t>(plan_.waits.size()); }
  int64_t num_waits_given() const { return plan_.num_waits_given; }
  bool closed() const { return closed_; }
  /*! \brief Per thread: the cores it is pinned to (empty when not pinned). */
  const std::vector<std::vector<int>>& pinned_cores() const { return pinned_; }
  /*! \brief Whether every lane's TVM thread pool was sized. */
  bool pools_configured() const { return pools_configured_; }
  /*! \brief Steps run by a thread other than their lane's own, since the engine started. */
  int64_t stolen() const { return stolen_.load(std::memory_order_relaxed); }

 private:
  /*! \brief Per-lane shared state, each part on its own cache line. */
  struct LaneState {
    alignas(64) std::atomic<uint64_t> progress{0};
    // (generation << 32 | steps of this lane taken by some thread in this run): work sharing
    alignas(64) std::atomic<uint64_t> claimed{0};
  };

  void AssignOwners();
  void LaneMain(int thread, std::vector<int> cores);
  bool ExecuteLane(int lane, uint64_t gen);
  bool ExecuteShared(int thread, uint64_t gen);
  void WakeOwner(int lane) { parkers_[owner_[lane]].Wake(); }
  int Claimable(int lane, uint64_t gen, uint64_t* claimed, uint32_t* pos) const;
  bool RunStep(int lane, uint32_t pos, uint64_t gen);
  uint64_t ProgressSum() const;
  void AwaitChange(Parker& parker, uint64_t seen);
  void Fail(const CompiledStep& step, int lane, const std::string& what);
  void WakeAllLanes();
  void CheckNotOnLane(const char* what) const;
  void StopThreads();

  std::vector<tvm::ffi::Function> funcs_;
  CompiledPlan plan_;
  std::vector<tvm::ffi::Any> args_;        // owns the argument objects
  std::vector<tvm::ffi::AnyView> views_;   // what a call reads (views into args_)
  std::vector<std::string> step_names_;
  EngineOptions options_;
  std::optional<tvm::ffi::Function> config_threadpool_;
  std::vector<int> allowed_;

  std::unique_ptr<LaneState[]> lanes_;
  std::vector<int> owner_;                  // per lane, its thread
  std::vector<std::vector<int>> scan_;      // per thread: its own lanes, then the others
  std::vector<int> own_count_;              // per thread: how many of scan_ are its own
  bool one_to_one_ = true;                  // lane l on thread l, for every lane
  std::unique_ptr<Parker[]> parkers_;       // per thread: sleeps here (a wait, the next run)
  std::vector<std::thread> threads_;
  std::vector<std::thread::id> lane_ids_;  // set once by the constructor, then read-only

  alignas(64) std::atomic<uint32_t> run_seq_{0};  // bumped to start a run (or to stop)
  std::atomic<uint64_t> gen_{0};                  // the current run's generation (>= 1)
  std::atomic<bool> stop_{false};
  alignas(64) std::atomic<uint32_t> abort_{0};
  alignas(64) std::atomic<int32_t> remaining_{0};  // threads still running in this run
  Parker main_parker_;                             // Run() sleeps here
  std::atomic<int64_t> stolen_{0};
  int64_t main_spin_ns_ = 0;                       // how long Run() spins before it sleeps

  std::string error_;  // written by the failing lane before it finishes (see Fail)

  // Start-up handshake: lanes report their setup, the constructor waits for all of them.
  std::mutex setup_mutex_;
  std::condition_variable setup_cv_;
  int setup_done_ = 0;
  std::vector<std::vector<int>> pinned_;
  bool pools_configured_ = true;

  std::mutex api_mutex_;  // serialises Run() and Close()
  bool closed_ = false;
};

}  // namespace lanes
}  // namespace tvm_sched

#endif  // TVM_SCHED_RUNTIME_NATIVE_ENGINE_H_
