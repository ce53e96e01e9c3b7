"""
Tuning operator orders on devices behind an RPC tracker
=======================================================

``ScheduleOperators`` (tutorial 01) picks an order by what TVM's memory planner allocates, which
needs no device. Latency needs one: the tuner (``tvm_sched.tune``, the ``tvm-sched tune``
command) proposes candidate orders, ranks them by cheap proxies, builds the most promising ones
and measures them on real devices over TVM RPC, then keeps the best.

This tutorial sets up what a device farm looks like, on this machine: a TVM RPC tracker and two
RPC servers registered with it under one device key, all on 127.0.0.1. It tunes a zoo model
against the tracker (the measurements are spread over both servers), re-runs the same tuning to
show that finished measurements are never repeated, tunes for memory, tunes lane schedules for
the lane runtime against the Relax VM, and checks that the exported best module computes what
TVM's own order computes. Set ``TVM_SCHED_TUTORIAL_SMALL=1``
to run everything at a tiny size (that is what the tests do).

Everything after the servers start sits in one ``try`` block whose ``finally`` stops the
servers and the tracker, so nothing is left running even when a step fails; the sections inside
it are therefore indented.
"""

import os
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tvm
from rich.console import Console
from tvm import relax, rpc
from tvm.rpc.tracker import Tracker

from tvm_sched import runtime
from tvm_sched.tune import (
    LANE_SOLVERS,
    EmbeddedServer,
    TrackerDevices,
    TuneConfig,
    load_model,
    rich_lane_table,
    rich_table,
    tune,
)

SMALL = os.environ.get("TVM_SCHED_TUTORIAL_SMALL") == "1"
MODEL = "inception" if SMALL else "nasnet"
# Small: deterministic proposers, so the resumed run below proposes exactly the same orders (a
# sampler under a wall-clock budget draws as many samples as fit, which varies with the load).
SIZES = (dict(solvers=("lpmf", "list"), candidates=8, top_k=2, repeats=3,
              solver_budget=0.3) if SMALL
         else dict(candidates=64, top_k=8, repeats=10, solver_budget=2.0))
KEY = "cpu"  # the device key: servers of one kind of device register under the same key
HOST = "127.0.0.1"

######################################################################
# The model
# ---------
# ``load_model`` takes a zoo model by name (or ``onnx=`` a file, or ``relax_file=`` a Python
# file defining an ``IRModule``) and returns a :class:`~tvm_sched.tune.TuneModel`: the fused
# Relax module, one operator graph per dataflow block, and seeded inputs and weights to run it.

model = load_model(model=MODEL)
print(f"model {model.name}: {model.num_nodes} operators in {len(model.graphs)} block(s)")

######################################################################
# A tracker and two servers
# -------------------------
# The tracker keeps a queue of free servers per key and hands each client request one of them.
# ``EmbeddedServer`` runs TVM's ``rpc.Server`` on 127.0.0.1 in a subprocess of bounded lifetime
# (here 10 minutes, in case this script is killed); with ``tracker=`` it registers with the
# tracker under ``key``. On a real farm each server runs on its own board, started with
# ``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``. Starting one takes seconds
# (a Python process that imports TVM), so both start at once.

work = tempfile.TemporaryDirectory(prefix="tvm_sched_tutorial_02_")
tracker = Tracker(host=HOST, port=9190, port_end=9290, silent=True)
servers = [EmbeddedServer(tracker=(HOST, tracker.port), key=KEY, lifetime=600.0)
           for _ in range(2)]
try:
    with ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(EmbeddedServer.start, servers))
    print(f"tracker on {HOST}:{tracker.port}; server pids: "
          f"{', '.join(str(s.pid) for s in servers)}")

    # A server registers with the tracker a moment after it starts listening: wait for both.
    client = rpc.connect_tracker(HOST, tracker.port)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        free = client.summary()["queue_info"].get(KEY, {}).get("free", 0)
        if free == len(servers):
            break
        time.sleep(0.2)
    print(f"tracker: {free} free {KEY!r} servers")
    print(client.text_summary())

    ######################################################################
    # Tune against the tracker
    # ------------------------
    # ``TrackerDevices`` asks the tracker for every free device of the key (one RPC session
    # each). The tuner's stages: *propose* -- the solvers and uniformly random orders fill a
    # pool of candidates; *rank* -- each candidate's latency proxy (bytes re-read after they
    # left an L1-sized LRU cache) picks the top ``top_k``, and TVM's own order and the
    # ``TopologicalSort`` orders are always added as baselines; *build* -- the kernels once,
    # then only the VM code per candidate; *measure* -- the candidates are dealt out over the
    # devices, each device checks every candidate's outputs against the reference and times
    # them in interleaved rounds (A B C A B C ...); *pick* -- the lowest median latency.
    #
    # Every record (a typed ``TuneRecord``: ``rec.candidate``, ``rec.latency``, ``rec.device``,
    # ...) says which device measured it.

    config = TuneConfig(objective="latency", **SIZES)
    with TrackerDevices((HOST, tracker.port), key=KEY, wait=60.0) as runner:
        result = tune(model, "llvm", runner, work.name, config)

    by_device = defaultdict(list)
    for rec in result.records:
        by_device[rec.device].append(rec.candidate)
    print(f"measured {result.measured_now} candidates on {len(by_device)} devices:")
    for device, names in sorted(by_device.items()):
        print(f"  {device}: {len(names)} candidates ({', '.join(names)})")
    print("time: " + ", ".join(f"{stage} {s:.1f} s" for stage, s in result.seconds.items()))

    ######################################################################
    # The result
    # ----------
    # ``rich_table`` is the table ``tvm-sched tune`` prints; the same table, the timings and
    # the proxies' rank correlations are in ``report.md`` next to ``plot.png`` (latency
    # against planned memory per candidate), ``summary.json``, the records ``records.jsonl``
    # and the exported pick ``best.so``. On a small CPU model the orders run the same kernels
    # and differ only in what stays in cache, so the differences are often within the
    # measurement noise: compare the pick's interquartile range with TVM's before believing a
    # speed-up. Mind the devices too: the tuner compares medians across all devices of one key
    # as if they were identical, and each device interleaves only its own share of the
    # candidates. Here both servers share this machine's cores and measure at the same time, so
    # when the pick and TVM's order were measured on different devices, part of the difference
    # can be the devices' rather than the orders'.

    Console(width=150).print(rich_table(result))
    best, base = result.best, result.baseline
    if not (best and base and base.latency):
        raise SystemExit(f"TVM's order was not measured: {base and base.error}")
    overlap = (best.latency["q1"] <= base.latency["q3"]
               and base.latency["q1"] <= best.latency["q3"])
    print(f"pick: {best.candidate} ({best.source}), speed-up {result.speedup:.3f}x over "
          f"TVM's order, {'within' if overlap else 'beyond'} the measurement noise "
          f"(the [q1, q3] intervals {'overlap' if overlap else 'do not overlap'}); "
          f"measured on {best.device}, TVM's order on {base.device}")
    print("Spearman(proxy, latency): " + ", ".join(
        f"{k} {'n/a' if v is None else f'{v:+.2f}'}" for k, v in result.spearman.items()))
    print(f"report: {Path(result.work_dir) / 'report.md'}")

    ######################################################################
    # Resume
    # ------
    # Records are appended to ``records.jsonl`` as soon as each measurement completes, keyed by
    # model, order, the full target string (``"llvm"`` and ``tvm.target.Target("llvm")`` are
    # the same) and device key. Running the same tuning again measures only what is
    # missing: here nothing, so no device is even asked for. A run stopped half way (Ctrl-C, a
    # lost device) resumes the same way.

    with TrackerDevices((HOST, tracker.port), key=KEY, wait=60.0) as runner:
        again = tune(model, "llvm", runner, work.name, config)
    print(f"resume: {again.measured_now} measured now, {len(again.records)} read from the "
          f"database; same pick: {again.best.order_hash == best.order_hash}")

    ######################################################################
    # Tune for memory
    # ---------------
    # ``objective="memory"`` ranks and picks by the bytes TVM's static planner allocates (exact,
    # no noise); the candidates are still measured, which checks their outputs and reports what
    # the saving costs in latency. The records are not tied to an objective, so in the same
    # work dir the candidates measured above are reused.

    with TrackerDevices((HOST, tracker.port), key=KEY, wait=60.0) as runner:
        memory = tune(model, "llvm", runner, work.name, TuneConfig(objective="memory", **SIZES))
    mbest = memory.best
    planned = mbest.order_facts.planned_bytes
    print(f"memory pick: {mbest.candidate}, planned {planned:,} B against "
          f"TVM's order {memory.info['tvm_planned']:,} B "
          f"({100 * (1 - planned / memory.info['tvm_planned']):.1f}% saved); "
          f"{memory.measured_now} measured now, {len(memory.records) - memory.measured_now} "
          f"reused")

    ######################################################################
    # Tune for latency over lanes
    # ---------------------------
    # The lane runtime (``tvm_sched.runtime``) runs kernels on several lanes (threads) at once;
    # ``TuneConfig(lanes="auto")`` tunes lane schedules for it: ``auto`` reads the cores each
    # device offers over RPC (the tvm_sched server registers ``tvm_sched.runtime.num_cores``), the
    # kernels are timed on a device before any solver runs, every makespan solver proposes with
    # the same sample budget, and the Relax VM, the executor on one lane and list scheduling
    # are measured with the top k by predicted makespan in the same interleaved rounds -- here
    # dealt over both devices, each device's rounds anchored on its own VM run. The pick must
    # beat the VM beyond noise. Both servers share this machine's cores, so the lanes compete
    # with each other's measurements: treat the speed-ups as a demonstration of the loop.

    lane_config = TuneConfig(lanes="auto", samples=64 if SMALL else 256,
                             solvers=("gaus", "list", "random-list") if SMALL else LANE_SOLVERS,
                             top_k=2 if SMALL else 8, repeats=3 if SMALL else 10,
                             solver_budget=0.3 if SMALL else 2.0)
    with TrackerDevices((HOST, tracker.port), key=KEY, wait=60.0) as runner:
        lanes = tune(model, "llvm", runner, Path(work.name) / "lanes", lane_config)
    Console(width=150).print(rich_lane_table(lanes))
    sp = lanes.speedup_stats
    rho = lanes.spearman["predicted"]
    rho = "n/a" if rho is None else f"{rho:+.2f}"
    print(f"lanes pick: {lanes.best.candidate} on {lanes.lanes} lanes, speed-up over the Relax "
          f"VM {sp['median']:.3f}x [{sp['q1']:.3f}, {sp['q3']:.3f}]; Spearman(predicted "
          f"makespan, measured) {rho}")

    # ``best_lanes.tar`` (the pick, or the fastest lane plan when the VM was kept) loads with
    # ``tvm_sched.runtime.load`` and computes what the VM computes.
    plan_file = Path(work.name) / "lanes" / "best_lanes.tar"
    if plan_file.exists():
        with runtime.load(plan_file, "cpu", allow_oversubscribe=True) as lane_mod:
            got = lane_mod(*model.inputs)
        print(f"lane plan {plan_file.name}: {len(got)} output(s), {lane_mod.plan.num_lanes} lanes")

    ######################################################################
    # Use the best module
    # -------------------
    # ``best.so`` is an ordinary exported Relax VM library (the kernels are linked in): load it
    # with ``tvm.runtime.load_module``. The zoo models keep their weights apart, so
    # ``main_transform_params`` prepares them first. Reordering never changes what is computed:
    # its outputs equal those of the module compiled in TVM's own order.

    dev = tvm.cpu()

    def outputs(value) -> list[np.ndarray]:
        """Numpy arrays of a VM result (a tensor or nested tuples of them)."""
        if hasattr(value, "numpy"):
            return [value.numpy()]
        return [a for v in value for a in outputs(v)]

    def run(vm) -> list[np.ndarray]:
        weights = [tvm.runtime.tensor(p, dev) for p in model.params]
        if model.params:
            weights = list(vm["main_transform_params"](weights))
        inputs = [tvm.runtime.tensor(x, dev) for x in model.inputs]
        return outputs(vm["main"](*inputs, *weights))

    lib = tvm.runtime.load_module(str(Path(work.name) / "best.so"))
    tuned = run(relax.VirtualMachine(lib, dev))
    expected = run(relax.VirtualMachine(tvm.compile(model.mod, "llvm"), dev))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(tuned, expected, strict=True))
    for a, b in zip(tuned, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    print(f"best module outputs match TVM's order: {len(tuned)} output(s), max abs diff "
          f"{diff:.3g}")

######################################################################
# Clean up
# --------
# The servers are process groups ended by pid; the tracker runs in a worker process of its own.

finally:
    for server in servers:
        server.stop()
    tracker.terminate()
    work.cleanup()
    print(f"stopped {len(servers)} servers and the tracker")
