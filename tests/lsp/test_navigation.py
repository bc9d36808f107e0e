"""What the page, the side panel and Find need to move between each other: `pthscope/reveal`
(the way to a node, with its index in each parent, so a paged tree loads just enough), the
table's `rowOf` (where a tensor is in the current filter and order) and its sort keys; the
first values that come with a tensor's statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from .conftest import BIG_TENSOR_COUNT, ask

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_reveal_gives_each_step_and_its_index(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["big"])
    last_layer = BIG_TENSOR_COUNT // 10 - 1
    key = f"layer{last_layer}.sub7.weight"  # the flat key, shown as groups layerN → subM → weight
    revealed = await ask(shared_client, "pthscope/reveal", {"file": file, "path": [key]})
    steps = revealed.steps
    assert [s["node"]["key"] for s in steps] == [f"layer{last_layer}", f"layer{last_layer}.sub7", key]
    assert [s["index"] for s in steps] == [last_layer, 7, 0]
    assert steps[-1]["node"]["tensor"]["shape"] == [2, 3]
    # Each index is where the children request finds that node: the tree loads up to it.
    parent: list[str | int] = []
    for step in steps:
        page = await ask(shared_client, "pthscope/children",
                         {"file": file, "path": parent, "offset": step["index"], "limit": 1})
        assert page.children[0]["key"] == step["node"]["key"]
        parent = step["node"]["path"]


async def test_reveal_in_nested_containers_and_the_root(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["training"])
    revealed = await ask(shared_client, "pthscope/reveal", {"file": file, "path": ["optimizer", "state", 0, "momentum_buffer"]})
    assert [s["node"]["name"] for s in revealed.steps] == ["optimizer", "state", "0", "momentum_buffer"]
    root = await ask(shared_client, "pthscope/reveal", {"file": file, "path": []})
    assert root.steps == []
    with pytest.raises(JsonRpcInvalidParams, match="names no node"):
        await ask(shared_client, "pthscope/reveal", {"file": file, "path": ["no", "such"]})


async def test_row_of_a_tensor_in_the_current_order(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["training"])
    order = {"sort": "numel", "descending": True}
    everything = await ask(shared_client, "pthscope/tensors", {"file": file, **order})
    target = everything.tensors[-3]
    found = await ask(shared_client, "pthscope/tensors",
                      {"file": file, **order, "limit": 0, "rowOf": target["path"]})
    assert found.tensors == [] and found.row == len(everything.tensors) - 3
    filtered = await ask(shared_client, "pthscope/tensors",
                         {"file": file, "filter": "optimizer", "limit": 0, "rowOf": ["model", "fc.weight"]})
    assert filtered.row is None  # the filter leaves it out: the page clears the filter first
    unasked = await ask(shared_client, "pthscope/tensors", {"file": file, "limit": 1})
    assert unasked.row is None
    with pytest.raises(JsonRpcInvalidParams, match="not a tensor"):
        await ask(shared_client, "pthscope/tensors", {"file": file, "rowOf": ["model"]})


@pytest.mark.parametrize("sort", ["shape", "kind", "location"])
async def test_shape_kind_and_device_sort(
    shared_client: LanguageClient, checkpoints: dict[str, Path], sort: str
) -> None:
    file = str(checkpoints["training"])
    field = {"location": "location", "kind": "kind", "shape": "shape"}[sort]
    table = await ask(shared_client, "pthscope/tensors", {"file": file, "sort": sort})
    values = [t[field] for t in table.tensors]
    assert values == sorted(values)
    backwards = await ask(shared_client, "pthscope/tensors", {"file": file, "sort": sort, "descending": True})
    assert [t[field] for t in backwards.tensors] == sorted(values, reverse=True)
    if sort == "shape":
        assert len({tuple(v) for v in values}) > 2  # a real ordering, not one shape


async def test_small_tensors_come_with_their_values(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["state_dict"])
    loaded = torch.load(file, weights_only=True)
    for key, tensor in loaded.items():
        result = await ask(shared_client, "pthscope/stats", {"file": file, "path": [key]})
        shown = result.stats["first_values"]
        expected = tensor.reshape(-1)[:100]
        assert len(shown) == expected.numel(), key
        assert torch.equal(torch.tensor([float(v) for v in shown], dtype=tensor.dtype), expected), key
