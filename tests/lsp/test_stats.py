"""`pthscope/stats`: statistics of one tensor's values, computed in the values worker from where
the structure worker says the bytes are (the test workers fail if the values worker parses)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from .conftest import BIG_TENSOR_COUNT, ask

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_stats_of_a_tensor(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    file = str(checkpoints["state_dict"])
    weight = torch.load(file, weights_only=True)["stem.weight"].double()
    result = await ask(shared_client, "pthscope/stats", {"file": file, "path": ["stem.weight"]})
    assert result.error is None
    stats = result.stats
    assert stats["key"] == "stem.weight" and stats["shape"] == [8, 3, 3, 3] and stats["numel"] == 216
    assert stats["min"] == pytest.approx(float(weight.min()))
    assert stats["max"] == pytest.approx(float(weight.max()))
    assert stats["mean"] == pytest.approx(float(weight.mean()))
    assert stats["sampled"] is False and sum(stats["histogram"]["counts"]) == 216


async def test_stats_inside_a_whole_model(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    file = str(checkpoints["whole_model"])
    opened = await ask(shared_client, "pthscope/tensors", {"file": file, "limit": 1})
    path = opened.tensors[0]["path"]
    result = await ask(shared_client, "pthscope/stats", {"file": file, "path": path})
    assert result.error is None and result.stats["numel"] == opened.tensors[0]["numel"]


async def test_truncated_file_is_an_error_value(shared_client: LanguageClient, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.zeros(1000), "b": torch.ones(1000)}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    cut = tmp_path / "legacy-cut.pt"
    cut.write_bytes(data[: len(data) - 100])
    results = [await ask(shared_client, "pthscope/stats", {"file": str(cut), "path": [k]}) for k in "ab"]
    assert sorted(r.error is None for r in results) == [False, True]
    assert any("truncated" in (r.error or "") for r in results)


async def test_a_container_is_not_a_tensor(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    with pytest.raises(JsonRpcInvalidParams, match="not a tensor"):
        await ask(shared_client, "pthscope/stats", {"file": str(checkpoints["training"]), "path": ["model"]})
    with pytest.raises(JsonRpcInvalidParams, match="names no node"):
        await ask(shared_client, "pthscope/stats", {"file": str(checkpoints["state_dict"]), "path": ["nope"]})


async def test_stats_do_not_read_the_file_again(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    file = str(checkpoints["big"])
    table = await ask(shared_client, "pthscope/tensors", {"file": file, "offset": BIG_TENSOR_COUNT - 1, "limit": 1})
    result = await ask(shared_client, "pthscope/stats", {"file": file, "path": table.tensors[0]["path"]})
    assert result.error is None and result.stats["numel"] == 6
    reads = [m for m in shared_client.log_messages if f"read {file}:" in m.message]
    assert len(reads) == 1


async def test_stats_whatever_the_record_prefix(shared_client: LanguageClient, tmp_path: Path) -> None:
    original = tmp_path / "original.pt"
    weights = torch.randn(4, 6)
    torch.save({"w": weights}, original)
    moved = tmp_path / "moved.pt"
    with zipfile.ZipFile(original) as read, zipfile.ZipFile(moved, "w") as write:
        for info in read.infolist():  # the archive's record folder, renamed
            write.writestr("odd.name ü/" + info.filename.split("/", 1)[1], read.read(info))
    result = await ask(shared_client, "pthscope/stats", {"file": str(moved), "path": ["w"]})
    assert result.error is None
    assert result.stats["max"] == pytest.approx(float(weights.max()))
