"""Answer tree and table questions about one parsed checkpoint, quickly and page by page.

`CheckpointIndex` is built once from `Checkpoint.to_json()` (what the worker sends) and then
serves the `pthscope/*` requests: a node's children a page at a time, details of one node,
key search, and the flat tensor table sorted and filtered. Every answer is plain JSON in the
shapes of docs/protocol.md (`NodeSummary`, `TensorJson`). It knows nothing about LSP.
"""

from __future__ import annotations

import json
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Any

from ..gc_pause import gc_paused
from ..reader.dtypes import can_require_grad

Json = dict[str, Any]
PathKey = tuple[str | int, ...]

_CONTAINER_KINDS = frozenset({"dict", "list", "tuple", "set", "object", "module", "group"})
_ORDERS_KEPT = 16


@dataclass(frozen=True)
class Page:
    """One page of a longer list, and how long the whole list is."""

    items: list[Json]
    total: int


def matching(keys: list[str], query: str) -> list[int]:
    """Indices of the lower-cased `keys` that contain `query` (case-insensitive; `*` matches
    any run of text). The scan runs in C (`compress` over `map`): ~3 ms for 30,000 keys."""
    needle = query.lower().strip("*")
    if "*" in needle:
        pattern = re.compile(".*".join(re.escape(part) for part in needle.split("*")), re.DOTALL)
        hits: Iterator[Any] = map(pattern.search, keys)
    else:
        hits = map(operator.contains, keys, repeat(needle))
    return list(compress(range(len(keys)), hits))


def _counts_json(counts: Sequence[int]) -> dict[str, int]:
    total, trainable, frozen, unknown = counts
    return {"total": total, "trainable": trainable, "frozen": frozen, "unknown": unknown}


class CheckpointIndex:
    """Lookups over one checkpoint's JSON: nodes by path, subtree counts, sorted tensor tables."""

    def __init__(self, checkpoint: Json) -> None:
        self.checkpoint = checkpoint
        self.tensors: list[Json] = checkpoint.get("tensors", [])
        self.modules: list[Json] = checkpoint.get("modules", [])
        self.root: Json | None = checkpoint.get("tree")
        self._nodes: dict[PathKey, Json] = {}
        # Every node but the root in file order, and its key lower-cased for search.
        self._search_nodes: list[Json] = []
        self._search_keys: list[str] = []
        self._searches: OrderedDict[str, list[int]] = OrderedDict()
        # Parameter counts (total, trainable, frozen, unknown) of each container's subtree,
        # by id of the node; a tensor's count follows `TensorInfo.counts`.
        self._counts: dict[int, tuple[int, int, int, int]] = {}
        self._tensor_keys = [t["key"].lower() for t in self.tensors]
        self._tensor_orders: OrderedDict[tuple[str, str, bool], list[int]] = OrderedDict()
        if self.root is not None:
            group_dotted_keys(self.root)
            self._nodes[()] = self.root
            if self.root["kind"] in _CONTAINER_KINDS:
                self._visit(self.root)

    def _visit(self, node: Json) -> tuple[int, int, int, int]:
        """Record the subtree under a container; return and remember its parameter counts.

        Written as one tight loop over children: this runs once per node of files with
        tens of thousands of tensors, and tensors are counted in line.
        """
        nodes, tensors = self._nodes, self.tensors
        search_nodes, search_keys = self._search_nodes, self._search_keys
        total = trainable = frozen = unknown = 0
        for child in node["children"]:
            nodes[tuple(child["path"])] = child
            search_nodes.append(child)
            search_keys.append(child["key"].lower())
            index = child.get("tensor")
            if index is None:
                if child["kind"] in _CONTAINER_KINDS:
                    t, tr, fr, un = self._visit(child)
                    total, trainable, frozen, unknown = (
                        total + t, trainable + tr, frozen + fr, unknown + un)
                continue
            tensor = tensors[index]
            if tensor["kind"] in ("buffer", "ndarray") or not can_require_grad(tensor["dtype"]):
                continue  # the rule of TensorInfo.counts
            n = tensor["numel"]
            total += n
            state = tensor["grad_state"]
            if state == "trainable":
                trainable += n
            elif state == "frozen":
                frozen += n
            else:
                unknown += n
        counts = (total, trainable, frozen, unknown)
        self._counts[id(node)] = counts
        return counts

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def overview(self) -> Json:
        """What `pthscope/open` shows above the tree: format, summary, globals, problems."""
        c = self.checkpoint
        return {name: c[name] for name in (
            "file", "format", "size", "metadata", "summary", "globals", "warnings", "errors")}

    def node(self, path: Sequence[str | int]) -> Json | None:
        return self._nodes.get(tuple(path))

    def summary(self, node: Json) -> Json:
        """The `NodeSummary` of a node: itself without its children, records inlined."""
        out: Json = {
            "path": node["path"],
            "key": node["key"],
            "name": node["name"],
            "kind": node["kind"],
            "type": node["type"],
            "child_count": len(node["children"]),
        }
        if "value" in node:
            out["value"] = node["value"]
        if node.get("tensor") is not None:
            out["tensor"] = self.tensors[node["tensor"]]
        if node.get("module") is not None:
            out["module"] = self.modules[node["module"]]
        counts = self._counts.get(id(node))
        if counts is not None:
            out["parameters"] = _counts_json(counts)
        return out

    def children(self, node: Json, offset: int, limit: int) -> Page:
        """A page of a node's children."""
        kids = node["children"]
        return Page([self.summary(k) for k in kids[offset:offset + limit]], len(kids))

    def tied(self, node: Json) -> list[str] | None:
        """Keys of the other tensors sharing this tensor's storage; None for non-tensors."""
        if node.get("tensor") is None:
            return None
        return list(self.tensors[node["tensor"]].get("shared_with", []))

    def search(self, query: str, limit: int) -> Page:
        """Nodes whose key contains `query` (case-insensitive, `*` wildcards), in file order."""
        found = _remembered(self._searches, query, lambda: matching(self._search_keys, query))
        return Page([self.summary(self._search_nodes[i]) for i in found[:limit]], len(found))

    def tensor_page(
        self, offset: int, limit: int, filter: str = "", sort: str = "index",
        descending: bool = False,
    ) -> Page:
        """A page of the flat tensor table, filtered by key and sorted (ties in file order).

        `sort` is "index" (file order) or a tensor field: key, numel, nbytes, dtype,
        grad_state. Each row order is remembered, so paging through it is cheap.
        """
        rows = _remembered(
            self._tensor_orders, (filter, sort, descending),
            lambda: self._tensor_order(filter, sort, descending),
        )
        return Page([self.tensors[i] for i in rows[offset:offset + limit]], len(rows))

    def _tensor_order(self, filter: str, sort: str, descending: bool) -> list[int]:
        rows = matching(self._tensor_keys, filter) if filter else list(range(len(self.tensors)))
        if sort != "index":
            column = [t[sort] for t in self.tensors]
            rows.sort(key=column.__getitem__, reverse=descending)
        elif descending:
            rows.reverse()
        return rows


def group_dotted_keys(node: Json) -> None:
    """Show a state_dict's flat dotted keys as the module tree they spell.

    `{"layer1.0.conv1.weight": ...}` gets `group` nodes `layer1` → `0` → `conv1` with the tensor
    (its real path and key unchanged, named `weight`) inside. A group's path is its parent's path
    plus the dotted prefix (`"layer1.0"`). A dict whose keys collide with their own prefixes
    (`"fc"` beside `"fc.weight"`) is left flat. Applied to every dict in the tree.
    """
    stack = [node]
    while stack:
        current = stack.pop()
        children = current["children"]
        if current["kind"] == "dict" and sum(1 for c in children if "." in c["name"]) >= 2:
            grouped = _grouped_children(current)
            if grouped is not None:
                current["children"] = grouped
        stack.extend(c for c in children if c["children"])


def _grouped_children(parent: Json) -> list[Json] | None:
    top: list[Json] = []
    groups: dict[str, Json] = {}
    leaves: set[str] = set()
    for child in parent["children"]:
        name = child["name"]
        if not isinstance(child["path"][-1], str) or "." not in name or name.startswith(".") or name.endswith("."):
            top.append(child)
            leaves.add(name)
            continue
        *prefixes, leaf = name.split(".")
        siblings = top
        for depth in range(1, len(prefixes) + 1):
            prefix = ".".join(prefixes[:depth])
            group = groups.get(prefix)
            if group is None:
                group = groups[prefix] = {
                    "name": prefixes[depth - 1],
                    "path": [*parent["path"], prefix],
                    "key": f"{parent['key']}.{prefix}" if parent["key"] else prefix,
                    "kind": "group",
                    "type": "",
                    "children": [],
                }
                siblings.append(group)
            siblings = group["children"]
        siblings.append({**child, "name": leaf})
        leaves.add(name)
    return None if leaves & groups.keys() else top


def _remembered(memo: OrderedDict[Any, list[int]], key: Any, compute: Callable[[], list[int]]
                ) -> list[int]:
    """`compute()`, kept in the small LRU `memo` under `key`."""
    value = memo.get(key)
    if value is None:
        value = memo[key] = compute()
        if len(memo) > _ORDERS_KEPT:
            memo.popitem(last=False)
    memo.move_to_end(key)
    return value


def load_index(checkpoint_json: bytes) -> CheckpointIndex:
    """Decode and index a checkpoint's JSON with the garbage collector paused: the JSON is
    millions of objects, all in use, and collections in the middle only double the time."""
    with gc_paused():
        return CheckpointIndex(json.loads(checkpoint_json))
