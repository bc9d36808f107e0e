"""Bad params are JSON-RPC InvalidParams errors that name the field; the server carries on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from .conftest import ask

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILE = "/nowhere/model.pt"

BAD_PARAMS = [
    ("pthscope/open", {}, "file: required field missing"),
    ("pthscope/open", {"file": 3}, "file: expected a string, got number"),
    ("pthscope/open", {"file": "model.pt"}, "`file` must be an absolute path, got 'model.pt'"),
    ("pthscope/open", None, "params must be an object"),
    ("pthscope/children", {"file": FILE, "path": "a.b"}, "path: expected an array, got string"),
    ("pthscope/children", {"file": FILE, "path": [1.5]}, "path: expected a string or an integer"),
    ("pthscope/children", {"file": FILE, "offset": -1}, "`offset` must be 0 or more, got -1"),
    ("pthscope/children", {"file": FILE, "limit": 10**6}, "`limit` must be between 0 and 10000"),
    ("pthscope/children", {"file": FILE, "offset": "2"}, "offset: expected an integer, got string"),
    ("pthscope/search", {"file": FILE}, "query: required field missing"),
    ("pthscope/search", {"file": FILE, "query": ""}, "`query` must not be empty"),
    ("pthscope/tensors", {"file": FILE, "sort": "size"}, "`sort` must be one of index, key, shape, numel"),
    ("pthscope/tensors", {"file": FILE, "descending": 1}, "descending: expected true or false"),
    ("pthscope/tensors", {"file": FILE, "offset": True}, "offset: expected an integer, got boolean"),
]


@pytest.mark.parametrize(("method", "params", "message"), BAD_PARAMS)
async def test_bad_params_name_the_field(
    shared_client: LanguageClient, method: str, params: Any, message: str
) -> None:
    with pytest.raises(JsonRpcInvalidParams) as error:
        await ask(shared_client, method, params)
    assert error.value.message.startswith(f"Invalid params for {method}: ")
    assert message in error.value.message

    still_there = await ask(shared_client, "pthscope/open", {"file": FILE})
    assert still_there.errors[0]["kind"] == "unreadable"

async def test_unknown_node_path(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    file = str(checkpoints["state_dict"])
    with pytest.raises(JsonRpcInvalidParams, match=r'path \["no", "such"\] names no node in '):
        await ask(shared_client, "pthscope/details", {"file": file, "path": ["no", "such"]})
    with pytest.raises(JsonRpcInvalidParams, match="nothing could be read from it"):
        await ask(shared_client, "pthscope/children", {"file": FILE, "path": []})
