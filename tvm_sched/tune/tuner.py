"""The tuning loop: propose -> rank by proxy -> top k + baselines -> build -> measure -> pick.

Objectives:

- ``latency``: the lowest median measured latency;
- ``memory``: the fewest bytes planned by TVM's static planner (measurement still checks the
  outputs and reports the latency);
- ``latency`` under a memory budget (``memory_budget`` set): the lowest latency among the
  candidates whose planned bytes fit the budget.

Ranking before measuring uses the proxies of :mod:`tvm_sched.tune.candidates`: cache-miss bytes
for latency (ties by planned bytes), planned bytes for memory. How well each proxy ranks the
measured latencies is reported as a Spearman rank correlation.

Everything measured goes to the database in ``work_dir`` as it completes; the final module
(``best.so``, exported library), its orders (``best_order.json``), ``report.md``, ``plot.png`` and
``summary.json`` are written at the end.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tvm

from tvm_sched.errors import TuneInputError
from tvm_sched.relax.memory import planned_bytes
from tvm_sched.tune.builder import Builder, Built
from tvm_sched.tune.candidates import Candidate, default_cache_bytes, propose
from tvm_sched.tune.database import Database
from tvm_sched.tune.model import TuneModel
from tvm_sched.tune.runner import Measurement, Measurer, Runner

__all__ = ["TuneConfig", "TuneResult", "tune", "OBJECTIVES", "parse_memory_budget", "beyond_noise"]

log = logging.getLogger(__name__)

OBJECTIVES = ("latency", "memory")
DEFAULT_SOLVERS = ("lpmf", "list", "random-list", "gaus")


@dataclass
class TuneConfig:
    """Options of a tuning run (the CLI's flags)."""

    objective: str = "latency"
    #: Bytes, or a string "<ratio>x" relative to TVM's order (e.g. "0.9x"); latency only.
    memory_budget: int | str | None = None
    solvers: Sequence[str] = DEFAULT_SOLVERS
    candidates: int = 64
    top_k: int = 8
    solver_budget: float = 2.0
    cache_bytes: int | None = None
    repeats: int = 10
    number: int = 1
    min_repeat_ms: float = 10.0
    timeout: float = 120.0
    seed: int = 0
    fast_build: bool = True
    export: bool = True
    #: Latency: keep TVM's order unless the fastest candidate beats it beyond noise.
    keep_default_within_noise: bool = True

    def check(self) -> None:
        if self.objective not in OBJECTIVES:
            raise TuneInputError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                                 f"got {self.objective!r}")
        if self.memory_budget is not None and self.objective != "latency":
            raise TuneInputError("--memory-budget goes with --objective latency")
        if self.candidates < 1 or self.top_k < 0 or self.repeats < 1:
            raise TuneInputError("candidates and repeats must be >= 1, top-k >= 0")


def parse_memory_budget(value: int | str | None, tvm_planned: int) -> int | None:
    """Bytes from an int, ``"123456"``, ``"64KiB"``/``"2MiB"`` or ``"0.9x"`` of TVM's order."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        if text.lower().endswith("x"):
            return int(float(text[:-1]) * tvm_planned)
        for suffix, mult in (("kib", 1024), ("mib", 1024**2), ("gib", 1024**3)):
            if text.lower().endswith(suffix):
                return int(float(text[: -len(suffix)]) * mult)
        return int(text)
    except ValueError:
        raise TuneInputError(f"memory budget must be bytes, NKiB/NMiB or a ratio like 0.9x, "
                             f"got {value!r}") from None


@dataclass
class TuneResult:
    """Records of every candidate (measured or not), the pick, and where the files are."""

    model: str
    objective: str
    records: list[dict[str, Any]]
    best: dict[str, Any] | None
    baseline: dict[str, Any] | None
    spearman: dict[str, float | None]
    work_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    memory_budget: int | None = None
    measured_now: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """TVM's order's latency / the pick's: through the pick's own batch anchor (TVM's
        order interleaved with it on the same device) when it has one, else the two medians."""
        if not self.best or not self.baseline:
            return None
        if self.best.get("relative"):
            return 1.0 / self.best["relative"]
        a, b = self.baseline.get("latency"), self.best.get("latency")
        return a["median"] / b["median"] if a and b else None


def _stats(samples: list[float]) -> dict[str, float] | None:
    if not samples:
        return None
    a = np.asarray(samples)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(a.min()),
            "max": float(a.max()), "n": int(a.size)}


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def _rank(cands: list[Candidate], objective: str, budget: int | None, top_k: int
          ) -> list[Candidate]:
    """Baselines, then the top k of the others by the objective's proxy."""
    base = [c for c in cands if c.baseline]
    rest = [c for c in cands if not c.baseline]
    if budget is not None:
        rest = [c for c in rest if c.proxy["planned"] <= budget]
    if objective == "memory":
        rest.sort(key=lambda c: (c.proxy["planned"], c.proxy["cache_miss"]))
    else:
        rest.sort(key=lambda c: (c.proxy["cache_miss"], c.proxy["planned"]))
    return base + rest[:top_k]


def _rel(r: dict) -> float:
    """Latency relative to TVM's order measured in the same batch (the median if no anchor)."""
    return r["relative"] if r.get("relative") is not None else r["latency"]["median"]


def beyond_noise(fast: dict, slow: dict) -> bool:
    """Whether ``fast`` beats ``slow`` by more than the noise: its upper quartile of latency
    lies below ``slow``'s lower quartile. When ``slow`` is TVM's order and ``fast`` carries the
    anchor of its own batch (TVM's order interleaved with it on the same device), that anchor
    is the comparison."""
    other = fast.get("anchor") if slow.get("candidate") == "tvm" and fast.get("anchor") \
        else slow["latency"]
    return fast["latency"]["q3"] < other["q1"]


def _pick(records: list[dict], objective: str, budget: int | None,
          keep_default: bool = True) -> tuple[dict | None, dict | None]:
    """(pick, fastest). Latency: the fastest of the candidates that beat TVM's order beyond
    noise, else TVM's order. Memory: the fewest planned bytes, TVM's order when it ties. A
    reorder must earn its place. Latencies are compared relative to TVM's order measured in
    the same batch on the same device."""
    ok = [r for r in records if r.get("latency") and not r.get("error")]
    if budget is not None:
        ok = [r for r in ok if r["planned_bytes"] <= budget]
    if not ok:
        return None, None
    base = next((r for r in ok if r["candidate"] == "tvm"), None)
    if objective == "memory":
        least = min(r["planned_bytes"] for r in ok)
        if keep_default and base is not None and base["planned_bytes"] == least:
            return base, base
        best = min((r for r in ok if r["planned_bytes"] == least), key=_rel)
        return best, best
    fastest = min(ok, key=lambda r: (_rel(r), r["planned_bytes"]))
    if not keep_default or base is None:
        return fastest, fastest
    clear = [r for r in ok if r is not base and beyond_noise(r, base)]
    if not clear:
        return base, fastest
    return min(clear, key=lambda r: (_rel(r), r["planned_bytes"])), fastest


def _reference(builder: Builder, model: TuneModel) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``main``'s arguments (inputs + transformed params) and outputs in TVM's order, locally."""
    from tvm import relax

    from tvm_sched.relax.frontend import flatten_values as _flatten

    built = builder.build([tuple(range(g.num_nodes)) for g in model.graphs])
    if built.error:
        raise TuneInputError(f"{model.name}: the module does not build in its own order: "
                             f"{built.error}")
    exe = built.executable
    if built.needs_kernels:
        exe.mod.import_module(builder.kernels)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(exe, dev)
    params = [tvm.runtime.tensor(p, dev) for p in model.params]
    names = [gv.name_hint for gv in model.mod.get_global_vars()]
    if "main_transform_params" in names:
        params = _flatten(vm["main_transform_params"](params))
    args = [tvm.runtime.tensor(x, dev) for x in model.inputs] + list(params)
    vm.set_input("main", *args)
    vm.invoke_stateful("main")
    outs = [o.numpy() for o in _flatten(vm.get_outputs("main"))]
    return [a.numpy() for a in args], outs


def tune(model: TuneModel, target: str | tvm.target.Target, runner: Runner, work_dir: str | Path,
         config: TuneConfig | None = None, *, progress: Callable | None = None) -> TuneResult:
    """Tune ``model``'s operator order for ``target`` on ``runner``'s devices.

    ``progress(stage, done, total, text)`` is called as work proceeds (the CLI draws bars).

    Raises
    ------
    TuneInputError
        Bad options or a model that does not build in its own order.
    DeviceUnavailableError
        Devices were lost and could not be reopened (records so far are kept).
    """
    cfg = config or TuneConfig()
    cfg.check()
    key_target = str(target) if isinstance(target, str) else target.kind.name
    target = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    prog = progress or (lambda *a: None)
    t_start = time.perf_counter()
    secs: dict[str, float] = {}

    runner.prepare()  # e.g. the embedded server imports TVM meanwhile

    # 1. propose and rank
    t0 = time.perf_counter()
    cache_bytes = cfg.cache_bytes or default_cache_bytes()
    prog("propose", 0, len(cfg.solvers), "proposing candidates")
    done_solvers = []

    def solver_done(name):
        done_solvers.append(name)
        prog("propose", len(done_solvers), len(cfg.solvers), name)

    pool = propose(model, solvers=cfg.solvers, candidates=cfg.candidates, seed=cfg.seed,
                   budget=cfg.solver_budget, cache_bytes=cache_bytes, progress=solver_done)
    tvm_planned = planned_bytes(model.mod)
    budget = parse_memory_budget(cfg.memory_budget, tvm_planned)
    chosen = _rank(pool, cfg.objective, budget, cfg.top_k)
    secs["propose"] = time.perf_counter() - t0

    # 2. what the database already has
    db = Database(work / "records.jsonl")
    have = db.records(model.hash, key_target, runner.key)
    todo = [c for c in chosen if (model.hash, c.hash, key_target, runner.key) not in have]
    log.info("%d candidates (%d baselines), %d already measured", len(chosen),
             sum(c.baseline for c in chosen), len(chosen) - len(todo))

    # 3. build
    builder = Builder(model, target, fast=cfg.fast_build)
    t0 = time.perf_counter()
    prog("build", 0, len(todo) + 1, "kernels")
    builder.build_kernels()
    args, reference = _reference(builder, model)
    prog("build", 1, len(todo) + 1, "kernels")
    if model.reference:
        diffs = [float(np.max(np.abs(a - b))) for a, b in zip(reference, model.reference,
                                                              strict=False)]
        log.info("TVM vs %s reference: max abs diff %.3g", model.name, max(diffs, default=0.0))
    builds: list[Built] = []
    planned: list[int | None] = []
    for i, c in enumerate(todo):
        b = builder.build(c.orders)
        builds.append(b)
        # the reordered module the builder made, not a second rewrite
        planned.append(planned_bytes(b.module) if b.error is None else None)
        prog("build", i + 2, len(todo) + 1, c.name)
    secs["build"] = time.perf_counter() - t0
    secs["kernels"] = builder.kernel_seconds

    # 4. measure (records appended as they complete)
    t0 = time.perf_counter()
    measured = 0

    def on_done(m: Measurement) -> None:
        nonlocal measured
        c, b = todo[m.index], builds[m.index]
        rec = {
            "model": model.name, "model_hash": model.hash, "order_hash": c.hash,
            "target": key_target, "device_key": runner.key, "device": m.device,
            "candidate": c.name, "aliases": c.aliases, "source": c.source,
            "baseline": c.baseline,
            "orders": [list(o) for o in c.orders], "proxy": dict(c.proxy),
            "cache_bytes": cache_bytes, "planned_bytes": planned[m.index],
            "build_s": round(b.seconds, 4), "fast_build": b.needs_kernels,
            "latency": _stats(m.samples), "samples": m.samples, "check": m.check,
            "anchor": _stats(m.anchor or []),
            "relative": (float(np.median(m.samples)) / float(np.median(m.anchor))
                         if m.samples and m.anchor else None),
            "error": m.error, "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        db.append(rec)
        measured += 1
        prog("measure", measured, len(todo), c.name)

    if todo:
        prog("measure", 0, len(todo), "connecting")
        measurer = Measurer(runner, kernels=builder.kernels, args=args, reference=reference,
                            device_type=target.get_target_device_type(), repeats=cfg.repeats,
                            number=cfg.number, min_repeat_ms=cfg.min_repeat_ms,
                            timeout=cfg.timeout)
        try:
            items = [(i, b, f"{i}-{todo[i].hash}") for i, b in enumerate(builds)]
            anchor = next((it for it in items if todo[it[0]].name == "tvm"), None)
            if anchor is None:  # TVM's order measured in an earlier run: measure it again
                anchor_built = builder.build([tuple(range(g.num_nodes)) for g in model.graphs])
                anchor = (-1, anchor_built, "anchor")
            measurer.measure(items, on_done, anchor=anchor)
        finally:
            measurer.close()
        reconnects = measurer.reconnects
    else:
        reconnects = 0
    secs["measure"] = time.perf_counter() - t0

    # 5. pick, correlate, save
    have = db.records(model.hash, key_target, runner.key)
    records = [have[k] for k in ((model.hash, c.hash, key_target, runner.key) for c in chosen)
               if k in have]
    best, fastest = _pick(records, cfg.objective, budget, cfg.keep_default_within_noise)
    base = next((r for r in records if r["candidate"] == "tvm"), None)
    ok = [r for r in records if r.get("latency") and not r.get("error")]
    lat = [r["latency"]["median"] for r in ok]
    spear = {p: _spearman([r["proxy"][p] for r in ok], lat)
             for p in ("cache_miss", "planned", "peak")}
    result = TuneResult(model.name, cfg.objective, records, best, base, spear, work, secs,
                        budget, measured, info={
                            "target": key_target, "device_key": runner.key,
                            "candidates_proposed": len(pool), "candidates_chosen": len(chosen),
                            "cache_bytes": cache_bytes, "tvm_planned": tvm_planned,
                            "kernel_build_fast": builder.kernels is not None,
                            "full_compiles": builder.fallbacks, "reconnects": reconnects,
                            "model_hash": model.hash, "nodes": model.num_nodes,
                            "host": platform.node(), "solvers": list(cfg.solvers),
                            "top_k": cfg.top_k, "repeats": cfg.repeats,
                            "fastest": fastest["candidate"] if fastest else None,
                            "kept_default_within_noise": bool(
                                best and fastest and best is not fastest
                                and best["candidate"] == "tvm")})
    if best is not None and cfg.export:
        t0 = time.perf_counter()
        final = builder.build([tuple(o) for o in best["orders"]])
        if final.error:
            raise RuntimeError(f"the pick no longer builds: {final.error}")
        if final.needs_kernels:
            final.executable.mod.import_module(builder.kernels)
        final.executable.export_library(str(work / "best.so"))
        (work / "best_order.json").write_text(json.dumps(
            {"model": model.name, "model_hash": model.hash, "candidate": best["candidate"],
             "orders": best["orders"]}, indent=1))
        secs["export"] = time.perf_counter() - t0
    secs["total"] = time.perf_counter() - t_start
    from tvm_sched.tune.report import write_report

    write_report(result)
    return result
