"""Counting tensors by role: the one place where the numbers every view shows are added up.

A `Tally` holds, per role (model parameter, buffer, optimizer state, other tensor; roles.py
decides them), how many tensors, elements and bytes there are, and for model parameters how
many elements are trainable, frozen or of unknown flag. The same bytes viewed by several
tensors of a file (tied weights, or an optimizer object that holds the model's parameters) are
counted once, in the role that ranks first: a tensor is tallied by its index, and
`Checkpoint.tied_views` names, for every tensor whose exact view (storage, offset, shape, stride,
dtype) recurs, the first tensor with that view. A subtree's tally merges its children's, so a
module counts a tied weight once, like `module.parameters()`.

`summary`, the tree's container counts, module counts and the hovers' counts are all tallies.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from operator import attrgetter, gt, mul
from typing import Literal, Protocol, TypedDict, TypeVar

from .dtypes import ITEMSIZE, itemsize

Role = Literal["parameter", "buffer", "optimizer_state", "other"]
ROLES: tuple[Role, ...] = ("parameter", "buffer", "optimizer_state", "other")
_RANK = {role: i for i, role in enumerate(ROLES)}
_TRAINABLE, _FROZEN, _NOT_STORED = 12, 13, 14  # the slots of model-parameter elements by grad state
_SLOTS = 15  # tensors, elements, bytes for each of the 4 roles; then the 3 grad states
_ROLE, _SHAPE, _DTYPE, _REQUIRES_GRAD, _KIND, _STORAGE = map(attrgetter, (
    "role", "shape", "dtype", "requires_grad", "kind", "storage"))


class RoleCountsJson(TypedDict):
    tensors: int
    elements: int
    bytes: int


class ParameterCountsJson(RoleCountsJson):
    """Elements of model parameters by requires_grad state (`not_stored`: a state_dict)."""

    trainable: int
    frozen: int
    not_stored: int


class RoleTableJson(TypedDict):
    parameter: ParameterCountsJson
    buffer: RoleCountsJson
    optimizer_state: RoleCountsJson
    other: RoleCountsJson


class ParamCountsJson(TypedDict):
    """Model-parameter elements in the older shape (`summary.parameters`, `Module.parameters`)."""

    total: int
    trainable: int
    frozen: int
    unknown: int


class Countable(Protocol):
    """What a tally reads of a tensor (TensorInfo and the code-intelligence view's tensors)."""

    @property
    def role(self) -> Role: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def requires_grad(self) -> bool: ...
    @property
    def kind(self) -> str: ...


class Viewed(Countable, Protocol):
    @property
    def storage(self) -> str: ...
    @property
    def storage_offset(self) -> int: ...
    @property
    def stride(self) -> list[int]: ...


class TreeNode(Protocol):
    @property
    def tensor(self) -> int | None: ...


AnyNode = TypeVar("AnyNode", bound=TreeNode)


# What a tally remembers of a tied view: its role's rank, elements, bytes, grad slot.
_View = tuple[int, int, int, int]


class Tally:
    """Counts per role over some tensors; tied views counted once (see the module docstring)."""

    __slots__ = ("values", "views")

    def __init__(self) -> None:
        self.values = [0] * _SLOTS
        self.views: dict[int, _View] | None = None

    def add(self, tensor: Countable, index: int, tied_views: dict[int, int]) -> None:
        """Count `tensor`, the file's tensor number `index`."""
        rank = _RANK[tensor.role]
        numel = 1
        for d in tensor.shape:
            numel *= d
        nbytes = numel * itemsize(tensor.dtype)
        grad = _grad_slot(tensor) if rank == 0 else -1
        first = tied_views.get(index)
        if first is not None and not self._keep_view(first, (rank, numel, nbytes, grad)):
            return
        self._count(rank, numel, nbytes, grad, 1)

    def add_all(self, tensors: Sequence[Countable], tied_views: dict[int, int], numels: list[int] | None = None,
                nbytes: list[int] | None = None) -> None:
        """`add` every tensor of a file (the same counts, column by column in C: files have
        100,000; the tied views one by one, in file order, after the others). `numels`/`nbytes`:
        each tensor's, when the caller has them already."""
        untied = tensors if not tied_views else [t for i, t in enumerate(tensors) if i not in tied_views]
        if numels is None or nbytes is None or tied_views:
            numels = list(map(math.prod, map(_SHAPE, untied)))
            nbytes = list(map(mul, numels, map(ITEMSIZE.get, map(_DTYPE, untied), repeat(1))))  # itemsize()
        roles = list(map(_ROLE, untied))
        by_role = Counter(roles)
        values = self.values
        chosen_nbytes: Iterable[int]
        for role, count in by_role.items():
            at = 3 * _RANK[role]
            if len(by_role) == 1:  # one role (a state_dict): every tensor
                chosen_tensors, chosen_numels, chosen_nbytes = untied, numels, nbytes
            else:
                chosen = list(map(role.__eq__, roles))
                chosen_tensors = list(compress(untied, chosen)) if at == 0 else untied  # only parameters' are read
                chosen_numels, chosen_nbytes = list(compress(numels, chosen)), compress(nbytes, chosen)
            values[at] += count
            values[at + 1] += sum(chosen_numels)
            values[at + 2] += sum(chosen_nbytes)
            if at == 0:  # a grad state from two columns: the property per tensor would cost a frame each
                self._add_grad_states(chosen_tensors, chosen_numels)
        for index in sorted(tied_views):
            self.add(tensors[index], index, tied_views)

    def _add_grad_states(self, parameters: Sequence[Countable], numels: list[int]) -> None:
        trainable = list(map(bool, map(_REQUIRES_GRAD, parameters)))
        is_parameter = list(map("parameter".__eq__, map(_KIND, parameters)))
        trainable_numel = sum(compress(numels, trainable)) if any(trainable) else 0
        # frozen: a parameter (whose flag the file stores) that is not trainable
        frozen_numel = sum(compress(numels, map(gt, is_parameter, trainable))) if any(is_parameter) else 0
        values = self.values
        values[_TRAINABLE] += trainable_numel
        values[_FROZEN] += frozen_numel
        values[_NOT_STORED] += sum(numels) - trainable_numel - frozen_numel

    def merge(self, other: Tally) -> None:
        """Add the counts of another (disjoint) set of tensors, such as a sibling subtree."""
        values, more = self.values, other.values
        for i in range(_SLOTS):
            values[i] += more[i]
        if other.views:
            for first, view in other.views.items():
                known = self.views.get(first) if self.views else None
                if known is None:
                    if self.views is None:
                        self.views = {}
                    self.views[first] = view
                elif view[0] < known[0]:
                    self._count(*known, -1)
                    self.views[first] = view  # type: ignore[index]
                else:
                    self._count(*view, -1)

    def _keep_view(self, first: int, view: _View) -> bool:
        """Whether a tied view is to be counted here (and the earlier copy uncounted)."""
        if self.views is None:
            self.views = {}
        known = self.views.get(first)
        if known is not None:
            if view[0] >= known[0]:
                return False
            self._count(*known, -1)
        self.views[first] = view
        return True

    def _count(self, rank: int, numel: int, nbytes: int, grad: int, sign: int) -> None:
        values = self.values
        at = 3 * rank
        values[at] += sign
        values[at + 1] += sign * numel
        values[at + 2] += sign * nbytes
        if grad >= 0:
            values[grad] += sign * numel

    def role(self, role: Role) -> RoleCountsJson:
        at = 3 * _RANK[role]
        v = self.values
        return {"tensors": v[at], "elements": v[at + 1], "bytes": v[at + 2]}

    @property
    def parameter_elements(self) -> int:
        return self.values[1]

    @property
    def trainable(self) -> int:
        return self.values[12]

    @property
    def frozen(self) -> int:
        return self.values[13]

    def to_json(self) -> RoleTableJson:
        v = self.values
        return {
            "parameter": {"tensors": v[0], "elements": v[1], "bytes": v[2],
                          "trainable": v[12], "frozen": v[13], "not_stored": v[14]},
            "buffer": self.role("buffer"),
            "optimizer_state": self.role("optimizer_state"),
            "other": self.role("other"),
        }

    def parameters_json(self) -> ParamCountsJson:
        v = self.values
        return {"total": v[1], "trainable": v[12], "frozen": v[13], "unknown": v[14]}

    @classmethod
    def from_json(cls, table: RoleTableJson) -> Tally:
        tally = cls()
        for rank, role in enumerate(ROLES):
            counts = table[role]
            tally.values[3 * rank:3 * rank + 3] = [counts["tensors"], counts["elements"], counts["bytes"]]
        parameter = table["parameter"]
        tally.values[12:15] = [parameter["trainable"], parameter["frozen"], parameter["not_stored"]]
        return tally


def _grad_slot(tensor: Countable) -> int:
    """TensorInfo.grad_state's slot: trainable, frozen (a parameter not trainable) or not stored."""
    return _TRAINABLE if tensor.requires_grad else _FROZEN if tensor.kind == "parameter" else _NOT_STORED


def tied_views(tensors: Sequence[Viewed]) -> dict[int, int]:
    """For every tensor whose exact view another tensor shares: index → the first such index."""
    storages = list(map(_STORAGE, tensors))
    on_storage = Counter(filter(None, storages))
    if len(on_storage) == sum(on_storage.values()):  # every storage viewed once (in C)
        return {}
    first_of: dict[tuple[object, ...], int] = {}
    tied: dict[int, int] = {}
    for i, t in enumerate(tensors):
        if t.storage and on_storage[t.storage] > 1:
            view = (t.storage, t.storage_offset, tuple(t.shape), tuple(t.stride), t.dtype)
            first = first_of.setdefault(view, i)
            if first != i:
                tied[first] = first
                tied[i] = first
    return tied


def tally_tree(root: AnyNode, tensors: Sequence[Countable], tied: dict[int, int],
               children: Callable[[AnyNode], Sequence[AnyNode]], wanted: Callable[[AnyNode], bool]
               ) -> dict[int, Tally]:
    """The tally of every container under `root` (itself included) for which `wanted(node)`
    holds, by `id(node)`. One pass, bottom-up, without recursion; `children(node)` may differ
    from `node.children` (the worker's index passes the grouped children)."""
    tallies: dict[int, Tally] = {}
    top = Tally()
    if root.tensor is not None:  # the file is one tensor
        top.add(tensors[root.tensor], root.tensor, tied)
    # Entries (node, its tally, expanded?): a node is finished after all it holds, so the
    # tallies of the nodes being expanded form the chain of its ancestors.
    stack: list[tuple[AnyNode, Tally, bool]] = [(root, top, False)]
    open_tallies: list[Tally] = []
    while stack:
        node, tally, expanded = stack.pop()
        if not expanded:
            stack.append((node, tally, True))
            open_tallies.append(tally)
            for child in children(node):
                index = child.tensor
                if index is not None:
                    tally.add(tensors[index], index, tied)
                elif children(child):
                    stack.append((child, Tally(), False))
            continue
        open_tallies.pop()
        if open_tallies:
            open_tallies[-1].merge(tally)
        if wanted(node):
            tallies[id(node)] = tally
    return tallies


def format_bytes(n: int) -> str:
    """Bytes as text (CLI, hovers): 4 B, 1.5 KiB, 3.2 MiB, 1.1 GiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
