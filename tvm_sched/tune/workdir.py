"""The tuner's work directory: checked before any work, locked while in use, written atomically.

- :func:`check_work_dir` says whether a directory can hold a run's files *without creating
  anything*: the path must be a directory or not exist yet, and the directory (or, when it does
  not exist, its nearest existing parent) must be writable. The tuner and ``tvm-sched tune`` call
  it before importing, proposing, building or measuring anything.
- :func:`lock_work_dir` takes an exclusive lock (the ``filelock`` package; an OS file lock that
  is released when the process dies) so that two runs never measure into one directory at once.
  A second run fails at once with a :class:`~tvm_sched.errors.TuneInputError` naming the lock.
- :func:`atomic_write` and :func:`atomic_path` replace a file in one step (write a temporary file
  in the same directory, fsync it, ``os.replace`` it over the old one, fsync the directory): a
  reader sees the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tvm_sched.errors import TuneInputError

__all__ = ["check_work_dir", "lock_work_dir", "atomic_write", "atomic_path", "LOCK_NAME"]

LOCK_NAME = ".tvm-sched.lock"


def check_work_dir(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a run can write there; nothing is created.

    Parameters
    ----------
    path
        The work directory, existing or not.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TuneInputError
        The path (or a parent) is a file, or the directory is not writable (read-only file
        system, permissions).
    """
    work = Path(path)
    if work.exists() and not work.is_dir():
        raise TuneInputError(f"work dir {str(work)!r} is a file, not a directory")
    probe = work
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise TuneInputError(f"work dir {str(work)!r} cannot be created: {str(probe)!r} is a "
                             f"file")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == work else f"cannot be created in {str(probe)!r}"
        raise TuneInputError(f"work dir {str(work)!r} {what} (read-only or no permission)")
    return work


@contextlib.contextmanager
def lock_work_dir(path: str | Path) -> Iterator[Path]:
    """Create ``path`` if needed and hold its exclusive lock for the ``with`` block.

    Directories it created are removed again at the end if they are still empty (a run that
    stopped on bad input writes nothing).

    Parameters
    ----------
    path
        The work directory.

    Yields
    ------
    Path
        The locked directory.

    Raises
    ------
    TuneInputError
        The directory cannot be created or written, or another run holds its lock.
    """
    from filelock import FileLock, Timeout

    work = check_work_dir(path)
    created = [p for p in (work, *work.parents) if not p.exists()]
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TuneInputError(f"work dir {str(work)!r} cannot be created: "
                             f"{err.strerror or err}") from None
    lock = FileLock(str(work / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise TuneInputError(f"work dir {str(work)!r} is in use by another tvm-sched tune run "
                             f"(lock {str(work / LOCK_NAME)!r}); wait for it to finish or give "
                             f"another --work-dir") from None
    except OSError as err:
        raise TuneInputError(f"work dir {str(work)!r} cannot be locked: "
                             f"{err.strerror or err}") from None
    try:
        yield work
    finally:
        lock.release()
        # a run that wrote nothing leaves nothing behind (only in a directory it created, so
        # no other run can be waiting on this lock file)
        if created and [p.name for p in work.iterdir()] == [LOCK_NAME]:
            with contextlib.suppress(OSError):
                (work / LOCK_NAME).unlink()
        for p in created:
            try:
                p.rmdir()
            except OSError:
                break


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, rare)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write; it replaces ``path`` when the
    ``with`` block ends without an exception, and is removed otherwise. The new file gets the
    permissions a plain ``open`` would give it (``mkstemp`` makes it owner-only; a shared
    library keeps the execute bits its writer gave it).

    Parameters
    ----------
    path
        The file to replace; its directory must exist.

    Yields
    ------
    Path
        The temporary path to write.
    """
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}",
                               dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with tmp_path.open("rb+") as f:
            os.fsync(f.fileno())
        executable = tmp_path.stat().st_mode & 0o111
        tmp_path.chmod((0o777 if executable else 0o666) & ~_umask())
        os.replace(tmp_path, dest)
        _fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) in one step.

    Parameters
    ----------
    path
        The file to replace; its directory must exist.
    data
        Text (written as UTF-8) or bytes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "a.txt", "one"); atomic_write(d / "a.txt", "two")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('two', ['a.txt'])
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
