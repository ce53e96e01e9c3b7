"""The tuning database: append-only JSON lines of :class:`~tvm_sched.tune.record.TuneRecord`.

Contract
--------
- A record's key is (model hash, candidate hash, full target string, device key); the latest
  line of a key wins. Both tuning paths keep their records here (``records.jsonl`` for VM
  orders, ``lane_records.jsonl`` for lane plans).
- :meth:`Database.append` writes one line (:meth:`TuneRecord.to_dict`), flushed and fsynced as
  soon as its measurement is complete, so a run stopped at any point (Ctrl-C, a killed
  process) leaves every finished record readable. A torn last line does not swallow the next.
- Reading never fails on the file's content: a line that is not valid UTF-8, not JSON, or not
  a record (:meth:`TuneRecord.from_dict`: a missing field, a field of the wrong type, another
  format) is skipped with one warning naming the file, the line and the reason, and counted in
  :attr:`Database.skipped`. A torn last line is one such case. Re-running the same command
  reads the file and measures only the keys that are missing.
- ``canonical_target`` (optional) maps a line's target string to the full string records are
  keyed by now (:func:`tvm_sched.tune.model.target_key`), so lines keyed by a short target
  (``"llvm"``) share keys with the full one; a string it rejects (``ValueError``) stays as it
  is written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from tvm_sched.tune.record import TuneRecord

__all__ = ["Database"]

log = logging.getLogger(__name__)


class Database:
    """Append-only JSONL records under ``path`` (see the module docstring).

    Parameters
    ----------
    path
        The JSONL file (created with its directory on the first :meth:`append`).
    canonical_target
        Maps a record's target text to its canonical form when read (a ``ValueError`` keeps
        the text); records are then compared and filtered by the canonical form.

    Attributes
    ----------
    skipped
        Lines skipped (with a warning each) by the latest read.
    """

    def __init__(self, path: str | Path, *,
                 canonical_target: Callable[[str], str] | None = None):
        self.path = Path(path)
        self.canonical_target = canonical_target
        self._targets: dict[str, str] = {}
        self._lock = threading.Lock()
        self.skipped = 0

    def _skip(self, lineno: int, why: str) -> None:
        self.skipped += 1
        log.warning("%s:%d: record skipped: %s", self.path, lineno, why)

    def _target(self, text: str) -> str:
        if self.canonical_target is None:
            return text
        if text not in self._targets:
            try:
                self._targets[text] = self.canonical_target(text)
            except ValueError:
                self._targets[text] = text
        return self._targets[text]

    def __iter__(self) -> Iterator[TuneRecord]:
        self.skipped = 0
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    rec = TuneRecord.from_dict(json.loads(raw.decode("utf-8")))
                except UnicodeDecodeError as err:
                    self._skip(lineno, f"not valid UTF-8 ({err.reason} at byte {err.start})")
                    continue
                except json.JSONDecodeError:
                    self._skip(lineno, "not valid JSON (an interrupted write?)")
                    continue
                except (TypeError, ValueError) as err:
                    self._skip(lineno, str(err))
                    continue
                target = self._target(rec.target)
                yield rec if target == rec.target else dataclasses.replace(rec, target=target)

    def records(self, model_hash: str | None = None, target: str | None = None,
                device_key: str | None = None) -> dict[tuple, TuneRecord]:
        """The latest record per key, optionally filtered.

        Unreadable lines are skipped with a warning (counted in ``skipped``).

        Parameters
        ----------
        model_hash
            Keep only records of this model.
        target
            Keep only records of this (canonical) target.
        device_key
            Keep only records of this RPC device key.

        Returns
        -------
        dict
            Record key to the last record of that key in the file.
        """
        out: dict[tuple, TuneRecord] = {}
        for rec in self:
            if model_hash is not None and rec.model_hash != model_hash:
                continue
            if target is not None and rec.target != target:
                continue
            if device_key is not None and rec.device_key != device_key:
                continue
            out[rec.key] = rec
        return out

    def append(self, rec: TuneRecord) -> None:
        """Append one record as a JSON line and ``fsync`` it (thread-safe).

        A torn last line (an interrupted write) is ended first, so it cannot swallow this one.

        Parameters
        ----------
        rec
            The record; its values must be finite (``allow_nan=False``).

        Raises
        ------
        ValueError
            When a value of the record is not finite (nothing is written).
        """
        line = json.dumps(rec.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"
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
