"""`CheckpointIndex` on a 30,000-tensor file: fast to build, every page fast to answer.

The bounds are several times the times measured on a loaded 2-core machine (about 50 ms to
build, under 10 ms a page), so that only a real slowdown fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pthscope
from pthscope.checkpoint_index import CheckpointIndex, load_index, matching

from .conftest import BIG_TENSOR_COUNT


def best_seconds(run: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.fixture(scope="module")
def big_json(checkpoints: dict[str, Path]) -> bytes:
    return json.dumps(pthscope.inspect(checkpoints["big"]).to_json()).encode()


@pytest.fixture(scope="module")
def big_index(big_json: bytes) -> CheckpointIndex:
    return load_index(big_json)


def test_build_is_fast(big_json: bytes) -> None:
    checkpoint = json.loads(big_json)
    assert best_seconds(lambda: CheckpointIndex(checkpoint)) < 0.25


def test_pages_are_fast(big_index: CheckpointIndex) -> None:
    # Each question is asked fresh (a new filter, sort or query), not answered from memory.
    pages: list[Callable[[], Any]] = [
        lambda: big_index.children(big_index.node([]) or {}, 1_500, 500),
        lambda: big_index.search("sub7", 200),
        lambda: big_index.search("layer1*sub*weight", 200),
        lambda: big_index.tensor_page(0, 500, sort="key", descending=True),
        lambda: big_index.tensor_page(2_000, 500, filter="sub3", sort="numel"),
    ]
    for page in pages:
        assert best_seconds(page, repeat=1) < 0.05


def test_answers(big_index: CheckpointIndex) -> None:
    layers = BIG_TENSOR_COUNT // 10
    # Keys `layerN.subM.weight` are grouped: `layerN` → `subM` → `weight`.
    assert big_index.node_count == 1 + layers + 2 * BIG_TENSOR_COUNT
    page = big_index.children(big_index.node([]) or {}, layers - 1, 500)
    assert page.total == layers
    assert [n["key"] for n in page.items] == [f"layer{layers - 1}"]
    leaf = big_index.children(big_index.node(["layer2999.sub9"]) or {}, 0, 10)
    assert [n["key"] for n in leaf.items] == ["layer2999.sub9.weight"]
    root = big_index.summary(big_index.root or {})
    assert root["parameters"] == {
        "total": 6 * BIG_TENSOR_COUNT, "trainable": 0, "frozen": 0, "unknown": 6 * BIG_TENSOR_COUNT}
    by_key = big_index.tensor_page(0, 2, sort="key", descending=True)
    assert [t["key"] for t in by_key.items] == ["layer999.sub9.weight", "layer999.sub8.weight"]


def test_matching() -> None:
    keys = ["model.fc.weight", "model.fc.bias", "optimizer.state.0"]
    assert matching(keys, "FC") == [0, 1]
    assert matching(keys, "model*bias") == [1]
    assert matching(keys, "*state*") == [2]
    assert matching(keys, "a.b") == []
    assert matching(keys, "fc.w*t") == [0]


def test_dotted_keys_that_collide_with_a_prefix_stay_flat() -> None:
    from pthscope.checkpoint_index import group_dotted_keys

    def leaf(name: str) -> dict[str, Any]:
        return {"name": name, "path": [name], "key": name, "kind": "tensor", "type": "", "children": []}

    flat = {"name": "", "path": [], "key": "", "kind": "dict", "type": "dict",
            "children": [leaf("fc"), leaf("fc.weight"), leaf("fc.bias")]}
    group_dotted_keys(flat)
    assert [c["name"] for c in flat["children"]] == ["fc", "fc.weight", "fc.bias"]
    nested = {**flat, "children": [leaf("a.b.c"), leaf("a.d"), leaf("epoch")]}
    group_dotted_keys(nested)
    (a, epoch) = nested["children"]
    assert a["kind"] == "group" and [c["name"] for c in a["children"]] == ["b", "d"]
    assert a["children"][0]["children"][0]["path"] == ["a.b.c"] and epoch["name"] == "epoch"
