"""Reports of a tuning run, one section per kind of candidate, read from the run's
:class:`~tvm_sched.tune.result.TuneResult` and its :class:`~tvm_sched.tune.record.TuneRecord`
fields.

Contract
--------
- :func:`write_report` and :func:`rich_table` take the result of either path and write or draw
  its kind's section:

  - VM orders: ``report.md``, ``plot.png`` (latency x planned bytes per solver) and
    ``summary.json``; the table of :func:`rows`;
  - lane plans (``result.lanes`` set): ``report.md``, ``pareto.png`` (measured latency
    relative to the VM x arena bytes, the Pareto front drawn; skipped with one log line when
    matplotlib is missing) and ``summary.json`` (:func:`lane_summary`), with the anchors
    (:func:`anchor_table`), the kernels (:func:`kernels_line`) and per solver its best
    measured speed-up over the Relax VM (median and quartiles of the paired per-round ratios)
    and its proxy rank (where its best predicted makespan ranks among every measured lane
    candidate, 1 = the lowest) (:func:`solver_table`).
- The files are replaced atomically (:func:`~tvm_sched.tune.workdir.atomic_write`): a reader
  sees the previous report or the new one, never a torn one.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

from tvm_sched.solvers.portfolio import candidate_name
from tvm_sched.tune.record import TuneRecord
from tvm_sched.tune.result import TuneResult
from tvm_sched.tune.workdir import atomic_path, atomic_write

__all__ = ["rows", "rich_table", "write_report", "solver_table", "anchor_table", "kernels_line",
           "lane_summary", "write_lane_report", "rich_lane_table", "pareto_front"]

log = logging.getLogger(__name__)


def _ms(rec: TuneRecord) -> float | None:
    lat = rec.latency
    return lat["median"] * 1e3 if lat else None


def _kib(n: float | None) -> float | None:
    return None if n is None else n / 1024


def rows(result: TuneResult) -> list[dict[str, Any]]:
    """One row per candidate, measured ones by latency, failures last.

    Parameters
    ----------
    result
        A tuning result.

    Returns
    -------
    list of dict
        Candidate, source, baseline, pick, planned and cache-miss KiB, median and IQR in ms,
        speed-up over TVM's order, device and error.
    """
    base = result.baseline
    base_ms = _ms(base) if base else None
    best_hash = result.best.order_hash if result.best else None
    out = []
    for r in result.records:
        ms, lat, rel = _ms(r), r.latency, r.relative
        out.append({
            "candidate": r.candidate + "".join(f" = {a}" for a in r.aliases),
            "source": r.source, "baseline": r.baseline,
            "pick": r.order_hash == best_hash,
            "planned_kib": _kib(r.order_facts.planned_bytes),
            "cache_miss_kib": _kib(r.order_facts.proxy.get("cache_miss")),
            "median_ms": ms,
            "iqr_ms": (lat["q3"] - lat["q1"]) * 1e3 if lat else None,
            "vs_tvm": (1.0 / rel) if rel else ((base_ms / ms) if ms and base_ms else None),
            "device": r.device, "error": r.error,
        })
    out.sort(key=lambda x: (x["median_ms"] is None, x["median_ms"] or 0.0))
    return out


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _bytes(n: int | None) -> str:
    return "? B" if n is None else f"{n:,} B"


def rich_table(result: TuneResult):
    """The run's table for the terminal: for VM orders the rows of :func:`rows` (the pick in
    bold green), for lane plans :func:`rich_lane_table`.

    Parameters
    ----------
    result
        A tuning result.

    Returns
    -------
    rich.table.Table
        Ready to print.
    """
    if result.lanes is not None:
        return rich_lane_table(result)
    from rich.table import Table

    t = Table(title=f"tvm-sched tune: {result.model} ({result.info.get('target')}, objective "
                    f"{result.objective})")
    for col, just in (("candidate", "left"), ("source", "left"), ("planned KiB", "right"),
                      ("cache-miss KiB", "right"), ("median ms", "right"), ("IQR ms", "right"),
                      ("TVM / this", "right"), ("status", "left")):
        t.add_column(col, justify=just)
    for r in rows(result):
        name = ("* " if r["pick"] else "") + r["candidate"] + (" (baseline)" if r["baseline"]
                                                               else "")
        status = "pick" if r["pick"] else ("ok" if not r["error"] else r["error"][:60])
        t.add_row(name, r["source"], _fmt(r["planned_kib"], ",.1f"),
                  _fmt(r["cache_miss_kib"], ",.1f"), _fmt(r["median_ms"], ".4f"),
                  _fmt(r["iqr_ms"], ".4f"), _fmt(r["vs_tvm"], ".3f"), status,
                  style="bold green" if r["pick"] else None)
    return t


def _markdown(result: TuneResult) -> str:
    info = result.info
    lines = [f"# Tuning report: {result.model}", ""]
    lines.append(f"Target `{info.get('target')}`, device key `{info.get('device_key')}`, "
                 f"objective **{result.objective}**"
                 + (f" under a memory budget of {result.memory_budget:,} B"
                    if result.memory_budget is not None else "") + ".  ")
    lines.append(f"{info.get('nodes')} operators; {info.get('candidates_proposed')} candidates "
                 f"proposed by {', '.join(info.get('solvers', []))} + random; "
                 f"{info.get('candidates_chosen')} measured (top {info.get('top_k')} by proxy + "
                 f"baselines), {result.measured_now} of them in this run; "
                 f"{info.get('repeats')} interleaved repeats each.  ")
    secs = result.seconds
    lines.append("Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()) + ".")
    lines.append("")
    if result.best:
        b, base = result.best, result.baseline
        lines.append(f"**Pick: {b.candidate}** ({b.source}): median "
                     f"{b.latency['median'] * 1e3:.4f} ms, "
                     f"planned {_bytes(b.order_facts.planned_bytes)}"
                     + (f"; TVM's order: {base.latency['median'] * 1e3:.4f} ms, "
                        f"{_bytes(base.order_facts.planned_bytes)} "
                        f"(speed-up {result.speedup:.3f}x)"
                        if result.speedup and base.latency else "") + ".")
        if info.get("kept_default_within_noise"):
            lines.append("")
            lines.append(f"The fastest candidate, {info['fastest']}, did not beat TVM's order "
                         "beyond the noise (its upper quartile is not below TVM's lower "
                         "quartile), so TVM's order is kept.")
    else:
        lines.append("**No candidate measured successfully.**")
    lines.append("")
    lines.append("\"TVM / this\" is TVM's order's median over the candidate's, both measured in "
                 "the same interleaved batch on the same device. The pick is the fastest of "
                 "several noisy medians, so its speed-up is biased upwards (winner's curse); "
                 "TVM's order is kept unless the pick's upper quartile is below TVM's lower "
                 "quartile.")
    lines.append("")
    lines.append("Spearman rank correlation of each proxy with the measured median latency "
                 "(over the candidates measured without error): "
                 + ", ".join(f"{k} {_fmt(v, '+.3f', 'n/a')}" for k, v in
                             result.spearman.items()) + ".")
    lines += ["", "| candidate | source | planned KiB | cache-miss KiB | median ms | IQR ms | "
              "TVM / this | status |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows(result):
        name = ("**" + r["candidate"] + "**") if r["pick"] else r["candidate"]
        if r["baseline"]:
            name += " (baseline)"
        status = "pick" if r["pick"] else ("ok" if not r["error"] else
                                           r["error"].replace("|", "/")[:120])
        lines.append(f"| {name} | {r['source']} | {_fmt(r['planned_kib'], ',.1f')} | "
                     f"{_fmt(r['cache_miss_kib'], ',.1f')} | {_fmt(r['median_ms'], '.4f')} | "
                     f"{_fmt(r['iqr_ms'], '.4f')} | {_fmt(r['vs_tvm'], '.3f')} | {status} |")
    lines += ["", "Files: `records.jsonl` (every measurement), `best.so` (the pick, exported), "
              "`best_order.json`, `plot.png`, `summary.json`.", ""]
    return "\n".join(lines)


def _plot(result: TuneResult, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ok = [r for r in result.records if r.latency and r.order_facts.planned_bytes is not None]
    sources = sorted({r.source for r in ok})
    cmap = plt.get_cmap("tab10")
    for i, s in enumerate(sources):
        pts = [(r.order_facts.planned_bytes, r.latency) for r in ok if r.source == s]
        x = [b / 1024 for b, _ in pts]
        y = [lat["median"] * 1e3 for _, lat in pts]
        err = [[(lat["median"] - lat["q1"]) * 1e3 for _, lat in pts],
               [(lat["q3"] - lat["median"]) * 1e3 for _, lat in pts]]
        ax.errorbar(x, y, yerr=err, fmt="s" if s == "baseline" else "o", color=cmap(i % 10),
                    label=s, alpha=0.85, capsize=2, markersize=6)
    b = result.best
    if b is not None and b.latency and b.order_facts.planned_bytes is not None:
        ax.scatter([b.order_facts.planned_bytes / 1024], [b.latency["median"] * 1e3], s=260,
                   marker="*", color="gold", edgecolor="black", zorder=5, label="pick")
    ax.set_xlabel("planned memory (KiB, TVM's static planner)")
    ax.set_ylabel("measured latency (ms, median, IQR bars)")
    ax.set_title(f"{result.model}: candidates by solver ({result.info.get('target')})")
    ax.grid(alpha=0.3)
    if ok:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _fields(rec: TuneRecord | None, names: tuple[str, ...]) -> dict[str, Any] | None:
    """The record's fields ``names``, read from its VM-order payload where it has them."""
    if rec is None:
        return None
    facts = rec.order_facts
    return {k: getattr(facts if hasattr(facts, k) else rec, k) for k in names}


def write_report(result: TuneResult) -> None:
    """Write the run's report into ``result.work_dir``: ``report.md``, ``plot.png`` and
    ``summary.json`` for VM orders, :func:`write_lane_report`'s files for lane plans.

    Each file is written atomically.

    Parameters
    ----------
    result
        A tuning result with its ``work_dir``.
    """
    if result.lanes is not None:
        write_lane_report(result)
        return
    work = result.work_dir
    atomic_write(work / "report.md", _markdown(result))
    _plot(result, work / "plot.png")
    summary = {
        "model": result.model, "objective": result.objective,
        "memory_budget": result.memory_budget, "seconds": result.seconds,
        "measured_now": result.measured_now, "spearman": result.spearman,
        "speedup_vs_tvm": result.speedup, "info": result.info,
        "best": _fields(result.best, ("candidate", "source", "order_hash", "planned_bytes",
                                      "latency")),
        "baseline": _fields(result.baseline, ("candidate", "planned_bytes", "latency")),
        "rows": rows(result),
    }
    atomic_write(work / "summary.json", json.dumps(summary, indent=1))


# -- lane plans ---------------------------------------------------------------------------

def _relative(r: TuneRecord) -> float:
    return 1.0 / r.speedup["median"] if r.kind != "vm" else 1.0


def solver_table(result: TuneResult) -> list[dict[str, Any]]:
    """One row per solver that proposed (see the module docstring).

    Parameters
    ----------
    result
        The lane tuning run.

    Returns
    -------
    list of dict
        Per solver of ``result.solver_info``, in its order: ``solver``, ``error``,
        ``seconds``, ``proposals``, ``measured``, ``best_predicted_ms``, ``proxy_rank``,
        ``best_candidate``, ``best_speedup`` and ``best_median_ms`` (None where it has none).
    """
    lanes = [r for r in result.records if r.kind == "lanes" and r.lane_facts.predicted is not None]
    preds = sorted(r.lane_facts.predicted for r in lanes)
    rows = []
    for name, info in result.solver_info.items():
        # the names its proposals had (a proposal equal to an earlier one is only an alias)
        names = {candidate_name(name, j) for j in range(info.get("proposals", 0))}
        own = [r for r in lanes if r.source == name or names.intersection(r.aliases)]
        ok = [r for r in own if r.ok and r.speedup]
        best = max(ok, key=lambda r: r.speedup["median"]) if ok else None
        top = min((r.lane_facts.predicted for r in own), default=None)
        rows.append({
            "solver": name, "error": info.get("error"), "seconds": info.get("seconds"),
            "proposals": info.get("proposals", 0), "measured": len(own),
            "best_predicted_ms": None if top is None else top * 1e3,
            "proxy_rank": None if top is None else preds.index(top) + 1,
            "best_candidate": best.candidate if best else None,
            "best_speedup": best.speedup if best else None,
            "best_median_ms": best.latency["median"] * 1e3 if best else None,
        })
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (lower is better).

    Parameters
    ----------
    points
        (x, y) pairs, e.g. (latency relative to the VM, arena bytes).

    Returns
    -------
    list of int
        Indices into ``points``, sorted by their points (x, then y); equal points are all
        kept.
    """
    front = []
    for i, (x, y) in enumerate(points):
        if not any((a <= x and b <= y) and (a < x or b < y) for a, b in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _fmt_sp(sp: dict | None) -> str:
    if not sp:
        return "-"
    return f"{sp['median']:.3f}x [{sp['q1']:.3f}, {sp['q3']:.3f}]"


def _conditions(info: dict) -> list[str]:
    """One line per device: what its cores offered when the run connected (the lanes, and how
    far the speed-ups hold, depend on it)."""
    out = []
    for name, c in (info.get("conditions") or {}).items():
        if not c:
            out.append(f"Conditions on {name}: not measured (a server without "
                       "tvm_sched.tune.parallelism).")
            continue
        eff = ", ".join(f"{k + 1} threads {e:.2f}" for k, e in enumerate(c["efficiency"]))
        out.append(f"Conditions on {name} at connect: {c['cores']} core(s); parallel "
                   f"efficiency {eff}; 1-minute load {c['load']:.2f}.")
    return out


def anchor_table(result: TuneResult) -> list[dict[str, Any]]:
    """The pick beside the Relax VM and the anchors (PyTorch, ONNX Runtime) of the same rounds:
    per row the median ms, the error (e.g. "onnxruntime is not installed on the device") and
    ``pick_speedup``, how many times faster the pick ran (ratio of the median speed-ups over
    the VM of the same rounds; above 1: the pick is faster).

    Parameters
    ----------
    result
        The lane tuning run.

    Returns
    -------
    list of dict
        ``name``, ``kind``, ``median_ms``, ``error`` and ``pick_speedup`` per row: the VM and
        anchor records in record order, the pick second when it is not the VM.
    """
    rows = []
    b = result.best
    pick_sp = result.speedup
    for r in result.records:
        if r.kind not in ("vm", "anchor"):
            continue
        sp = 1.0 if r.kind == "vm" else (r.speedup["median"] if r.ok and r.speedup else None)
        rows.append({"name": r.candidate, "kind": r.kind,
                     "median_ms": r.latency["median"] * 1e3 if r.ok and r.latency else None,
                     "error": r.error,
                     "pick_speedup": pick_sp / sp if pick_sp and sp else None})
    if b is not None and b.kind != "vm" and b.latency:
        rows.insert(1, {"name": f"pick: {b.candidate}", "kind": b.kind,
                        "median_ms": b.latency["median"] * 1e3, "error": None,
                        "pick_speedup": 1.0})
    return rows


def _seeded(d: dict) -> str:
    """", the first N the VM kernels' fastest schedules" where a database was seeded."""
    n = d.get("seeded", 0)
    return f", the first {n} the VM kernels' fastest schedules" if n else ""


def kernels_line(info: dict) -> str:
    """One sentence on the kernels of a run: tuned (trials, threads, CPU) or untuned.

    Parameters
    ----------
    info
        The run's ``info`` (:attr:`TuneResult.info`): ``kernel_tuning``
        (:meth:`~tvm_sched.tune.kernels.KernelSet.describe`), ``threads_per_lane``, ``cores``.

    Returns
    -------
    str
        The sentence, with a warning when the trial budget is under 8 per kernel (and which
        kernels stay untuned when it is under one).
    """
    pools = [p for p in info.get("vm_pool_threads") or [] if p != info.get("cores")]
    pool = (f" The device ran the VM on {'/'.join(map(str, pools))} thread(s), not "
            f"{info.get('cores')}: TVM_NUM_THREADS caps the pool where that server started, "
            "so the VM anchor is slower than it could be." if pools else "")
    kt = info.get("kernel_tuning") or {}
    dbs = kt.get("databases") or {}
    cpu = kt.get("cpu") or "generic (the device did not name its CPU)"
    if not dbs or all(d.get("trials", 0) == 0 for d in dbs.values()):
        return (f"Kernels: TVM's untuned kernels (--kernel-trials 0), built for CPU {cpu}; "
                f"{info.get('threads_per_lane', 1)} thread(s) per lane, the VM on "
                f"{info.get('cores', '?')} core(s)." + pool)
    parts = [f"{t} thread(s): {d['trials']} MetaSchedule trials over {d['tasks']} kernels "
             f"({d['trials_now']} run now{_seeded(d)}, {d['seconds']:.0f} s)"
             for t, d in dbs.items()]
    untuned = max(max(0, d.get("tasks", 0) - d["trials"]) for d in dbs.values())
    small = any(d["trials"] < 8 * max(1, d["tasks"]) for d in dbs.values())
    warn = ""
    if untuned:
        warn = (f" A trial budget below one per kernel: {untuned} kernels keep TVM's default "
                "schedule; raise --kernel-trials for kernels worth deploying.")
    elif small:
        warn = (" A small trial budget (under 8 per kernel): every kernel has a measured "
                "schedule, few are near their best; raise --kernel-trials for kernels worth "
                "deploying.")
    return (f"Kernels tuned on the device for CPU {cpu} ({kt.get('cpu_source')}): "
            f"{'; '.join(parts)}. Lanes run on the kernels tuned for "
            f"{info.get('threads_per_lane')} thread(s), the Relax VM on those for "
            f"{info.get('cores')}." + warn + pool)


def lanes_below_the_vm(result: TuneResult) -> str | None:
    """Why the VM was kept, when no lane plan was even predicted to beat it: the best predicted
    makespan of a plan of several lanes (one-lane durations profiled on the device) is not
    below the VM's measured latency. On kernels that scale with their own threads the lanes
    have nothing left to win (``benchmarks/thread_scaling.py`` measures it per model).

    Parameters
    ----------
    result
        A lane tuning's result.

    Returns
    -------
    str or None
        One sentence, or ``None`` when the pick is not the VM, a plan was predicted faster or
        the VM was not measured.
    """
    b = result.best
    vm = result.baseline
    if b is None or b.kind != "vm" or vm is None or not vm.latency:
        return None
    plans = [r.facts.predicted for r in result.records
             if r.kind == "lanes" and r.facts is not None and getattr(r.facts, "lanes", 1) > 1
             and getattr(r.facts, "predicted", None)]
    if not plans or min(plans) < vm.latency["median"]:
        return None
    return (f"No lane plan was predicted to beat the VM: the best predicted makespan of "
            f"{result.lanes} lanes is {min(plans) * 1e3:.2f} ms, the VM ran "
            f"{vm.latency['median'] * 1e3:.2f} ms on every core. Its kernels already use the "
            "cores with their own threads; lanes pay where kernels scale poorly "
            "(benchmarks/thread_scaling.py measures both per model).")


def _lane_markdown(result: TuneResult) -> str:
    info = result.info
    b = result.best
    lines = [f"# tvm-sched tune --lanes: {result.model}", "",
             f"{info.get('nodes')} operators ({info.get('kernels')} kernels), {result.lanes} "
             f"lanes on {info.get('device')} (device key {info.get('device_key')!r}, target "
             f"{info.get('target')!r}); {info.get('chosen')} candidates measured of "
             f"{info.get('proposed')} proposed; {info.get('repeats')} interleaved rounds; "
             f"{result.measured_now} measured now.", "", *_conditions(info), ""]
    if b is not None:
        lines.append(f"**Pick: {b.candidate}** ({b.kind}), speed-up over the Relax VM "
                     f"{_fmt_sp(result.speedup_stats)} (median [IQR] of per-round ratios).")
    if result.fastest is not None and result.fastest is not b:
        lines.append(f"Fastest measured: {result.fastest.candidate} "
                     f"{_fmt_sp(result.fastest.speedup)} (not beyond the noise: the VM kept).")
    why = lanes_below_the_vm(result)
    if why:
        lines.append(why)
    lines += ["", kernels_line(info)]
    rows = anchor_table(result)
    if any(row["kind"] == "anchor" for row in rows):
        lines += ["", "## Against the Relax VM, PyTorch and ONNX Runtime (same rounds)", "",
                  "| | median ms | the pick is ... x faster |", "|---|---|---|"]
        for row in rows:
            ms = "-" if row["median_ms"] is None else f"{row['median_ms']:.3f}"
            ps = row["pick_speedup"]
            lines.append(f"| {row['name']} | {ms if not row['error'] else row['error']} | "
                         f"{'-' if ps is None else f'{ps:.2f}'} |")
    sp = result.spearman.get("predicted")
    lines += ["", f"Spearman(predicted makespan, measured latency relative to the VM) over the "
                  f"measured lane candidates: {'n/a' if sp is None else f'{sp:+.3f}'}", "",
              "## Per solver (same sample budget)", "",
              "| solver | proposals | best predicted ms | proxy rank | best measured | "
              "speed-up over VM | seconds |", "|---|---|---|---|---|---|---|"]
    for row in solver_table(result):
        if row["error"]:
            lines.append(f"| {row['solver']} | skipped: {row['error']} | | | | | "
                         f"{row['seconds']:.1f} |")
            continue
        bp = row["best_predicted_ms"]
        lines.append(f"| {row['solver']} | {row['proposals']} | "
                     f"{'-' if bp is None else f'{bp:.2f}'} | {row['proxy_rank'] or '-'} | "
                     f"{row['best_candidate'] or '-'} | {_fmt_sp(row['best_speedup'])} | "
                     f"{row['seconds']:.1f} |")
    lines += ["", "## Candidates", "",
              "| candidate | source | lanes | predicted ms | median ms | speed-up over VM | "
              "arena bytes | error |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(result.records, key=lambda r: (r.kind != "vm", r.lane_facts.predicted or 0)):
        lat = r.latency
        med = "-" if not lat else f"{lat['median'] * 1e3:.2f}"
        f = r.lane_facts
        lines.append(f"| {r.candidate} | {r.source} | {f.lanes} | "
                     f"{'-' if f.predicted is None else f'{f.predicted * 1e3:.2f}'} | {med} | "
                     f"{_fmt_sp(r.speedup) if r.kind != 'vm' else '1 (anchor)'} | "
                     f"{f.arena_bytes if f.arena_bytes is not None else '-'} | "
                     f"{r.error or ''} |")
    lines += ["", "## Stages (s)", "",
              " ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()), "",
              "Files: `best.so` (the Relax VM executable), `best_lanes.tar` "
              "(`tvm_sched.runtime.load`), `best_plan.json`, `pareto.png`, `summary.json`, "
              "`lane_records.jsonl`.", ""]
    return "\n".join(lines)


def _lane_plot(result: TuneResult) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib missing: no Pareto plot")
        return None
    pts, names = [], []
    for r in result.records:
        if r.ok and r.lane_facts.arena_bytes is not None:
            pts.append((r.lane_facts.arena_bytes / 1024, _relative(r)))
            names.append(r)
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    kinds = {}
    for (x, y), r in zip(pts, names, strict=True):
        label = r.source if r.kind == "lanes" else "relax-vm"
        kinds.setdefault(label, []).append((x, y))
    for label, xy in sorted(kinds.items()):
        ax.scatter([p[0] for p in xy], [p[1] for p in xy], label=label, s=28)
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1,
            label="Pareto front")
    if result.best is not None and result.best.lane_facts.arena_bytes is not None:
        ax.scatter([result.best.lane_facts.arena_bytes / 1024], [_relative(result.best)],
                   marker="*", s=200, facecolors="none", edgecolors="red", label="pick")
    ax.set_xlabel("arena KiB (TVM's planned bytes for the VM)")
    ax.set_ylabel("latency relative to the Relax VM (same rounds)")
    ax.set_title(f"{result.model}, {result.lanes} lanes")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    return buf.getvalue()


def lane_summary(result: TuneResult) -> dict[str, Any]:
    """The run as JSON-able data (``summary.json``).

    Parameters
    ----------
    result
        The lane tuning run.

    Returns
    -------
    dict
        The model, pick, speed-up, Spearman, stage seconds, :func:`solver_table`,
        :func:`anchor_table`, the run's ``info`` and every record (``TuneRecord.to_dict``).
    """
    return {
        "model": result.model, "objective": "lanes", "lanes": result.lanes,
        "pick": result.best.candidate if result.best else None,
        "pick_kind": result.best.kind if result.best else None,
        "speedup": result.speedup_stats,
        "fastest": result.fastest.candidate if result.fastest else None,
        "spearman": result.spearman.get("predicted"), "seconds": result.seconds,
        "memory_budget": result.memory_budget, "measured_now": result.measured_now,
        "solvers": solver_table(result), "anchors": anchor_table(result),
        "info": result.info,
        "records": [r.to_dict() for r in result.records],
    }


def write_lane_report(result: TuneResult) -> None:
    """``report.md``, ``summary.json`` and ``pareto.png`` in the work dir (atomically).

    Parameters
    ----------
    result
        The lane tuning run; the files go to ``result.work_dir``.
    """
    work = Path(result.work_dir)
    atomic_write(work / "report.md", _lane_markdown(result))
    atomic_write(work / "summary.json", json.dumps(lane_summary(result), indent=1))
    png = _lane_plot(result)
    if png:
        atomic_write(work / "pareto.png", png)


def rich_lane_table(result: TuneResult):
    """The per-solver table as a ``rich.table.Table``.

    Parameters
    ----------
    result
        The lane tuning run.

    Returns
    -------
    rich.table.Table
        One row per :func:`solver_table` row (a solver that failed: ``skipped`` and its
        error).
    """
    from rich.table import Table

    t = Table(title=f"{result.model}: {result.lanes} lanes, speed-up over the Relax VM "
                    f"(median [IQR] of interleaved rounds)")
    for col in ("solver", "proposals", "best predicted ms", "proxy rank", "best measured",
                "speed-up over VM", "s"):
        t.add_column(col)
    for row in solver_table(result):
        if row["error"]:
            t.add_row(row["solver"], "skipped", row["error"][:50], "", "", "",
                      f"{row['seconds']:.1f}")
            continue
        bp = row["best_predicted_ms"]
        t.add_row(row["solver"], str(row["proposals"]), "-" if bp is None else f"{bp:.2f}",
                  str(row["proxy_rank"] or "-"), row["best_candidate"] or "-",
                  _fmt_sp(row["best_speedup"]), f"{row['seconds']:.1f}")
    return t
