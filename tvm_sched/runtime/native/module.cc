/*!
 * \file module.cc
 * \brief The library's FFI surface: the typed engine object and `lanes_create`, which makes one.
 *
 * lanes_create(funcs, step_funcs, step_args, lanes, waits, threads_per_lane, pin, spin_ns,
 *              step_names, steal_ns, owners) -> tvm_sched.lanes.LaneEngine
 * validates the plan (ffi::Error ValueError naming the problem), builds a LaneEngine and returns
 * it as a tvm-ffi object of type "tvm_sched.lanes.LaneEngine" whose reflected methods are
 *   run()               run every lane once (RuntimeError naming the failed step on error)
 *   close()             join the lane threads (idempotent)
 *   closed()            whether close ran
 *   pinned_cores()      per thread, the cores it is pinned to (empty: not pinned)
 *   pools_configured()  whether each lane's TVM thread pool was sized
 *   num_lanes(), num_threads(), num_steps()
 *   num_waits()         cross-lane waits kept after dropping implied ones
 *   stolen()            steps run by another lane's thread (work sharing) since creation
 * `owners` gives each lane its thread (empty: lane l on thread l; see engine.h).
 * The engine is destroyed (threads joined) when the last reference to the object goes.
 * Loaded from Python with tvm_ffi.load_module (tvm_sched.runtime.native_engine, which registers
 * the Python class of the type).
 */
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/object.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine.h"
#include "lane_plan.h"

namespace tvm_sched {
namespace lanes {

namespace ffi = tvm::ffi;

/*! \brief The engine as a tvm-ffi object: owns one LaneEngine, methods registered below. */
class LaneEngineObj : public ffi::Object {
 public:
  explicit LaneEngineObj(std::unique_ptr<LaneEngine> engine) : engine_(std::move(engine)) {}

  void Run() { engine_->Run(); }
  void Close() { engine_->Close(); }
  bool Closed() const { return engine_->closed(); }
  int64_t NumLanes() const { return engine_->num_lanes(); }
  int64_t NumThreads() const { return engine_->num_threads(); }
  int64_t NumSteps() const { return engine_->num_steps(); }
  int64_t NumWaits() const { return engine_->num_waits(); }
  int64_t Stolen() const { return engine_->stolen(); }
  bool PoolsConfigured() const { return engine_->pools_configured(); }
  ffi::Array<ffi::Array<int64_t>> PinnedCores() const {
    ffi::Array<ffi::Array<int64_t>> out;
    for (const std::vector<int>& cores : engine_->pinned_cores()) {
      ffi::Array<int64_t> lane;
      for (int c : cores) lane.push_back(c);
      out.push_back(lane);
    }
    return out;
  }

  static constexpr bool _type_mutable = true;
  TVM_FFI_DECLARE_OBJECT_INFO_FINAL("tvm_sched.lanes.LaneEngine", LaneEngineObj, ffi::Object);

 private:
  std::unique_ptr<LaneEngine> engine_;
};

namespace {

std::vector<int64_t> ToVector(const ffi::Array<int64_t>& values) {
  return std::vector<int64_t>(values.begin(), values.end());
}

ffi::ObjectRef CreateLaneEngine(ffi::Array<ffi::Function> funcs, ffi::Array<int64_t> step_funcs,
                                ffi::Array<ffi::Array<ffi::Any>> step_args,
                                ffi::Array<ffi::Array<int64_t>> lanes,
                                ffi::Array<ffi::Array<int64_t>> waits, int64_t threads_per_lane,
                                bool pin, int64_t spin_ns, ffi::Array<ffi::String> step_names,
                                int64_t steal_ns, ffi::Array<int64_t> owners) {
  if (threads_per_lane < 1 || threads_per_lane > 4096) {
    TVM_FFI_THROW(ValueError) << "threads_per_lane must be in 1..4096, got " << threads_per_lane;
  }
  if (spin_ns < 0) TVM_FFI_THROW(ValueError) << "spin_ns must be >= 0, got " << spin_ns;
  if (steal_ns < -1) TVM_FFI_THROW(ValueError) << "steal_ns must be >= -1, got " << steal_ns;
  if (!step_names.empty() && step_names.size() != step_funcs.size()) {
    TVM_FFI_THROW(ValueError) << step_names.size() << " step names for " << step_funcs.size()
                              << " steps";
  }
  if (step_args.size() != step_funcs.size()) {
    TVM_FFI_THROW(ValueError) << "invalid lane plan: " << step_args.size()
                              << " argument lists for " << step_funcs.size() << " steps";
  }
  if (!owners.empty() && owners.size() != lanes.size()) {
    TVM_FFI_THROW(ValueError) << owners.size() << " owners for " << lanes.size() << " lanes";
  }
  for (int64_t o : owners) {
    if (o < 0 || o >= static_cast<int64_t>(lanes.size())) {
      TVM_FFI_THROW(ValueError) << "owner " << o << " out of range for " << lanes.size()
                                << " lanes";
    }
  }
  std::vector<int64_t> num_args;
  std::vector<ffi::Any> flat_args;
  num_args.reserve(step_args.size());
  for (const ffi::Array<ffi::Any>& args : step_args) {
    num_args.push_back(static_cast<int64_t>(args.size()));
    for (const ffi::Any& arg : args) flat_args.push_back(arg);
  }
  std::vector<std::vector<int64_t>> lane_steps, step_waits;
  for (const ffi::Array<int64_t>& lane : lanes) lane_steps.push_back(ToVector(lane));
  for (const ffi::Array<int64_t>& w : waits) step_waits.push_back(ToVector(w));
  CompiledPlan plan = CompilePlan(static_cast<int64_t>(funcs.size()), ToVector(step_funcs),
                                  num_args, lane_steps, step_waits);

  EngineOptions options;
  options.threads_per_lane = static_cast<int>(threads_per_lane);
  options.pin = pin;
  options.spin_ns = spin_ns;
  options.steal_ns = steal_ns;
  options.owners.assign(owners.begin(), owners.end());
  auto engine = std::make_unique<LaneEngine>(
      std::vector<ffi::Function>(funcs.begin(), funcs.end()), std::move(plan),
      std::move(flat_args),
      std::vector<std::string>(step_names.begin(), step_names.end()), options);
  return ffi::ObjectRef(ffi::make_object<LaneEngineObj>(std::move(engine)));
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::ObjectDef<LaneEngineObj>(refl::init(false))
      .def("run", &LaneEngineObj::Run, "Run every lane once; block until all finished.")
      .def("close", &LaneEngineObj::Close, "Join the lane threads (idempotent).")
      .def("closed", &LaneEngineObj::Closed, "Whether close() ran.")
      .def("num_lanes", &LaneEngineObj::NumLanes, "Lanes of the plan.")
      .def("num_threads", &LaneEngineObj::NumThreads, "Threads that run the lanes.")
      .def("num_steps", &LaneEngineObj::NumSteps, "Steps of the plan.")
      .def("num_waits", &LaneEngineObj::NumWaits,
           "Cross-lane waits kept after dropping implied ones.")
      .def("stolen", &LaneEngineObj::Stolen,
           "Steps run by another lane's thread (work sharing) since creation.")
      .def("pools_configured", &LaneEngineObj::PoolsConfigured,
           "Whether every lane's TVM thread pool was sized.")
      .def("pinned_cores", &LaneEngineObj::PinnedCores,
           "Per thread, the cores it is pinned to (empty: not pinned).");
}

}  // namespace lanes
}  // namespace tvm_sched

TVM_FFI_DLL_EXPORT_TYPED_FUNC(lanes_create, tvm_sched::lanes::CreateLaneEngine);
