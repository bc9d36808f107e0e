"""`pthscope/children` and `pthscope/details`: one level at a time, one node in full."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from .conftest import WIDE_TENSOR_COUNT, ask

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_pages_through_a_wide_dict(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["wide"])
    opened = await ask(shared_client, "pthscope/open", {"file": file})
    assert opened.root["child_count"] == WIDE_TENSOR_COUNT
    assert len(opened.children) == 500  # open sends the first page only

    keys = []
    for offset in range(0, WIDE_TENSOR_COUNT, 500):
        page = await ask(shared_client, "pthscope/children", {"file": file, "path": [], "offset": offset})
        assert page.total == WIDE_TENSOR_COUNT
        keys += [node["key"] for node in page.children]
    assert keys == [f"t{i:04d}" for i in range(WIDE_TENSOR_COUNT)]

    last = await ask(
        shared_client, "pthscope/children", {"file": file, "path": [], "offset": 1190, "limit": 50}
    )
    assert [n["key"] for n in last.children] == [f"t{i}" for i in range(1190, 1200)]
    past_the_end = await ask(shared_client, "pthscope/children", {"file": file, "path": [], "offset": 5000})
    assert past_the_end.children == [] and past_the_end.total == WIDE_TENSOR_COUNT


async def test_children_of_nested_nodes(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["training"])
    model = await ask(shared_client, "pthscope/children", {"file": file, "path": ["model"]})
    assert model.total == len(model.children) > 0
    assert all(n["path"][0] == "model" and n["kind"] == "group" for n in model.children)
    stem = await ask(shared_client, "pthscope/children", {"file": file, "path": model.children[0]["path"]})
    assert stem.children[0]["key"] == "model.stem.weight" and stem.children[0]["kind"] == "tensor"

    optimizer = await ask(shared_client, "pthscope/children", {"file": file, "path": ["optimizer"]})
    assert {n["name"] for n in optimizer.children} == {"state", "param_groups"}
    groups = await ask(
        shared_client, "pthscope/children", {"file": file, "path": ["optimizer", "param_groups"]}
    )
    assert groups.children[0]["path"] == ["optimizer", "param_groups", 0]  # list index: a number

    tensor = await ask(shared_client, "pthscope/children", {"file": file, "path": ["epoch"]})
    assert tensor.children == [] and tensor.total == 0


async def test_details_of_a_tensor_module_and_value(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["whole_model"])
    fc_weight = await ask(shared_client, "pthscope/details", {"file": file, "path": ["fc", "weight"]})
    node = fc_weight.node
    assert node["kind"] == "tensor" and node["key"] == "fc.weight"
    assert node["tensor"]["shape"] == [10, 8]
    assert node["tensor"]["requires_grad"] is True and node["tensor"]["grad_state"] == "trainable"
    assert fc_weight.tied == []

    frozen = await ask(shared_client, "pthscope/details", {"file": file, "path": ["stem", "weight"]})
    assert frozen.node["tensor"]["grad_state"] == "frozen"

    block = await ask(shared_client, "pthscope/details", {"file": file, "path": ["layers"]})
    assert block.node["kind"] == "module" and block.tied is None
    assert block.node["module"]["class"] == "torch.nn.modules.container.Sequential"
    assert block.node["counts"]["parameter"]["frozen"] == block.node["counts"]["parameter"]["elements"] > 0

    epoch = await ask(
        shared_client, "pthscope/details", {"file": str(checkpoints["training"]), "path": ["epoch"]}
    )
    assert epoch.node["value"] == "7" and epoch.node["type"] == "int"
