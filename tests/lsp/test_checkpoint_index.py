"""`CheckpointIndex` on a 30,000-tensor file: pages, search, sorting and grouping.

Its speed (about 50 ms to build, under 10 ms a page on a loaded 2-core machine) is measured by
benchmarks/bench_lsp.py, never asserted in a test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pthscope
from pthscope.worker.index import CheckpointIndex, load_index, matching

from .conftest import BIG_TENSOR_COUNT


@pytest.fixture(scope="module")
def big_json(checkpoints: dict[str, Path]) -> bytes:
    return json.dumps(pthscope.inspect(checkpoints["big"]).to_json()).encode()


@pytest.fixture(scope="module")
def big_index(big_json: bytes) -> CheckpointIndex:
    return load_index(big_json)


def test_pages_answer_fresh_questions(big_index: CheckpointIndex) -> None:
    # Speed is measured by benchmarks/bench_lsp.py, not asserted here; this checks the answers.
    assert big_index.children(big_index.node([]) or {}, 1_500, 500).items
    assert big_index.search("sub7", 200).total == 2 * 3_000
    assert big_index.search("layer1*sub*weight", 200).items
    assert big_index.tensor_page(0, 500, sort="key", descending=True).total == 30_000
    assert big_index.tensor_page(2_000, 500, filter="sub3", sort="numel").total == 3_000


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
    from pthscope.worker.index import group_dotted_keys

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
