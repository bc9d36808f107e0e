"""The torch.distributed.checkpoint reader's column-by-column path for the usual tensor entries
says exactly what its per-entry path says: same checkpoint, same problems, in the same order."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import FileSystemReader

import pthscope
from pthscope.json_text import json_chunks
from pthscope.reader import distributed_checkpoint


def _save(folder: Path, state: dict[str, object]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no process group: one process saves alone
        dcp.save(state, checkpoint_id=str(folder))
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dcp-fast")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    folders = {
        "model": _save(root / "model", {"model": model.state_dict()}),
        "model and optimizer": _save(root / "both", {"model": model.state_dict(), "optim": optimizer.state_dict(),
                                                     "extra": {"epoch": 7}}),
        "tensors only": _save(root / "flat", {f"t{i}": torch.zeros(i + 1) for i in range(5)}),
    }
    cut = Path(shutil.copytree(folders["model"], root / "cut"))
    (cut / "__0_0.distcp").write_bytes((cut / "__0_0.distcp").read_bytes()[:700])
    missing = Path(shutil.copytree(folders["model and optimizer"], root / "missing"))
    (missing / "__0_0.distcp").unlink()
    for name, relative in (("outside", "../outside.distcp"), ("fifo", "fifo")):
        changed = Path(shutil.copytree(folders["model"], root / name))
        os.mkfifo(changed / "fifo")
        metadata = FileSystemReader(str(changed)).read_metadata()
        for info in metadata.storage_data.values():
            info.relative_path = relative
        (changed / ".metadata").write_bytes(pickle.dumps(metadata))
    lost = Path(shutil.copytree(folders["model"], root / "lost chunk"))
    metadata = FileSystemReader(str(lost)).read_metadata()
    metadata.storage_data.pop(next(iter(metadata.storage_data)))
    (lost / ".metadata").write_bytes(pickle.dumps(metadata))
    folders["nested"] = _save(root / "nested", {"model": model.state_dict(), "deep": {"a": {"b": torch.ones(2)}},
                                                "top": torch.zeros(3)})
    # Planner paths whose parents alternate, and a parent that first was a tensor: what the
    # one-by-one insertion makes of them, the batched one must make too.
    alternating = _save(root / "alternating", {f"m{i}": torch.full((i + 1,), float(i)) for i in range(5)})
    metadata = FileSystemReader(str(alternating)).read_metadata()
    heads = ["a", "b", "a", "m3", "m3"]
    metadata.planner_data = {key: (head, key) if i != 3 else (key,)
                             for i, (key, head) in enumerate(zip(metadata.planner_data, heads, strict=True))}
    (alternating / ".metadata").write_bytes(pickle.dumps(metadata))
    # storage_data in another order than the entries: looked up by key, not read as a column.
    reordered = Path(shutil.copytree(folders["model"], root / "reordered"))
    metadata = FileSystemReader(str(reordered)).read_metadata()
    metadata.storage_data = dict(reversed(metadata.storage_data.items()))
    (reordered / ".metadata").write_bytes(pickle.dumps(metadata))
    folders.update({"truncated": cut, "missing": missing, "outside": root / "outside", "fifo": root / "fifo",
                    "lost chunk": lost, "alternating": alternating, "reordered": reordered})
    return folders


@pytest.mark.parametrize("name", ["model", "model and optimizer", "tensors only", "truncated", "missing", "outside",
                                  "fifo", "lost chunk", "nested", "alternating", "reordered"])
def test_both_paths_agree(name: str, saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = pthscope.inspect(saved[name])
    monkeypatch.setattr(distributed_checkpoint._Entries, "_usual_tensors", lambda self, entries, storage: None)
    plain = pthscope.inspect(saved[name])
    assert fast.to_json() == plain.to_json()
    assert fast.storage_offsets == plain.storage_offsets
    assert [p.file for p in fast.parts] == [p.file for p in plain.parts]


def test_storage_data_in_any_order(saved: dict[str, Path]) -> None:
    assert pthscope.inspect(saved["reordered"]).to_json()["tensors"] == pthscope.inspect(saved["model"]).to_json()["tensors"]


def test_alternating_parents_keep_their_order(saved: dict[str, Path]) -> None:
    checkpoint = pthscope.inspect(saved["alternating"])
    assert [t.path for t in checkpoint.tensors] == [["a", "m0"], ["a", "m2"], ["b", "m1"], ["m3", "m4"]]
    assert [t.shape for t in checkpoint.tensors] == [[1], [3], [2], [5]]  # m3 (a tensor at m3) gave way to m4's dict


@pytest.mark.parametrize("name", ["model", "model and optimizer", "tensors only", "nested"])
def test_usual_folders_take_the_fast_path(name: str, saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    usual = distributed_checkpoint._Entries._usual_tensors

    def spy(self: distributed_checkpoint._Entries, entries: dict[str, object], storage: Any) -> None:
        found = usual(self, entries, storage)
        made.append(len(found.keys) if found else 0)
        return None

    monkeypatch.setattr(distributed_checkpoint._Entries, "_usual_tensors", spy)
    checkpoint = pthscope.inspect(saved[name])
    assert checkpoint.ok and made and made[0] == sum(1 for t in checkpoint.tensors if t.sharding is not None)


_compact = json.JSONEncoder(separators=(",", ":")).encode


@pytest.mark.parametrize("name", ["fsdp_dcp", "fsdp_ranks", "dtensor_ranks", "sharded_ranks",
                                  "sharded_ranks/st_rank1.pt", "dtensor_ranks/rank1.pt"])
def test_the_fast_json_of_sharded_tensors(name: str, distributed_files: Path, saved: dict[str, Path]) -> None:
    """inspect --json's text of chunks, placements and ranks is json's text of `to_json()`."""
    assert any(t.sharding is not None for t in pthscope.inspect(distributed_files / name).tensors)
    for path in (distributed_files / name, *saved.values()):
        checkpoint = pthscope.inspect(path)
        assert "".join(json_chunks(checkpoint)) == _compact(checkpoint.to_json()) + "\n", path
