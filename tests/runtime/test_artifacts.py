"""Lane artifacts and modules are safe to share and to load (issue 20).

- one module called from two threads returns each thread its own outputs (both engines);
- ``load`` checks everything before it ``dlopen``s ``kernels.so``: the file, the tar headers
  (member sizes, kinds, names), SHA-256 checksums, the plan, the arrays against the plan and the
  ELF headers; whatever is wrong raises one :class:`InvalidScheduleError` naming the file and the
  member, never another exception, and never a crash (a truncated library used to die of SIGBUS).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading

import numpy as np
import pytest

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.runtime import LaneModule, load
from tvm_sched.runtime import artifact as art_mod
from tvm_sched.runtime import module as module_mod

pytestmark = pytest.mark.integration

_MODEL = "darts"  # has constants in main (a BatchNorm after a concatenate stays unfolded)


@pytest.fixture(scope="module")
def artifact(compiled, random_schedule, tmp_path_factory):
    """(path of an exported 2-lane module, its plan, inputs, reference outputs)."""
    kernels, inputs, ref = compiled(_MODEL)
    sched = random_schedule(kernels.graph, 2, np.random.default_rng(7))
    path = tmp_path_factory.mktemp("artifact") / "model.tar"
    with kernels.module(sched, engine="python", allow_oversubscribe=True) as lm:
        lm.export(path)
        return path, lm.plan, inputs, ref


@pytest.fixture()
def dlopen(monkeypatch):
    """Records every kernel library ``load`` opens (and still opens it)."""
    import tvm

    opened: list[str] = []
    real = tvm.runtime.load_module

    def spy(path, *args, **kw):
        opened.append(str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(tvm.runtime, "load_module", spy)
    return opened


def _members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _write(path, members: dict[str, bytes], *, rehash: bool = True):
    """A well-formed tar of ``members``; with ``rehash``, format.json's checksums are recomputed
    for the members given (as a crafted artifact would)."""
    members = dict(members)
    if rehash and "format.json" in members:
        fmt = json.loads(members["format.json"])
        fmt["sha256"] = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()
                         if k != "format.json"}
        members["format.json"] = json.dumps(fmt).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _refused(path, dlopen, match: str = "", *, member: str | None = None) -> str:
    """``load(path)`` raises one one-line InvalidScheduleError naming the file (and ``member``)
    before any kernel library is opened; returns the message."""
    with pytest.raises(InvalidScheduleError, match=match) as info:
        load(path, engine="python", allow_oversubscribe=True).close()
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    if member is not None:
        assert member in msg, msg
    assert dlopen == [], f"kernels were loaded before the artifact was refused: {msg}"
    return msg


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _arrays(members) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(members["arrays.npz"])) as z:
        return {k: z[k] for k in z.files}


# -- item 4: one module, two threads -------------------------------------------------------------

def _engines():
    from tvm_sched.runtime import native_engine as native

    return ["python", pytest.param("native", marks=pytest.mark.skipif(
        not native.available(), reason="the native lane engine is not built"))]


@pytest.mark.parametrize("engine", _engines())
def test_two_threads_each_get_their_own_outputs(compiled, random_schedule, engine):
    kernels, inputs, ref = compiled(_MODEL)
    other = [np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype) for x in inputs]
    want = {0: ref, 1: kernels.reference(*other)}
    assert not np.array_equal(want[0][0], want[1][0])
    sched = random_schedule(kernels.graph, 2, np.random.default_rng(5))
    wrong = {0: 0, 1: 0}
    errors: list[BaseException] = []
    with kernels.module(sched, engine=engine, allow_oversubscribe=True) as lm:
        start = threading.Barrier(2)

        def worker(k: int, args) -> None:
            try:
                start.wait()
                for _ in range(300):
                    outs = lm(*args)
                    wrong[k] += not all(np.array_equal(a, b) for a, b in zip(outs, want[k],
                                                                             strict=True))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(0, inputs)),
                   threading.Thread(target=worker, args=(1, other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert wrong == {0: 0, 1: 0}


def test_run_time_and_set_inputs_take_the_module_lock(compiled):
    kernels, inputs, _ = compiled(_MODEL)
    with kernels.module(None, engine="python") as lm:
        for call in (lm.run, lambda: lm.set_inputs(*inputs), lambda: lm.time(1, 1), lm.outputs,
                     lambda: lm(*inputs)):
            held, release = threading.Event(), threading.Event()

            def hold(held=held, release=release) -> None:
                with getattr(lm, "_lock", threading.Lock()):  # a lock of its own: not locked
                    held.set()
                    release.wait(10.0)

            holder = threading.Thread(target=hold)
            holder.start()
            assert held.wait(10.0)
            waiter = threading.Thread(target=call)
            waiter.start()
            waiter.join(0.1)
            blocked = waiter.is_alive()
            release.set()
            holder.join()
            waiter.join()
            assert blocked, "a call ran while another thread held the module"


# -- item 7: checksums, ELF checks, format version -----------------------------------------------

def test_export_records_checksums_of_every_member(artifact):
    path, plan, inputs, ref = artifact
    members = _members(path)
    fmt = json.loads(members["format.json"])
    assert fmt["format"] == art_mod.EXPORT_FORMAT == "tvm_sched.LaneModule/2"
    assert module_mod.EXPORT_FORMAT == art_mod.EXPORT_FORMAT
    assert fmt["sha256"] == {k: hashlib.sha256(members[k]).hexdigest()
                             for k in ("plan.json", "arrays.npz", "kernels.so")}
    with load(path, engine="python", allow_oversubscribe=True) as back:
        assert back.plan == plan
        assert all(np.array_equal(a, b) for a, b in zip(back(*inputs), ref, strict=True))


@pytest.mark.parametrize("member", ["plan.json", "arrays.npz", "kernels.so"])
def test_a_member_that_does_not_match_its_checksum_is_refused(artifact, tmp_path, dlopen,
                                                              member):
    members = _members(artifact[0])
    data = bytearray(members[member])
    data[len(data) // 2] ^= 0x01
    members[member] = bytes(data)
    bad = _write(tmp_path / "flipped.tar", members, rehash=False)
    _refused(bad, dlopen, "does not match its SHA-256 checksum", member=member)


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.9])
def test_a_truncated_kernel_library_is_refused_without_crashing(artifact, tmp_path, dlopen,
                                                                fraction):
    members = _members(artifact[0])
    members["kernels.so"] = members["kernels.so"][:int(len(members["kernels.so"]) * fraction)]
    _refused(_write(tmp_path / "sums.tar", members, rehash=False), dlopen, "checksum",
             member="kernels.so")
    # the same library with a matching checksum: the ELF headers give it away
    _refused(_write(tmp_path / "crafted.tar", members), dlopen, "truncated or malformed ELF",
             member="kernels.so")


@pytest.mark.parametrize("data", [b"", b"\x7fELF", b"#!/bin/sh\n" * 100,
                                  b"\x7fELF\x02\x01\x01" + b"\xff" * 100])
def test_a_kernel_library_that_is_not_elf_is_refused(artifact, tmp_path, dlopen, data):
    members = _members(artifact[0])
    members["kernels.so"] = data
    _refused(_write(tmp_path / "notelf.tar", members), dlopen, "ELF", member="kernels.so")


def test_the_old_format_without_checksums_asks_for_a_new_export(artifact, tmp_path, dlopen):
    members = _members(artifact[0])
    members["format.json"] = json.dumps({"format": "tvm_sched.LaneModule/1"}).encode()
    _refused(_write(tmp_path / "old.tar", members, rehash=False), dlopen, "export the module again",
             member="format.json")
    members["format.json"] = json.dumps({"format": art_mod.EXPORT_FORMAT}).encode()
    _refused(_write(tmp_path / "nosums.tar", members, rehash=False), dlopen,
             "no SHA-256 checksum of plan.json", member="format.json")


# -- item 12: sizes and kinds come from the tar headers, before any data is read -----------------

def _tar_with(path, members: dict[str, bytes], extra: list[tuple[tarfile.TarInfo, bytes | None]]):
    _write(path, members)
    with tarfile.open(path, "a") as tar:
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _raw_tar(path, entries: list[tuple[tarfile.TarInfo, bytes]]):
    """A tar written block by block: each header, then ``data`` padded to 512 bytes (``data``
    may be shorter than the header's size), then the end-of-archive blocks."""
    with open(path, "wb") as f:
        for info, data in entries:
            f.write(info.tobuf(tarfile.GNU_FORMAT))
            f.write(data + b"\0" * (-len(data) % 512))
        f.write(b"\0" * 1024)
    return path


def test_a_member_declaring_more_than_its_cap_is_refused_unread(artifact, tmp_path, dlopen):
    members = _members(artifact[0])
    entries = []
    for name, data in members.items():
        info = tarfile.TarInfo(name)
        info.size = len(data) if name != "plan.json" else 12 << 30  # 12 GB in a small file
        entries.append((info, data))
    path = _raw_tar(tmp_path / "huge.tar", entries)
    assert path.stat().st_size < 64 << 20
    _refused(path, dlopen, r"declares 12884901888 bytes; at most 67108864", member="plan.json")
    entries[1][0].size = 1 << 20  # within the cap, past the end of the file
    entries = [entries[0], entries[2], entries[3], entries[1]]
    _refused(_raw_tar(tmp_path / "past.tar", entries), dlopen, "past the end of the",
             member="plan.json")


def test_member_caps_apply_to_every_member(artifact, tmp_path, dlopen, monkeypatch):
    for member in ("format.json", "plan.json", "arrays.npz", "kernels.so"):
        monkeypatch.setitem(art_mod.MAX_MEMBER_BYTES, member, 10)
        _refused(artifact[0], dlopen, "; at most 10 are read", member=member)
        monkeypatch.undo()


def test_a_member_past_the_end_of_the_file_is_refused(artifact, tmp_path, dlopen):
    data = artifact[0].read_bytes()
    with tarfile.open(artifact[0]) as tar:
        info = tar.getmember("arrays.npz")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:info.offset_data + info.size // 2])
    _refused(cut, dlopen, "past the end", member="arrays.npz")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                  tarfile.FIFOTYPE, tarfile.DIRTYPE, tarfile.GNUTYPE_SPARSE])
def test_members_that_are_not_regular_files_are_refused(artifact, tmp_path, dlopen, kind):
    members = _members(artifact[0])
    members.pop("plan.json")
    info = tarfile.TarInfo("plan.json")
    info.type = kind
    info.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    _refused(_tar_with(tmp_path / "link.tar", members, [(info, None)]), dlopen,
             "not a regular file member", member="plan.json")


def test_unknown_and_repeated_members_are_refused(artifact, tmp_path, dlopen):
    members = _members(artifact[0])
    extra = tarfile.TarInfo("README")
    extra.size = 2
    _refused(_tar_with(tmp_path / "extra.tar", members, [(extra, b"hi")]), dlopen,
             "is not a member of an exported lane module", member="README")
    odd = tarfile.TarInfo("plan.json\nkernels.so")
    _refused(_tar_with(tmp_path / "odd.tar", members, [(odd, b"")]), dlopen,
             "is not a member", member=repr("plan.json\nkernels.so"))
    again = tarfile.TarInfo("plan.json")
    again.size = len(members["plan.json"])
    _refused(_tar_with(tmp_path / "twice.tar", members, [(again, members["plan.json"])]), dlopen,
             "appears twice", member="plan.json")
    members.pop("arrays.npz")
    _refused(_write(tmp_path / "missing.tar", members), dlopen, "missing arrays.npz")


def test_a_compressed_tar_is_refused(artifact, tmp_path, dlopen):
    gz = tmp_path / "model.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        tar.add(str(artifact[0]), arcname="model.tar")
    _refused(gz, dlopen, "not an uncompressed tar")


# -- item 14: only regular files are opened ------------------------------------------------------

def _refused_soon(path) -> str:
    result: list = []

    def attempt() -> None:
        try:
            load(path)
        except BaseException as err:  # noqa: BLE001 - checked below
            result.append(err)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(20.0)
    assert not t.is_alive(), f"load({path}) did not return"
    assert isinstance(result[0], InvalidScheduleError), repr(result[0])
    return str(result[0])


def test_devices_fifos_and_directories_are_refused(tmp_path):
    assert "not a regular file" in _refused_soon("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "not a regular file" in _refused_soon(fifo)
    assert "not a regular file" in _refused_soon(tmp_path)
    assert "cannot open" in _refused_soon(tmp_path / "nope.tar")


# -- item 17: the arrays must fit the plan -------------------------------------------------------

def test_a_missing_weight_or_constant_is_refused(artifact, tmp_path, dlopen):
    path, plan, _, _ = artifact
    members = _members(path)
    arrays = _arrays(members)
    weight = f"param_{plan.num_input}"
    assert weight in arrays and "const_0" in arrays
    members["arrays.npz"] = _npz(**{k: v for k, v in arrays.items() if k != weight})
    _refused(_write(tmp_path / "noweight.tar", members), dlopen, f"lacks {weight}, a weight",
             member="arrays.npz")
    last = max(int(k[6:]) for k in arrays if k.startswith("const_"))
    members["arrays.npz"] = _npz(**{k: v for k, v in arrays.items() if k != f"const_{last}"})
    _refused(_write(tmp_path / "noconst.tar", members), dlopen, f"lacks const_{last}",
             member="arrays.npz")
    members["arrays.npz"] = _npz(**{k: v for k, v in arrays.items() if k != "const_0"})
    _refused(_write(tmp_path / "gap.tar", members), dlopen, "but not const_0",
             member="arrays.npz")


@pytest.mark.parametrize("change, match", [
    (lambda a: a.astype(np.float64), "float64.*the plan expects float32"),
    (lambda a: a.reshape(-1), "the plan expects"),
    (lambda a: np.array([a, None], dtype=object), "object"),
])
def test_a_weight_of_another_shape_or_dtype_is_refused(artifact, tmp_path, dlopen, change,
                                                       match):
    path, plan, _, _ = artifact
    members = _members(path)
    arrays = _arrays(members)
    key = f"param_{plan.num_input}"
    arrays[key] = change(arrays[key])
    buf = io.BytesIO()
    np.savez(buf, **arrays, allow_pickle=True)
    members["arrays.npz"] = buf.getvalue()
    _refused(_write(tmp_path / "shape.tar", members), dlopen, match, member="arrays.npz")


def test_unknown_or_compressed_arrays_are_refused(artifact, tmp_path, dlopen):
    path, plan, _, _ = artifact
    members = _members(path)
    arrays = _arrays(members)
    for extra, match in [({"weights": np.zeros(2)}, "not param_<i> or const_<i>"),
                         ({"param_01": np.zeros(2)}, "not param_<i> or const_<i>"),
                         ({f"param_{plan.num_params}": np.zeros(2)}, "no parameter the plan")]:
        members["arrays.npz"] = _npz(**arrays, **extra)
        _refused(_write(tmp_path / "extra.tar", members), dlopen, match, member="arrays.npz")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    members["arrays.npz"] = buf.getvalue()
    _refused(_write(tmp_path / "zip.tar", members), dlopen, "compressed", member="arrays.npz")


# -- item 13: fuzzing: only InvalidScheduleError, or a module that computes the reference ---------

def _load_or_refuse(path, plan, arrays, inputs, ref, dlopen) -> bool:
    """True when ``path`` loaded; then it computes the reference if its plan and arrays are the
    original ones, and outputs of the reference's shapes otherwise. Refusals come before any
    kernel library is opened."""
    try:
        mod = load(path, engine="python", allow_oversubscribe=True)
    except InvalidScheduleError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        assert dlopen == []
        return False
    with mod:
        outs = mod(*inputs)
        assert [o.shape for o in outs] == [r.shape for r in ref]
        if mod.plan == plan and all(np.array_equal(mod._bound.get(int(k[6:])), v)
                                    for k, v in arrays.items() if k.startswith("param_")):
            assert all(np.array_equal(a, b) for a, b in zip(outs, ref, strict=True))
    dlopen.clear()
    return True


def test_truncations_anywhere_are_refused(artifact, tmp_path, dlopen):
    data = artifact[0].read_bytes()
    with tarfile.open(artifact[0]) as tar:
        members = tar.getmembers()
    edges = [m.offset for m in members] + [m.offset_data for m in members]
    cuts = sorted({*np.linspace(0, len(data) - 1, 48).astype(int).tolist(),
                   *edges, *(e + 1 for e in edges), *(e - 1 for e in edges if e)})
    end = max(m.offset_data + m.size for m in members)  # past it only tar padding is lost
    path, plan, inputs, ref = artifact
    arrays = _arrays(_members(path))
    for k, cut in enumerate(cuts + [end, end + 512]):
        cut_path = tmp_path / f"cut{k}.tar"
        cut_path.write_bytes(data[:cut])
        if cut < end:
            _refused(cut_path, dlopen)
        else:  # every member complete: refused (a cut in the padding) or loaded intact
            _load_or_refuse(cut_path, plan, arrays, inputs, ref, dlopen)


@pytest.mark.parametrize("member", ["format.json", "plan.json", "arrays.npz"])
def test_flipped_bytes_are_refused_or_harmless(artifact, tmp_path, dlopen, member):
    path, plan, inputs, ref = artifact
    members = _members(path)
    arrays = _arrays(members)
    rng = np.random.default_rng(11)
    size = len(members[member])
    # arrays.npz: mostly zip and .npy headers (the first 512 bytes and the central directory)
    spots = rng.integers(0, size, 30).tolist()
    if member == "arrays.npz":
        spots += rng.integers(0, 512, 30).tolist() + rng.integers(size - 1024, size, 30).tolist()
    loaded = 0
    for k, pos in enumerate(spots):
        bad = dict(members)
        data = bytearray(members[member])
        data[pos] ^= 1 << int(rng.integers(8))
        bad[member] = bytes(data)
        if member != "format.json":
            _refused(_write(tmp_path / f"sums{k}.tar", bad, rehash=False), dlopen, "checksum",
                     member=member)
        crafted = _write(tmp_path / f"flip{k}.tar", bad, rehash=member != "format.json")
        loaded += _load_or_refuse(crafted, plan, arrays, inputs, ref, dlopen)
    assert loaded < len(spots)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


_PLAN_EDITS = [
    ("kernels", lambda d: d.update(kernels={"a": 1})),
    ("tensors list", lambda d: d.update(tensors=[[1, 2]] * len(d["tensors"]))),
    ("shape strings", lambda d: d["tensors"][0].update(shape=["1", "3"])),
    ("negative shape", lambda d: d["tensors"][0].update(shape=[-1, 3, 32, 32])),
    ("huge shape", lambda d: d["tensors"][0].update(shape=[10**30])),
    ("huge dims", lambda d: d["tensors"][-1].update(shape=[1 << 40, 1 << 40])),
    ("float index", lambda d: d["tensors"][0].update(index=0.5)),
    ("huge index", lambda d: d["tensors"][0].update(index=10**20)),
    ("bool kernel", lambda d: d["steps"][0].update(kernel=True)),
    ("args dict", lambda d: d["steps"][0].update(args={"0": 1})),
    ("args huge", lambda d: d["steps"][0].update(args=[2**63])),
    ("scalars huge", lambda d: d["steps"][0].update(scalars=[2**64])),
    ("lanes str", lambda d: d.update(lanes="0")),
    ("waits short", lambda d: d.update(waits=d["waits"][:-1])),
    ("outputs none", lambda d: d.update(outputs=None)),
    ("num_params str", lambda d: d.update(num_params="3")),
    ("num_input big", lambda d: d.update(num_input=10**6)),
    ("arena huge", lambda d: d.update(arena_bytes=10 << 30)),
    ("arena negative", lambda d: d.update(arena_bytes=-64)),
    ("threads zero", lambda d: d.update(threads_per_lane=0)),
    ("meta list", lambda d: d.update(meta=[1])),
    ("version", lambda d: d.update(version="1")),
    ("dtype", lambda d: d["tensors"][0].update(dtype="object")),
    ("const -1", lambda d: next(t for t in d["tensors"] if t["kind"] == "const").update(index=-1)),
    ("const twice", lambda d: [t.update(index=0) for t in d["tensors"] if t["kind"] == "const"]),
    ("param twice", lambda d: [t.update(index=0) for t in d["tensors"] if t["kind"] == "param"]),
]


@pytest.mark.parametrize("edit", [e for _, e in _PLAN_EDITS], ids=[n for n, _ in _PLAN_EDITS])
def test_plan_json_of_wrong_types_is_refused(artifact, tmp_path, dlopen, edit):
    members = _members(artifact[0])
    d = json.loads(members["plan.json"])
    edit(d)
    members["plan.json"] = json.dumps(d).encode()
    _refused(_write(tmp_path / "types.tar", members), dlopen, member="plan.json")


@pytest.mark.parametrize("text", [_deep(10_000), '{"format": ' + _deep(10_000) + "}", "[]",
                                  "null", '"plan"', "{", "\ud800", "1" * 5000])
def test_plan_json_that_is_no_plan_is_refused(artifact, tmp_path, dlopen, text):
    members = _members(artifact[0])
    members["plan.json"] = text.encode("utf-8", "surrogatepass")
    _refused(_write(tmp_path / "text.tar", members), dlopen, member="plan.json")


@pytest.mark.parametrize("text", [b"", b"[]", b'{"format": 1}', b"\xff", _deep(10_000).encode(),
                                  b'{"format": "tvm_sched.LaneModule/2", "sha256": []}'])
def test_format_json_that_is_no_format_is_refused(artifact, tmp_path, dlopen, text):
    members = _members(artifact[0])
    members["format.json"] = text
    _refused(_write(tmp_path / "fmt.tar", members, rehash=False), dlopen, member="format.json")


def test_the_module_checks_constants_it_is_given(compiled):
    kernels, _, _ = compiled(_MODEL)
    plan = kernels.plan(None)
    with pytest.raises(InvalidScheduleError, match="the module has 0 constants"):
        LaneModule(plan, kernels.exe.mod, engine="python")
    consts = list(kernels.constants)
    consts[0] = consts[0].astype(np.float64)
    with pytest.raises(InvalidScheduleError, match="constant 0 is float64"):
        LaneModule(plan, kernels.exe.mod, engine="python", constants=consts)
