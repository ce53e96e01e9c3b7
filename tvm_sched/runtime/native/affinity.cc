/*!
 * \file affinity.cc
 * \brief Core assignment, pinning and per-lane TVM thread-pool sizing.
 */
#include "affinity.h"

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace tvm_sched {
namespace lanes {

namespace {
// TVM's ThreadGroup::AffinityMode kSpecifyThreadShareAllCore: the pool's threads share `cpus`.
constexpr int kTvmShareCores = -3;
}  // namespace

namespace {

/*!
 * \brief Position of `cpu` among the hardware threads of its physical core (0: the first), from
 * /sys/devices/system/cpu/cpuN/topology/thread_siblings_list ("0,64" or "0-1"); 0 if unknown.
 */
int SiblingRank(int cpu) {
  std::ifstream in("/sys/devices/system/cpu/cpu" + std::to_string(cpu) +
                   "/topology/thread_siblings_list");
  std::string text;
  if (!std::getline(in, text)) return 0;
  std::vector<int> siblings;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t dash = item.find('-');
    try {
      const int lo = std::stoi(item.substr(0, dash));
      const int hi = dash == std::string::npos ? lo : std::stoi(item.substr(dash + 1));
      for (int c = lo; c <= hi; ++c) siblings.push_back(c);
    } catch (const std::exception&) {
      return 0;
    }
  }
  auto it = std::find(siblings.begin(), siblings.end(), cpu);
  return it == siblings.end() ? 0 : static_cast<int>(it - siblings.begin());
}

}  // namespace

std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  // First hardware thread of every physical core first, so that lanes get distinct physical
  // cores before any lane shares one with a hyper-thread sibling.
  std::vector<std::pair<int, int>> ranked;
  for (int c : cpus) ranked.emplace_back(SiblingRank(c), c);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < ranked.size(); ++i) cpus[i] = ranked[i].second;
#endif
  if (cpus.empty()) {
    int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int c = 0; c < n; ++c) cpus.push_back(c);
  }
  return cpus;
}

std::vector<std::vector<int>> AssignCores(int num_lanes, int threads_per_lane,
                                          const std::vector<int>& allowed) {
  std::vector<std::vector<int>> cores(std::max(num_lanes, 0));
  const int available = static_cast<int>(allowed.size());
  if (num_lanes <= 0 || available < num_lanes) return cores;
  const int per_lane = std::max(1, std::min(threads_per_lane, available / num_lanes));
  for (int l = 0; l < num_lanes; ++l) {
    for (int k = 0; k < per_lane; ++k) cores[l].push_back(allowed[l * per_lane + k]);
  }
  return cores;
}

std::vector<int> PoolCpus(int lane, int threads_per_lane, const std::vector<int>& cores,
                          const std::vector<int>& allowed) {
  if (threads_per_lane <= 1) {
    if (!cores.empty()) return {cores[0]};
    if (allowed.empty()) return {};
    return {allowed[static_cast<size_t>(lane) % allowed.size()]};
  }
  return cores.empty() ? allowed : cores;
}

LaneThreadSetup ConfigureLaneThread(const std::optional<tvm::ffi::Function>& config_threadpool,
                                    int threads_per_lane, const std::vector<int>& pool_cpus,
                                    const std::vector<int>& cores,
                                    const std::vector<int>& allowed) {
  LaneThreadSetup setup;
  if (config_threadpool.has_value() && !pool_cpus.empty()) {
    tvm::ffi::Array<tvm::ffi::String> cpus;
    for (int c : pool_cpus) cpus.push_back(std::to_string(c));
    try {
      (*config_threadpool)(kTvmShareCores, threads_per_lane, cpus);
      setup.pool_configured = true;
    } catch (const std::exception&) {
      setup.pool_configured = false;  // an older TVM without this mode: keep its defaults
    }
  }
#if defined(__linux__)
  // After sizing the pool: TVM may have set the calling thread's affinity to the pool's CPUs.
  const std::vector<int>& mask = cores.empty() ? allowed : cores;
  if (!mask.empty() && (!cores.empty() || setup.pool_configured)) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : mask) CPU_SET(c, &set);
    const bool ok = pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
    setup.pinned = ok && !cores.empty();
  }
#endif
  return setup;
}

void NameThisThread(const char* name) {
#if defined(__linux__)
  pthread_setname_np(pthread_self(), name);  // names longer than 15 chars are refused: fine
#else
  (void)name;
#endif
}

}  // namespace lanes
}  // namespace tvm_sched
