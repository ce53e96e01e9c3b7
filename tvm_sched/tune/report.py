"""Reports of a tuning run: a rich table, ``report.md``, ``plot.png`` and ``summary.json``,
read from the run's :class:`~tvm_sched.tune.record.TuneRecord` fields.

The files are replaced atomically (:func:`~tvm_sched.tune.workdir.atomic_write`): a reader sees
the previous report or the new one, never a torn one.
"""

from __future__ import annotations

import json
from typing import Any

from tvm_sched.tune.record import TuneRecord
from tvm_sched.tune.result import TuneResult
from tvm_sched.tune.workdir import atomic_path, atomic_write

__all__ = ["rows", "rich_table", "write_report"]


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
    """The rows of :func:`rows` as a rich table (the pick in bold green).

    Parameters
    ----------
    result
        A tuning result.

    Returns
    -------
    rich.table.Table
        Ready to print.
    """
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
    """Write ``report.md``, ``plot.png`` and ``summary.json`` into ``result.work_dir``.

    Each file is written atomically.

    Parameters
    ----------
    result
        A tuning result with its ``work_dir``.
    """
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
