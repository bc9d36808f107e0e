""".npy and .npz files written by numpy, compared with numpy.load; broken and hostile headers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from .test_hostile import assert_no_canary, read, write

ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "f16": np.ones((2, 2, 2), dtype=np.float16),
    "big_endian": np.arange(5, dtype=">i4"),
    "u8": np.zeros(7, dtype=np.uint8),
    "b": np.array([True, False]),
    "c128": np.zeros(3, dtype=np.complex128),
    "scalar": np.array(3.5),
    "empty": np.zeros((0, 9)),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
}


def _torch_dtype(array: np.ndarray) -> str:
    import torch

    return str(torch.from_numpy(array.astype(array.dtype.newbyteorder("="))).dtype).removeprefix("torch.")


@pytest.mark.parametrize("name", list(ARRAYS))
def test_npy_matches_numpy(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.npy"
    np.save(path, ARRAYS[name])
    checkpoint = read(path)
    assert checkpoint.format == "numpy" and checkpoint.errors == []
    (tensor,) = checkpoint.tensors
    loaded = np.load(path, mmap_mode="r") if ARRAYS[name].size else np.load(path)
    assert tensor.shape == list(loaded.shape) and tensor.dtype == _torch_dtype(np.asarray(loaded))
    assert tensor.storage_nbytes == loaded.nbytes and tensor.kind == "ndarray"
    assert checkpoint.storage_offsets["array"] + loaded.nbytes == path.stat().st_size
    if name == "fortran":
        assert tensor.stride == [1, 2]
    assert "numpy.load" in checkpoint.warnings[0].message


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_matches_numpy(tmp_path: Path, compressed: bool) -> None:
    path = tmp_path / "arrays.npz"
    (np.savez_compressed if compressed else np.savez)(path, **ARRAYS)
    checkpoint = read(path)
    assert checkpoint.format == "npz" and checkpoint.errors == []
    with np.load(path) as loaded:
        assert [t.key for t in checkpoint.tensors] == list(loaded.files)
        for tensor in checkpoint.tensors:
            assert tensor.shape == list(loaded[tensor.key].shape)
            assert tensor.dtype == _torch_dtype(loaded[tensor.key])


def test_object_arrays_warn_about_pickle(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    checkpoint = read(path)
    assert checkpoint.tensors[0].dtype == "object" and "allow_pickle=True" in checkpoint.warnings[0].message


def _npy(header: bytes, version: bytes = b"\x01\x00") -> bytes:
    length = len(header).to_bytes(2 if version[0] == 1 else 4, "little")
    return b"\x93NUMPY" + version + length + header


def test_broken_and_hostile_headers(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    cases = {
        "code-in-header": _npy(f"__import__('os').system('touch {canary}')".encode()),
        "not-a-dict": _npy(b"[1, 2, 3]"),
        "no-shape": _npy(b"{'descr': '<f4'}"),
        "negative-shape": _npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"),
        "huge-shape": _npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (10**30, 10**30)}"),
        "header-length-lies": b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little") + b"{}",
        "unknown-version": _npy(b"{}", b"\x09\x00"),
        "deep-literal": _npy(b"{'descr': '<f4', 'shape': " + b"(" * 5000 + b")" * 5000 + b"}"),
    }
    for name, data in cases.items():
        checkpoint = read(write(tmp_path, f"{name}.npy", data))
        assert [e.kind for e in checkpoint.errors] == ["corrupt"], name
    assert_no_canary(tmp_path)


def test_truncated_npy(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(1000))
    data = buffer.getvalue()
    checkpoint = read(write(tmp_path, "cut.npy", data[:-100]))
    assert [e.kind for e in checkpoint.errors] == ["truncated"]
    assert read(write(tmp_path, "cut2.npy", data[:30])).errors


class _Payload:
    """An object whose unpickling calls os.system (what numpy.load(allow_pickle=True) would do)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[object, ...]:
        import os

        return (os.system, (self.command,))


@pytest.mark.parametrize("container", ["npy", "npz", "npz-compressed"])
def test_object_array_pickles_are_audited_not_run(tmp_path: Path, container: str) -> None:
    from . import hostile_files as H
    from .test_hostile import dangerous

    canary = tmp_path / "canary"
    array = np.empty(2, dtype=object)
    array[0], array[1] = {"fine": 1}, _Payload(H.shell_touch(canary))
    path = tmp_path / f"objects.{container[:3]}"
    if container == "npy":
        np.save(path, array, allow_pickle=True)
    else:
        (np.savez_compressed if container.endswith("compressed") else np.savez)(path, ok=np.ones(2), objects=array)
    checkpoint = read(path)
    assert_no_canary(tmp_path)
    assert dangerous(checkpoint) & {"os.system", "posix.system"}  # pickle names os.system by its module
    assert any(g.name.startswith("numpy") for g in checkpoint.globals)
    if container == "npy":  # the payload is real: numpy runs it when allowed to
        np.load(path, allow_pickle=True)
        assert canary.exists()
