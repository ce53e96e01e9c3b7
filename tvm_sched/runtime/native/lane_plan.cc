/*!
 * \file lane_plan.cc
 * \brief Validation (ranges, one lane per step, no deadlock) and lowering of a lane plan.
 */
#include "lane_plan.h"

#include <tvm/ffi/error.h>

#include <algorithm>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

namespace tvm_sched {
namespace lanes {

namespace {

constexpr int64_t kNoLane = -1;

std::string StepName(int64_t step, const std::vector<int64_t>& lane_of) {
  std::ostringstream os;
  os << "step " << step << " (lane " << lane_of[step] << ")";
  return os.str();
}

/*!
 * \brief Throw a ValueError naming one cycle among the steps Kahn's algorithm left unprocessed.
 *
 * Every unprocessed step has an unprocessed predecessor, so walking predecessors from any of
 * them must revisit a step; the revisited stretch is a cycle.
 */
[[noreturn]] void ThrowCycle(const std::vector<std::vector<int64_t>>& preds,
                             const std::vector<char>& processed,
                             const std::vector<int64_t>& lane_of) {
  const int64_t n = static_cast<int64_t>(preds.size());
  int64_t start = 0;
  while (start < n && processed[start]) ++start;
  std::vector<int64_t> seen_at(n, -1);
  std::vector<int64_t> walk;
  int64_t v = start;
  while (seen_at[v] < 0) {
    seen_at[v] = static_cast<int64_t>(walk.size());
    walk.push_back(v);
    int64_t next = -1;
    for (int64_t u : preds[v]) {
      if (!processed[u]) {
        next = u;
        break;
      }
    }
    v = next;  // exists: v is unprocessed, so one of its predecessors is
  }
  // walk[seen_at[v]..] follows predecessors; reverse it into execution order.
  std::vector<int64_t> cycle(walk.begin() + seen_at[v], walk.end());
  std::reverse(cycle.begin(), cycle.end());
  std::ostringstream os;
  os << "invalid lane plan: lane orders and waits form a cycle (the plan would deadlock): ";
  for (int64_t s : cycle) os << StepName(s, lane_of) << " -> ";
  os << StepName(cycle[0], lane_of);
  TVM_FFI_THROW(ValueError) << os.str();
  TVM_FFI_UNREACHABLE();
}

}  // namespace

CompiledPlan CompilePlan(int64_t num_funcs, const std::vector<int64_t>& step_funcs,
                         const std::vector<int64_t>& step_num_args,
                         const std::vector<std::vector<int64_t>>& lanes,
                         const std::vector<std::vector<int64_t>>& waits) {
  const int64_t n = static_cast<int64_t>(step_funcs.size());
  if (n >= std::numeric_limits<int32_t>::max()) {
    TVM_FFI_THROW(ValueError) << "invalid lane plan: too many steps (" << n << ")";
  }
  if (static_cast<int64_t>(step_num_args.size()) != n) {
    TVM_FFI_THROW(ValueError) << "invalid lane plan: " << step_num_args.size()
                              << " argument lists for " << n << " steps";
  }
  if (static_cast<int64_t>(waits.size()) != n) {
    TVM_FFI_THROW(ValueError) << "invalid lane plan: waits has " << waits.size()
                              << " entries but there are " << n << " steps (one list per step)";
  }
  for (int64_t s = 0; s < n; ++s) {
    if (step_funcs[s] < 0 || step_funcs[s] >= num_funcs) {
      TVM_FFI_THROW(ValueError) << "invalid lane plan: step " << s << " calls function "
                                << step_funcs[s] << " but there are " << num_funcs
                                << " functions";
    }
  }

  // Every step on exactly one lane.
  std::vector<int64_t> lane_of(n, kNoLane), pos_of(n, -1);
  for (size_t l = 0; l < lanes.size(); ++l) {
    for (size_t p = 0; p < lanes[l].size(); ++p) {
      const int64_t s = lanes[l][p];
      if (s < 0 || s >= n) {
        TVM_FFI_THROW(ValueError) << "invalid lane plan: lane " << l << " lists unknown step "
                                  << s << " (steps are 0.." << n - 1 << ")";
      }
      if (lane_of[s] != kNoLane) {
        TVM_FFI_THROW(ValueError) << "invalid lane plan: step " << s << " is on lane "
                                  << lane_of[s] << " (position " << pos_of[s] << ") and on lane "
                                  << l << " (position " << p << "); each step runs on one lane";
      }
      lane_of[s] = static_cast<int64_t>(l);
      pos_of[s] = static_cast<int64_t>(p);
    }
  }
  for (int64_t s = 0; s < n; ++s) {
    if (lane_of[s] == kNoLane) {
      TVM_FFI_THROW(ValueError) << "invalid lane plan: step " << s << " is on no lane";
    }
  }

  // Waits in range; build predecessor lists (lane order + waits) and check acyclicity (Kahn).
  std::vector<std::vector<int64_t>> preds(n), succs(n);
  int64_t num_waits_given = 0;
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t w : waits[s]) {
      if (w < 0 || w >= n) {
        TVM_FFI_THROW(ValueError) << "invalid lane plan: step " << s << " waits on unknown step "
                                  << w << " (steps are 0.." << n - 1 << ")";
      }
      if (lane_of[w] == lane_of[s]) {
        TVM_FFI_THROW(ValueError) << "invalid lane plan: step " << s << " waits for step " << w
                                  << " on its own lane " << lane_of[s]
                                  << " (waits name steps on other lanes)";
      }
      preds[s].push_back(w);
      succs[w].push_back(s);
      ++num_waits_given;
    }
  }
  for (const auto& lane : lanes) {
    for (size_t p = 1; p < lane.size(); ++p) {
      preds[lane[p]].push_back(lane[p - 1]);
      succs[lane[p - 1]].push_back(lane[p]);
    }
  }
  {
    std::vector<int64_t> indegree(n), ready;
    for (int64_t s = 0; s < n; ++s) {
      indegree[s] = static_cast<int64_t>(preds[s].size());
      if (indegree[s] == 0) ready.push_back(s);
    }
    std::vector<char> processed(n, 0);
    int64_t count = 0;
    while (!ready.empty()) {
      int64_t v = ready.back();
      ready.pop_back();
      processed[v] = 1;
      ++count;
      for (int64_t u : succs[v]) {
        if (--indegree[u] == 0) ready.push_back(u);
      }
    }
    if (count != n) ThrowCycle(preds, processed, lane_of);
  }

  // Lower: per lane, keep only the waits not implied by the lane's earlier waits.
  CompiledPlan plan;
  plan.num_steps = n;
  plan.num_waits_given = num_waits_given;
  plan.lanes.resize(lanes.size());
  std::vector<uint32_t> arg_begin(n, 0);
  {
    uint64_t offset = 0;
    for (int64_t s = 0; s < n; ++s) {
      arg_begin[s] = static_cast<uint32_t>(offset);
      offset += static_cast<uint64_t>(step_num_args[s]);
      if (offset > std::numeric_limits<uint32_t>::max()) {
        TVM_FFI_THROW(ValueError) << "invalid lane plan: too many arguments in total";
      }
    }
  }
  std::vector<std::vector<int32_t>> notify_of(n);
  const size_t num_lanes = lanes.size();
  std::vector<uint32_t> known(num_lanes);      // per other lane: steps known finished
  std::vector<uint32_t> need(num_lanes);       // per other lane: needed by the current step
  std::vector<int32_t> touched;
  for (size_t l = 0; l < num_lanes; ++l) {
    std::fill(known.begin(), known.end(), 0u);
    auto& out = plan.lanes[l];
    out.reserve(lanes[l].size());
    for (int64_t s : lanes[l]) {
      CompiledStep step;
      step.step_id = static_cast<int32_t>(s);
      step.func = static_cast<int32_t>(step_funcs[s]);
      step.arg_begin = arg_begin[s];
      step.num_args = static_cast<uint32_t>(step_num_args[s]);
      step.wait_begin = static_cast<uint32_t>(plan.waits.size());
      touched.clear();
      for (int64_t w : waits[s]) {
        const int64_t m = lane_of[w];
        if (m == static_cast<int64_t>(l)) continue;  // rejected above; kept for safety
        const uint32_t c = static_cast<uint32_t>(pos_of[w] + 1);
        if (c <= known[m]) continue;
        if (need[m] == 0) touched.push_back(static_cast<int32_t>(m));
        need[m] = std::max(need[m], c);
      }
      std::sort(touched.begin(), touched.end());
      for (int32_t m : touched) {
        plan.waits.push_back(LaneWait{m, need[m]});
        known[m] = need[m];
        notify_of[lanes[m][need[m] - 1]].push_back(static_cast<int32_t>(l));
        need[m] = 0;
      }
      step.wait_end = static_cast<uint32_t>(plan.waits.size());
      out.push_back(step);
    }
  }
  for (auto& lane : plan.lanes) {
    for (auto& step : lane) {
      auto& targets = notify_of[step.step_id];
      std::sort(targets.begin(), targets.end());
      targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
      step.notify_begin = static_cast<uint32_t>(plan.notify.size());
      plan.notify.insert(plan.notify.end(), targets.begin(), targets.end());
      step.notify_end = static_cast<uint32_t>(plan.notify.size());
    }
  }
  return plan;
}

}  // namespace lanes
}  // namespace tvm_sched
