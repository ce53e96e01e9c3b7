"""``tvm-sched tune``: the command line of the tuner.

    tvm-sched tune --model NAME | --onnx FILE | --relax FILE.py [--target llvm]
                   [--objective latency|memory] [--memory-budget B] [--solvers a,b,...]
                   [--lanes auto|M [--samples N] [--per-solver K]] [--size small|bench]
                   [--candidates N] [--top-k K] [--repeats R]
                   [--rpc-server HOST:PORT | --rpc-tracker HOST:PORT --rpc-key KEY | --in-process]
                   [--work-dir DIR]

Everything the user typed is checked before any expensive work (importing the model,
proposing, building, measuring) and before anything is written: an unknown model, an unreadable
file, a target TVM rejects (with the JSON form to use instead of the old ``"llvm -mcpu=..."``),
an unknown solver, a malformed address, a number out of range, a work dir that is a file,
read-only or in use by another run prints one line and exits with code 2. A server or tracker
that does not accept connections is found next, also before any work, and exits with code 1; so
does a device lost for good later (records kept). Ctrl-C exits with code 130 (records kept).

``--relax FILE.py`` *executes* the file (with your rights): give only files you trust. An RPC
server runs whatever code a client sends it; the embedded one listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

EXIT_USAGE, EXIT_DEVICE, EXIT_INTERRUPT = 2, 1, 130


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the ``tune`` sub-command and its options.

    Parameters
    ----------
    sub
        The sub-parsers of ``tvm-sched`` (``ArgumentParser.add_subparsers()``).

    Returns
    -------
    argparse.ArgumentParser
        The ``tune`` parser.
    """
    t = sub.add_parser("tune", help="measure candidate orders over TVM RPC and keep the best",
                       description=__doc__.split("\n\n")[0])
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a zoo model (inception, resnet, transformer, randwire, "
                                     "nasnet, unet, densenet)")
    src.add_argument("--onnx", metavar="FILE", help="an ONNX file (needs the onnx extra)")
    src.add_argument("--relax", metavar="FILE.py",
                     help="a Python file defining an IRModule 'mod' (optional inputs, params)")
    t.add_argument("--target", default="llvm", help="TVM target string (default llvm)")
    t.add_argument("--objective", default="latency", choices=["latency", "memory"])
    t.add_argument("--memory-budget", default=None, metavar="B",
                   help="with latency: planned bytes allowed (bytes, 64KiB, or 0.9x TVM's)")
    t.add_argument("--solvers", default=None,
                   help="comma-separated solvers that propose (default lpmf,list,random-list,"
                        "gaus; with --lanes every makespan solver: gflownet,gaus,cpsat,list,"
                        "random-list)")
    t.add_argument("--lanes", default=None, metavar="auto|M",
                   help="tune lane schedules on the lane runtime (auto: the device's cores); "
                        "the pick must beat the Relax VM beyond noise")
    t.add_argument("--samples", type=int, default=256,
                   help="with --lanes: the sample budget of every solver")
    t.add_argument("--per-solver", type=int, default=2,
                   help="with --lanes: schedules each solver hands in")
    t.add_argument("--kernel-trials", type=int, default=0, metavar="N",
                   help="MetaSchedule trials per thread count to tune the kernels on the "
                        "device (0: TVM's untuned kernels; the database in the work dir is "
                        "resumed, nothing is tuned twice)")
    t.add_argument("--lane-kernel-trials", type=int, default=None, metavar="M",
                   help="with --lanes: trials of the lanes' thread count when it differs from "
                        "the VM's (default: --kernel-trials); that search starts from the VM "
                        "kernels' fastest schedules, measured with the lanes' threads")
    t.add_argument("--layout", default="auto", choices=["auto", "NCHW", "NHWC"],
                   help="the convolutions' data layout (auto: NHWC with --kernel-trials, where "
                        "tuned kernels vectorise over the channels; else the model's own)")
    t.add_argument("--anchors", default="all", metavar="LIST|all|none",
                   help="with --lanes: PyTorch / ONNX Runtime measured beside the Relax VM in "
                        "the same rounds (pytorch-1t, pytorch, onnxruntime, "
                        "onnxruntime-parallel; default all)")
    t.add_argument("--size", default="small", choices=["small", "bench"],
                   help="zoo model size (bench: 20-300 ms per inference)")
    t.add_argument("--candidates", type=int, default=64, help="orders proposed in all")
    t.add_argument("--top-k", type=int, default=8, help="proposals measured (plus baselines)")
    t.add_argument("--repeats", type=int, default=10, help="interleaved timing rounds")
    t.add_argument("--min-repeat-ms", type=float, default=10.0,
                   help="shortest timing call (ms)")
    t.add_argument("--solver-budget", type=float, default=2.0, help="seconds per solver")
    t.add_argument("--no-arena", dest="arena", action="store_false",
                   help="keep TVM's storage tokens (default: one arena with offsets, which the "
                        "memory objective and --memory-budget then count)")
    t.add_argument("--cache-kib", type=int, default=None,
                   help="cache size of the latency proxy (default: this CPU's L1d)")
    where = t.add_mutually_exclusive_group()
    where.add_argument("--rpc-server", metavar="HOST:PORT", help="measure on this RPC server")
    where.add_argument("--rpc-tracker", metavar="HOST:PORT",
                       help="measure on every free device of --rpc-key (or TVM_TRACKER_HOST/"
                            "PORT/KEY)")
    where.add_argument("--in-process", action="store_true",
                       help="measure in this process (no RPC server)")
    t.add_argument("--rpc-key", default=None, help="device key on the tracker")
    t.add_argument("--tracker-wait", type=float, default=60.0,
                   help="seconds to wait for free devices")
    t.add_argument("--min-devices", type=int, default=1,
                   help="free tracker devices to wait for before measuring (all free are used)")
    t.add_argument("--timeout", type=float, default=120.0, help="seconds per device call")
    t.add_argument("--work-dir", default=None,
                   help="records, report and best module (default tvm-sched-runs/MODEL)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=run)
    return t


def _console():
    from tvm_sched.console import console

    return console()


def _anchor_names(text: str) -> tuple[str, ...]:
    """``--anchors``: ``all``, ``none`` or a comma-separated list (checked by TuneConfig)."""
    from tvm_sched.tune.anchors import ANCHORS

    text = text.strip().lower()
    if text == "all":
        return tuple(ANCHORS)
    if text in ("none", ""):
        return ()
    return tuple(a.strip() for a in text.split(",") if a.strip())


def _check_args(args: argparse.Namespace) -> None:
    """The flags that no TuneConfig field covers (runner options)."""
    from tvm_sched.errors import TuneInputError

    if not math.isfinite(args.tracker_wait) or args.tracker_wait < 0:
        raise TuneInputError(f"--tracker-wait must be finite and >= 0 seconds, got "
                             f"{args.tracker_wait!r}")
    if args.min_devices < 1:
        raise TuneInputError(f"--min-devices must be >= 1, got {args.min_devices}")
    if args.cache_kib is not None and args.cache_kib <= 0:
        raise TuneInputError(f"--cache-kib must be > 0, got {args.cache_kib}")


def run(args: argparse.Namespace) -> int:
    """Run ``tvm-sched tune``: check every argument, tune, print and write the report.

    Errors are printed, not raised: they become the exit status.

    Parameters
    ----------
    args
        The parsed options of :func:`add_parser`.

    Returns
    -------
    int
        0 on success; ``EXIT_USAGE`` for bad input, ``EXIT_DEVICE`` for a lost device or a
        failing kernel, ``EXIT_INTERRUPT`` after Ctrl-C.
    """
    # the work dir's lock is held from the argument checks to the end, so that a second run on
    # the same dir stops before it imports anything
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _config(args: argparse.Namespace):
    """The :class:`~tvm_sched.tune.TuneConfig` of the options, checked."""
    from tvm_sched.errors import TuneInputError
    from tvm_sched.tune import TuneConfig

    solvers = None  # the defaults of the run's kind; the names are checked by TuneConfig
    if args.solvers is not None:
        solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
        if not solvers:
            raise TuneInputError(f"--solvers names no solver: {args.solvers!r}")
    _check_args(args)
    cfg = TuneConfig(objective=args.objective, memory_budget=args.memory_budget,
                     solvers=solvers, candidates=args.candidates, top_k=args.top_k,
                     repeats=args.repeats, min_repeat_ms=args.min_repeat_ms,
                     solver_budget=args.solver_budget, timeout=args.timeout, seed=args.seed,
                     cache_bytes=args.cache_kib * 1024 if args.cache_kib else None,
                     arena=args.arena, lanes=args.lanes, samples=args.samples,
                     per_solver=args.per_solver, kernel_trials=args.kernel_trials,
                     lane_kernel_trials=args.lane_kernel_trials,
                     anchors=_anchor_names(args.anchors) if args.lanes is not None else ())
    cfg.check()
    return cfg


def _prepare(args: argparse.Namespace, stack: contextlib.ExitStack, con):
    """Every argument checked before anything is imported, started or written; the work dir
    locked; the devices asked whether they answer at all (seconds, not the minutes of import,
    propose and build); then the model imported. Returns (target, cfg, runner, work, model)."""
    from tvm_sched.tune import check_target, devices_from_args
    from tvm_sched.tune.model import conv_layout, source_name
    from tvm_sched.tune.workdir import check_work_dir, lock_work_dir

    target = check_target(args.target)
    cfg = _config(args)
    runner = devices_from_args(rpc_server=args.rpc_server, rpc_tracker=args.rpc_tracker,
                              rpc_key=args.rpc_key, in_process=args.in_process,
                              tracker_wait=args.tracker_wait,
                              min_devices=args.min_devices, timeout=args.timeout,
                              status=lambda text: con.print(f"[yellow]{text}"))
    name = source_name(model=args.model, onnx=args.onnx, relax_file=args.relax)
    if args.model and args.size != "small":
        name = f"{name}-{args.size}"
    work = check_work_dir(args.work_dir or Path("tvm-sched-runs") / name)
    stack.enter_context(lock_work_dir(work))  # in use by another run?
    runner.check()
    from tvm_sched import tune as tune_pkg

    with con.status(f"importing {args.model or args.onnx or args.relax}"):
        layout = conv_layout(args.layout, cfg.kernel_trials)
        model = tune_pkg.load_model(model=args.model, onnx=args.onnx, relax_file=args.relax,
                                    seed=args.seed, size=args.size, layout=layout)
    if layout != "NCHW" and not args.relax:
        con.print(f"convolutions in {layout} (--layout {args.layout}"
                  + (" with tuned kernels)" if args.layout == "auto" else ")"))
    return target, cfg, runner, work, model


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    from tvm_sched.errors import (
        DeviceUnavailableError,
        MeasureError,
        TuneInputError,
        UnknownSolverError,
    )

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    con = _console()
    try:
        target, cfg, runner, work, model = _prepare(args, stack, con)
    except (TuneInputError, UnknownSolverError) as err:
        print(f"tvm-sched tune: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DeviceUnavailableError as err:
        print(f"tvm-sched tune: {err}", file=sys.stderr)
        return EXIT_DEVICE
    con.print(f"[bold]tvm-sched tune[/bold] {model.name}: {model.num_nodes} operators in "
              f"{len(model.graphs)} block(s), target {args.target}, objective {args.objective}, "
              f"runner {type(runner).__name__} (device key {runner.key!r}), work dir {work}")
    from tvm_sched.tune.tuner import tune

    records_file = "lane_records.jsonl" if cfg.lanes is not None else "records.jsonl"
    try:
        with runner, _Bars(con, quiet=args.quiet) as bars:
            result = tune(model, target if args.target is None else args.target, runner, work,
                          cfg, progress=bars.update, lock=False)
    except TuneInputError as err:  # found on the way: a work dir in use, an unmeetable budget
        print(f"tvm-sched tune: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MeasureError as err:  # a device lost for good, a kernel failing while profiled
        print(f"tvm-sched tune: {err}; the records measured so far are in "
              f"{work / records_file}", file=sys.stderr)
        return EXIT_DEVICE
    except KeyboardInterrupt:
        print(f"tvm-sched tune: interrupted; complete records are kept in "
              f"{work / records_file} (re-run the same command to resume)", file=sys.stderr)
        return EXIT_INTERRUPT
    if cfg.lanes is not None:
        return _lane_summary(con, result, work)
    return _order_summary(con, result, work)


def _order_summary(con, result, work: Path) -> int:
    from tvm_sched.tune.report import rich_table

    con.print(rich_table(result))
    if result.best is None:
        planned = [r.order_facts.planned_bytes for r in result.records
                   if r.ok and r.order_facts.planned_bytes is not None]
        if planned and result.memory_budget is not None:
            print(f"tvm-sched tune: error: no measured candidate fits the memory budget of "
                  f"{result.memory_budget:,} B (the fewest planned bytes measured: "
                  f"{min(planned):,} B)", file=sys.stderr)
            return EXIT_USAGE
        con.print("[red]no candidate was measured successfully; see the errors above")
        return EXIT_DEVICE
    b = result.best
    sp = f", {result.speedup:.3f}x TVM's order" if result.speedup else ""
    con.print(f"pick: [bold]{b.candidate}[/bold] median {b.latency['median'] * 1e3:.4f} ms"
              f"{sp}, planned {b.order_facts.planned_bytes:,} B (TVM's order "
              f"{result.info['tvm_planned']:,} B); measured {result.measured_now} now, "
              f"{len(result.records) - result.measured_now} from earlier runs; "
              f"{result.seconds['total']:.1f} s")
    if result.info.get("kept_default_within_noise"):
        con.print(f"kept TVM's order: the fastest candidate ({result.info['fastest']}) did not "
                  f"beat it beyond the measurement noise (interquartile ranges overlap)")
    sp_text = ", ".join(f"{k} {v:+.2f}" if v is not None else f"{k} n/a"
                        for k, v in result.spearman.items())
    con.print(f"Spearman(proxy, measured latency): {sp_text}")
    con.print(f"report: {work / 'report.md'}  plot: {work / 'plot.png'}  "
              f"best module: {work / 'best.so'}")
    return 0


def _lane_summary(con, result, work: Path) -> int:
    from tvm_sched.tune.report import rich_lane_table

    con.print(rich_lane_table(result))
    b = result.best
    if b is None and result.memory_budget is not None and any(
            r.ok and r.kind == "vm" for r in result.records):
        print(f"tvm-sched tune: error: no measured lane plan fits the memory budget of "
              f"{result.memory_budget:,} B, and the Relax VM does not either", file=sys.stderr)
        return EXIT_USAGE
    if b is None:
        con.print("[red]the Relax VM could not be measured; see the errors in the report")
        return EXIT_DEVICE
    sp = result.speedup_stats
    con.print(f"pick: [bold]{b.candidate}[/bold] (tuned for {result.lanes} lanes): speed-up "
              f"over the Relax VM {sp['median']:.3f}x (IQR {sp['q1']:.3f}-{sp['q3']:.3f}), median "
              f"{b.latency['median'] * 1e3:.2f} ms; measured {result.measured_now} now, "
              f"{len(result.records) - result.measured_now} from earlier runs; "
              f"{result.seconds['total']:.1f} s")
    if b.kind == "vm" and result.fastest is not None and result.fastest is not b:
        con.print(f"kept the Relax VM: the fastest lane plan ({result.fastest.candidate}, "
                  f"{result.fastest.speedup['median']:.3f}x) did not beat it beyond the noise")
    from tvm_sched.tune.report import anchor_table, kernels_line, lanes_below_the_vm

    why = lanes_below_the_vm(result)
    if why:
        con.print(why)
    rho = result.spearman.get("predicted")
    sp_text = "n/a" if rho is None else f"{rho:+.2f}"
    con.print(f"Spearman(predicted makespan, measured latency): {sp_text}")
    con.print(kernels_line(result.info))
    rows = anchor_table(result)
    if any(row["kind"] == "anchor" for row in rows):
        con.print("same rounds: " + "; ".join(
            f"{row['name']} " + (f"{row['median_ms']:.3f} ms" if row["median_ms"] is not None
                                 else f"({row['error']})")
            + (f" (pick {row['pick_speedup']:.2f}x)" if row["pick_speedup"] is not None
               and row["kind"] == "anchor" else "") for row in rows))
    lanes_file = work / "best_lanes.tar"
    con.print(f"report: {work / 'report.md'}  plot: {work / 'pareto.png'}  VM: "
              f"{work / 'best.so'}" + (f"  lane plan: {lanes_file}" if lanes_file.exists()
                                       else ""))
    return 0


class _Bars:
    """rich progress bars for the tuner's stages (nothing when quiet)."""

    def __init__(self, console, *, quiet: bool):
        self.console = console
        self.quiet = quiet
        self.tasks: dict[str, int] = {}
        self.progress = None

    def __enter__(self) -> _Bars:
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[what]}"),
                                     console=self.console, transient=False)
            self.progress.start()
        return self

    def update(self, stage: str, done: int, total: int, what: str) -> None:
        if self.progress is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=max(total, 1), what="")
        self.progress.update(self.tasks[stage], completed=done, total=max(total, 1),
                             what=what[:40])

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
