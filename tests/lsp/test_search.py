"""`pthscope/search` (keys, case-insensitive, `*` wildcards) and `pthscope/tensors` (the table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from .conftest import BIG_TENSOR_COUNT, ask

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_search_by_key(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    file = str(checkpoints["training"])
    found = await ask(shared_client, "pthscope/search", {"file": file, "query": "FC.Weight"})
    assert [m["key"] for m in found.matches] == ["model.fc.weight"]
    assert found.total == 1

    wildcard = await ask(shared_client, "pthscope/search", {"file": file, "query": "layers*conv"})
    # Dotted state_dict keys also match as the groups (modules) they spell.
    assert {m["key"] for m in wildcard.matches} == {
        "model.layers.0.conv", "model.layers.1.conv",
        "model.layers.0.conv.weight", "model.layers.1.conv.weight"}

    nothing = await ask(shared_client, "pthscope/search", {"file": file, "query": "no such key"})
    assert nothing.matches == [] and nothing.total == 0


async def test_search_limit_keeps_the_total(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    found = await ask(
        shared_client, "pthscope/search", {"file": str(checkpoints["big"]), "query": "sub3", "limit": 5}
    )
    assert found.total == 2 * (BIG_TENSOR_COUNT // 10)  # each `layerN.sub3` group and its weight
    assert [m["key"] for m in found.matches] == ["layer0.sub3", "layer0.sub3.weight", "layer1.sub3",
                                                 "layer1.sub3.weight", "layer2.sub3"]


async def test_the_open_brings_the_tables_first_rows_when_asked(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["big"])
    table = await ask(shared_client, "pthscope/tensors", {"file": file, "limit": 7})
    opened = await ask(shared_client, "pthscope/open", {"file": file, "firstTensors": 7})
    assert opened.first_tensors == {"tensors": table.tensors, "total": BIG_TENSOR_COUNT}
    assert (await ask(shared_client, "pthscope/open", {"file": file})).first_tensors is None
    with pytest.raises(JsonRpcInvalidParams, match="firstTensors|first_tensors"):
        await ask(shared_client, "pthscope/open", {"file": file, "firstTensors": -1})


async def test_tensor_table_sorts_and_filters(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["whole_model"])
    table = await ask(shared_client, "pthscope/tensors", {"file": file})
    assert table.total == len(table.tensors) > 0
    in_file_order = [t["key"] for t in table.tensors]

    by_size = await ask(
        shared_client, "pthscope/tensors", {"file": file, "sort": "numel", "descending": True}
    )
    sizes = [t["numel"] for t in by_size.tensors]
    assert sizes == sorted(sizes, reverse=True)
    # Ties stay in file order.
    ties = [t["key"] for t in by_size.tensors if t["numel"] == 8]
    assert ties == [k for k in in_file_order if k in ties]

    by_grad = await ask(shared_client, "pthscope/tensors", {"file": file, "sort": "grad_state"})
    assert [t["grad_state"] for t in by_grad.tensors] == sorted(
        t["grad_state"] for t in table.tensors)

    reversed_order = await ask(shared_client, "pthscope/tensors", {"file": file, "descending": True})
    assert [t["key"] for t in reversed_order.tensors] == in_file_order[::-1]

    bn = await ask(shared_client, "pthscope/tensors", {"file": file, "filter": "BN.", "sort": "key"})
    keys = [t["key"] for t in bn.tensors]
    assert keys == sorted(keys) and keys and all(".bn." in k for k in keys)
    assert bn.total == len(keys)

    page = await ask(
        shared_client, "pthscope/tensors",
        {"file": file, "filter": "layers*weight", "offset": 1, "limit": 2},
    )
    everything = await ask(shared_client, "pthscope/tensors", {"file": file, "filter": "layers*weight"})
    assert [t["key"] for t in page.tensors] == [t["key"] for t in everything.tensors[1:3]]
    assert page.total == everything.total
