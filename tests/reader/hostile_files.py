"""Generators for hostile checkpoints: payload pickles, framings, and malformed structures.

Every payload, if a real unpickler ran it, would create the file `canary` (by a shell `touch` or
by Python's `open`). The tests feed these files to pthscope and check that no canary appears;
`test_payloads_really_execute*` run them through real `pickle`/`torch.load` once, so a payload
that silently stopped working cannot make those tests pass for the wrong reason.

Pickles are assembled opcode by opcode (`Asm`) where `pickle.dumps` would not write the shape we
want, and made with `pickle.dumps` of `__reduce__` classes for the per-protocol variants.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# torch's legacy magic number and the sys-info pickle torch writes (torch/serialization.py).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
LEGACY_SYS_INFO = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                   "type_sizes": {"short": 2, "int": 4, "long": 4}}

# A module the reader never imports; the canary tests put it on sys.path only for real loads.
EVIL_MODULE = "pthscope_hostile_evil"


class Asm:
    """Hand assembly of pickle opcodes (protocol 2 framing unless told otherwise)."""

    def __init__(self, proto: int | None = 2) -> None:
        self.out = bytearray()
        if proto is not None and proto >= 2:
            self.out += pickle.PROTO + bytes([proto])

    def raw(self, data: bytes) -> Asm:
        self.out += data
        return self

    def text(self, text: str) -> Asm:
        data = text.encode("utf-8")
        self.out += pickle.BINUNICODE + struct.pack("<I", len(data)) + data
        return self

    def blob(self, data: bytes) -> Asm:
        self.out += pickle.BINBYTES + struct.pack("<I", len(data)) + data
        return self

    def num(self, value: int) -> Asm:
        if 0 <= value < 1 << 31:
            self.out += pickle.BININT + struct.pack("<i", value)
        else:
            data = _long_bytes(value)
            self.out += pickle.LONG4 + struct.pack("<i", len(data)) + data
        return self

    def glob(self, module: str, name: str) -> Asm:
        self.out += pickle.GLOBAL + f"{module}\n{name}\n".encode()
        return self

    def stack_glob(self, module: str, name: str) -> Asm:
        return self.text(module).text(name).raw(pickle.STACK_GLOBAL)

    def tup(self, *build: Callable[[Asm], object]) -> Asm:
        self.out += pickle.MARK
        for b in build:
            b(self)
        self.out += pickle.TUPLE
        return self

    def call(self, module: str, name: str, *args: Callable[[Asm], object]) -> Asm:
        """GLOBAL module.name, a tuple of args, REDUCE."""
        return self.glob(module, name).tup(*args).raw(pickle.REDUCE)

    def put(self, index: int) -> Asm:
        self.out += pickle.LONG_BINPUT + struct.pack("<I", index)
        return self

    def get(self, index: int) -> Asm:
        self.out += pickle.LONG_BINGET + struct.pack("<I", index)
        return self

    def stop(self) -> bytes:
        self.out += pickle.STOP
        return bytes(self.out)


def _long_bytes(value: int) -> bytes:
    n = (value.bit_length() + 8) // 8
    return value.to_bytes(n, "little", signed=True)


def s(text: str) -> Callable[[Asm], object]:
    return lambda a: a.text(text)


def i(value: int) -> Callable[[Asm], object]:
    return lambda a: a.num(value)


def b(data: bytes) -> Callable[[Asm], object]:
    return lambda a: a.blob(data)


# ---------------------------------------------------------------------------------------------
# Payloads: (pickle bytes, the dangerous global(s) pthscope must report).


@dataclass(frozen=True)
class Payload:
    name: str
    data: bytes
    dangerous: tuple[str, ...]  # at least one of these must be reported with risk "dangerous"
    unknown: str = ""  # or: this user class must be reported with risk "unknown"
    # Needs EVIL_MODULE importable / a copyreg extension registered to run for real.
    needs_evil_module: bool = False
    extension: tuple[str, str, int] | None = None


def shell_touch(canary: Path) -> str:
    return f"touch '{canary}'"


def python_touch(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').close()"


def evil_module_source(canary_dir: Path) -> str:
    """A user module whose class runs code in __new__, __setstate__ and __reduce__ callables."""
    return f'''
import os
CANARY_DIR = {str(canary_dir)!r}

def touch(name):
    open(os.path.join(CANARY_DIR, name), "w").close()

class OnNew:
    def __new__(cls, *args, **kwargs):
        touch(kwargs.get("canary") or args[0])
        return object.__new__(cls)

class OnSetstate:
    def __setstate__(self, state):
        touch(state["canary"])
'''


def payloads(canary: Path) -> list[Payload]:
    """One payload per technique; each touches `canary` when really unpickled."""
    sh, py = shell_touch(canary), python_touch(canary)
    name = canary.name
    out = [
        # REDUCE, protocol 2 GLOBAL, the name pickle.dumps(os.system) writes on Linux.
        Payload("reduce-posix-system", Asm().call("posix", "system", s(sh)).stop(), ("posix.system",)),
        Payload("reduce-os-system", Asm().call("os", "system", s(sh)).stop(), ("os.system",)),
        # STACK_GLOBAL (protocol 4).
        Payload("stack-global-os-system",
                Asm(4).stack_glob("os", "system").tup(s(sh)).raw(pickle.REDUCE).stop(), ("os.system",)),
        # INST and OBJ, protocol 0 spelling.
        Payload("inst-os-system", b"(V" + sh.encode() + b"\nios\nsystem\n.", ("os.system",)),
        Payload("obj-os-system", b"(cos\nsystem\nV" + sh.encode() + b"\no.", ("os.system",)),
        Payload("subprocess-popen",
                Asm().glob("subprocess", "Popen").raw(pickle.MARK)
                .raw(pickle.EMPTY_LIST + pickle.MARK).text("touch").text(str(canary)).raw(pickle.APPENDS)
                .raw(pickle.TUPLE + pickle.REDUCE).stop(), ("subprocess.Popen",)),
        Payload("subprocess-check-output",
                Asm().glob("subprocess", "check_output").raw(pickle.MARK)
                .raw(pickle.EMPTY_LIST + pickle.MARK).text("touch").text(str(canary)).raw(pickle.APPENDS)
                .raw(pickle.TUPLE + pickle.REDUCE).stop(), ("subprocess.check_output",)),
        Payload("builtins-exec", Asm().call("builtins", "exec", s(py)).stop(), ("builtins.exec",)),
        Payload("builtin-eval-py2-name",
                Asm().call("__builtin__", "eval", s(f"__import__('os').system({sh!r})")).stop(),
                ("builtins.eval",)),
        # getattr(__import__('os'), 'system')(cmd)
        Payload("import-getattr-chain",
                Asm().glob("builtins", "getattr")
                .tup(lambda a: a.call("builtins", "__import__", s("os")), s("system"))
                .raw(pickle.REDUCE).tup(s(sh)).raw(pickle.REDUCE).stop(),
                ("builtins.getattr", "builtins.__import__")),
        Payload("runpy-run-code",
                Asm().glob("runpy", "_run_code").tup(s(py), lambda a: a.raw(pickle.EMPTY_DICT))
                .raw(pickle.REDUCE).stop(), ("runpy._run_code",)),
        Payload("pydoc-locate",
                Asm().call("pydoc", "locate", s("os.system")).tup(s(sh)).raw(pickle.REDUCE).stop(),
                ("pydoc.locate",)),
        Payload("importlib-import-module",
                Asm().glob("builtins", "getattr")
                .tup(lambda a: a.call("importlib", "import_module", s("os")), s("system"))
                .raw(pickle.REDUCE).tup(s(sh)).raw(pickle.REDUCE).stop(),
                ("importlib.import_module", "builtins.getattr")),
        Payload("pickle-loads-inner",
                Asm().call("pickle", "loads", b(Asm().call("os", "system", s(sh)).stop())).stop(),
                ("pickle.loads",)),
        # BUILD with a __setstate__ trick: the first BUILD puts os.system into the instance dict as
        # `__setstate__`, the second BUILD makes the unpickler call it with the command.
        Payload("build-setstate-trick",
                Asm().glob("argparse", "Namespace").raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
                .raw(pickle.EMPTY_DICT).text("__setstate__").glob("os", "system").raw(pickle.SETITEM)
                .raw(pickle.BUILD).text(sh).raw(pickle.BUILD).stop(), ("os.system",)),
        Payload("build-setstate-trick-on-ordereddict",
                Asm().glob("collections", "OrderedDict").raw(pickle.EMPTY_TUPLE + pickle.REDUCE)
                .raw(pickle.EMPTY_DICT).text("__setstate__").glob("os", "system").raw(pickle.SETITEM)
                .raw(pickle.BUILD).text(sh).raw(pickle.BUILD).stop(), ("os.system",)),
        # NEWOBJ / NEWOBJ_EX / BUILD of a user class whose code runs on unpickling.
        Payload("newobj-user-class",
                Asm().glob(EVIL_MODULE, "OnNew").tup(s(name)).raw(pickle.NEWOBJ).stop(),
                (f"{EVIL_MODULE}.OnNew",), needs_evil_module=True),
        Payload("newobj-ex-user-class",
                Asm(4).stack_glob(EVIL_MODULE, "OnNew").raw(pickle.EMPTY_TUPLE + pickle.EMPTY_DICT)
                .text("canary").text(name).raw(pickle.SETITEM + pickle.NEWOBJ_EX).stop(),
                (f"{EVIL_MODULE}.OnNew",), needs_evil_module=True),
        Payload("build-user-setstate",
                Asm().glob(EVIL_MODULE, "OnSetstate").raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
                .raw(pickle.EMPTY_DICT).text("canary").text(name).raw(pickle.SETITEM + pickle.BUILD).stop(),
                (), f"{EVIL_MODULE}.OnSetstate", needs_evil_module=True),
    ]
    return out


def torch_load_payload(canary: Path, inner: Path) -> tuple[Payload, bytes]:
    """torch.load(inner, None, pickle): a pickle_module argument makes torch.load default to
    weights_only=False, so the legacy file `inner` (written by the caller) runs its payload."""
    inner_bytes = legacy(Asm().call("os", "system", s(shell_touch(canary))).stop())
    data = (Asm().glob("torch", "load")
            .tup(s(str(inner)), lambda a: a.raw(pickle.NONE),
                   lambda a: a.call("importlib", "import_module", s("pickle")))
            .raw(pickle.REDUCE).stop())
    return Payload("torch-load-inner-file", data, ("torch.load", "importlib.import_module")), inner_bytes


def extension_payloads(canary: Path, code: int) -> list[Payload]:
    """EXT1/EXT2/EXT4 naming os.system through copyreg's extension registry (code registered
    by the caller as ("posix", "system"))."""
    sh = shell_touch(canary)
    out = []
    for op, fmt in ((pickle.EXT1, "<B"), (pickle.EXT2, "<H"), (pickle.EXT4, "<i")):
        if code >= 1 << (8 * struct.calcsize(fmt) - (fmt == "<i")):
            continue
        data = Asm().raw(op + struct.pack(fmt, code)).tup(s(sh)).raw(pickle.REDUCE).stop()
        out.append(Payload(f"ext{struct.calcsize(fmt)}-posix-system", data, ("posix.system",),
                           extension=("posix", "system", code)))
    return out


class ReduceToSystem:
    """`pickle.dumps(ReduceToSystem(cmd), protocol=p)` writes a REDUCE payload at protocol p."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


class ReduceToCallable:
    def __init__(self, fn: object, *args: object) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.fn, self.args


def protocol_payload(canary: Path, protocol: int) -> bytes:
    """A state dict with a payload value, pickled by pickle.dumps at `protocol`."""
    return pickle.dumps({"weight": [1.0, 2.0], "hook": ReduceToSystem(shell_touch(canary))}, protocol=protocol)


# ---------------------------------------------------------------------------------------------
# Framings: the same pickle as a plain file, inside a torch zip, inside a legacy torch file.


def torch_zip(data_pkl: bytes, prefix: str = "archive", storages: dict[str, bytes] | None = None,
              template: bytes | None = None) -> bytes:
    """A torch zip checkpoint whose data.pkl is `data_pkl`.

    With `template` (bytes of a real torch.save file) every other member is copied from it and
    only data.pkl is replaced; otherwise the members torch writes are made here.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        if template is not None:
            with zipfile.ZipFile(io.BytesIO(template)) as src:
                for info in src.infolist():
                    data = data_pkl if info.filename.endswith("/data.pkl") else src.read(info)
                    out.writestr(info.filename, data)
        else:
            _write_members(out, prefix, data_pkl, storages or {})
    return buffer.getvalue()


def _write_members(out: zipfile.ZipFile, prefix: str, data_pkl: bytes, storages: dict[str, bytes]) -> None:
    out.writestr(f"{prefix}/data.pkl", data_pkl)
    out.writestr(f"{prefix}/.format_version", "1")
    out.writestr(f"{prefix}/.storage_alignment", "64")
    out.writestr(f"{prefix}/byteorder", "little")
    for key, raw in storages.items():
        out.writestr(f"{prefix}/data/{key}", raw)
    out.writestr(f"{prefix}/version", "3\n")


def legacy(main_pickle: bytes, storage_keys: list[str] | None = None, storages: bytes = b"") -> bytes:
    """A legacy (pre-1.6) torch file: magic, protocol, sys info, `main_pickle`, keys, storages."""
    return (pickle.dumps(LEGACY_MAGIC, protocol=2) + pickle.dumps(LEGACY_PROTOCOL, protocol=2)
            + pickle.dumps(LEGACY_SYS_INFO, protocol=2) + main_pickle
            + pickle.dumps(storage_keys or [], protocol=2) + storages)


# ---------------------------------------------------------------------------------------------
# torch-shaped pickles (tensors named by persistent ids), hand-made so sizes can lie.


def rebuild_tensor(a: Asm, key: str, shape: tuple[int, ...], stride: tuple[int, ...], offset: int = 0,
                   numel: int = 1, storage: str = "FloatStorage", location: str = "cpu") -> Asm:
    """Push torch._utils._rebuild_tensor_v2(storage pid, offset, shape, stride, False, {})."""
    a.glob("torch._utils", "_rebuild_tensor_v2").raw(pickle.MARK)
    a.tup(s("storage"), lambda x: x.glob("torch", storage), s(key), s(location), i(numel))
    a.raw(pickle.BINPERSID).num(offset)
    a.tup(*(i(d) for d in shape)).tup(*(i(d) for d in stride))
    a.raw(pickle.NEWFALSE).glob("collections", "OrderedDict").raw(pickle.EMPTY_TUPLE + pickle.REDUCE)
    return a.raw(pickle.TUPLE + pickle.REDUCE)


def state_dict_pickle(tensors: dict[str, dict]) -> bytes:
    """{name: tensor} with each tensor's rebuild arguments given as keyword dicts."""
    a = Asm().raw(pickle.EMPTY_DICT + pickle.MARK)
    for name, spec in tensors.items():
        a.text(name)
        rebuild_tensor(a, **spec)
    return a.raw(pickle.SETITEMS).stop()


# ---------------------------------------------------------------------------------------------
# Structural bombs.


def nested_lists(depth: int) -> bytes:
    """[[[...]]] `depth` deep, built iteratively by opcodes (no recursion needed to write it)."""
    return Asm().raw(pickle.EMPTY_LIST * depth).raw(pickle.APPEND * (depth - 1)).stop()


def nested_tuples_as_dict_key(depth: int) -> bytes:
    """{((((...),),),): 1}: a key whose repr recurses `depth` levels."""
    a = Asm().raw(pickle.EMPTY_DICT).raw(pickle.EMPTY_TUPLE)
    a.raw(pickle.TUPLE1 * depth)
    return a.num(1).raw(pickle.SETITEM).stop()


def billion_laughs(levels: int, fan: int = 2) -> bytes:
    """L0 = ["lol"]; Lk = [Lk-1] * fan; the root is L`levels`: fan**levels leaves, few bytes."""
    return laughs_ops(levels, fan).stop()


def laughs_ops(levels: int, fan: int = 2, make: bytes = pickle.LIST) -> Asm:
    """Opcodes that push one DAG object (lists, or tuples with make=TUPLE) and nothing else."""
    a = Asm().raw(pickle.MARK).text("lol").raw(make).put(0).raw(pickle.POP)
    for level in range(1, levels + 1):
        a.raw(pickle.MARK)
        for _ in range(fan):
            a.get(level - 1)
        a.raw(make).put(level).raw(pickle.POP)
    return a.get(levels)


def nested_objects(depth: int) -> bytes:
    """argparse.Namespace objects, each one's BUILD state {"c": next}, `depth` deep."""
    a = Asm().glob("argparse", "Namespace").put(0).raw(pickle.POP)
    a.get(0).raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ).put(1).raw(pickle.POP)
    for _ in range(depth):
        a.get(0).raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ).raw(pickle.EMPTY_DICT).text("c").get(1)
        a.raw(pickle.SETITEM + pickle.BUILD).put(1).raw(pickle.POP)
    return a.get(1).stop()


def memo_bomb(index: int = 1 << 30) -> bytes:
    """LONG_BINPUT at a huge memo index: a naive unpickler grows its memo table to reach it."""
    return Asm().raw(pickle.NONE).put(index).stop()


def self_referencing_list() -> bytes:
    """L = []; L.append(L); plus a dict that holds itself (via memo + APPEND/SETITEM)."""
    return (Asm().raw(pickle.EMPTY_LIST).put(0).get(0).raw(pickle.APPEND)
            .raw(pickle.EMPTY_DICT).put(1).text("self").get(1).raw(pickle.SETITEM)
            .raw(pickle.APPEND).stop())


def build_cycle() -> bytes:
    """An object whose BUILD state contains the object itself (o.__dict__['me'] = o)."""
    return (Asm().glob("argparse", "Namespace").raw(pickle.EMPTY_TUPLE + pickle.NEWOBJ).put(0)
            .raw(pickle.EMPTY_DICT).text("me").get(0).raw(pickle.SETITEM + pickle.BUILD).stop())


def run_cli(*args: str, timeout: float = 30, env: dict[str, str] | None = None,
            python: str | None = None) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([python or sys.executable, "-m", "pthscope", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
