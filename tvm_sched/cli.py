"""The ``tvm-sched`` command.

    tvm-sched solve FILE --solver NAME --objective makespan|peak_memory|arena_memory|stage --lanes M
                    [--budget S] [--json]
    tvm-sched solvers
    tvm-sched demo
    tvm-sched tune --model NAME | --onnx FILE | --relax FILE.py [...]   (see tvm_sched.tune.cli)
    tvm-sched train-gflownet [--out FILE] [--resume FILE] [...]  (tvm_sched.solvers.gflownet.train)

Bad input (unreadable file, unknown solver, bad option) prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import typing
from pathlib import Path
from typing import Any

from tvm_sched.errors import TvmSchedError

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


class _Usage(Exception):
    """A user error: printed as one line, exit code 2."""


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _convert(key: str, text: str, hint: Any) -> Any:
    """``text`` as a value of the annotated type ``hint`` (int, float, bool, str, X | None)."""
    args = typing.get_args(hint)
    if type(None) in args:
        if text.lower() in ("none", "null", ""):
            return None
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else str
    if hint is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise _Usage(f"--option {key} expects true or false, got {text!r}")
    if hint is int:
        try:
            value = int(text)
        except ValueError:
            raise _Usage(f"--option {key} expects an integer, got {text!r}") from None
    elif hint is float:
        try:
            value = float(text)
        except ValueError:
            raise _Usage(f"--option {key} expects a number, got {text!r}") from None
        if not math.isfinite(value):
            raise _Usage(f"--option {key} must be finite, got {text!r}")
    else:
        return text
    # every numeric option of the registered solvers is a count, a size, a time or a rate
    if value < 0:
        raise _Usage(f"--option {key} must be >= 0, got {text!r}")
    return value


def _parse_options(items: list[str], solver: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs typed by the fields of the solver's ``Config``."""
    from tvm_sched.solvers import solver_class

    config = solver_class(solver).Config
    hints = typing.get_type_hints(config)
    known = {f.name for f in dataclasses.fields(config)}
    opts = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise _Usage(f"--option expects KEY=VALUE, got {item!r}")
        key = key.replace("-", "_")
        if key not in known:
            raise _Usage(f"solver {solver!r} has no option {key!r} (options: "
                         f"{', '.join(sorted(known)) or 'none'})")
        opts[key] = _convert(key, val, hints.get(key, str))
    return opts


def _check_number(flag: str, value: float | None, *, minimum: float = 0,
                  strict: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise _Usage(f"{flag} must be finite and {'>' if strict else '>='} {minimum:g}, "
                     f"got {value!r}")


def _check_device(device: str) -> None:
    """``cpu``, ``auto``, ``cuda`` or ``cuda:N``; CUDA only when torch sees it."""
    if device in ("cpu", "auto"):
        return
    if re.fullmatch(r"cuda(:\d+)?", device):
        import torch

        if not torch.cuda.is_available():
            raise _Usage(f"--device {device}: CUDA is not available here (use cpu or auto)")
        return
    raise _Usage(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}")


def _parse_comm(text: str | None):
    if text is None:
        return None
    from tvm_sched.cost import Comm

    try:
        a, b = (float(x) for x in text.split(","))
        return Comm(a, b)
    except ValueError as err:
        raise _Usage(f"--comm expects A,B (delay = A*bytes + B), got {text!r}") from err


def _cmd_solve(args: argparse.Namespace) -> int:
    from tvm_sched import datasets
    from tvm_sched.cost import make_objective
    from tvm_sched.solvers import get_solver

    _check_number("--budget", args.budget)
    if args.seed < 0:
        raise _Usage(f"--seed must be >= 0, got {args.seed}")
    try:
        objective = make_objective(args.objective, lanes=args.lanes, comm=_parse_comm(args.comm),
                                   stages=args.stages, ratio=args.ratio)
    except ValueError as err:
        raise _Usage(str(err)) from err
    try:
        solver = get_solver(args.solver, **_parse_options(args.option, args.solver))
    except (TypeError, ValueError) as err:
        raise _Usage(str(err)) from err
    if not solver.supports(objective):
        raise _Usage(f"solver {args.solver!r} does not handle the {objective.name!r} objective "
                     f"(it handles: {', '.join(solver.objectives)})")
    _check_device(args.device)
    path = Path(args.file)
    if path.is_dir():
        raise _Usage(f"{path} is a directory, not a graph file (.stg, .gml, .json)")
    if not path.exists():
        raise _Usage(f"no such file: {path}")
    graph = datasets.read_graph(path)
    try:
        res = solver.solve(graph, objective, budget=args.budget, seed=args.seed,
                           device=args.device)
    except ValueError as err:  # Solver.solve's documented bad-input error (e.g. samples=0)
        raise _Usage(f"solver {args.solver!r}: {err}") from err
    # Ctrl-C during the solve: the solver returned its best so far; show it, then exit 130
    code = 130 if res.info.get("interrupted") else 0
    if args.json:
        d = res.to_dict()
        d["graph"] = {"path": str(path), "nodes": graph.num_nodes, "edges": graph.num_edges}
        print(json.dumps(d))
        return _interrupted_note(code)
    print(f"graph     {path} ({graph.num_nodes} nodes, {graph.num_edges} edges)")
    print(f"solver    {res.solver}")
    print(f"objective {objective.describe()}")
    if len(res):
        print(f"value     {res.value:g}")
    else:
        print("value     none found")
    print(f"proven    {'yes' if res.proven else 'no'} (status {res.status}, lower bound "
          f"{res.bound:g})")
    print(f"time      {res.seconds:.3f} s")
    return _interrupted_note(code)


def _interrupted_note(code: int) -> int:
    if code == 130:
        print("tvm-sched: interrupted: the result above is the best found before Ctrl-C, "
              "not a finished search", file=sys.stderr)
    return code


def _cmd_solvers(args: argparse.Namespace) -> int:
    from tvm_sched.errors import SolverUnavailableError
    from tvm_sched.solvers import solver_class, solver_names

    for name in solver_names():
        try:
            cls = solver_class(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            print(f"{name:12s} {doc}  [{', '.join(cls.objectives)}]")
        except SolverUnavailableError as err:
            print(f"{name:12s} unavailable: {err}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tvm_sched.console import console as make_console
    from tvm_sched.datasets import read_stg_optima, stg_graphs
    from tvm_sched.solvers import solver_names
    from tvm_sched.solvers.compare import print_summary, run_stg, summarize

    if args.graphs < 1:
        raise _Usage(f"--graphs must be >= 1, got {args.graphs}")
    _check_number("--budget", args.budget, strict=True)
    console = make_console()
    graphs = stg_graphs(50)[: args.graphs]
    optima = read_stg_optima()
    solvers = solver_names()
    lanes = [2, 4, 8]
    console.print(
        f"[bold]tvm_sched demo[/bold]: {len(solvers)} solvers on {len(graphs)} STG 50-task "
        f"graphs at {lanes} lanes (makespan, gap to the published optimum; budget "
        f"{args.budget:g} s per solve)"
    )
    total = len(graphs) * len(lanes) * len(solvers)
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("solving", total=total)
        rows = run_stg(graphs, lanes, solvers, budget_s=args.budget, optima=optima,
                       progress=lambda r: bar.advance(task))
    print_summary(summarize(rows), title="STG makespan: gap to the published optimum")
    errors = [r for r in rows if r.error]
    for r in errors:
        console.print(f"[red]{r.solver} on {r.graph} ({r.lanes} lanes): {r.error}")
    return 1 if errors else 0


def _cmd_train_gflownet(args: argparse.Namespace) -> int:
    from tvm_sched.solvers.gflownet.train import run

    path = run(args)
    print(f"checkpoint: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvm-sched", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="schedule one graph file (.stg, .gml, .json)")
    s.add_argument("file")
    s.add_argument("--solver", default="list", help="registered solver name (tvm-sched solvers)")
    s.add_argument("--objective", default="makespan",
                   choices=["makespan", "peak_memory", "planned_memory", "arena_memory", "stage"])
    s.add_argument("--lanes", type=int, default=None, help="lanes for makespan (default 1)")
    s.add_argument("--comm", default=None, metavar="A,B",
                   help="cross-lane delay A*bytes + B (makespan)")
    s.add_argument("--stages", type=int, default=None, help="D for the stage objective")
    s.add_argument("--ratio", type=float, default=None, help="ratio for the stage objective")
    s.add_argument("--budget", type=float, default=None, metavar="S", help="seconds")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu", help="cpu, cuda or auto (tensor solvers)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="solver option (a field of its Config); repeatable")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cmd_solve)

    ls = sub.add_parser("solvers", help="list the registered solvers")
    ls.set_defaults(func=_cmd_solvers)

    d = sub.add_parser("demo", help="compare every solver on a few STG graphs")
    d.add_argument("--graphs", type=int, default=4, help="number of STG 50-task graphs")
    d.add_argument("--budget", type=float, default=2.0, help="seconds per solve")
    d.set_defaults(func=_cmd_demo)

    from tvm_sched.tune.cli import add_parser as add_tune

    add_tune(sub)

    g = sub.add_parser("train-gflownet", help="train the GFlowNet sampler (writes a checkpoint)")
    # its options are added by main() when asked for: the training module imports torch
    g.set_defaults(func=_cmd_train_gflownet)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train-gflownet"]:
        from tvm_sched.solvers.gflownet.train import add_arguments

        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        add_arguments(sub.choices["train-gflownet"])
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (_Usage, TvmSchedError, FileNotFoundError) as err:
        print(f"tvm-sched: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tvm-sched: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
