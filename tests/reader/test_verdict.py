"""The safety verdict tells the truth: what torch.load(weights_only=False) would do with each global.

Every payload here is first run for real (pickle.load / torch.load in a child process) and must
leave its canary file; then pthscope reads it — in a child process with the audit hook in record
mode — and must leave no canary and no audit event, and classify it: dangerous with the use it
saw (called with N arguments, planted, written, attribute walk). Ordinary files (state_dicts,
whole models, Lightning-style hyperparameters, numpy values, Python-2-style pickles) must get no
dangerous verdict.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch

from . import hostile_files as H
from .user_models import SmallNet


def canary_calls(canary: Path) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    """Callables that, called with these arguments, create `canary` (run code, spawn, write)."""
    import codecs
    import cProfile
    import logging
    import profile
    import pydoc
    import runpy
    import shutil
    import sqlite3
    import timeit
    import zipfile

    sh, py = H.shell_touch(canary), H.python_touch(canary)
    script = canary.with_suffix(".script.py")  # written by the test for run_path
    return {
        "os.system": (os.system, (sh,)),
        "os.popen": (os.popen, (sh,)),
        "subprocess.call": (subprocess.call, (["touch", str(canary)],)),
        "subprocess.run": (subprocess.run, (["touch", str(canary)],)),
        "subprocess.check_call": (subprocess.check_call, (["touch", str(canary)],)),
        "subprocess.getoutput": (subprocess.getoutput, (sh,)),
        "subprocess.Popen": (subprocess.Popen, (["touch", str(canary)],)),
        "builtins.exec": (exec, (py,)),
        "builtins.eval": (eval, (f"__import__('os').system({sh!r})",)),
        "builtins.open": (open, (str(canary), "w")),
        "io.open": (io.open, (str(canary), "w")),
        "codecs.open": (codecs.open, (str(canary), "w")),
        "timeit.timeit": (timeit.timeit, (py, "pass", timeit.default_timer, 1)),
        "cProfile.run": (cProfile.run, (py,)),
        "profile.run": (profile.run, (py,)),
        "runpy.run_path": (runpy.run_path, (str(script),)),
        "pydoc.pipepager": (pydoc.pipepager, ("x", f"cat > '{canary}'")),
        "logging.FileHandler": (logging.FileHandler, (str(canary),)),
        "sqlite3.connect": (sqlite3.connect, (str(canary),)),
        "zipfile.ZipFile": (zipfile.ZipFile, (str(canary), "w")),
        "shutil.copyfile": (shutil.copyfile, (__file__, str(canary))),
        "numpy.savetxt": (numpy.savetxt, (str(canary), [1.0])),
        "numpy.memmap": (numpy.memmap, (str(canary), "uint8", "w+", 0, (1,))),
        "torch.save": (torch.save, ({}, str(canary))),
        "pickle.loads": (pickle.loads, (pickle.dumps(H.ReduceToSystem(sh), protocol=2),)),
    }


CALL_NAMES = list(canary_calls(Path("canary")))
FRAMINGS = ("pickle", "torch-zip", "torch-legacy")


def frame(framing: str, data: bytes) -> bytes:
    if framing == "pickle":
        return data
    if framing == "torch-zip":
        return H.torch_zip(data)
    return H.legacy(data)


_RUN = textwrap.dedent("""
    import json, pickle, sys, torch
    sys.path.insert(0, sys.argv[1])
    for name in sys.argv[2:]:
        try:
            torch.load(name, weights_only=False) if not name.endswith(".pkl") else pickle.load(open(name, "rb"))
        except BaseException:
            pass
""")

_READ = textwrap.dedent("""
    import json, sys
    from pthscope.reader import audit
    audit.install(record=True)
    import pthscope
    out = {}
    for name in sys.argv[1:]:
        c = pthscope.inspect(name)
        out[name] = {"globals": [g.to_json() for g in c.globals], "errors": [e.to_json() for e in c.errors],
                     "warnings": [w.to_json() for w in c.warnings],
                     "root": [child.name for child in (c.root.children if c.root else [])],
                     "format": c.format}
    print(json.dumps({"files": out, "events": audit.recorded}))
""")


def really_run(folder: Path, files: list[Path]) -> None:
    """Load every file for real in a child (torch.load / pickle.load), with the evil module importable."""
    subprocess.run([sys.executable, "-c", _RUN, str(folder), *map(str, files)], timeout=300, capture_output=True,
                   cwd=folder)


def pthscope_reads(files: list[Path]) -> dict[str, Any]:
    """Read every file in a child with the audit hook recording; no event may happen."""
    done = subprocess.run([sys.executable, "-c", _READ, *map(str, files)], timeout=300, capture_output=True,
                          text=True, check=True)
    result = json.loads(done.stdout)
    assert result["events"] == [], result["events"][:5]
    return result["files"]  # type: ignore[no-any-return]


def wait_for(paths: list[Path]) -> list[Path]:
    """The paths that did not appear within a few seconds (Popen payloads touch later)."""
    give_up = time.monotonic() + 10
    while time.monotonic() < give_up and not all(p.exists() for p in paths):
        time.sleep(0.05)
    return [p for p in paths if not p.exists()]


def risks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in result["globals"]}


@pytest.fixture(scope="module")
def call_family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str, int], Path]]:
    """Every canary callable pickled by reference, at protocols 0-5, in every framing."""
    folder = tmp_path_factory.mktemp("calls")
    files: dict[tuple[str, str, int], Path] = {}
    for framing in FRAMINGS:
        for protocol in range(6):
            if framing != "pickle" and protocol not in (2, 4):
                continue  # torch writes protocol 2; 4 for its pickle_protocol users; the rest as plain pickles
            for name in CALL_NAMES:
                stem = f"{framing}-{protocol}-{name}"
                canary = folder / f"canary-{stem}"
                fn, args = canary_calls(canary)[name]
                canary.with_suffix(".script.py").write_text(H.python_touch(canary))
                data = pickle.dumps(H.ReduceToCallable(fn, *args), protocol=protocol)
                path = folder / (stem + (".pkl" if framing == "pickle" else ".pt"))
                path.write_bytes(frame(framing, data))
                files[(framing, name, protocol)] = path
    return folder, files


def test_every_call_payload_really_runs(call_family: tuple[Path, dict[tuple[str, str, int], Path]]) -> None:
    """Guards the next test: each file, loaded for real, creates its canary."""
    folder, files = call_family
    really_run(folder, list(files.values()))
    missing = wait_for([folder / f"canary-{p.stem}" for p in files.values()])
    assert [p.name for p in missing] == []
    for canary in folder.glob("canary*"):
        canary.unlink() if canary.is_file() else None


def test_every_called_callable_is_dangerous(call_family: tuple[Path, dict[tuple[str, str, int], Path]]) -> None:
    """pthscope: no canary, no audit event, and the callable is dangerous, seen called with its
    arguments, with a sentence saying so — for every callable, protocol and framing."""
    folder, files = call_family
    for canary in folder.glob("canary*"):
        canary.unlink() if canary.is_file() else None
    results = pthscope_reads(list(files.values()))
    assert not list(folder.glob("canary*[!y]")), "a payload ran"
    for (framing, name, protocol), path in files.items():
        result = results[str(path)]
        dangerous = [g for g in result["globals"] if g["risk"] == "dangerous"]
        assert dangerous, (framing, name, protocol, result["globals"])
        called = [g for g in dangerous if g["uses"].get("called")]
        assert called or any("getattr" in g["name"] for g in dangerous), (framing, name, protocol, dangerous)
        assert all(g["effect"].startswith("would ") for g in dangerous)
        assert result["warnings"][0]["kind"] == "dangerous-globals"


# ---------------------------------------------------------------------------------------------
# Attribute walks: a dotted name at protocol 4 reaches any object.

DOTTED = [
    ("torch", "serialization.os.system"),
    ("argparse", "_os.system"),
    ("collections", "_sys.modules.get"),  # any module, through sys.modules
    ("torch", "_utils._rebuild_tensor_v2"),  # even a torch-looking name walks
    ("pathlib", "os.system"),
]


@pytest.mark.parametrize("opcode", ["stack-global", "global-after-proto-4"])
@pytest.mark.parametrize("module,name", DOTTED)
def test_dotted_names_are_dangerous(tmp_path: Path, module: str, name: str, opcode: str) -> None:
    asm = H.Asm(4)
    asm.stack_glob(module, name) if opcode == "stack-global" else asm.glob(module, name)
    data = asm.put(0).stop()
    resolved = pickle.loads(data)  # the real unpickler walks the attributes
    assert callable(resolved)
    if name.endswith("os.system"):  # and a call through the walk runs
        canary = tmp_path / "canary-walk"
        call = H.Asm(4)
        call.stack_glob(module, name) if opcode == "stack-global" else call.glob(module, name)
        pickle.loads(call.tup(H.s(H.shell_touch(canary))).raw(pickle.REDUCE).stop())
        assert not wait_for([canary])
        canary.unlink()
    path = tmp_path / "walk.pkl"
    path.write_bytes(data)
    result = pthscope_reads([path])[str(path)]
    ref = risks(result)[f"{module}:{name}"]
    assert ref["risk"] == "dangerous" and "walk" in ref["effect"]
    assert not list(tmp_path.glob("canary*"))


_SHARDED_API = "torch.distributed._shard.sharded_tensor.api"
_NESTED = f"{_SHARDED_API}:ShardedTensor.ProcessGroupState"


def _nested_class_walk(asm: H.Asm, name: str = "ProcessGroupState") -> H.Asm:
    """`getattr(ShardedTensor, name)`, as protocol 2 writes ShardedTensor's nested class."""
    return asm.glob("builtins", "getattr").tup(lambda a: a.glob(_SHARDED_API, "ShardedTensor"), H.s(name)).raw(pickle.REDUCE)


def test_a_reviewed_nested_class_is_not_an_attribute_walk(tmp_path: Path) -> None:
    """torch.save of a ShardedTensor reaches `ShardedTensor.ProcessGroupState` through getattr
    (protocol 2) or as a dotted name (protocol 4): a known data class, so unknown, not dangerous."""
    built = _nested_class_walk(H.Asm()).tup(*(lambda a, n=n: a.num(n) for n in range(4))).raw(pickle.REDUCE).stop()
    dotted = (H.Asm(4).stack_glob(_SHARDED_API, "ShardedTensor.ProcessGroupState")
              .tup(*(lambda a, n=n: a.num(n) for n in range(4))).raw(pickle.REDUCE).stop())
    files = [tmp_path / "walk2.pkl", tmp_path / "dotted4.pkl"]
    files[0].write_bytes(built)
    files[1].write_bytes(dotted)
    state = pickle.loads(built)  # the real classes: what torch.load(weights_only=False) makes
    assert type(state).__qualname__ == "ShardedTensor.ProcessGroupState"
    results = pthscope_reads(files)
    for file in files:
        found = risks(results[str(file)])
        assert {name: g["risk"] for name, g in found.items() if g["risk"] != "safe"} == (
            {_NESTED: "unknown", "builtins.getattr": "unknown", f"{_SHARDED_API}.ShardedTensor": "unknown"}
            if file == files[0] else {_NESTED: "unknown"})


@pytest.mark.parametrize("abuse", ["dunder", "other-name", "walk-further", "getattr-elsewhere", "written"])
def test_getattr_beyond_the_reviewed_nested_class_stays_dangerous(tmp_path: Path, abuse: str) -> None:
    asm = H.Asm()
    if abuse == "dunder":
        _nested_class_walk(asm, "__init__")
    elif abuse == "other-name":
        _nested_class_walk(asm, "_init_from_local_shards")
    elif abuse == "walk-further":  # getattr(getattr(ShardedTensor, "ProcessGroupState"), "__init__")
        asm.glob("builtins", "getattr").tup(lambda a: _nested_class_walk(a), H.s("__init__")).raw(pickle.REDUCE)
    elif abuse == "getattr-elsewhere":  # one reviewed walk, then getattr(os, "system")
        asm.raw(pickle.MARK)
        _nested_class_walk(asm)
        asm.glob("builtins", "getattr").tup(lambda a: a.glob("os", "path"), H.s("join")).raw(pickle.REDUCE)
        asm.raw(pickle.TUPLE)
    else:  # BUILD into the nested class itself
        _nested_class_walk(asm).raw(pickle.EMPTY_DICT).text("x").num(1).raw(pickle.SETITEM + pickle.BUILD)
    path = tmp_path / "abuse.pkl"
    path.write_bytes(asm.stop())
    found = risks(pthscope_reads([path])[str(path)])
    assert "dangerous" in {g["risk"] for g in found.values()}, found
    if abuse != "written":
        assert found["builtins.getattr"]["risk"] == "dangerous"


# ---------------------------------------------------------------------------------------------
# Callables planted where the unpickler calls them, and writes into globals.


def _namespace_with(attribute: str, value: H.Asm) -> H.Asm:
    a = H.Asm().glob("argparse", "Namespace").raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
    a.raw(pickle.EMPTY_DICT).text(attribute)
    value.out = bytearray(value.out)
    a.raw(bytes(value.out)).raw(pickle.SETITEM + pickle.BUILD)
    return a


PLANTED = {
    "setstate": lambda fn, arg: _namespace_with("__setstate__", fn).text(arg).raw(pickle.BUILD).stop(),
    "append": lambda fn, arg: _namespace_with("append", fn).text(arg).raw(pickle.APPEND).stop(),
    "add": lambda fn, arg: _namespace_with("add", fn).raw(pickle.MARK).text(arg).raw(pickle.ADDITEMS).stop(),
    "ordereddict-setstate": lambda fn, arg: (
        H.Asm().glob("collections", "OrderedDict").raw(pickle.EMPTY_TUPLE + pickle.REDUCE)
        .raw(pickle.EMPTY_DICT).text("__setstate__").raw(bytes(fn.out)).raw(pickle.SETITEM + pickle.BUILD)
        .text(arg).raw(pickle.BUILD).stop()),
}


@pytest.mark.parametrize("target", ["os.system", "evil.touch"])
@pytest.mark.parametrize("trick", list(PLANTED))
def test_planted_callables_are_dangerous(tmp_path: Path, trick: str, target: str) -> None:
    """BUILD puts a callable under `__setstate__`/`append`/`add` in an object's __dict__; the
    next BUILD/APPEND/ADDITEMS calls it with file data. A user function used so is dangerous too."""
    (tmp_path / f"{H.EVIL_MODULE}.py").write_text(H.evil_module_source(tmp_path) + "\ndef touch_path(p):\n"
                                                   "    open(p, 'w').close()\n")
    canary = tmp_path / "canary-planted"
    if target == "os.system":
        fn, arg, name = H.Asm(None).glob("os", "system"), H.shell_touch(canary), "os.system"
    else:
        fn, arg, name = H.Asm(None).glob(H.EVIL_MODULE, "touch_path"), str(canary), f"{H.EVIL_MODULE}.touch_path"
    path = tmp_path / "planted.pkl"
    path.write_bytes(PLANTED[trick](fn, arg))
    really_run(tmp_path, [path])
    assert not wait_for([canary]), "the payload does not run for real"
    canary.unlink()
    ref = risks(pthscope_reads([path])[str(path)])[name]
    assert ref["risk"] == "dangerous" and ref["uses"]["planted"], ref
    assert not canary.exists()


@pytest.mark.parametrize("target", ["os.system", "evil.touch"])
def test_a_callable_planted_through_a_parameters_state_is_dangerous(tmp_path: Path, target: str) -> None:
    """`_rebuild_parameter_with_state` (on torch's allow-list) sets its `state` as the
    Parameter's attributes; a `__setstate__` planted so is what the next BUILD calls."""
    (tmp_path / f"{H.EVIL_MODULE}.py").write_text(H.evil_module_source(tmp_path) + "\ndef touch_path(p):\n"
                                                   "    open(p, 'w').close()\n")
    canary = tmp_path / "canary-parameter"
    if target == "os.system":
        module, name, arg = "os", "system", H.shell_touch(canary)
    else:
        module, name, arg = H.EVIL_MODULE, "touch_path", str(canary)
    a = H.Asm().glob("torch._utils", "_rebuild_parameter_with_state").raw(pickle.MARK)
    H.rebuild_tensor(a, "0", (1,), (1,))
    a.raw(pickle.NEWFALSE).glob("collections", "OrderedDict").raw(pickle.EMPTY_TUPLE + pickle.REDUCE)
    a.raw(pickle.EMPTY_DICT).text("__setstate__").glob(module, name).raw(pickle.SETITEM)
    a.raw(pickle.TUPLE + pickle.REDUCE).text(arg).raw(pickle.BUILD)
    path = tmp_path / "parameter-state.pt"
    path.write_bytes(H.torch_zip(a.stop(), storages={"0": b"\0" * 4}))
    really_run(tmp_path, [path])
    assert not wait_for([canary]), "the payload does not run for real"
    canary.unlink()
    ref = risks(pthscope_reads([path])[str(path)])[f"{module}.{name}"]
    assert ref["risk"] == "dangerous" and ref["uses"]["planted"] == ["__setstate__"], ref
    assert not canary.exists()


def test_build_on_a_global_itself_is_dangerous(tmp_path: Path) -> None:
    """BUILD with slot state on a class object sets class attributes for the whole process."""
    (tmp_path / f"{H.EVIL_MODULE}.py").write_text(H.evil_module_source(tmp_path))
    data = (H.Asm().glob(H.EVIL_MODULE, "OnNew").raw(pickle.NONE + pickle.EMPTY_DICT).text("pwned")
            .num(1).raw(pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD).stop())
    check = f"import sys, pickle; sys.path.insert(0, {str(tmp_path)!r}); pickle.loads({data!r}); " \
            f"import {H.EVIL_MODULE} as m; print(m.OnNew.pwned)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stdout.strip() == "1"
    path = tmp_path / "write.pkl"
    path.write_bytes(data)
    ref = risks(pthscope_reads([path])[str(path)])[f"{H.EVIL_MODULE}.OnNew"]
    assert ref["risk"] == "dangerous" and ref["uses"]["written"] and "itself" in ref["effect"]


def test_rebuild_from_type_calls_its_argument(tmp_path: Path) -> None:
    """torch's allowlisted _rebuild_from_type_v2 calls its first argument with the file's
    arguments: os.system given there is called (and dangerous), under torch.load too."""
    canary = tmp_path / "canary-rft"
    data = (H.Asm().glob("torch._tensor", "_rebuild_from_type_v2")
            .tup(lambda a: a.glob("os", "system"), lambda a: a.glob("torch", "Tensor"),
                 lambda a: a.tup(H.s(H.shell_touch(canary))), lambda a: a.raw(pickle.EMPTY_DICT))
            .raw(pickle.REDUCE).stop())
    path = tmp_path / "rft.pt"
    path.write_bytes(H.torch_zip(data))
    really_run(tmp_path, [path])
    assert not wait_for([canary])
    canary.unlink()
    ref = risks(pthscope_reads([path])[str(path)])["os.system"]
    assert ref["risk"] == "dangerous" and ref["uses"]["called"] == 1


# ---------------------------------------------------------------------------------------------
# No false alarms on ordinary files.


class Hyper(argparse.Namespace):
    pass


def ordinary_files(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}

    def save(name: str, obj: object, **kwargs: Any) -> None:
        out[name] = folder / f"{name}.pt"
        torch.save(obj, out[name], **kwargs)

    net = SmallNet()
    save("state-dict", net.state_dict())
    save("whole-model", net)
    save("whole-model-legacy-protocol-1", net, pickle_protocol=1, _use_new_zipfile_serialization=False)
    save("lightning-style", {
        "state_dict": net.state_dict(), "epoch": 3, "global_step": 1200,
        "hyper_parameters": argparse.Namespace(lr=0.1, data=pathlib.Path("/data/x"), when=datetime.datetime(2020, 1, 2),
                                               delta=datetime.timedelta(hours=1), day=datetime.date(2020, 1, 1)),
        "optimizer_states": [torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9).state_dict()],
        "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.5), "dirpath": "/tmp"}},
        "counts": collections.Counter("aab"), "recent": collections.deque([1, 2], maxlen=5),
        "groups": collections.defaultdict(list, {"a": [1]}), "tags": frozenset({"x"}), "cut": slice(1, 5),
    })
    save("numpy-values", {"array": numpy.arange(6, dtype=numpy.float32).reshape(2, 3), "best": numpy.float64(0.9),
                          "step": numpy.int64(7), "dtype": numpy.dtype("int16")})
    save("protocol-4", net.state_dict(), pickle_protocol=4)
    out["python2-style.pkl"] = folder / "py2.pkl"
    out["python2-style.pkl"].write_bytes(pickle.dumps({"h": Hyper(a=1), "r": range(3), "s": {1, 2}, "c": 1j},
                                                      protocol=2))
    return out


def test_ordinary_files_get_no_dangerous_verdict(tmp_path: Path) -> None:
    files = ordinary_files(tmp_path)
    results = pthscope_reads(list(files.values()))
    for name, path in files.items():
        result = results[str(path)]
        dangerous = [g for g in result["globals"] if g["risk"] == "dangerous"]
        assert dangerous == [], (name, dangerous)
        assert result["errors"] == [], (name, result["errors"])
    lightning = risks(results[str(files["lightning-style"])])
    assert lightning["argparse.Namespace"]["risk"] == "unknown"
    assert lightning["argparse.Namespace"]["uses"]["rebuilt"] == 1
    assert lightning["datetime.datetime"]["risk"] == "unknown"
    assert lightning["collections.OrderedDict"]["risk"] == "safe"
    legacy = risks(results[str(files["whole-model-legacy-protocol-1"])])
    assert legacy["copyreg._reconstructor"]["risk"] == "unknown"  # written as copy_reg, mapped as Python 3 does
    assert all(r["risk"] != "dangerous" for r in legacy.values())


def test_safe_is_exactly_torchs_weights_only_allowlist() -> None:
    from torch import _weights_only_unpickler

    from pthscope.reader.global_risk import WEIGHTS_ONLY_ALLOWED

    assert set(_weights_only_unpickler._get_allowed_globals()) == WEIGHTS_ONLY_ALLOWED


def test_python2_names_are_mapped_like_python3_does(tmp_path: Path) -> None:
    """`__builtin__.eval` is dangerous (as builtins.eval), `__builtin__.xrange` is builtins.range,
    `copy_reg._reconstructor` with an object base only rebuilds (no red banner)."""
    data = (H.Asm().raw(pickle.EMPTY_LIST).glob("__builtin__", "xrange").tup(H.i(3)).raw(pickle.REDUCE + pickle.APPEND)
            .glob("copy_reg", "_reconstructor").tup(lambda a: a.glob("argparse", "Namespace"),
                                                     lambda a: a.glob("__builtin__", "object"),
                                                     lambda a: a.raw(pickle.NONE))
            .raw(pickle.REDUCE + pickle.APPEND).stop())
    assert isinstance(pickle.loads(data)[1], argparse.Namespace)
    path = tmp_path / "py2.pkl"
    path.write_bytes(data)
    got = risks(pthscope_reads([path])[str(path)])
    assert got["builtins.range"]["risk"] == "unknown"
    assert got["copyreg._reconstructor"]["risk"] == "unknown"
    assert got["argparse.Namespace"]["uses"]["rebuilt"] == 1
    assert "dangerous" not in {g["risk"] for g in got.values()}
