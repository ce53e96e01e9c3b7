/*!
 * \file selftest.cc
 * \brief A sanitizer harness for the lane engine (not part of the library).
 *
 * Random DAG plans on 1-4 lanes (some run by fewer threads, each owning several lanes); each step's kernel reads its predecessors' results from a
 * plain (non-atomic) array and writes its own, so a missing happens-before edge is a data race
 * that ThreadSanitizer reports, and a wrong order gives wrong values. Some plans fail a step on
 * every other run (the run must throw, the next must succeed). Build and run:
 *
 *   cmake -S cmake -B build/tsan -DTVM_SCHED_LANES_SELFTEST=thread ... (as in the Makefile)
 *   cmake --build build/tsan --target tvm_sched_lanes_selftest && build/tsan/tvm_sched_lanes_selftest
 *
 * (TVM_SCHED_LANES_SELFTEST=address for AddressSanitizer). Exit status 0 when all runs pass.
 */
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "engine.h"
#include "lane_plan.h"

namespace ffi = tvm::ffi;
using tvm_sched::lanes::CompiledPlan;
using tvm_sched::lanes::CompilePlan;
using tvm_sched::lanes::EngineOptions;
using tvm_sched::lanes::LaneEngine;

namespace {

int RunTrial(int trial, std::mt19937* rng) {
  const int n = 5 + static_cast<int>((*rng)() % 40);
  const int num_lanes = 1 + static_cast<int>((*rng)() % 4);
  std::vector<std::vector<int>> preds(n);
  for (int v = 1; v < n; ++v) {
    for (int k = 0; k < 2; ++k) {
      if ((*rng)() % 3 != 0) preds[v].push_back(static_cast<int>((*rng)() % v));
    }
  }
  std::vector<int64_t> value(n, 0);
  int64_t round = 0;
  const int fail_at = trial % 5 == 0 ? static_cast<int>((*rng)() % n) : -1;
  ffi::Function kernel = ffi::Function::FromTyped([&](int64_t v) {
    int64_t acc = round + v;
    for (int u : preds[v]) acc += value[u] * 3;
    if (v == fail_at && round % 2 == 1) TVM_FFI_THROW(ValueError) << "planned failure";
    value[v] = acc;
  });
  // 0..n-1 is a topological order; lanes are random.
  std::vector<int64_t> lane(n);
  for (auto& l : lane) l = static_cast<int64_t>((*rng)() % num_lanes);
  std::vector<std::vector<int64_t>> lanes(num_lanes), waits(n);
  for (int v = 0; v < n; ++v) lanes[lane[v]].push_back(v);
  for (int v = 0; v < n; ++v) {
    for (int u : preds[v]) {
      if (lane[u] != lane[v]) waits[v].push_back(u);
    }
  }
  CompiledPlan plan = CompilePlan(1, std::vector<int64_t>(n, 0), std::vector<int64_t>(n, 1),
                                  lanes, waits);
  std::vector<ffi::Any> args;
  for (int v = 0; v < n; ++v) args.emplace_back(static_cast<int64_t>(v));
  EngineOptions options;
  options.spin_ns = trial % 2 == 1 ? 0 : 20000;
  options.pin = trial % 3 == 0;
  // work sharing: off, at once, after the default delay
  options.steal_ns = trial % 4 == 0 ? -1 : (trial % 4 == 1 ? 0 : 20000);
  if (trial % 6 >= 3) {  // fewer threads than lanes: a thread owns several (queues)
    const int num_threads = 1 + static_cast<int>((*rng)() % num_lanes);
    for (int l = 0; l < num_lanes; ++l) options.owners.push_back(l % num_threads);
  }
  LaneEngine engine({kernel}, std::move(plan), std::move(args), {}, options);
  int failures = 0;
  for (int r = 0; r < 30; ++r) {
    round = r;
    std::fill(value.begin(), value.end(), -999);
    bool threw = false;
    try {
      engine.Run();
    } catch (const ffi::Error&) {
      threw = true;
    }
    if (threw != (fail_at >= 0 && r % 2 == 1)) {
      std::printf("trial %d run %d: threw=%d unexpectedly\n", trial, r, threw ? 1 : 0);
      ++failures;
    }
    if (threw) continue;
    std::vector<int64_t> expected(n);
    for (int v = 0; v < n; ++v) {
      int64_t acc = r + v;
      for (int u : preds[v]) acc += expected[u] * 3;
      expected[v] = acc;
    }
    if (expected != value) {
      std::printf("trial %d run %d: wrong values\n", trial, r);
      ++failures;
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937 rng(1);
  int failures = 0;
  for (int trial = 0; trial < 60; ++trial) failures += RunTrial(trial, &rng);
  std::printf("lane engine selftest: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
