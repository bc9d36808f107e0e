"""Turn the inert object graph from the unpickler into the data model's tree.

Walks the graph once, depth- and count-bounded, and produces `Node`s plus the flat lists of
`TensorInfo` and `ModuleInfo`. An `nn.Module` is recognised by its pickled state (`_modules`,
`_parameters`, `_buffers`), never by importing its class. What the tensors are for (roles) and
how many there are (counts) is decided afterwards, by roles.py, for every format alike.

This is the one boundary where what the unpickler built leaves it: sealed `TensorRecord`s
become the model's `TensorInfo` here, and each is checked once (dtype, location, extent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter, mul
from typing import Any

from .dtypes import ITEMSIZE, itemsize
from .limits import Limits
from .model import ModuleInfo, Node, PathElement, Problem, TensorInfo, key_of
from .safe_repr import safe_repr
from .unpickler import (
    DtypeRef,
    NdarrayRecord,
    NumpyDtype,
    StorageRef,
    StorageType,
    Stub,
    SubclassTensorRecord,
    TensorRecord,
    saved_type_name,
)

_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray)


class _TooMany(Exception):
    pass


class TreeBuilder:
    def __init__(self, limits: Limits, problems: list[Problem]):
        self.limits = limits
        self.problems = problems
        self.tensors: list[TensorInfo] = []
        self.modules: list[ModuleInfo] = []
        self._visited = 0
        self._on_path: set[int] = set()
        self._depth_reported = False
        self._locations: set[str] = set()  # locations already checked
        self._expanded: dict[int, str] = {}  # id of each container shown → its key
        self._past_storage: list[TensorInfo] = []  # views that may reach past their storage

    def build(self, root: Any) -> Node:
        try:
            node = self._visit(root, "", [], 0)
        except _TooMany:
            self.problems.append(Problem(
                "limit",
                f"the file holds more than {self.limits.max_nodes:,} objects; the rest was not read",
            ))
            node = Node(name="", path=[], kind="value", type=saved_type_name(root), value="<too large>")
        _link_shared_storages(self.tensors, self.limits.max_shared_listed)
        _check_tensor_extents(self._past_storage, self.problems)
        return node

    # One frame per level: nesting is bounded by limits.max_depth.
    def _visit(self, obj: Any, name: str, path: list[PathElement], depth: int) -> Node:
        self._visited += 1
        if self._visited > self.limits.max_nodes:
            raise _TooMany
        if type(obj) is TensorRecord:
            return self._tensor(obj, name, path, "tensor")
        if type(obj) is SubclassTensorRecord:
            return self._subclass_tensor(obj, name, path, "tensor")
        if isinstance(obj, NdarrayRecord):
            return self._ndarray(obj, name, path)
        if isinstance(obj, _PLAIN) or not _is_container(obj):
            return Node(name, path, "value", _type_label(obj), value=self._short_repr(obj))
        if depth >= self.limits.max_depth:
            if not self._depth_reported:
                self._depth_reported = True
                self.problems.append(Problem(
                    "limit", f"objects nested deeper than {self.limits.max_depth} levels were not read",
                    where=".".join(map(str, path)),
                ))
            return Node(name, path, "value", saved_type_name(obj), value="<nested too deep>")
        if id(obj) in self._on_path:
            return Node(name, path, "value", saved_type_name(obj), value="<reference cycle>")
        first = self._expanded.get(id(obj))
        if first is not None:
            # Shown once, referenced after: a pickle of shared containers (a DAG) cannot make the
            # tree exponentially larger than the file. Torch's named_modules() also lists a
            # shared module once.
            return Node(name, path, "value", saved_type_name(obj), value=f"<same object as {first or '(root)'}>")
        self._expanded[id(obj)] = key_of(path)
        self._on_path.add(id(obj))
        try:
            if isinstance(obj, Stub) and _module_state(obj) is not None:
                return self._module(obj, name, path, depth)
            return self._container(obj, name, path, depth)
        finally:
            self._on_path.discard(id(obj))

    def _container(self, obj: Any, name: str, path: list[PathElement], depth: int) -> Node:
        kind, entries = _entries(obj)
        node = Node(name, path, kind, saved_type_name(obj))
        children = node.children
        if isinstance(obj, dict) and len(obj) > 1 and self._state_dict(obj, path, children):
            return node
        max_key, max_nodes = self.limits.max_key_chars, self.limits.max_nodes
        for child_key, child in entries:
            element = (child_key if type(child_key) is str and len(child_key) <= max_key
                       else _path_element(child_key, self.limits))
            name = element if type(element) is str else str(element)
            if type(child) is TensorRecord:  # a state_dict's tensors: what _visit would do, one frame less
                self._visited += 1
                if self._visited > max_nodes:
                    raise _TooMany
                children.append(self._tensor(child, name, [*path, element], "tensor"))
            else:
                children.append(self._visit(child, name, [*path, element], depth + 1))
        return node

    def _state_dict(self, obj: dict[Any, Any], path: list[PathElement], children: list[Node]) -> bool:
        """A dict of the usual tensors only — str keys, records whose dtype and location torch knows
        and whose view the rebuild saw inside its storage — made column by column, what `_tensor`
        makes of each (a state_dict: 100,000 tensors); False, with nothing made, for any other."""
        keys, records = list(obj), list(obj.values())
        if (set(map(type, records)) != _RECORD_ONLY or set(map(len, records)) != _RECORD_FIELDS
                or set(map(type, keys)) != _STR_ONLY or max(map(len, keys)) > self.limits.max_key_chars
                or self._visited + len(records) > self.limits.max_nodes):
            return False
        (shapes, strides, offsets, dtypes, requires_grad, kinds, locations, storages, storage_nbytes, layouts,
         insides) = zip(*records, strict=True)
        if (set(insides) != _TRUE_ONLY or not set(dtypes) <= ITEMSIZE.keys()
                or not all(map(_TORCH_LOCATION.fullmatch, set(locations) - self._locations))):
            return False  # `_tensor` looks at each, and names what is wrong
        self._locations.update(locations)
        self._visited += len(records)
        paths: list[list[PathElement]] = [[*path, key] for key in keys]
        tensors = self.tensors
        start = len(tensors)
        tensors.extend(map(TensorInfo, paths, shapes, dtypes, requires_grad, kinds, locations, strides, offsets,
                           storages, storage_nbytes, [[] for _ in keys], repeat(True), layouts))
        children.extend(map(Node, keys, paths, repeat("tensor"), map(_shown_type, kinds, layouts), repeat(None),
                            range(start, len(tensors)), repeat(None), [[] for _ in keys]))
        return True

    def _module(self, obj: Stub, name: str, path: list[PathElement], depth: int) -> Node:
        state = _module_state(obj) or {}
        info = ModuleInfo(path=path, class_name=type(obj).qualname,
                          training=state.get("training") if isinstance(state.get("training"), bool) else None)
        self.modules.append(info)
        node = Node(name, path, "module", info.class_name, module=len(self.modules) - 1)
        non_persistent = state.get("_non_persistent_buffers_set")
        non_persistent = non_persistent if isinstance(non_persistent, (set, frozenset)) else set()

        limits = self.limits
        for child_name, value in _dict_items(state.get("_parameters"), limits):
            if type(value) is TensorRecord or type(value) is SubclassTensorRecord:
                node.children.append(self._any_tensor(value, child_name, [*path, child_name], "parameter"))
        for child_name, value in _dict_items(state.get("_buffers"), limits):
            if type(value) is TensorRecord or type(value) is SubclassTensorRecord:
                node.children.append(self._any_tensor(value, child_name, [*path, child_name], "buffer"))
                self.tensors[-1].persistent = child_name not in non_persistent
        for child_name, value in _dict_items(state.get("_modules"), limits):
            if value is not None:
                node.children.append(self._visit(value, child_name, [*path, child_name], depth + 1))
        # Tensors kept as plain attributes (self.mask = torch.ones(...)) are shown under the module.
        for attr, value in state.items():
            if isinstance(attr, str) and not attr.startswith("_") and _holds_tensors(value):
                attr = str(_path_element(attr, limits))
                node.children.append(self._visit(value, attr, [*path, attr], depth + 1))
        return node

    def _tensor(self, record: TensorRecord, name: str, path: list[PathElement], kind: str) -> Node:
        # A tensor object reached twice (tied parameters of a whole model) is listed at each place.
        (shape, stride, storage_offset, dtype, requires_grad, record_kind, location, storage, storage_nbytes,
         layout, inside) = record
        if kind == "tensor":
            kind = record_kind
        # Positional: keyword arguments cost a third more per call, and this runs for every tensor.
        info = TensorInfo(path, shape, dtype, requires_grad, kind, location, stride, storage_offset,  # type: ignore[arg-type]
                          storage, storage_nbytes, [], True, layout)
        if dtype not in ITEMSIZE and dtype not in self._locations:
            self._locations.add(dtype)  # named once per dtype
            self.problems.append(Problem("corrupt", f"tensor {info.key} has dtype {dtype!r}, which torch does not "
                                         "know: its size in bytes cannot be told", where=info.key))
        if location not in self._locations:
            self._check_location(location, info.key)
        # Does the view stay inside its storage? The usual answer, in a few C calls per tensor, unless
        # the rebuild saw it; a view that may not is looked at again, and named, by _check_tensor_extents.
        if not inside and storage_nbytes is not None and stride and len(stride) == len(shape):
            smallest = min(shape)
            if smallest and (smallest < 0 or storage_offset < 0 or min(stride) < 0 or (
                    storage_offset + sum(map(mul, shape, stride)) - sum(stride) + 1) * ITEMSIZE.get(dtype, 1)
                    > storage_nbytes):
                self._past_storage.append(info)
        tensors = self.tensors
        tensors.append(info)
        if kind == "parameter":
            shown = "torch.nn.Parameter"
        else:
            shown = "torch.Tensor" if layout == "strided" else f"torch.Tensor ({layout})"
        return Node(name, path, "tensor", shown, None, len(tensors) - 1, None, [])

    def _any_tensor(self, obj: TensorRecord | SubclassTensorRecord, name: str, path: list[PathElement],
                    kind: str) -> Node:
        if type(obj) is SubclassTensorRecord:
            return self._subclass_tensor(obj, name, path, kind)
        return self._tensor(obj, name, path, kind)  # type: ignore[arg-type]

    def _subclass_tensor(self, obj: SubclassTensorRecord, name: str, path: list[PathElement], kind: str) -> Node:
        """A DTensor or ShardedTensor is listed as its local piece, with how it is sharded;
        any other subclass as the wrapper it was saved as."""
        from .distributed_tensors import local_piece

        local, sharding = local_piece(obj.record, obj.state)
        node = self._tensor(local, name, path, kind)
        self.tensors[-1].sharding = sharding
        return node

    def _check_location(self, location: str, key: str) -> None:
        if _TORCH_LOCATION.fullmatch(location):
            self._locations.add(location)
        else:
            self.problems.append(Problem(
                "corrupt", f"tensor {key} is stored on location {location[:80]!r}, which torch.load cannot restore "
                "(it knows cpu, cuda[:N], mps, meta, xpu, hpu, mtia, privateuseone); it would fail without "
                "map_location", where=key))
            self._locations.add(location)  # named once

    def _ndarray(self, record: NdarrayRecord, name: str, path: list[PathElement]) -> Node:
        info = TensorInfo(path=path, shape=record.shape, dtype=record.dtype, requires_grad=False,
                          kind="ndarray", stride=[], storage_nbytes=record.nbytes)
        self.tensors.append(info)
        return Node(name, path, "tensor", "numpy.ndarray", tensor=len(self.tensors) - 1)

    def _short_repr(self, obj: Any) -> str:
        limit = self.limits.max_value_chars
        if isinstance(obj, (bytes, bytearray)):
            return f"<{len(obj):,} bytes>" if len(obj) > limit // 4 else repr(bytes(obj[: limit // 4]))
        if isinstance(obj, str) and len(obj) > limit:
            return repr(obj[:limit]) + f"… ({len(obj):,} chars)"
        if isinstance(obj, DtypeRef):
            return f"torch.{obj.name}"
        if isinstance(obj, NumpyDtype):
            return f"numpy.dtype({obj.name})"
        if isinstance(obj, StorageRef):
            return f"storage {obj.key} ({obj.dtype}, {obj.numel:,} elements, {obj.location})"
        if isinstance(obj, StorageType):
            return f"<storage class of {obj.dtype}>"
        if isinstance(obj, type) and issubclass(obj, Stub):
            return f"<class {obj.qualname}>"
        if isinstance(obj, int) and obj.bit_length() > 256:
            return f"<int with {obj.bit_length():,} bits>"
        text = repr(obj) if isinstance(obj, _PLAIN) else f"<{saved_type_name(obj)}>"
        return text if len(text) <= limit else text[:limit] + "…"


_RECORD_ONLY, _RECORD_FIELDS, _STR_ONLY, _TRUE_ONLY = {TensorRecord}, {11}, {str}, {True}


def _shown_type(kind: str, layout: str) -> str:
    """A tensor node's type, as `_tensor` names it."""
    if kind == "parameter":
        return "torch.nn.Parameter"
    return "torch.Tensor" if layout == "strided" else f"torch.Tensor ({layout})"


def _is_container(obj: Any) -> bool:
    return isinstance(obj, (dict, list, tuple, set, frozenset, Stub))


def _module_state(obj: Stub) -> dict[str, Any] | None:
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        state = {**(state[0] or {}), **state[1]} if isinstance(state[0], dict) else state[1]
    if isinstance(state, dict) and ("_modules" in state or "_parameters" in state):
        return state
    return None


def _dict_items(value: Any, limits: Limits) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(k if type(k) is str and len(k) <= limits.max_key_chars else str(_path_element(k, limits)), v)
                for k, v in value.items()]
    return []


def _holds_tensors(value: Any) -> bool:
    if isinstance(value, (TensorRecord, NdarrayRecord, SubclassTensorRecord)):
        return True
    if isinstance(value, Stub):
        return _module_state(value) is not None
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, (TensorRecord, NdarrayRecord, SubclassTensorRecord)) for v in value[:64])
    return False


def _entries(obj: Any) -> tuple[Any, Iterable[tuple[Any, Any]]]:
    if isinstance(obj, dict):
        return "dict", obj.items()  # a view: no list of 30,000 pairs for a state_dict
    if isinstance(obj, list):
        return "list", enumerate(obj)
    if isinstance(obj, tuple):
        return "tuple", enumerate(obj)
    if isinstance(obj, (set, frozenset)):
        return "set", enumerate(obj)
    # A stub object: its state (attributes), then what its constructor got, then appended items.
    entries: list[tuple[Any, Any]] = []
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, (dict, type(None))) for s in state):
        state = {**(state[0] or {}), **(state[1] or {})}
    if not obj.args and not obj.kwargs and bool(obj.setitems) != bool(obj.items):
        # A dict or list subclass (Lightning's AttributeDict, a custom OrderedDict): its items
        # are its children, as for a plain dict or list; attributes, if any, go under __dict__.
        kind, own = ("dict", list(obj.setitems.items())) if obj.setitems else ("list", list(enumerate(obj.items)))
        return kind, own + ([("__dict__", state)] if state else [])
    if isinstance(state, dict):
        entries.extend(state.items())
    elif state is not None:
        entries.append(("__state__", state))
    if obj.args:
        entries.append(("__args__", obj.args))
    if obj.kwargs:
        entries.append(("__kwargs__", obj.kwargs))
    if obj.items:
        entries.append(("__items__", obj.items))
    if obj.setitems:
        entries.append(("__setitems__", obj.setitems))
    return "object", entries


_INT64 = 1 << 63
# Locations torch.load's registered deserializers restore (serialization.py: _cpu_deserialize,
# _mps_deserialize (any "mps…"), _meta_deserialize, and the backends checked with a device index).
_TORCH_LOCATION = re.compile(r"cpu|meta|mps.*|(cuda|hpu|xpu|mtia|privateuseone)(:\d+|\d+)?")


def _path_element(key: Any, limits: Limits) -> PathElement:
    """A dict key (or attribute name) as a path element: strings and int64s as they are, longer
    strings shortened, anything else as a bounded repr (keys are str()-ed for every node's key
    and JSON: a 2**40-element DAG, a 100,000-deep tuple or a 5,000-digit int must not be)."""
    if isinstance(key, str):
        if len(key) <= limits.max_key_chars:
            return key
        return f"{key[: limits.max_key_chars]}… ({len(key):,} chars)"
    if isinstance(key, int) and not isinstance(key, bool):
        return key if -_INT64 <= key < _INT64 else f"<int with {key.bit_length():,} bits>"
    text = safe_repr(key) if isinstance(key, _PLAIN + (tuple, frozenset)) else f"<{saved_type_name(key)}>"
    return text[: limits.max_value_chars]


def _type_label(obj: Any) -> str:
    if isinstance(obj, DtypeRef):
        return "torch.dtype"
    if isinstance(obj, type):
        return "type"
    return saved_type_name(obj)


def _link_shared_storages(tensors: list[TensorInfo], max_listed: int) -> None:
    storages = list(filter(None, map(attrgetter("storage"), tensors)))  # in C: a state_dict has many
    if len(set(storages)) == len(storages):
        return  # every storage viewed once: nothing to link
    by_storage: dict[str, list[TensorInfo]] = {}
    for t in tensors:
        if t.storage:
            by_storage.setdefault(t.storage, []).append(t)
    for group in by_storage.values():
        if len(group) < 2:
            continue
        keys = [t.key for t in group[: max_listed + 1]]
        for t in group:
            t.shared_with = [k for k in keys if k != t.key][:max_listed]


def _check_tensor_extents(tensors: list[TensorInfo], problems: list[Problem]) -> None:
    """A tensor whose view reaches past its storage is corrupt; say which, keep the rest.
    (`tensors`: those TreeBuilder._tensor found may.)"""
    for t in tensors:
        shape, stride = t.shape, t.stride
        if t.storage_nbytes is None or not stride or len(stride) != len(shape):
            continue
        smallest = min(shape, default=1)
        if smallest == 0:
            continue  # empty: reaches nothing
        # The last element sits at offset + sum((d - 1) * s); summed in C, this is cheap per tensor.
        last = t.storage_offset + sum(map(mul, shape, stride)) - sum(stride)
        if smallest < 0 or last < 0 or t.storage_offset < 0 or min(stride) < 0:
            problems.append(Problem("corrupt", f"tensor {t.key} has a negative size, stride or offset", where=t.key))
            continue
        end = (last + 1) * itemsize(t.dtype)
        if end > t.storage_nbytes:
            problems.append(Problem(
                "corrupt",
                f"tensor {t.key} ({t.numel:,} elements of {t.dtype}) needs {end:,} bytes but its "
                f"storage {t.storage} holds {t.storage_nbytes:,}",
                where=t.key,
            ))
