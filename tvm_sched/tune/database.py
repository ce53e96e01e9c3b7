"""The tuning database: append-only JSON lines, one record per measured candidate.

A record's key is (model hash, order hash, target, device key). Each record is written as one
line, flushed and fsynced as soon as its measurement is complete, so a run stopped at any point
(Ctrl-C, a killed process) leaves every finished record readable; a torn last line is skipped
with a warning when the file is read back. Re-running the same command reads the file and
measures only the keys that are missing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Database", "record_key"]

log = logging.getLogger(__name__)

FORMAT = 1


def record_key(rec: dict[str, Any]) -> tuple[str, str, str, str]:
    return (rec["model_hash"], rec["order_hash"], rec["target"], rec["device_key"])


class Database:
    """Append-only JSONL records under ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s:%d: unreadable record skipped (an interrupted write?)",
                                self.path, lineno)
                    continue
                if isinstance(rec, dict) and rec.get("format") == FORMAT:
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
