"""Lane module artifacts: one file holding a plan, its kernel library and its arrays.

Contract
--------
:func:`write_artifact` writes an uncompressed tar of exactly four regular files, format
:data:`EXPORT_FORMAT`: ``format.json`` (the format string and the SHA-256 of the three others),
``plan.json`` (:meth:`~tvm_sched.runtime.plan.LanePlan.to_json`), ``arrays.npz`` (uncompressed
``.npy`` members ``param_<i>`` -- bound parameters -- and ``const_<i>``) and ``kernels.so``.

:func:`read_artifact` reads one back and checks everything that can be checked without running
code, in this order, reading no member's data before every member's header is checked:

1. the path is a regular file (a FIFO or a device is refused, never opened for blocking reads);
2. it is an uncompressed tar of exactly those four members (any other member is refused, as is
   a member given twice), each a regular file (no links, devices, directories or sparse
   files), each declared within the file and within its cap (:data:`MAX_MEMBER_BYTES`);
3. ``format.json`` names this format (``tvm_sched.LaneModule/1``, without checksums, is refused
   with a message to export again) and records the SHA-256 of the three others, which match;
4. the plan is valid (:meth:`~tvm_sched.runtime.plan.LanePlan.validate`);
5. every ``.npy`` header fits the plan before its data is read (no pickles): each constant and
   each weight (parameter ``>= num_input``) that the plan has a tensor for is present with the
   plan's shape and dtype, and no array the plan has no use for is;
6. ``kernels.so`` is an ELF file whose header tables and segments lie inside it (``dlopen`` of a
   truncated library dies of SIGBUS).

Any failure raises one :class:`~tvm_sched.errors.InvalidScheduleError` whose one-line message
names the file and the member (the cause chained), never another exception type.

**Loading the kernel library runs its code** (``dlopen`` runs its constructors):
:func:`tvm_sched.runtime.load` does that after :func:`read_artifact`; load only artifacts you
trust. The checks above catch corruption and malformed files, not a malicious library.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tvm_sched.errors import InvalidScheduleError, TvmSchedError, one_line
from tvm_sched.runtime.plan import LanePlan, TensorSpec, numpy_dtype

__all__ = ["EXPORT_FORMAT", "MAX_MEMBER_BYTES", "Artifact", "read_artifact", "write_artifact"]

EXPORT_FORMAT = "tvm_sched.LaneModule/2"
_OLD_FORMATS = ("tvm_sched.LaneModule/1",)
#: Largest size :func:`read_artifact` accepts per member (bytes, read from the tar header).
MAX_MEMBER_BYTES = {
    "format.json": 64 << 10,
    "plan.json": 64 << 20,
    "arrays.npz": 16 << 30,
    "kernels.so": 4 << 30,
}
_CHECKSUMMED = ("plan.json", "arrays.npz", "kernels.so")
_MAX_TAR_MEMBERS = 16


@dataclass(frozen=True)
class Artifact:
    """What :func:`read_artifact` found, checked: the plan, the bound parameters (index ->
    array), the constants (in plan numbering) and the bytes of the kernel library."""

    plan: LanePlan
    bound: dict[int, np.ndarray]
    constants: list[np.ndarray]
    library: bytes


def write_artifact(path: str | Path, plan: LanePlan, arrays: Mapping[str, np.ndarray],
                   write_library: Callable[[str], object]) -> Path:
    """Write an artifact (see the module docstring).

    Parameters
    ----------
    path
        The file to write.
    plan
        The lane plan.
    arrays
        ``param_<i>`` and ``const_<i>`` arrays.
    write_library
        Writes the kernel library to the path it is given.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_") as tmp:
        lib_path = Path(tmp) / "kernels.so"
        write_library(str(lib_path))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members = {"plan.json": plan.to_json().encode(), "arrays.npz": buf.getvalue()}
        sums = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
        sums["kernels.so"] = _sha256_file(lib_path)
        header = json.dumps({"format": EXPORT_FORMAT, "sha256": sums}).encode()
        with tarfile.open(path, "w") as tar:
            for name, data in (("format.json", header), *members.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
            tar.add(str(lib_path), arcname="kernels.so")
    return path


def read_artifact(path: str | Path, *, threads_per_lane: int | None = None) -> Artifact:
    """Read and check an artifact without running any of its code (see the module docstring).

    Parameters
    ----------
    path
        The file.
    threads_per_lane
        Override the plan's TVM threads per lane.

    Returns
    -------
    Artifact
        The checked contents.

    Raises
    ------
    InvalidScheduleError
        Anything wrong with the file or a member; one line naming the file and the member.
    """
    name = str(path)
    with _open_regular(name) as (f, size):
        tar = _open_tar(f, name)
        with tar:
            infos = _read_members(tar, name, size)
            sums = _read_format(tar, infos["format.json"], name)
            plan = _read_plan(tar, infos["plan.json"], sums["plan.json"], name)
            if threads_per_lane is not None:
                plan = plan.with_threads(threads_per_lane)
            bound, consts = _read_arrays(tar, infos["arrays.npz"], sums["arrays.npz"], plan, name)
            library = _read_kernels(tar, infos["kernels.so"], sums["kernels.so"], name)
    return Artifact(plan, bound, consts, library)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _member_errors(where: str):
    """Any error of parsing untrusted bytes -> one :class:`InvalidScheduleError` naming
    ``where`` (the stdlib's tar, zip, JSON and npy readers raise no closed set of types)."""
    try:
        yield
    except (InvalidScheduleError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - see the docstring; the cause is chained
        raise InvalidScheduleError(f"{where} is corrupt: {one_line(err, with_type=True)}"
                                   ) from err


@contextmanager
def _open_regular(name: str):
    """``(binary file, size)`` of ``name``, refused unless it is a regular file (a FIFO or a
    device would block or never end); opened without blocking, then checked."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags)
    except OSError as err:
        raise InvalidScheduleError(f"{name}: cannot open the lane module: {one_line(err)}"
                                   ) from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidScheduleError(f"{name} is not a regular file; a lane module is one "
                                       "file written by LaneModule.export")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f, st.st_size


def _open_tar(f, name: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=f, mode="r:")
    except Exception as err:  # noqa: BLE001 - tarfile raises several types on bad input
        raise InvalidScheduleError(f"{name} is not an exported lane module (not an "
                                   f"uncompressed tar: {one_line(err)})") from err


def _read_members(tar: tarfile.TarFile, name: str, size: int) -> dict[str, tarfile.TarInfo]:
    """The four members' headers, read before any member's data: each a regular file, known,
    once, within its cap and within the file."""
    infos: dict[str, tarfile.TarInfo] = {}
    with _member_errors(f"{name} (tar headers)"):
        for count, info in enumerate(tar):
            if count >= _MAX_TAR_MEMBERS:
                raise InvalidScheduleError(f"{name} is not an exported lane module (more than "
                                           f"{_MAX_TAR_MEMBERS} members)")
            shown = info.name if info.name in MAX_MEMBER_BYTES else repr(info.name[:60])
            where = f"{name}: {shown}"
            if info.name not in MAX_MEMBER_BYTES:
                raise InvalidScheduleError(f"{where} is not a member of an exported lane module "
                                           f"(they are {', '.join(MAX_MEMBER_BYTES)})")
            if info.name in infos:
                raise InvalidScheduleError(f"{where} appears twice in the tar")
            if not info.isreg() or info.issparse():
                raise InvalidScheduleError(f"{where} is not a regular file member (a link, "
                                           "device, directory or sparse file)")
            if info.size > MAX_MEMBER_BYTES[info.name]:
                raise InvalidScheduleError(f"{where} declares {info.size} bytes; at most "
                                           f"{MAX_MEMBER_BYTES[info.name]} are read")
            if info.offset_data + info.size > size:
                raise InvalidScheduleError(f"{where} declares {info.size} bytes, past the end "
                                           f"of the {size}-byte file (truncated)")
            infos[info.name] = info
    missing = [m for m in MAX_MEMBER_BYTES if m not in infos]
    if missing:
        raise InvalidScheduleError(f"{name} is not an exported lane module (missing "
                                   f"{', '.join(missing)})")
    return infos


def _read_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, where: str) -> bytes:
    with _member_errors(where):
        data = tar.extractfile(info).read(info.size)
    if len(data) != info.size:
        raise InvalidScheduleError(f"{where} is truncated ({len(data)} of {info.size} bytes)")
    return data


def _verify(digest: str, expected: str, where: str) -> None:
    if digest != expected:
        raise InvalidScheduleError(f"{where} does not match its SHA-256 checksum in "
                                   "format.json (corrupt or modified)")


def _read_format(tar: tarfile.TarFile, info: tarfile.TarInfo, name: str) -> dict[str, str]:
    """The checksums ``format.json`` records, once its format is this one."""
    where = f"{name}: format.json"
    with _member_errors(where):
        fmt = json.loads(_read_bytes(tar, info, where))
    got = fmt.get("format") if isinstance(fmt, dict) else None
    if got in _OLD_FORMATS:
        raise InvalidScheduleError(f"{where}: format {got} (written by an older tvm_sched, "
                                   "without checksums) is no longer read; export the module "
                                   "again")
    if got != EXPORT_FORMAT:
        shown = repr(got)[:60] if isinstance(got, str) else "missing"
        raise InvalidScheduleError(f"{where}: format {shown}; this tvm_sched reads "
                                   f"{EXPORT_FORMAT}")
    sums = fmt.get("sha256")
    for member in _CHECKSUMMED:
        value = sums.get(member) if isinstance(sums, dict) else None
        if not (isinstance(value, str) and len(value) == 64
                and all(c in "0123456789abcdef" for c in value)):
            raise InvalidScheduleError(f"{where} has no SHA-256 checksum of {member}")
    return {m: sums[m] for m in _CHECKSUMMED}


def _read_plan(tar: tarfile.TarFile, info: tarfile.TarInfo, digest: str, name: str) -> LanePlan:
    where = f"{name}: plan.json"
    data = _read_bytes(tar, info, where)
    _verify(hashlib.sha256(data).hexdigest(), digest, where)
    try:
        plan = LanePlan.from_json(data.decode("utf-8"))
        for t in plan.tensors:  # the host arena holds them as numpy views: checked before
            if t.kind == "arena":  # the kernel library is opened
                numpy_dtype(t.dtype)
        return plan
    except UnicodeDecodeError as err:
        raise InvalidScheduleError(f"{where} is not UTF-8 text ({err.reason})") from err
    except TvmSchedError as err:  # InvalidScheduleError, CycleError
        raise InvalidScheduleError(f"{where}: {one_line(err)}") from err


def _read_arrays(tar: tarfile.TarFile, info: tarfile.TarInfo, digest: str, plan: LanePlan,
                 name: str) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
    """Bound parameters and constants, each checked against the plan before it is read."""
    where = f"{name}: arrays.npz"
    with _member_errors(where):
        f = tar.extractfile(info)
        h = hashlib.sha256()
        left = info.size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise InvalidScheduleError(f"{where} is truncated")
            h.update(chunk)
            left -= len(chunk)
        _verify(h.hexdigest(), digest, where)
        f.seek(0)
        specs = {(t.kind, t.index): t for t in plan.tensors if t.kind in ("param", "const")}
        with zipfile.ZipFile(f) as z:
            arrays = {}
            for zi in z.infolist():
                key, arr = _read_npy(z, zi, specs, where)
                if key in arrays:
                    raise InvalidScheduleError(f"{where} holds {key} twice")
                arrays[key] = arr
    return _bind_arrays(arrays, plan, where)


def _array_spec(key: str, specs: Mapping[tuple[str, int], TensorSpec], where: str
                ) -> TensorSpec | None:
    """The plan's spec for array ``key`` (``param_<i>`` or ``const_<i>``); None for a constant
    no tensor reads."""
    kind, _, idx = key.partition("_")
    if (kind not in ("param", "const") or not (idx.isascii() and idx.isdigit())
            or len(idx) > 9 or str(int(idx)) != idx):
        raise InvalidScheduleError(f"{where} holds {key[:40]!r}, which is not param_<i> or "
                                   "const_<i>")
    spec = specs.get((kind, int(idx)))
    if spec is None and kind == "param":
        raise InvalidScheduleError(f"{where} holds {key}, which is no parameter the plan reads")
    return spec


def _read_npy(z: zipfile.ZipFile, zi: zipfile.ZipInfo,
              specs: Mapping[tuple[str, int], TensorSpec], where: str) -> tuple[str, np.ndarray]:
    """One ``.npy`` member: its header checked against the plan, then its data (no pickles)."""
    if not zi.filename.endswith(".npy"):
        raise InvalidScheduleError(f"{where} holds {zi.filename[:40]!r}, not an .npy array")
    key = zi.filename[:-4]
    spec = _array_spec(key, specs, where)
    if zi.compress_type != zipfile.ZIP_STORED:
        raise InvalidScheduleError(f"{where}: {key} is compressed; exported arrays are stored")
    with z.open(zi) as m:
        version = np.lib.format.read_magic(m)
        if version not in ((1, 0), (2, 0)):
            raise InvalidScheduleError(f"{where}: {key} has .npy format version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _fortran, dtype = read_header(m)
    if dtype.hasobject or (spec is not None and (tuple(shape) != spec.shape
                                                 or str(dtype) != spec.dtype)):
        expect = f"; the plan expects {spec.dtype}{list(spec.shape)}" if spec else ""
        raise InvalidScheduleError(f"{where}: {key} is {dtype}{list(shape)}{expect}")
    n = 1
    for d in shape:
        n *= int(d)
    if n * dtype.itemsize > zi.file_size:
        raise InvalidScheduleError(f"{where}: {key} declares {n * dtype.itemsize} bytes of data "
                                   f"in a {zi.file_size}-byte member")
    with z.open(zi) as m:
        return key, np.lib.format.read_array(m, allow_pickle=False)


def _bind_arrays(arrays: dict[str, np.ndarray], plan: LanePlan, where: str
                 ) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
    bound = {int(k[6:]): v for k, v in arrays.items() if k.startswith("param_")}
    const_ids = sorted(int(k[6:]) for k in arrays if k.startswith("const_"))
    if const_ids != list(range(len(const_ids))):
        gap = next(i for i in range(len(const_ids) + 1) if i not in const_ids)
        raise InvalidScheduleError(f"{where} holds const_{const_ids[-1]} but not const_{gap}")
    for t in plan.tensors:
        if t.kind == "const" and t.index >= len(const_ids):
            raise InvalidScheduleError(f"{where} lacks const_{t.index}, a constant the plan "
                                       "reads")
        if t.kind == "param" and t.index >= plan.num_input and t.index not in bound:
            raise InvalidScheduleError(f"{where} lacks param_{t.index}, a weight of the plan "
                                       f"(parameters from {plan.num_input} on are weights)")
    return bound, [arrays[f"const_{i}"] for i in range(len(const_ids))]


def _read_kernels(tar: tarfile.TarFile, info: tarfile.TarInfo, digest: str, name: str) -> bytes:
    where = f"{name}: kernels.so"
    data = _read_bytes(tar, info, where)
    _verify(hashlib.sha256(data).hexdigest(), digest, where)
    _check_elf(data, where)
    return data


def _check_elf(data: bytes, where: str) -> None:
    """``data`` is an ELF file whose program and section header tables and every segment's
    file bytes lie inside it (what ``dlopen`` maps; a truncated library dies with SIGBUS)."""
    size = len(data)
    if size < 64 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise InvalidScheduleError(f"{where} is not an ELF shared library ({size} bytes)")
    e = "<" if data[5] == 1 else ">"
    wide = data[4] == 2  # ELFCLASS64
    word = e + ("Q" if wide else "I")
    # e_phoff, e_shoff; e_phentsize, e_phnum, e_shentsize, e_shnum; p_offset, p_filesz
    phoff, shoff = struct.unpack_from(word + word[1], data, 32 if wide else 28)
    phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, 54 if wide else 42)
    at_offset, at_filesz = (8, 32) if wide else (4, 16)
    bad = (phentsize < (56 if wide else 32) or phoff + phnum * phentsize > size
           or (shnum and shoff + shnum * shentsize > size))
    for k in range(0 if bad else phnum):
        (offset,) = struct.unpack_from(word, data, phoff + k * phentsize + at_offset)
        (filesz,) = struct.unpack_from(word, data, phoff + k * phentsize + at_filesz)
        bad = bad or offset + filesz > size
    if bad:
        raise InvalidScheduleError(f"{where} is a truncated or malformed ELF file ({size} bytes)")
