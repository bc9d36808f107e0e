"""`pthscope/open` of checkpoints made of several files — a folder, a shard index, a DCP folder —
and of TorchScript, through the real server: the page's first level, the parts, a shard's set,
children, and statistics read from the right file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from pytest_lsp import LanguageClient

from .conftest import ask

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from huggingface_hub import save_torch_state_dict

    root = tmp_path_factory.mktemp("sets")
    torch.manual_seed(0)
    state = {f"layers.{i}.weight": torch.randn(32, 16) for i in range(4)}
    shards = root / "sharded"
    shards.mkdir()
    save_torch_state_dict(state, shards, max_shard_size="3KB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": state, "optim": {"state": {}, "param_groups": [{"lr": 0.1, "params": []}]}},
                 checkpoint_id=str(root / "dcp"))
    script = root / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.ReLU())), script)
    return {"sharded": shards, "index": next(shards.glob("*.index.json")), "dcp": root / "dcp", "script": script,
            "state": root}


async def test_a_sharded_folder(shared_client: LanguageClient, sets: dict[str, Path]) -> None:
    for opened in (sets["sharded"], sets["index"]):
        result = await ask(shared_client, "pthscope/open", {"file": str(opened)})
        assert result.errors == [] and result.format == "sharded" and result.file == str(opened)
        assert len(result.parts) > 1 and sum(p["tensors"] for p in result.parts) == 4
        assert result.root["counts"]["parameter"]["tensors"] == 4
        layers = await ask(shared_client, "pthscope/children", {"file": str(opened), "path": ["layers"]})
        assert [c["name"] for c in layers.children] == ["0", "1", "2", "3"]
        last = layers.children[-1]
        while "tensor" not in last:
            last = (await ask(shared_client, "pthscope/children", {"file": str(opened), "path": last["path"]})).children[0]
        assert last["key"] == "layers.3.weight" and last["tensor"]["part"] is not None
        stats = await ask(shared_client, "pthscope/stats", {"file": str(opened), "path": last["path"]})
        assert stats.error is None and stats.stats["numel"] == 32 * 16


async def test_a_shard_names_its_set(shared_client: LanguageClient, sets: dict[str, Path]) -> None:
    shards = sorted(sets["sharded"].glob("*.safetensors"))
    result = await ask(shared_client, "pthscope/open", {"file": str(shards[-1])})
    assert result.format == "safetensors"
    assert result.part_of == {"file": str(sets["index"]), "format": "sharded", "part": len(shards), "parts": len(shards)}


async def test_a_distributed_checkpoint_folder(shared_client: LanguageClient, sets: dict[str, Path]) -> None:
    file = str(sets["dcp"])
    result = await ask(shared_client, "pthscope/open", {"file": file})
    assert result.errors == [] and result.format == "torch-distributed"
    assert [c["name"] for c in result.children] == ["model", "optim"]
    assert result.summary["roles"]["parameter"]["tensors"] == 4
    tensors = await ask(shared_client, "pthscope/tensors", {"file": file, "limit": 10})
    first = tensors.tensors[0]
    assert first["sharding"]["kind"] == "DCP" and first["sharding"]["chunks"][0]["part"] == 0
    stats = await ask(shared_client, "pthscope/stats", {"file": file, "path": first["path"]})
    assert stats.error is None and stats.stats["numel"] == 32 * 16


async def test_a_torchscript_file(shared_client: LanguageClient, sets: dict[str, Path]) -> None:
    file = str(sets["script"])
    result = await ask(shared_client, "pthscope/open", {"file": file})
    assert result.format == "torchscript" and result.errors == []
    assert result.root["kind"] == "module" and result.root["module"]["class"] == "torch.nn.modules.container.Sequential"
    assert any(w["kind"] == "code" for w in result.warnings)
    linear = (await ask(shared_client, "pthscope/children", {"file": file, "path": []})).children[0]
    assert linear["module"]["class"] == "torch.nn.modules.linear.Linear"
    weight = (await ask(shared_client, "pthscope/children", {"file": file, "path": linear["path"]})).children[0]
    stats = await ask(shared_client, "pthscope/stats", {"file": file, "path": weight["path"]})
    truth = getattr(torch.jit.load(file), "0").weight.detach()
    assert stats.error is None and stats.stats["max"] == pytest.approx(float(truth.max()))
