"""Saved locations (`cuda:7`) are reported as saved, without CUDA on this machine."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

import pthscope


def _relocate(src: Path, dst: Path, location: bytes) -> None:
    """Rewrite data.pkl so every storage says it was saved on `location` (as a GPU run would)."""
    old = b"X\x03\x00\x00\x00cpu"
    new = b"X" + len(location).to_bytes(4, "little") + location
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/data.pkl"):
                assert old in data
                data = data.replace(old, new)
            zout.writestr(info.filename, data)


def test_cuda_location_is_reported_as_saved(tmp_path: Path) -> None:
    src, dst = tmp_path / "cpu.pth", tmp_path / "gpu.pth"
    torch.save({"w": torch.ones(2, 2), "b": torch.zeros(3)}, src)
    _relocate(src, dst, b"cuda:7")
    checkpoint = pthscope.inspect(dst)
    assert checkpoint.errors == []
    assert {t.location for t in checkpoint.tensors} == {"cuda:7"}
    assert checkpoint.summary()["locations"] == {"cuda:7": 2}
    # torch agrees that this is what the file says (it refuses to deserialize onto a missing GPU).
    loaded = torch.load(dst, map_location="cpu", weights_only=True)
    assert loaded["w"].shape == (2, 2)
