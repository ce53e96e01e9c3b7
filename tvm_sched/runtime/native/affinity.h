/*!
 * \file affinity.h
 * \brief Cores for lanes: which cores each lane may use, pinning, and the per-lane TVM pool.
 *
 * AssignCores gives lane i the i-th block of `per_lane` cores from the process's allowed set
 * (sched_getaffinity; distinct physical cores first on SMT machines), so lanes never share a
 * core; when the allowed set is too small for one
 * core per lane, no lane is pinned. ConfigureLaneThread runs inside a lane's thread: it sizes
 * that thread's TVM CPU thread pool (TVM's pool is thread-local; the global function
 * `runtime.config_threadpool(mode, nthreads, cpus)` configures the calling thread's pool) and
 * then sets the thread's affinity with pthread_setaffinity_np: its cores when pinned, else back
 * to every allowed core (configuring TVM's pool may have narrowed it). Both are skipped
 * silently when unavailable (TVM not loaded, pinning not permitted); the result says what was
 * applied.
 */
#ifndef TVM_SCHED_RUNTIME_NATIVE_AFFINITY_H_
#define TVM_SCHED_RUNTIME_NATIVE_AFFINITY_H_

#include <tvm/ffi/function.h>

#include <optional>
#include <vector>

namespace tvm_sched {
namespace lanes {

/*!
 * \brief CPU ids this process may run on (all online CPUs when the OS cannot say), the first
 * hardware thread of every physical core before any second one (Linux sysfs topology).
 */
std::vector<int> AllowedCpus();

/*!
 * \brief Disjoint core blocks for lanes.
 * \param num_lanes Number of lanes.
 * \param threads_per_lane Cores wanted per lane (at least one is given when any can be).
 * \param allowed CPU ids available (AllowedCpus()).
 * \return Per lane its cores; all empty when the cores do not suffice for one per lane.
 */
std::vector<std::vector<int>> AssignCores(int num_lanes, int threads_per_lane,
                                          const std::vector<int>& allowed);

/*! \brief What ConfigureLaneThread could apply. */
struct LaneThreadSetup {
  bool pool_configured = false;  // the lane's TVM thread pool was sized
  bool pinned = false;           // the lane's thread was pinned to its cores
};

/*!
 * \brief CPUs for a lane's TVM thread pool.
 *
 * TVM's pool starts one worker per CPU it is given beyond the first, and a fresh worker spins
 * (yielding) for a while before it sleeps; so a lane with one thread gets exactly one CPU (no
 * workers at all): its pinned core, or lane-th allowed core when unpinned. A lane with more
 * threads gets its pinned cores, or every allowed core when unpinned.
 */
std::vector<int> PoolCpus(int lane, int threads_per_lane, const std::vector<int>& cores,
                          const std::vector<int>& allowed);

/*!
 * \brief Configure the calling (lane) thread: its TVM thread pool, then its affinity.
 * \param config_threadpool TVM's `runtime.config_threadpool`, when TVM is loaded.
 * \param threads_per_lane Size of the lane's TVM thread pool.
 * \param pool_cpus The pool's CPUs (PoolCpus).
 * \param cores The lane's cores; empty: do not pin (the thread keeps every allowed core).
 * \param allowed All allowed cores.
 */
LaneThreadSetup ConfigureLaneThread(const std::optional<tvm::ffi::Function>& config_threadpool,
                                    int threads_per_lane, const std::vector<int>& pool_cpus,
                                    const std::vector<int>& cores,
                                    const std::vector<int>& allowed);

/*! \brief Name the calling thread (best effort; shows in top/gdb). */
void NameThisThread(const char* name);

}  // namespace lanes
}  // namespace tvm_sched

#endif  // TVM_SCHED_RUNTIME_NATIVE_AFFINITY_H_
