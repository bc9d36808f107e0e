"""Formats are found by content, not extension; formats not read yet are named clearly."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import pthscope


def test_extension_does_not_matter(tmp_path: Path) -> None:
    for name in ("weights.bin", "model.ckpt", "x.pth.tar", "no_extension", "looks_like.safetensors"):
        path = tmp_path / name
        torch.save({"w": torch.ones(2)}, path)
        checkpoint = pthscope.inspect(path)
        assert checkpoint.format == "torch-zip" and [t.key for t in checkpoint.tensors] == ["w"], name


def test_safetensors_matches_the_safetensors_library(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"  # extension deliberately wrong
    tensors = {
        "embed.weight": torch.zeros(10, 4, dtype=torch.bfloat16),
        "layers.0.norm": torch.ones(4, dtype=torch.float16),
        "ids": torch.arange(3),
        "mask": torch.ones(2, 2, dtype=torch.bool),
        "fp8": torch.zeros(5, dtype=torch.float8_e4m3fn),
        "scalar": torch.tensor(1.0),
    }
    save_file(tensors, path, metadata={"format": "pt", "step": "10"})
    checkpoint = pthscope.inspect(path)
    assert checkpoint.format == "safetensors" and checkpoint.errors == []
    assert checkpoint.metadata == {"format": "pt", "step": "10"}
    ours = {t.key: t for t in checkpoint.tensors}
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(ours)
        for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            tensor = f.get_tensor(key)
            assert ours[key].shape == list(tensor.shape)
            assert ours[key].dtype == str(tensor.dtype).removeprefix("torch.")
            assert ours[key].nbytes == tensor.numel() * tensor.element_size()
            assert ours[key].grad_state == "not stored"


def test_truncated_safetensors_names_the_tensor(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(4), "b": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:-100])
    checkpoint = pthscope.inspect(path)
    assert [p.where for p in checkpoint.errors] == ["b"]
    assert "truncated" in checkpoint.errors[0].message
    assert [t.key for t in checkpoint.tensors] == ["a"]  # what could be read is kept


def test_torchscript_is_read(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    checkpoint = pthscope.inspect(path)
    assert checkpoint.format == "torchscript" and not checkpoint.errors
    assert [t.key for t in checkpoint.tensors] == ["weight", "bias"]  # tests/reader/test_torchscript.py: the rest


def test_shard_index_is_read_as_its_set(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001.safetensors"}}))
    checkpoint = pthscope.inspect(path)
    assert checkpoint.format == "sharded"
    assert checkpoint.errors[0].kind == "missing" and "model-00001.safetensors" in checkpoint.errors[0].message


def test_distributed_checkpoint_folder_and_data_file_are_named(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "dcp"
    with pytest.warns(UserWarning):
        dcp.save({"model": {"w": torch.ones(2)}}, checkpoint_id=str(folder))
    assert pthscope.inspect(folder).format == "torch-distributed"
    data_file = next(folder.glob("*.distcp"))
    checkpoint = pthscope.inspect(data_file)
    assert checkpoint.format == "torch-distributed" and "open the folder" in checkpoint.errors[0].message
    assert checkpoint.part_of is not None and checkpoint.part_of.file == str(folder)


def test_tar_without_storages_is_named(tmp_path: Path) -> None:
    """torch.load extracts `storages` first: without it, it fails before any pickle runs."""
    inner = tmp_path / "pickle"
    inner.write_bytes(b"\x80\x02}q\x00.")
    path = tmp_path / "old.pth.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(inner, arcname="pickle")
    checkpoint = pthscope.inspect(path)
    assert checkpoint.format == "torch-tar"
    assert checkpoint.errors[0].kind == "corrupt" and "without its `storages` member" in checkpoint.errors[0].message


def test_pathlib_in_a_pickle_is_not_dangerous(tmp_path: Path) -> None:
    path = tmp_path / "p.pth"
    torch.save({"out_dir": Path("/runs/1")}, path)
    risks = {g.name: g.risk for g in pthscope.inspect(path).globals}
    assert risks["pathlib.PosixPath"] == "unknown"
