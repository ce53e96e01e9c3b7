/*!
 * \file lane_plan.h
 * \brief Validation and lowering of a lane plan into the flat arrays the engine executes.
 *
 * Input (the "Lane engine interface" of tvm_sched.runtime): n steps, each naming a function
 * index and an argument count; `lanes`, one list of step ids per lane in execution order; and
 * `waits`, one list per step of steps on other lanes that must finish before it starts.
 *
 * CompilePlan checks that every function index is in range, that every step is on exactly one
 * lane, that every wait names an existing step on another lane, and that the lane orders together
 * with the waits are acyclic (else the plan would deadlock); violations throw ffi::Error of kind
 * ValueError with a message naming the steps involved (a cycle message starts with
 * "invalid lane plan: lane orders and waits form a cycle" and lists the steps in order). It
 * then lowers each wait to "lane M has finished its first c steps" and drops waits that an
 * earlier wait of the same lane already implies.
 */
#ifndef TVM_SCHED_RUNTIME_NATIVE_LANE_PLAN_H_
#define TVM_SCHED_RUNTIME_NATIVE_LANE_PLAN_H_

#include <cstdint>
#include <vector>

namespace tvm_sched {
namespace lanes {

/*! \brief "Lane `lane` has finished at least `count` of its steps in this run." */
struct LaneWait {
  int32_t lane;
  uint32_t count;
};

/*! \brief One step as its lane executes it. All ranges index CompiledPlan's flat arrays. */
struct CompiledStep {
  int32_t step_id;       // the step's id in the caller's numbering
  int32_t func;          // index into the function table
  uint32_t arg_begin;    // first argument in the engine's flat argument array
  uint32_t num_args;     // number of arguments
  uint32_t wait_begin;   // waits in [wait_begin, wait_end) of CompiledPlan::waits
  uint32_t wait_end;
  uint32_t notify_begin;  // lanes to wake after this step: CompiledPlan::notify[begin, end)
  uint32_t notify_end;
};

/*! \brief A validated plan in the engine's executable form. */
struct CompiledPlan {
  std::vector<std::vector<CompiledStep>> lanes;  // per lane, in execution order
  std::vector<LaneWait> waits;                    // flat, referenced by CompiledStep
  std::vector<int32_t> notify;                    // flat, referenced by CompiledStep
  int64_t num_steps = 0;
  int64_t num_waits_given = 0;  // waits in the input (duplicates counted)
};

/*!
 * \brief Validate a lane plan and lower it for execution.
 * \param num_funcs Size of the function table.
 * \param step_funcs Per step, its function index.
 * \param step_num_args Per step, its number of arguments (arguments are laid out step by step).
 * \param lanes Per lane, its step ids in execution order.
 * \param waits Per step, the ids of steps that must finish before it starts.
 * \throws ffi::Error (ValueError) naming the offending steps when the plan is invalid.
 */
CompiledPlan CompilePlan(int64_t num_funcs, const std::vector<int64_t>& step_funcs,
                         const std::vector<int64_t>& step_num_args,
                         const std::vector<std::vector<int64_t>>& lanes,
                         const std::vector<std::vector<int64_t>>& waits);

}  // namespace lanes
}  // namespace tvm_sched

#endif  // TVM_SCHED_RUNTIME_NATIVE_LANE_PLAN_H_
