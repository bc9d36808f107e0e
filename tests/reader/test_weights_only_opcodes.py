"""`weights_only=True` refuses a pickle whose opcodes its unpickler cannot run, whatever globals it
names (reader/pickle_opcodes.py): the verdict says so, checked against torch's own loader —
`torch.load(weights_only=True)` on torch.save files of every pickle protocol, zip and legacy, and
torch's weights_only VM (`torch._weights_only_unpickler`) on thousands of pickles."""

from __future__ import annotations

import contextlib
import io
import pickle
import random
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._weights_only_unpickler as weights_only_vm

from pthscope.reader import inspect as read_checkpoint
from pthscope.reader.pickle_opcodes import first_unsupported, weights_only_refusal


def torch_loads_weights_only(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(path, weights_only=True)
        except pickle.UnpicklingError as exc:
            assert "Unsupported operand" in str(exc), exc  # refused for its opcodes, not its globals
            return False
    return True


STATE = {"w": torch.ones(2, 3), "steps": torch.arange(4), "epoch": 3, "name": "run-7", "lr": 0.1, "ok": True}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", [1, 2, 3, 4, 5])
def test_the_verdict_agrees_with_torch_for_every_protocol(tmp_path: Path, protocol: int, legacy: bool) -> None:
    path = tmp_path / "state.pt"
    torch.save(STATE, path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
    loads = torch_loads_weights_only(path)
    assert loads == (protocol in (2, 3))  # protocol 3 adds only BINBYTES, which a state_dict does not use
    checkpoint = read_checkpoint(str(path))
    assert not checkpoint.errors, checkpoint.errors
    refusal = checkpoint.to_json()["loader"]["weights_only_refuses"]
    assert bool(refusal) == (not loads), refusal
    if protocol >= 4:
        assert "FRAME opcode at byte 2 (from pickle protocol 4)" in refusal
        assert '"Unsupported operand 149"' in refusal
    assert torch.equal(torch.load(path, weights_only=False)["w"], STATE["w"])  # weights_only=False loads it


def test_bytes_at_protocol_3_and_long_strings(tmp_path: Path) -> None:
    with_bytes, long_text = tmp_path / "bytes.pt", tmp_path / "long.pt"
    torch.save({"w": torch.ones(1), "blob": b"\x00abc"}, with_bytes, pickle_protocol=3)
    torch.save({"w": torch.ones(1), "x" * 70_000: "y" * 300, "z" * 255: 2**80}, long_text)
    assert not torch_loads_weights_only(with_bytes)
    assert "SHORT_BINBYTES opcode" in read_checkpoint(str(with_bytes)).weights_only_refusal
    assert torch_loads_weights_only(long_text)
    assert read_checkpoint(str(long_text)).weights_only_refusal == ""


def _rewrite_data_pkl(path: Path, change: Any) -> None:
    """The same archive with data.pkl's bytes changed, stored as torch writes members."""
    with zipfile.ZipFile(path) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as new:
        for info, data in members:
            new.writestr(info.filename, change(data) if info.filename.endswith("/data.pkl") else data)


@pytest.mark.parametrize("inserted", [b"N0", b"N\x940", b"N2\x30", b"(N1", b"I7\n0", b"\x8c\x01x0"],
                         ids=["POP", "MEMOIZE", "DUP", "POP_MARK", "INT", "SHORT_BINUNICODE"])
def test_a_protocol_2_pickle_with_one_foreign_opcode(tmp_path: Path, inserted: bytes) -> None:
    """A crafted file keeps its PROTO 2 header and slips in a stack-neutral opcode torch's VM lacks."""
    path = tmp_path / "crafted.pt"
    torch.save(STATE, path)
    _rewrite_data_pkl(path, lambda data: data[:2] + inserted + data[2:])
    assert torch.equal(torch.load(path, weights_only=False)["w"], STATE["w"])  # still a working file
    assert not torch_loads_weights_only(path)
    refusal = read_checkpoint(str(path)).weights_only_refusal
    assert refusal.startswith("crafted/data.pkl uses the ") and "at byte " in refusal


def test_a_dangerous_file_stays_dangerous(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "x": Payload()}, path, pickle_protocol=4)
    checkpoint = read_checkpoint(str(path))
    assert checkpoint.weights_only_refusal
    assert [g.name for g in checkpoint.globals if g.risk == "dangerous"] == ["builtins.print"]
    assert checkpoint.warnings[0].kind == "dangerous-globals"


def test_the_cli_says_it(tmp_path: Path) -> None:
    path = tmp_path / "p5.pt"
    torch.save(STATE, path, pickle_protocol=5)
    shown = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(path)], capture_output=True,
                           text=True, check=True).stdout
    assert "weights_only=True refuses it: p5/data.pkl uses the FRAME opcode" in shown


def _values(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return rng.choice([0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, 2**63, -(2**64), 2**2100])
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 5)
    if kind == 2:
        return "".join(rng.choice("ab\n\x00é€😀") for _ in range(rng.choice([0, 1, 255, 256, 300, 70_000])))
    if kind == 3:
        return rng.choice([None, True, False])
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 255, 256])))
    if kind == 5:
        return rng.choice([(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)])
    if kind == 6:
        return set(range(rng.randrange(3)))
    if kind == 7:
        return {}
    if kind == 8:
        return [_values(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 9:
        return {str(i): _values(rng, depth + 1) for i in range(rng.randrange(4))}
    if kind == 10:
        shared = [_values(rng, depth + 1)]
        return [shared, shared]  # memo: BINPUT/BINGET, MEMOIZE at protocol 4
    return tuple(_values(rng, depth + 1) for _ in range(rng.randrange(5)))


def _vm_stop(data: bytes) -> tuple[str, int]:
    """Where torch's weights_only VM stops on the pickle: ("ok", end), ("opcode", the refused
    opcode's offset) or ("other", the byte it had read to when it refused something else)."""
    stream = io.BytesIO(data)
    try:
        weights_only_vm.Unpickler(stream, encoding="utf-8").load()
    except pickle.UnpicklingError as exc:
        if "Unsupported operand" in str(exc):
            return "opcode", stream.tell() - 1
        return "other", stream.tell()
    except Exception:  # noqa: BLE001 -- a global it refuses to call, a type it refuses to build
        return "other", stream.tell()
    return "ok", stream.tell()


def test_the_scan_agrees_with_torchs_vm_on_thousands_of_pickles() -> None:
    rng = random.Random(20261202)
    outcomes: dict[str, int] = {"ok": 0, "opcode": 0, "other": 0}
    for protocol in range(6):
        for _ in range(400):
            data = pickle.dumps(_values(rng), protocol=protocol)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome, at = _vm_stop(data)
            found = first_unsupported(data)
            outcomes[outcome] += 1
            if outcome == "ok":
                assert found is None, (protocol, data[:80], found)
            elif outcome == "opcode":
                assert found is not None and found[0] == at, (protocol, data[:80], found, at)
            else:  # the VM refused something else first: nothing it ran before is unsupported
                assert found is None or found[0] >= at - 1, (protocol, data[:80], found, at)
    assert outcomes["ok"] > 500 and outcomes["opcode"] > 500, outcomes


def test_concatenated_pickles_and_truncation() -> None:
    two = pickle.dumps(1, protocol=2) + pickle.dumps("x", protocol=4)
    assert first_unsupported(two) is None
    assert first_unsupported(two, pickles=2) is not None
    assert first_unsupported(pickle.dumps("x" * 300, protocol=2)[:-20]) is None  # the reader reports the truncation
    assert weights_only_refusal(b"\x80\x02\xff.", "p") .startswith("p uses the 0xff opcode at byte 2 (not a pickle opcode)")


@pytest.mark.parametrize("dtype", [torch.uint16, torch.uint32, torch.float8_e4m3fn])
def test_a_legacy_file_torch_cannot_load_says_so(tmp_path: Path, dtype: torch.dtype) -> None:
    """torch.save writes a dtype without a typed storage class as torch.UntypedStorage in the
    legacy format, and its own legacy reader then fails on it, whatever weights_only says."""
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2, 3).to(dtype), "b": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    for weights_only in (True, False):
        with pytest.raises(AttributeError, match="has no attribute 'dtype'"):
            torch.load(path, weights_only=weights_only)
    checkpoint = read_checkpoint(str(path))
    assert [e.kind for e in checkpoint.errors] == ["unloadable"]
    assert "torch.load fails on this file, with weights_only=True or False" in checkpoint.errors[0].message
    assert {t.key: t.dtype for t in checkpoint.tensors} == {"w": str(dtype).removeprefix("torch."), "b": "float32"}
    torch.save({"b": torch.ones(2)}, path, _use_new_zipfile_serialization=False)  # typed storages load
    torch.load(path, weights_only=True)
    assert not read_checkpoint(str(path)).errors


class _Marker:
    """A payload that leaves a file behind when a load runs it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def _with_member(path: Path, suffix: str, data: bytes | None, extra: tuple[str, bytes] | None = None) -> None:
    """The archive with the member ending in `suffix` replaced (None: removed), and one more."""
    with zipfile.ZipFile(path) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as new:
        for info, content in members:
            if info.filename.endswith(suffix):
                if data is not None:
                    new.writestr(info.filename, data)
            else:
                new.writestr(info.filename, content)
        if extra is not None:
            new.writestr(*extra)


@pytest.mark.parametrize(("suffix", "data", "extra", "loads"), [
    ("/version", b"11\n", None, False), ("/version", b"0\n", None, False), ("/version", b"abc\n", None, False),
    ("/version", b"0x5\n", None, False), ("/version", b" 10\n", None, True), ("/version", b"3", None, True),
    ("/version", None, None, False), ("/byteorder", b"middle", None, False),
    ("/version", b"3\n", ("elsewhere/x", b"1"), False),
], ids=["v11", "v0", "text", "hex", "v10", "v3", "none", "byteorder", "outside"])
def test_what_torch_refuses_before_unpickling_runs_nothing(
        tmp_path: Path, suffix: str, data: bytes | None, extra: tuple[str, bytes] | None, loads: bool) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "archive.pt"
    torch.save({"w": torch.ones(2), "x": _Marker(marker)}, path)
    _with_member(path, suffix, data, extra)
    with pytest.raises(Exception) if not loads else contextlib.nullcontext():  # noqa: B017 -- torch's own kinds
        torch.load(path, weights_only=False)
    assert marker.exists() == loads  # torch ran the payload exactly when it did not refuse the file
    marker.unlink(missing_ok=True)
    checkpoint = read_checkpoint(str(path))
    loader = checkpoint.to_json()["loader"]
    assert bool(loader["refuses"]) == (not loads), loader
    assert "pathlib:Path.touch" in [g.name for g in checkpoint.globals if g.risk == "dangerous"]
    headline = checkpoint.warnings[0].message
    if loads:
        assert headline.startswith("torch.load(weights_only=False) would run code from this file")
    else:
        assert headline.startswith("a Python unpickler (pickle.load of its pickles) would run code from this file")
        assert "torch.load refuses the file before unpickling anything" in headline and "crafted" in headline
    assert not marker.exists()
