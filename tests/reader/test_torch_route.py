"""Files built to be two formats at once: the verdict follows what torch.load reads them as.

torch.load decides by the name (`.safetensors`) and the first four bytes (a zip's local header);
everything else goes to its legacy reader: a tar if tarfile opens it, else pickles in a row, the
first one run whatever it holds. Each file here is another format to pthscope's probes (and to
its own library) and pickles to torch: torch.load(weights_only=False) runs a canary in a
subprocess, and pthscope must call the file dangerous, naming the canary.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pthscope.reader import inspect

CANARY = "canary_probe"


def _call(n: int) -> bytes:
    """A protocol-0 pickle fragment: call canary_probe.fire(n), then stop."""
    return f"c{CANARY}\nfire\nK".encode() + bytes([n]) + b"\x85R."


def safetensors_and_pickle(path: Path) -> None:
    """A valid safetensors file (one U8 tensor, the call's bytes) whose 8-byte header length
    starts a SHORT_BINSTRING (`U`, length): the pickle resumes inside a `__metadata__` string,
    hops (POP, another short string) to the header's end, and runs the tensor's bytes."""
    payload = b"0" + _call(4)  # POP the last hop's string first
    tensor = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}},
                        separators=(",", ":"))[1:-1]
    head = '{"__metadata__":{"p":"'
    first = 8 + len(head) + 2  # the first string's length: it ends two bytes into the value
    size = ord("U") | first << 8  # the header's length, as 8 little-endian bytes: b"U", `first`, zeros
    text = head + "A" * (2 + first - 8 - len(head))
    closing = '"},' + tensor + "}"
    while (left := 8 + size - (8 + len(text)) - 3) > 0x7E:  # bytes after a hop's POP, U and length
        text += "0U" + chr(0x7E) + "B" * 0x7E
    assert len(closing) <= left and chr(left) not in '"\\'
    text += "0U" + chr(left) + "C" * (left - len(closing)) + closing
    assert len(text) == size and json.loads(text)["w"]["shape"] == [len(payload)]
    path.write_bytes(struct.pack("<Q", size) + text.encode() + payload)


def tar_that_starts_like_a_zip(path: Path) -> None:
    """torch's tar format whose first member's name begins with a zip's end record, followed by
    a real torch zip: torch.load does not read it as a zip (no local header at byte 0)."""
    members = {"PK\x05\x06": b"", "storages": b"\x80\x02" + _call(1)[:-1] + b"0]q\x00.",
               "tensors": b"\x80\x02K\x00.", "pickle": b"\x80\x02}q\x00."}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    zipped = io.BytesIO()
    torch.save({"weight": torch.ones(2, 2)}, zipped)
    path.write_bytes(buffer.getvalue() + zipped.getvalue())


def legacy_with_another_magic_pickle(path: Path) -> None:
    """The legacy format's five pickles, the magic number pickled with a memo write: torch
    compares the value only."""
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1] + b"q\x00."
    parts = [magic, pickle.dumps(1001, protocol=2), pickle.dumps({"little_endian": True}, protocol=2),
             b"\x80\x02" + _call(6), pickle.dumps([], protocol=2)]
    path.write_bytes(b"".join(parts))


def pickle_in_an_hdf5_user_block(path: Path) -> None:
    """A pickle starting with BININT1, then HDF5's signature at byte 512 (after a user block)."""
    path.write_bytes((b"K\x010" + _call(7)).ljust(512, b"\0") + b"\x89HDF\r\n\x1a\n" + bytes(504))


MAKERS: list[Callable[[Path], None]] = [safetensors_and_pickle, tar_that_starts_like_a_zip,
                                        legacy_with_another_magic_pickle, pickle_in_an_hdf5_user_block]


def torch_runs_the_canary(path: Path, folder: Path) -> bool:
    """torch.load(weights_only=False) in a child whose path has the canary module."""
    fired = folder / "fired"
    (folder / f"{CANARY}.py").write_text(f"def fire(n):\n    open({str(fired)!r}, 'w').close()\n    return 0\n")
    fired.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-c", "import sys, torch\ntry:\n    torch.load(sys.argv[1], weights_only=False)\n"
                    "except Exception:\n    pass", str(path)], cwd=folder, timeout=120, check=True,
                   env={**os.environ, "PYTHONPATH": str(folder)}, capture_output=True)
    return fired.exists()


@pytest.mark.parametrize("make", MAKERS, ids=lambda make: make.__name__)
def test_a_file_torch_reads_as_pickles_is_judged_by_them(tmp_path: Path, make: Callable[[Path], None]) -> None:
    path = tmp_path / "model.pt"
    make(path)
    assert torch_runs_the_canary(path, tmp_path)
    checkpoint = inspect(path)
    safety = checkpoint.safety()
    assert safety is not None and safety["level"] == "dangerous", (checkpoint.format, safety)
    assert f"{CANARY}.fire" in safety["headline"]
    assert [g.name for g in checkpoint.globals if g.risk == "dangerous"] == [f"{CANARY}.fire"]


def test_the_safetensors_one_is_safetensors_to_its_library(tmp_path: Path) -> None:
    """The same bytes under a `.safetensors` name: torch.load hands them to safetensors, which
    reads one tensor and runs nothing; pthscope says so."""
    from safetensors.torch import load_file

    path = tmp_path / "model.safetensors"
    safetensors_and_pickle(path)
    assert list(load_file(path)) == ["w"]
    assert not torch_runs_the_canary(path, tmp_path)
    checkpoint = inspect(path)
    assert checkpoint.format == "safetensors" and checkpoint.globals == [] and checkpoint.safety() is None


def test_a_safetensors_file_under_a_torch_name_names_nothing(tmp_path: Path) -> None:
    """An ordinary safetensors file named .pt: torch.load fails on its first byte; no global."""
    from safetensors.torch import save_file

    path = tmp_path / "model.pt"
    save_file({"w": torch.ones(3)}, path)
    checkpoint = inspect(path)
    assert checkpoint.format == "safetensors" and checkpoint.globals == []
    assert "crafted" not in [w.kind for w in checkpoint.warnings]
