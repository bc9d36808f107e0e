"""DTensor and ShardedTensor state dicts saved per rank with torch.save, by two real gloo ranks
(conftest.distributed_files), against torch's view of each tensor on its rank: global and local
shape, the local piece's global offset (DTensor's compute_local_shape_and_global_offset),
placements, dtype; each file alone, and the folder as one set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import pthscope
from pthscope.reader.model import Checkpoint, TensorInfo
from pthscope.values import tensor_bytes, tensor_stats

KINDS = ["fsdp_ranks", "dtensor_ranks"]


def truth(folder: Path, rank: int) -> dict:
    return json.loads((folder / f"truth{rank}.json").read_text())


def tensors(checkpoint: Checkpoint) -> dict[str, TensorInfo]:
    return {t.key: t for t in checkpoint.tensors}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_file_lists_its_local_pieces(distributed_files: Path, kind: str, rank: int) -> None:
    path = distributed_files / kind / f"rank{rank}.pt"
    checkpoint = pthscope.inspect(path)
    assert checkpoint.format == "torch-zip" and not checkpoint.errors
    assert not [g for g in checkpoint.globals if g.risk == "dangerous"]
    ours = tensors(checkpoint)
    for key, expected in truth(distributed_files, rank)[kind].items():
        t = ours[key]
        assert t.sharding is not None and t.sharding.kind == "DTensor" and t.sharding.local
        assert t.shape == expected["local_shape"] == expected["computed_local_shape"], key
        assert t.sharding.global_shape == expected["global_shape"], key
        assert t.sharding.placements == expected["placements"], key
        assert [c.offsets for c in t.sharding.chunks] == [expected["offsets"]], key
        assert (t.dtype, t.requires_grad) == (expected["dtype"], expected["requires_grad"]), key
        assert str(expected["mesh_shape"]) in t.sharding.mesh
    assert checkpoint.part_of is not None
    assert (checkpoint.part_of.file, checkpoint.part_of.part, checkpoint.part_of.parts) == (str(path.parent), rank + 1, 2)


def test_a_local_piece_has_the_ranks_values(distributed_files: Path) -> None:
    path = distributed_files / "dtensor_ranks" / "rank1.pt"
    checkpoint = pthscope.inspect(path)
    st = os.stat(path)
    local = torch.load(path, weights_only=False)["uneven"].to_local()
    answer = tensor_stats(tensor_bytes(checkpoint, tensors(checkpoint)["uneven"], st.st_size, st.st_mtime_ns))
    assert answer["stats"]["min"] == pytest.approx(float(local.min()))


@pytest.mark.parametrize("kind", KINDS)
def test_the_folder_is_the_global_tensors(distributed_files: Path, kind: str) -> None:
    folder = distributed_files / kind
    checkpoint = pthscope.inspect(folder)
    assert checkpoint.format == "torch-ranks" and not checkpoint.errors and not checkpoint.warnings
    assert [os.path.basename(p.file) for p in checkpoint.parts] == ["rank0.pt", "rank1.pt"]
    ours = tensors(checkpoint)
    views = [truth(distributed_files, rank)[kind] for rank in (0, 1)]
    for key, expected in views[0].items():
        t = ours[key]
        assert t.shape == expected["global_shape"] and t.sharding is not None and not t.sharding.local
        assert [(c.offsets, c.sizes, c.part, c.rank) for c in t.sharding.chunks] == [
            (view[key]["offsets"], view[key]["local_shape"], rank, rank) for rank, view in enumerate(views)]
    if kind == "dtensor_ranks":
        assert ours["plain"].sharding is None and ours["plain"].part == 0


def test_replicated_and_sharded_values_in_the_folder(distributed_files: Path) -> None:
    folder = distributed_files / "dtensor_ranks"
    checkpoint = pthscope.inspect(folder)
    ours = tensors(checkpoint)
    st = os.stat(folder)
    replicated = tensor_stats(tensor_bytes(checkpoint, ours["replicated"], st.st_size, st.st_mtime_ns))
    expected = torch.load(folder / "rank0.pt", weights_only=False)["replicated"].to_local()
    assert replicated["stats"]["max"] == pytest.approx(float(expected.max()))
    for key in ("uneven", "partial"):  # no one file holds the global values (a partial sum neither)
        assert "sharded" in tensor_stats(tensor_bytes(checkpoint, ours[key], st.st_size, st.st_mtime_ns))["error"]


def test_sharded_tensors(distributed_files: Path) -> None:
    folder = distributed_files / "sharded_ranks"
    expected = truth(distributed_files, 1)
    alone = tensors(pthscope.inspect(folder / "st_rank1.pt"))["st"]
    assert alone.sharding is not None and alone.sharding.kind == "ShardedTensor" and alone.sharding.local
    assert alone.shape == expected["sharded_local"][0] and alone.sharding.global_shape == [5, 3]
    assert [(c.offsets, c.sizes, c.rank) for c in alone.sharding.chunks] == [
        (s["offsets"], s["sizes"], s["rank"]) for s in expected["sharded"]]
    merged = pthscope.inspect(folder)
    st = tensors(merged)["st"]
    assert st.shape == [5, 3] and [c.part for c in st.sharding.chunks] == [0, 1]  # type: ignore[union-attr]
    # pickle protocol 2 reaches ShardedTensor.ProcessGroupState through getattr: a reviewed nested
    # data class, so the files need weights_only=False but run nothing dangerous.
    assert {g.name for g in merged.globals if g.risk == "dangerous"} == set()
    assert {"builtins.getattr", "torch.distributed._shard.sharded_tensor.api:ShardedTensor.ProcessGroupState"} <= {
        g.name for g in merged.globals if g.risk == "unknown"}


def test_ranks_that_disagree_are_named(distributed_files: Path, tmp_path: Path) -> None:
    for rank in (0, 1):
        tensors_of_rank = torch.load(distributed_files / "dtensor_ranks" / f"rank{rank}.pt", weights_only=False)
        if rank == 1:
            tensors_of_rank["plain"] = torch.zeros(9)
            del tensors_of_rank["columns"]
        torch.save(tensors_of_rank, tmp_path / f"rank{rank}.pt")
    checkpoint = pthscope.inspect(tmp_path)
    messages = [w.message for w in checkpoint.warnings]
    assert any("plain is [9] float32 in rank1.pt" in m for m in messages)
    assert any("columns is not in rank1.pt" in m for m in messages)
