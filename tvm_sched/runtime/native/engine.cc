/*!
 * \file engine.cc
 * \brief The lane engine's threads: start-up, the per-run loop, waits, errors and shutdown.
 */
#include "engine.h"

#include <tvm/ffi/error.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

namespace tvm_sched {
namespace lanes {

namespace {
// Run() spins at most this long before it sleeps, and only when the lanes leave a core free:
// the calling thread is not pinned, and spinning beside lanes that occupy every core delays
// them (measured: 2 lanes on 2 cores, a 20 us spin made an empty run() 5x slower).
constexpr int64_t kMaxMainSpinNs = 20000;
// With work sharing, an idle thread sleeps at most this long before it looks again for a step
// of another lane to take (a waker only wakes the threads a finished step concerns).
constexpr int64_t kStealPollNs = 200000;
}  // namespace

LaneEngine::LaneEngine(std::vector<tvm::ffi::Function> funcs, CompiledPlan plan,
                       std::vector<tvm::ffi::Any> args, std::vector<std::string> step_names,
                       EngineOptions options)
    : funcs_(std::move(funcs)),
      plan_(std::move(plan)),
      args_(std::move(args)),
      step_names_(std::move(step_names)),
      options_(options) {
  views_.reserve(args_.size());
  for (const tvm::ffi::Any& arg : args_) views_.emplace_back(arg);
  config_threadpool_ = tvm::ffi::Function::GetGlobal("runtime.config_threadpool");
  allowed_ = AllowedCpus();

  const int num = num_lanes();
  lanes_ = std::make_unique<LaneState[]>(static_cast<size_t>(num));
  AssignOwners();
  const int num_thr = num_threads();
  parkers_ = std::make_unique<Parker[]>(static_cast<size_t>(num_thr));
  pinned_.assign(num_thr, {});
  std::vector<std::vector<int>> cores =
      options_.pin ? AssignCores(num_thr, options_.threads_per_lane, allowed_)
                   : std::vector<std::vector<int>>(num_thr);
  int started = 0;
  try {
    threads_.reserve(num_thr);
    for (int t = 0; t < num_thr; ++t) {
      bool work = false;  // a thread with no step of its own is not started
      for (int k = 0; k < own_count_[t]; ++k) work |= !plan_.lanes[scan_[t][k]].empty();
      if (!work) continue;
      threads_.emplace_back(&LaneEngine::LaneMain, this, t, cores[t]);
      ++started;
    }
  } catch (const std::system_error& e) {
    StopThreads();
    TVM_FFI_THROW(RuntimeError) << "cannot start the lane threads: " << e.what();
  }
  for (const std::thread& t : threads_) lane_ids_.push_back(t.get_id());
  main_spin_ns_ = started < static_cast<int>(allowed_.size())
                     ? std::min(options_.spin_ns, kMaxMainSpinNs)
                     : 0;
  std::unique_lock<std::mutex> lock(setup_mutex_);
  setup_cv_.wait(lock, [&] { return setup_done_ == started; });
}

LaneEngine::~LaneEngine() {
  try {
    Close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

void LaneEngine::AssignOwners() {
  const int num = num_lanes();
  owner_ = options_.owners;
  if (owner_.empty()) {
    for (int l = 0; l < num; ++l) owner_.push_back(l);
  }
  int num_thr = 0;
  for (int l = 0; l < num; ++l) {
    num_thr = std::max(num_thr, owner_[l] + 1);
    one_to_one_ = one_to_one_ && owner_[l] == l;
  }
  scan_.assign(num_thr, {});
  own_count_.assign(num_thr, 0);
  for (int t = 0; t < num_thr; ++t) {
    for (int k = 0; k < num_thr; ++k) {  // its own lanes, then the next threads' in turn
      for (int l = 0; l < num; ++l) {
        if (owner_[l] == (t + k) % num_thr) scan_[t].push_back(l);
      }
      if (k == 0) own_count_[t] = static_cast<int>(scan_[t].size());
    }
  }
}

void LaneEngine::LaneMain(int thread, std::vector<int> cores) {
  NameThisThread(("tvm-lane-" + std::to_string(thread)).c_str());
  LaneThreadSetup setup = ConfigureLaneThread(
      config_threadpool_, options_.threads_per_lane,
      PoolCpus(thread, options_.threads_per_lane, cores, allowed_), cores, allowed_);
  {
    std::lock_guard<std::mutex> lock(setup_mutex_);
    if (setup.pinned) pinned_[thread] = cores;
    if (!setup.pool_configured) pools_configured_ = false;
    ++setup_done_;
  }
  setup_cv_.notify_all();

  Parker& parker = parkers_[thread];
  uint32_t seen = 0;  // run_seq_ starts at 0 and only the constructor's thread bumps it
  for (;;) {
    parker.Wait([&] { return run_seq_.load(std::memory_order_seq_cst) != seen; },
                options_.spin_ns);
    seen = run_seq_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) break;
    const uint64_t gen = gen_.load(std::memory_order_acquire);
    if (options_.steal_ns >= 0 || !one_to_one_) {
      ExecuteShared(thread, gen);
    } else {
      ExecuteLane(thread, gen);
    }
    if (remaining_.fetch_sub(1, std::memory_order_seq_cst) == 1) main_parker_.Wake();
  }
}

bool LaneEngine::ExecuteLane(int lane, uint64_t gen) {
  Parker& parker = parkers_[lane];  // one to one: the lane's own thread
  const uint64_t base = gen << 32;
  const std::vector<CompiledStep>& steps = plan_.lanes[lane];
  const int64_t spin_ns = options_.spin_ns;
  for (size_t p = 0; p < steps.size(); ++p) {
    const CompiledStep& step = steps[p];
    for (uint32_t w = step.wait_begin; w < step.wait_end; ++w) {
      const LaneWait& wait = plan_.waits[w];
      const std::atomic<uint64_t>& other = lanes_[wait.lane].progress;
      const uint64_t target = base | wait.count;
      if (other.load(std::memory_order_acquire) >= target) continue;
      parker.Wait(
          [&] {
            return other.load(std::memory_order_seq_cst) >= target ||
                   abort_.load(std::memory_order_seq_cst) != 0;
          },
          spin_ns);
    }
    if (abort_.load(std::memory_order_acquire) != 0) return false;
    if (!RunStep(lane, static_cast<uint32_t>(p), gen)) return false;
  }
  return true;
}

int LaneEngine::Claimable(int lane, uint64_t gen, uint64_t* claimed, uint32_t* pos) const {
  const uint64_t base = gen << 32;
  const std::vector<CompiledStep>& steps = plan_.lanes[lane];
  const uint64_t c = lanes_[lane].claimed.load(std::memory_order_seq_cst);
  const uint32_t p = (c >> 32) == gen ? static_cast<uint32_t>(c) : 0;
  *claimed = c;
  *pos = p;
  if (p >= steps.size()) return 0;  // every step of the lane is taken
  // its previous step done (the first step of a lane has none: progress may still hold the
  // last run's generation)
  if (p > 0 && lanes_[lane].progress.load(std::memory_order_acquire) < (base | p)) return 1;
  const CompiledStep& step = steps[p];
  for (uint32_t w = step.wait_begin; w < step.wait_end; ++w) {
    const LaneWait& wait = plan_.waits[w];
    if (lanes_[wait.lane].progress.load(std::memory_order_acquire) < (base | wait.count)) {
      return 1;
    }
  }
  return 2;  // ready: take it with a CAS on `claimed`
}

uint64_t LaneEngine::ProgressSum() const {
  uint64_t sum = 0;
  for (int l = 0; l < num_lanes(); ++l) {
    sum += lanes_[l].progress.load(std::memory_order_seq_cst);
    sum += lanes_[l].claimed.load(std::memory_order_seq_cst);
  }
  return sum;
}

bool LaneEngine::RunStep(int lane, uint32_t pos, uint64_t gen) {
  const CompiledStep& step = plan_.lanes[lane][pos];
  try {
    tvm::ffi::Any result;
    funcs_[step.func].CallPacked(views_.data() + step.arg_begin,
                                 static_cast<int32_t>(step.num_args), &result);
  } catch (const tvm::ffi::Error& e) {
    Fail(step, lane, e.kind() + ": " + e.message());
    return false;
  } catch (const std::exception& e) {
    Fail(step, lane, std::string("C++ exception: ") + e.what());
    return false;
  } catch (...) {
    Fail(step, lane, "unknown C++ exception");
    return false;
  }
  // Publishes the step's writes (release) and, sequentially consistent, pairs with the
  // sleeping flag read in Parker::Wake (no lost wake-up; see sync.h).
  lanes_[lane].progress.store((gen << 32) | static_cast<uint64_t>(pos + 1),
                              std::memory_order_seq_cst);
  for (uint32_t k = step.notify_begin; k < step.notify_end; ++k) WakeOwner(plan_.notify[k]);
  return true;
}

void LaneEngine::AwaitChange(Parker& parker, uint64_t seen) {
  auto changed = [&] {
    return ProgressSum() != seen || abort_.load(std::memory_order_seq_cst) != 0;
  };
  if (SpinUntil(changed, options_.spin_ns)) return;
  const uint32_t word = parker.word.load(std::memory_order_acquire);
  parker.sleeping.store(1, std::memory_order_seq_cst);
  if (!changed()) FutexWaitFor(&parker.word, word, kStealPollNs);
  parker.sleeping.store(0, std::memory_order_relaxed);
}

bool LaneEngine::ExecuteShared(int thread, uint64_t gen) {
  const int num = num_lanes();
  const std::vector<int>& scan = scan_[thread];
  const int own = own_count_[thread];
  // without sharing, only its own lanes
  const int limit = options_.steal_ns >= 0 ? static_cast<int>(scan.size()) : own;
  // per other lane: the step this thread saw ready and untaken, and since when
  std::vector<std::pair<uint32_t, int64_t>> seen(num, {UINT32_MAX, 0});
  for (;;) {
    if (abort_.load(std::memory_order_acquire) != 0) return false;
    const uint64_t before = ProgressSum();
    bool all_taken = true;
    bool ran = false;
    int64_t next_steal = INT64_MAX;  // when a step seen ready may be taken
    for (int k = 0; k < limit && !ran; ++k) {
      const int lane = scan[k];
      uint64_t claimed;
      uint32_t pos;
      const int state = Claimable(lane, gen, &claimed, &pos);
      if (state == 0) continue;
      all_taken = false;
      if (state != 2) continue;
      if (k >= own) {  // another thread's lane: only once its step has waited steal_ns
        const int64_t now = NowNs();
        if (seen[lane].first != pos) seen[lane] = {pos, now};
        if (now - seen[lane].second < options_.steal_ns) {
          next_steal = std::min(next_steal, seen[lane].second + options_.steal_ns);
          continue;
        }
      }
      uint64_t expected = claimed;
      if (!lanes_[lane].claimed.compare_exchange_strong(
              expected, (gen << 32) | static_cast<uint64_t>(pos + 1),
              std::memory_order_seq_cst)) {
        continue;  // another thread took it
      }
      if (!RunStep(lane, pos, gen)) return false;
      if (k >= own) {
        stolen_.fetch_add(1, std::memory_order_relaxed);
        WakeOwner(lane);  // its own thread may go on with it now
      }
      if (pos + 1 == plan_.lanes[lane].size()) WakeAllLanes();  // maybe everything is taken
      ran = true;
    }
    if (ran) continue;
    if (all_taken) return true;
    if (next_steal != INT64_MAX) {  // a step to take soon: spin until then or a change
      SpinUntil([&] { return NowNs() >= next_steal || ProgressSum() != before; },
                next_steal - NowNs() + 1000);
      continue;
    }
    AwaitChange(parkers_[thread], before);
  }
}

void LaneEngine::Fail(const CompiledStep& step, int lane, const std::string& what) {
  uint32_t expected = 0;
  if (abort_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) {
    // Only the first failure writes; Run() reads it after this lane's fetch_sub on remaining_.
    std::ostringstream os;
    os << "step " << step.step_id;
    if (static_cast<size_t>(step.step_id) < step_names_.size()) {
      os << " (" << step_names_[step.step_id] << ")";
    }
    os << " on lane " << lane << " failed: " << what;
    error_ = os.str();
  }
  WakeAllLanes();
}

void LaneEngine::WakeAllLanes() {
  for (int t = 0; t < num_threads(); ++t) parkers_[t].Wake();
}

void LaneEngine::CheckNotOnLane(const char* what) const {
  const std::thread::id self = std::this_thread::get_id();
  for (const std::thread::id& id : lane_ids_) {
    if (id == self) {
      TVM_FFI_THROW(RuntimeError) << what << " called from inside a kernel running on one of "
                                  << "the engine's own lanes (it would deadlock)";
    }
  }
}

void LaneEngine::Run() {
  CheckNotOnLane("run()");
  std::lock_guard<std::mutex> api(api_mutex_);
  if (closed_) TVM_FFI_THROW(RuntimeError) << "the lane engine is closed";
  if (threads_.empty()) return;
  abort_.store(0, std::memory_order_relaxed);
  error_.clear();
  remaining_.store(static_cast<int32_t>(threads_.size()), std::memory_order_relaxed);
  gen_.fetch_add(1, std::memory_order_relaxed);
  run_seq_.fetch_add(1, std::memory_order_seq_cst);  // publishes the stores above
  WakeAllLanes();
  main_parker_.Wait([&] { return remaining_.load(std::memory_order_seq_cst) == 0; },
                    main_spin_ns_);
  if (abort_.load(std::memory_order_acquire) != 0) {
    TVM_FFI_THROW(RuntimeError) << error_;
  }
}

void LaneEngine::StopThreads() {
  stop_.store(true, std::memory_order_release);
  run_seq_.fetch_add(1, std::memory_order_seq_cst);
  WakeAllLanes();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void LaneEngine::Close() {
  CheckNotOnLane("close()");
  std::lock_guard<std::mutex> api(api_mutex_);
  if (closed_) return;
  StopThreads();
  closed_ = true;
}

}  // namespace lanes
}  // namespace tvm_sched
