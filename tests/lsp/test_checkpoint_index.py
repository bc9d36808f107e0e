"""`CheckpointIndex` (the structure worker's) on a 30,000-tensor file: pages, search, sorting
and grouping.

Its speed is measured by benchmarks/bench_lsp.py, never asserted in a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import pthscope
from pthscope.reader.grouping import grouped_children
from pthscope.reader.model import Node
from pthscope.worker.index import CheckpointIndex, matching

from .conftest import BIG_TENSOR_COUNT


@pytest.fixture(scope="module")
def big_index(checkpoints: dict[str, Path]) -> CheckpointIndex:
    return CheckpointIndex(pthscope.inspect(checkpoints["big"]))


def test_pages_answer_fresh_questions(big_index: CheckpointIndex) -> None:
    # Speed is measured by benchmarks/bench_lsp.py, not asserted here; this checks the answers.
    assert big_index.children(big_index.node([]), 1_500, 500).items
    assert big_index.search("sub7", 200).total == 2 * 3_000
    assert big_index.search("layer1*sub*weight", 200).items
    assert big_index.tensor_page(0, 500, sort="key", descending=True).total == 30_000
    assert big_index.tensor_page(2_000, 500, filter="sub3", sort="numel").total == 3_000


def test_answers(big_index: CheckpointIndex) -> None:
    layers = BIG_TENSOR_COUNT // 10
    # Keys `layerN.subM.weight` are grouped: `layerN` → `subM` → `weight`.
    assert big_index.node_count == 1 + layers + 2 * BIG_TENSOR_COUNT
    page = big_index.children(big_index.node([]), layers - 1, 500)
    assert page.total == layers
    assert [n["key"] for n in page.items] == [f"layer{layers - 1}"]
    leaf = big_index.children(big_index.node(["layer2999.sub9"]), 0, 10)
    assert [n["key"] for n in leaf.items] == ["layer2999.sub9.weight"]
    assert big_index.root is not None
    root = big_index.summary(big_index.root)
    assert root["counts"]["parameter"] == {
        "tensors": BIG_TENSOR_COUNT, "elements": 6 * BIG_TENSOR_COUNT, "bytes": 24 * BIG_TENSOR_COUNT,
        "trainable": 0, "frozen": 0, "not_stored": 6 * BIG_TENSOR_COUNT}
    group = big_index.summary(big_index.node(["layer7"]))
    assert group["kind"] == "group" and group["counts"]["parameter"]["tensors"] == 10
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
    def leaf(name: str) -> Node:
        return Node(name, [name], "tensor", "")

    flat = Node("", [], "dict", "dict", children=[leaf("fc"), leaf("fc.weight"), leaf("fc.bias")])
    assert grouped_children(flat) is None
    nested = Node("", [], "dict", "dict", children=[leaf("a.b.c"), leaf("a.d"), leaf("epoch")])
    grouped = grouped_children(nested)
    assert grouped is not None
    (a, epoch) = grouped
    assert a.kind == "group" and [c.name for c in a.children] == ["b", "d"]
    assert a.children[0].children[0].path == ["a.b.c"] and epoch.name == "epoch"
