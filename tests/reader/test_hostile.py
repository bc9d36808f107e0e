"""Hostile and broken files: pthscope lists what they would do, never does it, and never breaks.

Every check here reads a file we crafted and asserts three things (DESIGN.md non-negotiables 1
and 3): no payload ran (no canary file appeared), the file's danger or damage is reported (a
`dangerous` global or a clear error), and the work was bounded (inspect returned — never raised —
within seconds, with no "internal" error, and its JSON form can be made).
"""

from __future__ import annotations

import contextlib
import copyreg
import io
import json
import os
import pickle
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import pthscope
from pthscope import Checkpoint
from pthscope.reader.limits import Limits

from . import hostile_files as H

DEFAULTS = Limits()
SECONDS = 5.0  # times 5: the bound of a read that hangs (every real read is far within it)
FRAMINGS = ("pickle", "torch-zip", "torch-legacy")
EXTENSION_CODE = 0xE7  # a copyreg extension code nobody else registers (< 256: EXT1 fits)
PAYLOAD_NAMES = [p.name for p in H.payloads(Path("canary"))]


class Overtime(BaseException):
    """Raised by the alarm when a read hangs (a BaseException, so no `except Exception` eats it)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise Overtime(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read(path: Path, limits: Limits = DEFAULTS, seconds: float = SECONDS) -> Checkpoint:
    """inspect() must return (not raise) with no reader bug and a JSON form, and not hang: the
    deadline is a bound far beyond any real read (a loaded CI machine included), not a timing."""
    with deadline(seconds * 5):
        checkpoint = pthscope.inspect(path, limits)
    internal = [e for e in checkpoint.errors if e.kind == "internal"]
    assert not internal, f"a reader bug, not a handled file: {internal[0].message}"
    json.dumps(checkpoint.to_json())  # what the CLI and the server send must be producible
    return checkpoint


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def frame(framing: str, data: bytes, template: bytes | None = None) -> bytes:
    if framing == "pickle":
        return data
    if framing == "torch-zip":
        return H.torch_zip(data, template=template)
    return H.legacy(data)


def dangerous(checkpoint: Checkpoint) -> set[str]:
    return {g.name for g in checkpoint.globals if g.risk == "dangerous"}


def risk_of(checkpoint: Checkpoint, name: str) -> str | None:
    return next((g.risk for g in checkpoint.globals if g.name == name), None)


def assert_no_canary(folder: Path) -> None:
    time.sleep(0.02)  # a Popen payload would touch its canary asynchronously
    assert not list(folder.glob("canary*")), "a payload ran"


@pytest.fixture(scope="module")
def zip_template(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real torch.save file; payload tests replace only its data.pkl."""
    path = tmp_path_factory.mktemp("template") / "template.pt"
    torch.save({"w": torch.zeros(2)}, path)
    return path.read_bytes()


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the payloads' user module importable, as it would be on the attacker's target."""
    (tmp_path / f"{H.EVIL_MODULE}.py").write_text(H.evil_module_source(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop(H.EVIL_MODULE, None)


@pytest.fixture
def extension() -> Iterator[int]:
    """Register ("posix", "system") as a copyreg extension code for the EXT1/2/4 payloads."""
    copyreg.add_extension("posix", "system", EXTENSION_CODE)
    try:
        yield EXTENSION_CODE
    finally:
        copyreg.remove_extension("posix", "system", EXTENSION_CODE)


# ---------------------------------------------------------------------------------------------
# The payloads are real: run by pickle / torch.load, each one creates its canary.


def test_payloads_really_execute_under_pickle(tmp_path: Path) -> None:
    """Guards the tests below: every payload does run when a real unpickler loads it."""
    folder = tmp_path
    (folder / f"{H.EVIL_MODULE}.py").write_text(H.evil_module_source(folder))
    files = []
    for name in PAYLOAD_NAMES:
        canary = folder / f"canary-{name}"
        data = next(p.data for p in H.payloads(canary) if p.name == name)
        files.append((write(folder, f"{name}.pkl", data), canary))
    for index in range(3):
        canary = folder / f"canary-ext-{index}"
        files.append((write(folder, f"ext-{index}.pkl", H.extension_payloads(canary, EXTENSION_CODE)[index].data),
                      canary))
    for protocol in range(6):
        canary = folder / f"canary-protocol-{protocol}"
        files.append((write(folder, f"protocol-{protocol}.pkl", H.protocol_payload(canary, protocol)), canary))
    script = textwrap.dedent(f"""
        import copyreg, pickle, sys
        sys.path.insert(0, {str(folder)!r})
        copyreg.add_extension("posix", "system", {EXTENSION_CODE})
        for name in sys.argv[1:]:
            try:
                with open(name, "rb") as f:
                    pickle.load(f)
            except Exception:
                pass
    """)
    subprocess.run([sys.executable, "-c", script, *(str(f) for f, _ in files)], check=True, timeout=60,
                   capture_output=True)
    give_up = time.monotonic() + 10
    while time.monotonic() < give_up and not all(c.exists() for _, c in files):
        time.sleep(0.05)
    assert [f.name for f, c in files if not c.exists()] == []


def test_framings_really_execute_under_torch_load(tmp_path: Path, zip_template: bytes) -> None:
    """Guards the framing tests: torch.load(weights_only=False) runs a payload in a torch zip's
    data.pkl and in a legacy file's main pickle, and the torch.load payload runs its inner file."""
    payload = H.Asm().call("posix", "system", H.s(H.shell_touch(tmp_path / "canary-zip"))).stop()
    torch.load(write(tmp_path, "p.pt", H.torch_zip(payload, template=zip_template)), weights_only=False)
    payload = H.Asm().call("posix", "system", H.s(H.shell_touch(tmp_path / "canary-legacy"))).stop()
    torch.load(write(tmp_path, "p.legacy", H.legacy(payload)), weights_only=False)
    inner = tmp_path / "inner.pt"
    outer, inner_bytes = H.torch_load_payload(tmp_path / "canary-inner", inner)
    inner.write_bytes(inner_bytes)
    with contextlib.suppress(Exception):
        pickle.loads(outer.data)
    assert sorted(p.name for p in tmp_path.glob("canary*")) == ["canary-inner", "canary-legacy", "canary-zip"]


# ---------------------------------------------------------------------------------------------
# Payloads are listed, never run.


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_payload_is_listed_not_run(tmp_path: Path, framing: str, name: str, zip_template: bytes,
                                   evil_module: Path) -> None:
    """Each technique (REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD/__setstate__, STACK_GLOBAL,
    getattr/import chains, ...) in each framing: nothing runs, the global is reported."""
    payload = next(p for p in H.payloads(tmp_path / "canary") if p.name == name)
    checkpoint = read(write(tmp_path, "payload.pt", frame(framing, payload.data, zip_template)))
    assert_no_canary(tmp_path)
    assert H.EVIL_MODULE not in sys.modules, "the reader imported a module the file names"
    if payload.dangerous:
        assert dangerous(checkpoint) & set(payload.dangerous), checkpoint.globals
    else:  # a user class: named, classified unknown, never imported
        assert risk_of(checkpoint, payload.unknown) == "unknown"


@pytest.mark.parametrize("framing", FRAMINGS)
def test_dangerous_globals_are_reported_when_the_pickle_fails_later(tmp_path: Path, framing: str) -> None:
    """getattr(__import__('os'), 'system')(cmd) runs under torch.load, but pthscope's inert
    stubs cannot be called, so reading stops with an error: the globals named before that point
    must still be listed, with the dangerous-globals warning."""
    payload = next(p for p in H.payloads(tmp_path / "canary") if p.name == "import-getattr-chain")
    checkpoint = read(write(tmp_path, "chain.pt", frame(framing, payload.data)))
    assert {"builtins.getattr", "builtins.__import__"} <= dangerous(checkpoint)
    assert [w.kind for w in checkpoint.warnings] == ["dangerous-globals"]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_torch_load_payload_is_listed_not_run(tmp_path: Path, framing: str, zip_template: bytes) -> None:
    """torch.load named as a global (with a pickle_module that would make it unsafe) is dangerous."""
    inner = tmp_path / "inner.pt"
    payload, inner_bytes = H.torch_load_payload(tmp_path / "canary", inner)
    inner.write_bytes(inner_bytes)
    checkpoint = read(write(tmp_path, "outer.pt", frame(framing, payload.data, zip_template)))
    assert_no_canary(tmp_path)
    assert {"torch.load", "importlib.import_module"} <= dangerous(checkpoint)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("protocol", range(6))
def test_every_pickle_protocol(tmp_path: Path, protocol: int, framing: str, zip_template: bytes) -> None:
    """pickle.dumps of a __reduce__ payload at protocols 0-5, in every framing."""
    data = H.protocol_payload(tmp_path / "canary", protocol)
    checkpoint = read(write(tmp_path, "p.pt", frame(framing, data, zip_template)))
    assert_no_canary(tmp_path)
    assert "posix.system" in dangerous(checkpoint)
    assert checkpoint.errors == []
    assert [c.name for c in checkpoint.root.children] == ["weight", "hook"]  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", [0, 1])
def test_text_protocol_payload_at_top_level_is_recognised(tmp_path: Path, protocol: int) -> None:
    """A protocol 0/1 pickle that *is* the payload starts with GLOBAL ('c'), not '(' or '}':
    torch.load would run it, so it must be read as a pickle, not dismissed as an unknown format."""
    data = pickle.dumps(H.ReduceToSystem(H.shell_touch(tmp_path / "canary")), protocol=protocol)
    checkpoint = read(write(tmp_path, "p.pt", data))
    assert_no_canary(tmp_path)
    assert checkpoint.format == "pickle"
    assert "posix.system" in dangerous(checkpoint)


@pytest.mark.parametrize("target", [
    "torch.load", "torch.jit.load", "torch.hub.load", "torch.serialization.load", "pickle.loads",
    "os.system", "subprocess.Popen", "subprocess.check_output", "builtins.exec", "builtins.eval",
    "runpy._run_code", "pydoc.locate", "importlib.import_module", "cProfile.run", "profile.run",
])
def test_loaders_and_runners_are_dangerous_under_their_pickled_names(tmp_path: Path, target: str) -> None:
    """The name pickle really writes (torch.jit.load is torch.jit._serialization.load, os.system
    is posix.system, pickle.loads is _pickle.loads) is classified dangerous."""
    import importlib

    module_name, attr = target.rsplit(".", 1)
    fn = getattr(importlib.import_module(module_name), attr)
    data = pickle.dumps(H.ReduceToCallable(fn, str(tmp_path / "canary")), protocol=2)
    checkpoint = read(write(tmp_path, "p.pkl", data))
    assert_no_canary(tmp_path)
    assert len(checkpoint.globals) == 1
    assert checkpoint.globals[0].risk == "dangerous", checkpoint.globals


# ---------------------------------------------------------------------------------------------
# copyreg extension codes (EXT1/EXT2/EXT4): the C unpickler's extension cache is process-wide.


def test_extension_opcodes_are_reported(tmp_path: Path, extension: int) -> None:
    """EXT1, EXT2 and EXT4 naming os.system, read one after the other in one process: each read
    reports posix.system (a cached lookup from the previous read must not hide it)."""
    for payload in H.extension_payloads(tmp_path / "canary", extension):
        checkpoint = read(write(tmp_path, f"{payload.name}.pkl", payload.data))
        assert "posix.system" in dangerous(checkpoint), payload.name
    assert_no_canary(tmp_path)


def test_extension_cache_filled_by_a_real_load_is_not_used(tmp_path: Path, extension: int) -> None:
    """After an ordinary pickle.loads in the same process cached the real os.system for the code,
    pthscope must still not call it."""
    pickle.loads(pickle.PROTO + b"\x02" + pickle.EXT2 + struct.pack("<H", extension) + pickle.STOP)
    payload = H.extension_payloads(tmp_path / "canary", extension)[1]
    checkpoint = read(write(tmp_path, "ext.pkl", payload.data))
    assert_no_canary(tmp_path)
    assert "posix.system" in dangerous(checkpoint)


def test_reading_does_not_leave_stubs_in_the_extension_cache(tmp_path: Path, extension: int) -> None:
    """pthscope's inert stubs must not leak into copyreg's cache, where ordinary unpickling in the
    same process would pick them up instead of the real objects."""
    read(write(tmp_path, "ext.pkl", H.extension_payloads(tmp_path / "canary", extension)[0].data))
    loaded = pickle.loads(pickle.PROTO + b"\x02" + pickle.EXT2 + struct.pack("<H", extension) + pickle.STOP)
    assert loaded is os.system


# ---------------------------------------------------------------------------------------------
# Persistent ids: odd shapes and types where a storage reference is expected.


def _persid(pid: H.Asm) -> bytes:
    return pid.raw(pickle.BINPERSID).stop()


ODD_PIDS = {
    "text-pid-protocol-0": lambda: b"Pstorage\n.",
    "string": lambda: _persid(H.Asm().text("storage")),
    "short-tuple": lambda: _persid(H.Asm().tup(H.s("storage"))),
    "none": lambda: _persid(H.Asm().raw(pickle.NONE)),
    "dangerous-storage-type": lambda: _persid(H.Asm().tup(
        H.s("storage"), lambda a: a.glob("os", "system"), H.s("0"), H.s("cpu"), H.i(1))),
    "list-as-key": lambda: _persid(H.Asm().tup(
        H.s("storage"), lambda a: a.glob("torch", "FloatStorage"), lambda a: a.raw(pickle.EMPTY_LIST),
        H.s("cpu"), H.i(1))),
    "huge-int-key": lambda: _persid(H.Asm().tup(
        H.s("storage"), lambda a: a.glob("torch", "FloatStorage"), H.i(10 ** 5000), H.s("cpu"), H.i(1))),
    "negative-numel": lambda: _persid(H.Asm().tup(
        H.s("storage"), lambda a: a.glob("torch", "FloatStorage"), H.s("0"), H.s("cpu"), H.i(-5))),
    "huge-numel": lambda: _persid(H.Asm().tup(
        H.s("storage"), lambda a: a.glob("torch", "FloatStorage"), H.s("0"), H.s("cpu"), H.i(10 ** 5000))),
    "text-numel": lambda: _persid(H.Asm().tup(
        H.s("storage"), lambda a: a.glob("torch", "FloatStorage"), H.s("0"), H.s("cpu"), H.s("many"))),
    "module-pid-with-a-global": lambda: _persid(H.Asm().tup(H.s("module"), lambda a: a.glob("os", "system"))),
    "nested-tuple": lambda: _persid(H.Asm().raw(pickle.EMPTY_TUPLE + pickle.TUPLE1 * 50_000)),
}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("name", list(ODD_PIDS))
def test_odd_persistent_ids(tmp_path: Path, framing: str, name: str) -> None:
    """PERSID/BINPERSID with ids that are not storage tuples, or storage tuples of the wrong types."""
    checkpoint = read(write(tmp_path, "pid.pt", frame(framing, ODD_PIDS[name]())))
    if "dangerous" in name or "global" in name:
        assert "os.system" in dangerous(checkpoint)
    if framing == "pickle":
        assert checkpoint.errors, "a plain pickle has no storages: a persistent id is an error"


def _subprocess_read(path: Path, timeout: float = 5) -> dict[str, object]:
    """Read in a child process: for inputs whose failure mode is a hang inside C code, where no
    alarm can interrupt the test process."""
    script = ("import json, sys, pthscope; c = pthscope.inspect(sys.argv[1]); "
              "print(json.dumps({'errors': [e.kind for e in c.errors], 'tensors': len(c.tensors)}))")
    try:
        done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} did not finish in {timeout} s")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("where", ["pid", "key", "location", "device"])
def test_shared_structure_in_a_persistent_id_is_not_expanded(tmp_path: Path, framing: str, where: str) -> None:
    """A 2**40-leaf DAG of lists given as a persistent id, storage key, location or torch.device
    argument: any str()/repr() of it would run for hours; the reader must not make one."""
    dag = H.laughs_ops(40).out[2:]  # the opcodes pushing the DAG, without the PROTO header
    a = H.Asm()
    if where == "pid":
        a.raw(dag).raw(pickle.BINPERSID)
    elif where == "device":
        a.glob("torch", "device").raw(pickle.MARK).raw(dag).raw(pickle.TUPLE + pickle.REDUCE)
    else:
        a.raw(pickle.MARK).text("storage").glob("torch", "FloatStorage")
        a.raw(dag) if where == "key" else a.text("0")
        a.raw(dag) if where == "location" else a.text("cpu")
        a.num(1).raw(pickle.TUPLE + pickle.BINPERSID)
    result = _subprocess_read(write(tmp_path, "dag.pt", frame(framing, a.stop())))
    assert "internal" not in result["errors"]  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# BUILD: state applied to the reader's own objects.


def test_many_failed_rebuilds_stay_small(tmp_path: Path) -> None:
    """10,000 calls of torch's rebuild function with bad arguments (10 bytes each): each becomes
    an inert stub, the problems are listed up to a cap, and memory stays proportional."""
    a = H.Asm().glob("torch._utils", "_rebuild_tensor_v2").put(0).raw(pickle.POP + pickle.EMPTY_LIST)
    a.raw((pickle.LONG_BINGET + struct.pack("<I", 0) + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.APPEND) * 10_000)
    path = write(tmp_path, "rebuilds.pkl", a.stop())
    checkpoint = read(path)
    assert 1 <= len(checkpoint.warnings) <= 200
    tracemalloc.start()
    try:
        pthscope.inspect(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, f"{peak / (1 << 20):.0f} MiB for a {path.stat().st_size / 1e6:.1f} MB file"


def test_build_on_a_tensor_cannot_break_the_listing(tmp_path: Path) -> None:
    """BUILD with a dict state on a rebuilt tensor (the state lands in the record's fields)."""
    a = H.Asm().raw(pickle.EMPTY_DICT).text("w")
    H.rebuild_tensor(a, key="0", shape=(2,), stride=(1,), numel=2)
    a.raw(pickle.EMPTY_DICT).text("shape").text("not a shape").raw(pickle.SETITEM)
    a.text("dtype").raw(pickle.EMPTY_LIST).raw(pickle.SETITEM).text("storage_nbytes").text("x")
    a.raw(pickle.SETITEM + pickle.BUILD + pickle.SETITEM)
    checkpoint = read(write(tmp_path, "t.pt", H.torch_zip(a.stop(), storages={"0": bytes(8)})))
    assert checkpoint.errors or checkpoint.warnings


def test_build_cannot_change_the_reader_for_later_files(tmp_path: Path) -> None:
    """BUILD with slot state on a class/function the reader hands out (OrderedDict, torch.device)
    must not change how the next, innocent file is read in the same process."""
    poison = (H.Asm().glob("collections", "OrderedDict").raw(pickle.NONE + pickle.EMPTY_DICT)
              .text("saved_type").text("builtins.PWNED").raw(pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD)
              .glob("torch", "device").raw(pickle.NONE + pickle.EMPTY_DICT).text("__defaults__")
              .tup(H.s("PWNED"), lambda a: a.raw(pickle.NONE)).raw(pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD)
              .raw(pickle.TUPLE2).stop())
    read(write(tmp_path, "poison.pkl", poison))
    innocent = pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2)
    assert read(write(tmp_path, "od.pkl", innocent)).root.type == "collections.OrderedDict"  # type: ignore[union-attr]
    device_call = H.Asm().glob("torch", "device").raw(pickle.EMPTY_TUPLE + pickle.REDUCE).stop()
    assert read(write(tmp_path, "device.pkl", device_call)).root.value == "'cpu'"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Truncated, corrupt, empty, random, missing.


@pytest.fixture(scope="module")
def sound_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One small, valid file per format (made with torch and safetensors)."""
    from safetensors.torch import save as safetensors_save

    from .user_models import SmallNet

    state = {"a": torch.arange(1000, dtype=torch.float32), "b": torch.ones(3, 4, dtype=torch.float16), "n": 7}
    out: dict[str, bytes] = {}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    out["torch-zip"] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    out["torch-legacy"] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(SmallNet(), buffer)
    out["whole-model-zip"] = buffer.getvalue()
    out["safetensors"] = safetensors_save({"a": torch.zeros(1000), "b": torch.ones(7)})
    out["pickle"] = pickle.dumps({"a": list(range(100)), "b": "text" * 10}, protocol=4)
    return out


@pytest.mark.parametrize("cut", [1, 8, 30, 0.25, 0.5, 0.9, -22, -1])
@pytest.mark.parametrize("fmt", ["torch-zip", "torch-legacy", "whole-model-zip", "safetensors", "pickle"])
def test_truncated(tmp_path: Path, sound_files: dict[str, bytes], fmt: str, cut: float) -> None:
    """Every format cut at several offsets (header, middle, inside the zip directory, last byte)."""
    data = sound_files[fmt]
    keep = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    checkpoint = read(write(tmp_path, "cut.pt", data[:keep]))
    assert checkpoint.errors, f"{fmt} cut to {keep} of {len(data)} bytes read without error"


def test_zip_without_central_directory(tmp_path: Path, sound_files: dict[str, bytes]) -> None:
    """A torch zip whose writer died before the central directory: members present, no directory."""
    data = sound_files["torch-zip"]
    checkpoint = read(write(tmp_path, "nodir.pt", data[: data.find(b"PK\x01\x02")]))
    assert checkpoint.format == "torch-zip"
    assert "truncated" in checkpoint.errors[0].message


def test_legacy_cut_inside_storage_bytes(tmp_path: Path, sound_files: dict[str, bytes]) -> None:
    """The pickles are whole, the raw storage bytes are not: the error names the storage."""
    data = sound_files["torch-legacy"]
    checkpoint = read(write(tmp_path, "cut.pt", data[:-2000]))
    assert [e.kind for e in checkpoint.errors] == ["truncated"]
    assert checkpoint.errors[0].where.startswith("storage")


def _set_method(data: bytes, method: int) -> bytes:
    """Set the compression method of the first member (local and central header)."""
    out = bytearray(data)
    out[8:10] = struct.pack("<H", method)
    central = out.find(b"PK\x01\x02")
    out[central + 10:central + 12] = struct.pack("<H", method)
    return bytes(out)


def _patch_central(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    central = out.find(b"PK\x01\x02")
    struct.pack_into(fmt, out, central + offset, value)
    return bytes(out)


CORRUPT_ZIPS = {
    "data.pkl-garbage": lambda d: d.replace(d[d.find(b"\x80\x02"):d.find(b"\x80\x02") + 64],
                                            bytes(random.Random(1).randrange(256) for _ in range(64)), 1),
    "deflate-claimed-stored-bytes": lambda d: _set_method(d, 8),
    "unknown-compression-method": lambda d: _set_method(d, 99),
    "size-past-end-of-file": lambda d: _patch_central(d, 20, "<I", 0x7FFFFFF0),
    "uncompressed-size-4gb": lambda d: _patch_central(d, 24, "<I", 0xFFFFFFF0),
    "local-header-offset-past-end": lambda d: _patch_central(d, 42, "<I", 0x7FFFFFF0),
    # torch writes zip64 records: miniz (and pthscope) read the counts there, so this lie is ignored
    "directory-count-lies": lambda d: d[:-12] + struct.pack("<H", 0xFFFE) + d[-10:],
    "no-data.pkl": lambda d: d.replace(b"data.pkl", b"data.pkx"),
}


@pytest.mark.parametrize("name", list(CORRUPT_ZIPS))
def test_corrupt_zip_members(tmp_path: Path, sound_files: dict[str, bytes], name: str) -> None:
    """Damaged members, lying sizes/offsets/methods in the zip headers: an error wherever
    torch.load refuses the file, a normal listing where torch reads it as usual."""
    path = write(tmp_path, "bad.pt", CORRUPT_ZIPS[name](sound_files["torch-zip"]))
    checkpoint = read(path)
    try:
        torch.load(path, weights_only=True)
        torch_reads = True
    except Exception:
        torch_reads = False
    assert bool(checkpoint.errors) != torch_reads, (torch_reads, checkpoint.errors)


def test_duplicate_data_pkl_reads_what_torch_would_run(tmp_path: Path) -> None:
    """Two members named archive/data.pkl, a payload and a harmless dict: whichever copy torch's
    zip reader finds is shown, the other is named as crafted and its os.system is reported."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        archive.writestr("archive/data.pkl", H.Asm().call("os", "system", H.s(H.shell_touch(tmp_path / "canary"))).stop())
        archive.writestr("archive/data.pkl", pickle.dumps({"x": 1}, protocol=2))
        archive.writestr("archive/version", "3\n")
    checkpoint = read(write(tmp_path, "dup.pt", buffer.getvalue()))
    assert_no_canary(tmp_path)
    assert "os.system" in dangerous(checkpoint)
    assert "crafted" in [w.kind for w in checkpoint.warnings]


def test_empty_file(tmp_path: Path) -> None:
    """Zero bytes: an `empty` error."""
    assert [e.kind for e in read(write(tmp_path, "empty.pt", b"")).errors] == ["empty"]


@pytest.mark.parametrize("prefix", [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x80\x02", b"\x80\x05", b"}", b"(",
                                    b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.", struct.pack("<Q", 100) + b"{"])
def test_random_bytes(tmp_path: Path, prefix: bytes) -> None:
    """Random bytes, alone and after each magic number the format probes look for."""
    for seed in range(3):
        rng = random.Random(seed)
        data = prefix + bytes(rng.randrange(256) for _ in range(4096))
        assert read(write(tmp_path, f"random{seed}.pt", data)).errors


def test_directory_and_missing_path(tmp_path: Path) -> None:
    """A folder and a path that does not exist: clear errors, not exceptions."""
    assert read(tmp_path).errors[0].kind == "unsupported"
    missing = read(tmp_path / "no-such-file.pt")
    assert missing.errors[0].kind == "unreadable" and "No such file" in missing.errors[0].message


# ---------------------------------------------------------------------------------------------
# Sizes that lie: safetensors headers, tensors claiming 10**12 elements, huge integers.


def _safetensors(header: object, data: bytes = b"", header_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


SAFETENSORS_LIES = {
    "header-longer-than-file": lambda: _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                                    bytes(4), header_len=10_000),
    "header-length-2**39": lambda: _safetensors({}, header_len=1 << 39),
    "offsets-past-the-data": lambda: _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                                                  bytes(8)),
    "offsets-reversed": lambda: _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, bytes(4)),
    "offsets-not-ints": lambda: _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", 4]}},
                                             bytes(4)),
    "shape-claims-10**12-elements": lambda: _safetensors(
        {"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4]}}, bytes(4)),
    "size-disagrees-with-offsets": lambda: _safetensors(
        {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)),
    "shape-of-huge-ints": lambda: _safetensors(
        {"w": {"dtype": "F32", "shape": [10**1000] * 5, "data_offsets": [0, 4]}}, bytes(4)),
    "negative-dim": lambda: _safetensors({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
    "not-an-object": lambda: _safetensors([1, 2, 3]),
    "nested-100k": lambda: (struct.pack("<Q", 200_006) + b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
}


@pytest.mark.parametrize("name", list(SAFETENSORS_LIES))
def test_safetensors_header_lies(tmp_path: Path, name: str) -> None:
    """A safetensors header whose sizes, offsets or shapes do not fit the file: the tensor is
    reported as corrupt (error or warning naming it), nothing else breaks."""
    checkpoint = read(write(tmp_path, "lie.safetensors", SAFETENSORS_LIES[name]()))
    assert checkpoint.errors or any(w.kind == "corrupt" for w in checkpoint.warnings), checkpoint.tensors


def _zip_with_tensor(shape: tuple[int, ...], stride: tuple[int, ...], storage_bytes: int = 4, **spec: int) -> bytes:
    data_pkl = H.state_dict_pickle({"w": dict(key="0", shape=shape, stride=stride, numel=storage_bytes // 4, **spec)})
    return H.torch_zip(data_pkl, storages={"0": bytes(storage_bytes)})


def test_tensor_claiming_10_to_the_12_elements_past_its_storage(tmp_path: Path) -> None:
    """shape 10**6 x 10**6 on a 4-byte storage: numel/nbytes reported, a corrupt warning names
    the tensor, and nothing of that size is allocated."""
    path = write(tmp_path, "big.pt", _zip_with_tensor((10**6, 10**6), (10**6, 1)))
    tracemalloc.start()
    try:
        checkpoint = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20
    (tensor,) = checkpoint.tensors
    assert (tensor.numel, tensor.nbytes) == (10**12, 4 * 10**12)
    assert [w.where for w in checkpoint.warnings if w.kind == "corrupt"] == ["w"]


def test_expanded_tensor_of_10_to_the_12_elements_is_listed(tmp_path: Path) -> None:
    """A stride-0 view (torch.expand) of 10**12 elements on one float is legitimate: listed with
    its numel and nbytes, no warning."""
    checkpoint = read(write(tmp_path, "expand.pt", _zip_with_tensor((10**12,), (0,))))
    (tensor,) = checkpoint.tensors
    assert (tensor.numel, tensor.nbytes, tensor.storage_nbytes) == (10**12, 4 * 10**12, 4)
    assert checkpoint.warnings == [] and checkpoint.errors == []


@pytest.mark.parametrize("spec", [
    {"shape": (10**1000,) * 5, "stride": (1,) * 5},
    {"shape": (10**5000,), "stride": (1,)},
    {"shape": (1,), "stride": (10**5000,)},
    {"shape": (1,), "stride": (1,), "offset": 10**5000},
    {"shape": (10,) * 5_000, "stride": (1,) * 5_000},
], ids=["numel-10**5000", "dim-10**5000", "stride-10**5000", "offset-10**5000", "5000-dims"])
def test_tensor_with_absurd_integers(tmp_path: Path, spec: dict[str, object]) -> None:
    """Sizes no tensor can have (beyond int64, or 5,000 dimensions of 10): reported, never a crash of
    the listing or of its JSON form (Python refuses str() of ints over 4,300 digits)."""
    checkpoint = read(write(tmp_path, "absurd.pt", _zip_with_tensor(**spec)))  # type: ignore[arg-type]
    assert checkpoint.errors or checkpoint.warnings


def test_huge_integer_dict_key(tmp_path: Path) -> None:
    """{10**5000: 1}: the key cannot become a path element as str(); it must be shown another way."""
    data = H.Asm().raw(pickle.EMPTY_DICT).num(10**5000).num(1).raw(pickle.SETITEM).stop()
    checkpoint = read(write(tmp_path, "bigkey.pkl", data))
    assert checkpoint.root is not None and len(checkpoint.root.children) == 1


# ---------------------------------------------------------------------------------------------
# Deep nesting, memo bombs, shared-structure bombs, huge strings, cycles.


@pytest.mark.parametrize("framing", FRAMINGS)
def test_100k_nested_lists(tmp_path: Path, framing: str) -> None:
    """[[[...]]] 100,000 deep, built by opcodes: a `limit` warning, no RecursionError."""
    checkpoint = read(write(tmp_path, "deep.pt", frame(framing, H.nested_lists(100_000))))
    assert [w.kind for w in checkpoint.warnings] == ["limit"]


def test_100k_nested_objects_via_build(tmp_path: Path) -> None:
    """Objects whose BUILD state holds the next object, 100,000 deep: a `limit` warning."""
    checkpoint = read(write(tmp_path, "deep.pkl", H.nested_objects(100_000)))
    assert [w.kind for w in checkpoint.warnings] == ["limit"]


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deeply_nested_tuple_as_dict_key(tmp_path: Path, depth: int) -> None:
    """A dict key nested thousands of tuples deep: showing the key must not recurse without bound."""
    checkpoint = read(write(tmp_path, "deepkey.pkl", H.nested_tuples_as_dict_key(depth)))
    assert checkpoint.root is not None and len(checkpoint.root.children) == 1


def test_memo_bomb_fails_fast_with_a_memory_budget(tmp_path: Path) -> None:
    """LONG_BINPUT at index 2**30 (an 8 GiB memo table) under a 256 MiB budget: a clear error."""
    checkpoint = read(write(tmp_path, "memo.pkl", H.memo_bomb()), Limits(memory_budget_bytes=256 << 20))
    assert checkpoint.errors and "memory" in checkpoint.errors[0].message


@pytest.mark.parametrize("framing", ["pickle", "torch-zip", "torch-legacy"])
def test_memo_bomb_through_the_cli(tmp_path: Path, framing: str) -> None:
    """The CLI sets a 4 GiB budget: exit 1, one line on stderr, and the process stays small."""
    path = write(tmp_path, "memo.pt", frame(framing, H.memo_bomb()))
    wrapper = textwrap.dedent("""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", sys.argv[1]],
                              capture_output=True, text=True, timeout=60)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(done.returncode, peak_kib)
        sys.stdout.write(done.stderr)
    """)
    out = subprocess.run([sys.executable, "-c", wrapper, str(path)], capture_output=True, text=True,
                         timeout=90, check=True).stdout
    first, *stderr = out.splitlines()
    code, peak_kib = map(int, first.split())
    assert code == 1
    assert len(stderr) == 1 and stderr[0].startswith(f"pthscope: {path}:") and "memory" in stderr[0]
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib // 1024} MiB"


def test_copy_amplification_fails_fast_with_a_memory_budget(tmp_path: Path) -> None:
    """One 1 MiB string re-encoded 4,000 times (4 GiB of bytes from a 1 MiB file) under a 256 MiB
    budget: a memory error, quickly."""
    a = H.Asm().text("x" * (1 << 20)).put(0).raw(pickle.POP).glob("_codecs", "encode").put(1).raw(pickle.POP)
    a.raw(pickle.EMPTY_LIST)
    for _ in range(4000):
        a.get(1).raw(pickle.MARK).get(0).text("latin1").raw(pickle.TUPLE + pickle.REDUCE + pickle.APPEND)
    checkpoint = read(write(tmp_path, "amp.pkl", a.stop()), Limits(memory_budget_bytes=256 << 20))
    assert checkpoint.errors and "memory" in checkpoint.errors[0].message


def _count_nodes(checkpoint: Checkpoint) -> int:
    stack, count = [checkpoint.root], 0
    while stack:
        node = stack.pop()
        if node is not None:
            count += 1
            stack.extend(node.children)
    return count


def test_billion_laughs_is_shown_once_per_object(tmp_path: Path) -> None:
    """Lists sharing lists 30 levels deep (2**30 leaves in ~300 bytes): each shared list is
    expanded once and referenced after, so the tree stays as small as the file."""
    checkpoint = read(write(tmp_path, "laughs.pkl", H.billion_laughs(30)))
    assert _count_nodes(checkpoint) < 200
    assert "<same object as" in json.dumps(checkpoint.to_json())


def test_billion_laughs_still_meets_the_node_limit(tmp_path: Path) -> None:
    """The node budget still stops a tree that is large without sharing."""
    checkpoint = read(write(tmp_path, "laughs.pkl", H.billion_laughs(30)), Limits(max_nodes=20))
    assert any(w.kind == "limit" for w in checkpoint.warnings)


@pytest.mark.parametrize("make", [pickle.TUPLE, pickle.LIST])
def test_billion_laughs_in_a_zip(tmp_path: Path, make: bytes) -> None:
    """The same DAG (of tuples and of lists) inside a torch zip's data.pkl."""
    data = H.torch_zip(H.laughs_ops(30, make=make).stop())
    checkpoint = read(write(tmp_path, "laughs.pt", data))
    assert checkpoint.errors == [] and _count_nodes(checkpoint) < 200


def test_huge_string_length_field_in_a_short_file(tmp_path: Path) -> None:
    """BINUNICODE8/BINBYTES8 claiming 2**40 bytes in a file of a few bytes: an error, no 1 TB read."""
    for opcode in (pickle.BINUNICODE8, pickle.BINBYTES8):
        for framing in FRAMINGS:
            data = frame(framing, b"\x80\x04" + opcode + struct.pack("<Q", 1 << 40) + b"abc")
            assert read(write(tmp_path, "s.pt", data)).errors


def test_huge_string_value_is_shown_shortened(tmp_path: Path) -> None:
    """An 8 MiB string value and an 8 MiB bytes value: listed with a short value."""
    data = pickle.dumps({"s": "x" * (8 << 20), "b": b"y" * (8 << 20)}, protocol=4)
    checkpoint = read(write(tmp_path, "s.pkl", data))
    assert all(len(c.value or "") < 300 for c in checkpoint.root.children)  # type: ignore[union-attr]


def test_huge_string_key_does_not_blow_up_the_json(tmp_path: Path) -> None:
    """A 64 KiB dict key above 200 small values: every node repeats its path, so unless long
    keys are shortened the JSON is hundreds of times the file (a 1 MiB key over 2,000 values
    gives 4 GB of `inspect --json` output)."""
    data = (H.Asm().raw(pickle.EMPTY_DICT).text("k" * (64 << 10)).raw(pickle.EMPTY_LIST + pickle.MARK)
            .raw(pickle.NONE * 200).raw(pickle.APPENDS + pickle.SETITEM).stop())
    checkpoint = read(write(tmp_path, "key.pkl", data))
    assert len(json.dumps(checkpoint.to_json())) < 10 * len(data)


CYCLES = {
    "list-holds-itself": H.self_referencing_list,
    "build-state-holds-the-object": H.build_cycle,
    "appended-to-itself": lambda: (H.Asm().glob("argparse", "Namespace").raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
                                   .put(0).get(0).raw(pickle.APPEND).stop()),
    "two-lists-hold-each-other": lambda: (H.Asm().raw(pickle.EMPTY_LIST).put(0).raw(pickle.EMPTY_LIST).put(1)
                                          .get(0).raw(pickle.APPEND).raw(pickle.APPEND).stop()),
    "module-whose-child-is-itself": lambda: (
        H.Asm().glob("torch.nn.modules.linear", "Linear").raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ).put(0)
        .raw(pickle.EMPTY_DICT).text("_modules").raw(pickle.EMPTY_DICT).text("me").get(0).raw(pickle.SETITEM)
        .raw(pickle.SETITEM).text("_parameters").raw(pickle.EMPTY_DICT).raw(pickle.SETITEM + pickle.BUILD).stop()),
}


@pytest.mark.parametrize("name", list(CYCLES))
def test_cycles(tmp_path: Path, name: str) -> None:
    """Cyclic structures made with memo + APPEND/SETITEM/BUILD: shown as a reference cycle."""
    checkpoint = read(write(tmp_path, "cycle.pkl", CYCLES[name]()))
    assert checkpoint.errors == []
    assert "<reference cycle>" in json.dumps(checkpoint.to_json()["tree"])


# ---------------------------------------------------------------------------------------------
# The CLI: exit codes and one-line messages, never a traceback.


def test_cli_never_prints_a_traceback(tmp_path: Path, sound_files: dict[str, bytes], zip_template: bytes) -> None:
    """A batch of hostile files through `python -m pthscope inspect` (text and --json)."""
    canary = tmp_path / "canary"
    files = {
        "payload.pt": H.torch_zip(H.Asm().call("os", "system", H.s(H.shell_touch(canary))).stop(), template=zip_template),
        "payload.legacy": H.legacy(H.protocol_payload(canary, 0)),
        "getattr-chain.pkl": next(p.data for p in H.payloads(canary) if p.name == "import-getattr-chain"),
        "truncated.pt": sound_files["torch-zip"][:-30],
        "truncated.legacy": sound_files["torch-legacy"][:-30],
        "empty.pt": b"",
        "random.pt": bytes(random.Random(0).randrange(256) for _ in range(999)),
        "deep.pkl": H.nested_lists(100_000),
        "laughs.pkl": H.billion_laughs(12),
        "cycle.pkl": H.self_referencing_list(),
        "big-tensor.pt": _zip_with_tensor((10**6, 10**6), (10**6, 1)),
        "lie.safetensors": SAFETENSORS_LIES["offsets-past-the-data"](),
        "deflate-lie.pt": CORRUPT_ZIPS["deflate-claimed-stored-bytes"](sound_files["torch-zip"]),
        "huge-shape.safetensors": SAFETENSORS_LIES["shape-of-huge-ints"](),
        "huge-numel.pt": _zip_with_tensor((10**1000,) * 5, (1,) * 5),
        "huge-int-key.pkl": H.Asm().raw(pickle.EMPTY_DICT).num(10**5000).num(1).raw(pickle.SETITEM).stop(),
        "deep-key.pkl": H.nested_tuples_as_dict_key(50_000),
    }
    paths = [str(write(tmp_path, name, data)) for name, data in files.items()]
    paths.append(str(tmp_path / "missing.pt"))
    for extra in ([], ["--json"]):
        done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", *extra, *paths],
                              capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        assert done.returncode == 1
        assert all(line.startswith("pthscope: ") for line in done.stderr.splitlines()), done.stderr
        if extra:
            assert len(done.stdout.splitlines()) == len(paths)
            assert all(json.loads(line) for line in done.stdout.splitlines())
    assert_no_canary(tmp_path)


def test_cli_json_is_exactly_to_json(tmp_path: Path) -> None:
    """`inspect --json` writes long lists item by item; the text must still be one JSON object
    equal to Checkpoint.to_json()."""
    path = tmp_path / "many.pt"
    torch.save({f"layer{i}.w": torch.zeros(2) for i in range(300)} | {"meta": {"note": "x" * 99}}, path)
    done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", "--json", str(path)], capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.count("\n") == 1
    assert json.loads(done.stdout) == json.loads(json.dumps(pthscope.inspect(path).to_json()))


SAFETENSORS_REFUSED = {
    "gap-between-tensors": lambda: _safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}},
                                                bytes(12)),
    "overlapping-tensors": lambda: _safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                                                bytes(8)),
    "trailing-bytes": lambda: _safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(9)),
    "unknown-dtype": lambda: _safetensors({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
    "metadata-not-strings": lambda: _safetensors({"__metadata__": {"n": 1},
                                                  "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
    "first-tensor-not-at-0": lambda: _safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                                                  bytes(8)),
    "duplicate-key": lambda: (lambda h: struct.pack("<Q", len(h)) + h + bytes(4))(
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
    "header-not-an-object-start": lambda: (lambda h: struct.pack("<Q", len(h)) + h + bytes(4))(
        b' {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
}


@pytest.mark.parametrize("name", list(SAFETENSORS_REFUSED))
def test_safetensors_headers_the_library_refuses_are_errors(tmp_path: Path, name: str) -> None:
    """Whatever safetensors.safe_open refuses, pthscope names as an error (and where)."""
    from safetensors import safe_open

    path = write(tmp_path, "x.safetensors", SAFETENSORS_REFUSED[name]())
    try:
        with safe_open(str(path), "pt") as f:
            [f.get_tensor(k) for k in f.keys()]  # noqa: SIM118 (safe_open is not a dict)
        library_refuses = False
    except Exception:
        library_refuses = True
    checkpoint = read(path)
    if library_refuses:
        assert checkpoint.errors, name
        assert all(e.where for e in checkpoint.errors)


def test_the_pickles_read_for_their_globals_only_are_bounded_together(tmp_path: Path) -> None:
    """Deflated pickles beside data.pkl (torch.load runs none of them; pthscope reads them for
    their globals): each under the pickle limit, together over the limit for such pickles. Those
    past it are not read, and each says so, instead of reading gigabytes from a few MB."""
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    filler = pickle.NONE + (pickle.NONE + pickle.POP) * 2000 + pickle.STOP  # 4 KB each
    path = tmp_path / "many_side_pickles.pt"
    path.write_bytes(buffer.getvalue())
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as out:
        for i in range(3):
            out.writestr(f"archive/side{i}.pkl", filler)
        out.writestr("archive/last.pkl", pickle.dumps({"x": 1}))
    checkpoint = read(path, Limits(max_side_pickle_bytes=10_000))
    skipped = [w.where for w in checkpoint.warnings if w.kind == "limit"]
    assert skipped == ["archive/side2.pkl", "archive/last.pkl"], checkpoint.warnings
    assert [t.key for t in checkpoint.tensors] == ["w"] and not checkpoint.errors
