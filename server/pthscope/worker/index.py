"""Answer tree and table questions about one parsed checkpoint, quickly and page by page.

`CheckpointIndex` is built once per parsed file, in the structure worker, from the reader's
typed `Checkpoint`; `answer(index, method, params)` then serves the `pthscope/*` requests from
it: the overview and first level (`open`), a node's children a page at a time, one node's
details, key search, the flat tensor table sorted and filtered, where a tensor's bytes are
(`locate`, for the values worker), the way from the root to a node (`reveal`, for a tree that
loads pages) and the code-intelligence view (`model`). Answers are plain
JSON in the shapes of lsp/protocol.py (`NodeSummary`, `TensorJson`, ...). State_dict keys are
shown grouped (reader/grouping.py); every count is a tally of the reader's roles (counts.py).
It knows nothing about LSP or processes.
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

from ..reader.counts import Tally, tally_tree
from ..reader.grouping import grouped_children
from ..reader.model import Checkpoint, Node, SummaryJson
from ..reader.model_view import model_view
from ..values.stats import tensor_bytes
from . import InvalidRequest

Json = dict[str, Any]
PathKey = tuple[str | int, ...]

_ORDERS_KEPT = 16
_TENSOR_COLUMNS: dict[str, Callable[[Any], Any]] = {
    "key": lambda t: t.key,
    "shape": lambda t: t.shape,  # lists compare element by element: [3] < [16] < [16, 3] < [32]
    "kind": lambda t: t.kind,
    "location": lambda t: t.location,
    "numel": lambda t: t.numel,
    "nbytes": lambda t: t.nbytes,
    "dtype": lambda t: t.dtype,
    "grad_state": lambda t: t.grad_state,
    "role": lambda t: t.role,
}


@dataclass(frozen=True)
class Page:
    """One page of a longer list, and how long the whole list is."""

    items: list[Any]
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


class CheckpointIndex:
    """Lookups over one parsed checkpoint: nodes by path, grouped children, subtree counts,
    sorted tensor tables."""

    def __init__(self, checkpoint: Checkpoint, size: int = 0, mtime_ns: int = 0) -> None:
        self.checkpoint = checkpoint
        self.size, self.mtime_ns = size, mtime_ns  # of the file when it was read
        self.tensors = checkpoint.tensors
        self.root = checkpoint.root
        self._grouped: dict[int, list[Node]] = {}  # id of a dict → its children, grouped
        self._nodes: dict[PathKey, Node] = {}
        self._places: dict[int, tuple[Node, int]] = {}  # id of a node → (its parent, its index there)
        # Every node but the root in file order, and its key lower-cased for search.
        self._search_nodes: list[Node] = []
        self._search_keys: list[str] = []
        self._searches: OrderedDict[str, list[int]] = OrderedDict()
        self._tensor_keys = [t.key.lower() for t in self.tensors]
        self._tensor_orders: OrderedDict[tuple[str, str, bool], list[int]] = OrderedDict()
        self._summary: SummaryJson | None = None
        self._tallies: dict[int, Tally] = {}
        if self.root is not None:
            self._nodes[()] = self.root
            self._visit(self.root)
            self._tallies = tally_tree(self.root, self.tensors, checkpoint.tied_views, self.children_of,
                                       lambda node: True)

    def _visit(self, root: Node) -> None:
        """Group dotted keys and record every node, in file order (one pass, no recursion)."""
        nodes, places, search_nodes, search_keys = self._nodes, self._places, self._search_nodes, self._search_keys
        stack = [root]
        while stack:
            node = stack.pop()
            if node.kind == "dict":
                grouped = grouped_children(node)
                if grouped is not None:
                    self._grouped[id(node)] = grouped
            kids = self.children_of(node)
            for i, child in enumerate(kids):
                nodes[tuple(child.path)] = child
                places[id(child)] = (node, i)
            if node is not root:
                search_nodes.append(node)
                search_keys.append(node.key.lower())
            stack.extend(reversed(kids))

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def children_of(self, node: Node) -> list[Node]:
        return self._grouped.get(id(node), node.children)

    def node(self, path: Sequence[str | int]) -> Node:
        """The node at `path`, or InvalidRequest saying there is none."""
        found = self._nodes.get(tuple(path))
        if found is not None:
            return found
        reason = f"path {_json_path(path)} names no node in {self.checkpoint.file}"
        if self.root is None:
            reason += " (nothing could be read from it; see the errors of pthscope/open)"
        raise InvalidRequest(reason)

    def overview(self) -> Json:
        """What `pthscope/open` shows above the tree: format, summary, models, globals, problems."""
        c = self.checkpoint
        if self._summary is None:
            self._summary = c.summary()
        return {
            "file": c.file, "format": c.format, "size": c.size, "metadata": c.metadata,
            "summary": self._summary, "models": [m.to_json() for m in c.models],
            "globals": [g.to_json() for g in c.globals], "loader": c.loader(),
            "warnings": [w.to_json() for w in c.warnings], "errors": [e.to_json() for e in c.errors], "parts": [p.to_json() for p in c.parts],
            "part_of": c.part_of.to_json() if c.part_of is not None else None,
        }

    def summary(self, node: Node) -> Json:
        """The `NodeSummary` of a node: itself without its children, records inlined."""
        out: Json = {
            "path": node.path,
            "key": node.key,
            "name": node.name,
            "kind": node.kind,
            "type": node.type,
            "child_count": len(self.children_of(node)),
        }
        if node.value is not None:
            out["value"] = node.value
        if node.tensor is not None:
            out["tensor"] = self.tensors[node.tensor].to_json()
        if node.module is not None:
            out["module"] = self.checkpoint.modules[node.module].to_json()
        if node.kind not in ("tensor", "value"):
            out["counts"] = (self._tallies.get(id(node)) or Tally()).to_json()
        return out

    def children(self, node: Node, offset: int, limit: int) -> Page:
        kids = self.children_of(node)
        return Page([self.summary(k) for k in kids[offset:offset + limit]], len(kids))

    def search(self, query: str, limit: int) -> Page:
        """Nodes whose key contains `query` (case-insensitive, `*` wildcards), in file order."""
        found = _remembered(self._searches, query, lambda: matching(self._search_keys, query))
        return Page([self.summary(self._search_nodes[i]) for i in found[:limit]], len(found))

    def reveal(self, node: Node) -> list[Json]:
        """The way from the root to `node`: each node below the root down to `node` itself, with
        its index among its parent's (grouped) children."""
        steps: list[Json] = []
        while (place := self._places.get(id(node))) is not None:
            steps.append({"node": self.summary(node), "index": place[1]})
            node = place[0]
        return steps[::-1]

    def tensor_page(self, offset: int, limit: int, filter: str = "", sort: str = "index",
                    descending: bool = False) -> Page:
        """A page of the flat tensor table, filtered by key and sorted (ties in file order).

        `sort` is "index" (file order) or a tensor field: key, shape, numel, nbytes, dtype,
        grad_state, role, kind, location. Each row order is remembered, so paging through it is
        cheap."""
        rows = self._rows(filter, sort, descending)
        tensors = self.tensors
        return Page([tensors[i].to_json() for i in rows[offset:offset + limit]], len(rows))

    def row_of(self, path: Sequence[str | int], filter: str = "", sort: str = "index",
               descending: bool = False) -> int | None:
        """Where the tensor at `path` is in that table, or None when the filter leaves it out."""
        node = self.node(path)
        if node.tensor is None:
            raise InvalidRequest(f"path {_json_path(path)} names a {node.kind}, not a tensor")
        rows = self._rows(filter, sort, descending)
        try:
            return rows.index(node.tensor)
        except ValueError:
            return None

    def _rows(self, filter: str, sort: str, descending: bool) -> list[int]:
        return _remembered(self._tensor_orders, (filter, sort, descending),
                           lambda: self._tensor_order(filter, sort, descending))

    def _tensor_order(self, filter: str, sort: str, descending: bool) -> list[int]:
        rows = matching(self._tensor_keys, filter) if filter else list(range(len(self.tensors)))
        if sort != "index":
            column = list(map(_TENSOR_COLUMNS[sort], self.tensors))
            rows.sort(key=column.__getitem__, reverse=descending)
        elif descending:
            rows.reverse()
        return rows


def answer(index: CheckpointIndex, method: str, params: Json) -> Json:
    """The result of one request about the indexed file (the `pthscope/*` results, plus `locate`
    and `model`); InvalidRequest for a path that names no node, or no tensor where one is needed."""
    if method == "open":
        root = index.root
        opened = {**index.overview(),
                  "root": index.summary(root) if root else None,
                  "children": index.children(root, 0, params["limit"]).items if root else []}
        if root and params.get("first_tensors"):
            page = index.tensor_page(0, params["first_tensors"])
            opened["first_tensors"] = {"tensors": page.items, "total": page.total}
        return opened
    if method == "children":
        page = index.children(index.node(params["path"]), params["offset"], params["limit"])
        return {"children": page.items, "total": page.total}
    if method == "details":
        node = index.node(params["path"])
        out: Json = {"node": index.summary(node)}
        if node.tensor is not None:
            out["tied"] = list(index.tensors[node.tensor].shared_with)
        return out
    if method == "search":
        page = index.search(params["query"], params["limit"])
        return {"matches": page.items, "total": page.total}
    if method == "tensors":
        order = (params["filter"], params["sort"], params["descending"])
        page = index.tensor_page(params["offset"], params["limit"], *order)
        table: Json = {"tensors": page.items, "total": page.total}
        if params.get("row_of") is not None:
            row = index.row_of(params["row_of"], *order)
            if row is not None:
                table["row"] = row
        return table
    if method == "reveal":
        return {"steps": index.reveal(index.node(params["path"]))}
    if method == "locate":
        node = index.node(params["path"])
        if node.tensor is None:
            raise InvalidRequest(f"path {_json_path(params['path'])} names a {node.kind}, not a tensor")
        return tensor_bytes(index.checkpoint, index.tensors[node.tensor], index.size, index.mtime_ns).to_json()
    if method == "model":
        return {"size": index.size, "mtime_ns": index.mtime_ns, "view": model_view(index.checkpoint).to_json()}
    raise InvalidRequest(f"unknown request {method!r}")


def _json_path(path: Sequence[str | int]) -> str:
    return json.dumps(list(path))


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
