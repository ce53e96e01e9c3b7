"""The tuning database: append-only JSON lines, one record per measured candidate.

A record's key is (model hash, order hash, target, device key). Each record is written as one
line, flushed and fsynced as soon as its measurement is complete, so a run stopped at any point
(Ctrl-C, a killed process) leaves every finished record readable.

Reading never fails on the file's content: a line that is not valid UTF-8, not JSON, not a JSON
object, lacks a key field, or has a field of the wrong type (:func:`check_record`) is skipped
with one warning naming the file, the line and the reason, and counted in
:attr:`Database.skipped`. A torn last line is one such case. Re-running the same command reads the
file and measures only the keys that are missing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Database", "record_key", "check_record", "KEY_FIELDS"]

log = logging.getLogger(__name__)

FORMAT = 1

#: The fields of a record's key; each must be a string.
KEY_FIELDS = ("model_hash", "order_hash", "target", "device_key")


def record_key(rec: dict[str, Any]) -> tuple[str, str, str, str]:
    return tuple(rec[k] for k in KEY_FIELDS)  # type: ignore[return-value]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _stats(v: Any) -> bool:
    return isinstance(v, dict) and all(_number(v.get(k)) for k in ("median", "q1", "q3"))


def _optional(check):
    return lambda v: v is None or check(v)


#: Fields the tuner reads back, with their type checks (a record may lack the optional ones).
_CHECKS = {
    "latency": _optional(_stats),
    "anchor": _optional(_stats),
    "relative": _optional(_number),
    "planned_bytes": _optional(_int),
    "error": _optional(lambda v: isinstance(v, str)),
    "candidate": lambda v: isinstance(v, str),
    "source": lambda v: isinstance(v, str),
    "baseline": lambda v: isinstance(v, bool),
    "aliases": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    "samples": lambda v: isinstance(v, list) and all(_number(s) for s in v),
    "proxy": lambda v: isinstance(v, dict) and all(_number(s) for s in v.values()),
    "orders": lambda v: isinstance(v, list) and all(
        isinstance(o, list) and all(_int(i) for i in o) for o in v),
}


def check_record(rec: Any) -> str | None:
    """Why ``rec`` is not a usable record (a short reason), or ``None`` when it is.

    Examples
    --------
    >>> check_record({"model_hash": "m", "order_hash": "o", "target": "llvm",
    ...               "device_key": "local", "latency": None})
    >>> check_record({"format": 1})
    'missing field model_hash'
    >>> check_record({"model_hash": "m", "order_hash": "o", "target": "llvm",
    ...               "device_key": "local", "latency": "fast"})
    "field latency has the wrong type ('fast')"
    """
    if not isinstance(rec, dict):
        return f"not a JSON object ({type(rec).__name__})"
    for k in KEY_FIELDS:
        if k not in rec:
            return f"missing field {k}"
        if not isinstance(rec[k], str):
            return f"field {k} has the wrong type ({rec[k]!r:.40})"
    for k, ok in _CHECKS.items():
        if k in rec and not ok(rec[k]):
            return f"field {k} has the wrong type ({rec[k]!r:.40})"
    return None


class Database:
    """Append-only JSONL records under ``path``.

    Attributes
    ----------
    skipped
        Lines skipped (with a warning each) by the latest read.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.skipped = 0

    def _skip(self, lineno: int, why: str) -> None:
        self.skipped += 1
        log.warning("%s:%d: record skipped: %s", self.path, lineno, why)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.skipped = 0
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as err:
                    self._skip(lineno, f"not valid UTF-8 ({err.reason} at byte {err.start})")
                    continue
                except ValueError:
                    self._skip(lineno, "not valid JSON (an interrupted write?)")
                    continue
                if isinstance(rec, dict) and rec.get("format", FORMAT) != FORMAT:
                    self._skip(lineno, f"format {rec.get('format')!r}, expected {FORMAT}")
                    continue
                why = check_record(rec)
                if why is not None:
                    self._skip(lineno, why)
                    continue
                yield rec

    def records(self, model_hash: str | None = None, target: str | None = None,
                device_key: str | None = None) -> dict[tuple, dict[str, Any]]:
        """The latest record per key, optionally filtered."""
        out: dict[tuple, dict[str, Any]] = {}
        for rec in self:
            if model_hash is not None and rec["model_hash"] != model_hash:
                continue
            if target is not None and rec["target"] != target:
                continue
            if device_key is not None and rec["device_key"] != device_key:
                continue
            out[record_key(rec)] = rec
        return out

    def append(self, rec: dict[str, Any]) -> None:
        rec = {"format": FORMAT, **rec}
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a torn previous line must not swallow this one
            needs_newline = False
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    needs_newline = f.read(1) != b"\n"
            with self.path.open("a", encoding="utf-8") as f:
                if needs_newline:
                    f.write("\n")
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
