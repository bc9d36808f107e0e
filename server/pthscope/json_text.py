"""`pthscope inspect --json`: `Checkpoint.to_json()` as compact JSON, byte for byte, made fast.

The long parts of the payload are one entry per tensor, in `tensors` and in the `tree`: 60,000
dicts for a 30,000-tensor checkpoint, 0.3 s and 40 MiB to build and encode. Here tensors are
written a batch at a time: each field's column is made by C calls (attrgetter, map, cached texts
of the values that repeat), then each tensor is one %-template over its row; text from the file
(keys, names, dtypes, values) goes through the json module's own C string encoder. Every other
field is a number the reader validated (exact ints, checked per batch) or a literal; a batch
with a field of another type goes through the dicts. The rest of the payload is `to_json()`
encoded by json.

`TensorInfo.to_json()` and `Node.to_json()` stay the definition: before writing a file,
`json_chunks` checks that its text for the first tensor and the first tensor node is what json
makes of their `to_json()`, and encodes the dicts otherwise (a field added to the model and not
here: slower, never different). The tests compare the two on every fixture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import chain, repeat
from json.encoder import encode_basestring_ascii
from operator import attrgetter, itemgetter
from typing import Any, cast

from .reader.dtypes import itemsize
from .reader.model import Checkpoint, Node, ShardingInfo, TensorInfo

_encode = json.JSONEncoder(separators=(",", ":")).encode
_text = encode_basestring_ascii  # what json.dumps makes of a str (ensure_ascii), in C
_BATCH = 2048  # tensors or nodes per chunk: one join each


class _Texts(dict[str, str]):
    """JSON text of strings that repeat (dtypes, locations, layouts, type names), made once each."""

    def __missing__(self, text: str) -> str:
        out = self[text] = _text(text)
        return out


_STR = {str}


def _path_and_key(path: list[Any]) -> str:
    """`"path":[...],"key":"..."` of a path; its key is `".".join(map(str, path))`."""
    if len(path) == 1 and type(path[0]) is str:  # a state_dict's: the key is the path's one element
        key = _text(path[0])
        return f'"path":[{key}],"key":{key}'
    if set(map(type, path)) == _STR:  # a nested dict's (a torch.distributed checkpoint's `model`, ...)
        return f'"path":[{",".join(map(_text, path))}],"key":{_text(".".join(path))}'
    path_text = ",".join([_text(p) if type(p) is str else str(p) if type(p) is int else _encode(p) for p in path])
    return f'"path":[{path_text}],"key":{_text(".".join(map(str, path)))}'


_PATH_AND_KEY = '"path":[%s],"key":%s'


_PAIR_AND_KEY = '"path":[%s,%s],"key":%s'


def _paths_and_keys(paths: list[list[Any]], texts: _Texts) -> list[str]:
    """`_path_and_key` of each path, in C calls when every element is a str (a nested dict's);
    `texts`: the cache for the first elements of two-element paths (`model`, `optim`: a handful)."""
    if set(map(type, chain.from_iterable(paths))) <= _STR:
        keys = map(_text, map(".".join, paths))
        if set(map(len, paths)) == _TWO:  # a torch.distributed checkpoint's `model.…` entries
            return list(map(_PAIR_AND_KEY.__mod__, zip(map(texts.__getitem__, map(itemgetter(0), paths)),
                                                       map(_text, map(itemgetter(1), paths)), keys, strict=True)))
        path_texts = map(",".join, map(map, repeat(_text), paths))
        return list(map(_PATH_AND_KEY.__mod__, zip(path_texts, keys, strict=True)))
    return list(map(_path_and_key, paths))


class _Made(dict[tuple[Any, ...], str]):
    """Texts made once per key by `make`."""

    def __init__(self, make: Callable[[tuple[Any, ...]], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: tuple[Any, ...]) -> str:
        out = self[key] = self.make(key)
        return out


class _IntsTexts(dict[tuple[int, ...], str]):
    """JSON text of shapes and strides (exact ints: the reader checked them); most repeat."""

    def __missing__(self, ints: tuple[int, ...]) -> str:
        out = self[ints] = "[" + ",".join(map(str, ints)) + "]"
        return out


def _bool(value: object) -> str:
    return "true" if value is True else "false" if value is False else _encode(value)


class _Itemsizes(dict[str, int]):
    def __missing__(self, dtype: str) -> int:
        out = self[dtype] = itemsize(dtype)
        return out


_View = tuple[tuple[int, ...], str, bool, str, str, str, tuple[int, ...], int]


class _Views(dict[_View, str]):
    """JSON text from `"shape"` to `"nbytes"`, by (shape, dtype, requires_grad, kind, role,
    location, stride, storage offset): a model's tensors have a few dozen."""

    def __init__(self, texts: _Texts, ints: _IntsTexts) -> None:
        super().__init__()
        self.texts, self.ints, self.itemsizes = texts, ints, _Itemsizes()

    def __missing__(self, view: _View) -> str:
        shape, dtype, requires_grad, kind, role, location, stride, offset = view
        texts, numel = self.texts, math.prod(shape)
        grad_state = "trainable" if requires_grad else "frozen" if kind == "parameter" else "not stored"
        out = self[view] = (
            f'"shape":{self.ints[shape]},"dtype":{texts[dtype]},"requires_grad":{_bool(requires_grad)},'
            f'"grad_state":{texts[grad_state]},"kind":{texts[kind]},"role":{texts[role]},"location":{texts[location]},'
            f'"stride":{self.ints[stride]},"storage_offset":{offset},"numel":{numel},'
            f'"nbytes":{numel * self.itemsizes[dtype]}')
        return out


class _Places(dict[tuple[str, "int | None"], str]):
    """JSON text of `"layout"` and `"part"`."""

    def __init__(self, texts: _Texts) -> None:
        super().__init__()
        self.texts = texts

    def __missing__(self, place: tuple[str, int | None]) -> str:
        layout, part = place
        out = self[place] = f'"layout":{self.texts[layout]},"part":{"null" if part is None else part}'
        return out


_PATH, _SHAPE, _DTYPE, _REQUIRES_GRAD, _KIND, _ROLE, _LOCATION, _STRIDE, _STORAGE_OFFSET, _STORAGE = map(attrgetter, (
    "path", "shape", "dtype", "requires_grad", "kind", "role", "location", "stride", "storage_offset", "storage"))
_STORAGE_NBYTES, _SHARED_WITH, _LAYOUT, _PART, _SHARDING = map(attrgetter, (
    "storage_nbytes", "shared_with", "layout", "part", "sharding"))
_NAME, _TENSOR_INDEX, _VALUE, _MODULE, _CHILDREN, _NODE_KIND, _NODE_TYPE = map(attrgetter, (
    "name", "tensor", "value", "module", "children", "kind", "type"))
_CHUNKS, _BYTE_OFFSET, _BYTE_LENGTH, _LOCAL, _RANK, _GLOBAL_SHAPE, _PLACEMENTS, _MESH, _OFFSETS, _SIZES = map(
    attrgetter, ("chunks", "byte_offset", "byte_length", "local", "rank", "global_shape", "placements", "mesh",
                 "offsets", "sizes"))
_SHARDING_ONLY = {ShardingInfo}
_ONE, _TWO, _NONE_ONLY = {1}, {2}, {None}
_BOOLS = {False: "false", True: "true"}
_INT, _BOOL, _NONE = {int}, {bool}, type(None)
_INT_OR_NONE = {int, _NONE}
_TENSOR = '{%s,%s,"storage":%s,"storage_nbytes":%s,"shared_with":%s,%s,"sharding":%s}'
_KEYED_TENSOR = '{"path":[%s],"key":%s,%s,"storage":%s,"storage_nbytes":%s,"shared_with":%s,%s,"sharding":%s}'
_KEYED_LEAF = '{"name":%s,"path":[%s],"key":%s,"kind":%s,"type":%s,"tensor":%s,"children":[]}'

_LEAF = '{"name":%s,%s,"kind":%s,"type":%s,"tensor":%s,"children":[]}'
_CHUNK = '%s,"byte_offset":%s,"byte_length":%s}'
_ONE_CHUNK = '%s,"byte_offset":%s,"byte_length":%s}]}'


def _null_or_int(values: list[Any]) -> list[Any]:
    """Optional ints as JSON (`%s` of each); TypeError for anything else."""
    if not set(map(type, values)) <= _INT_OR_NONE:
        raise TypeError("not an int")
    return ["null" if v is None else v for v in values]


class _Writer:
    """Text of tensors and nodes, a batch at a time: each field's column made by C calls (map,
    attrgetter, the cached texts), then one %-template per tensor."""

    def __init__(self) -> None:
        self.texts = _Texts()
        self.ints = _IntsTexts()
        self.views = _Views(self.texts, self.ints)
        self.places = _Places(self.texts)
        self.sharding_heads = _Made(self._sharding_head)
        self.chunk_heads = _Made(self._chunk_head)
        self.one_chunk_heads = _Made(lambda key: self.sharding_heads[key[:8]] + self.chunk_heads[key[8:]])

    def tensor(self, t: TensorInfo) -> str:
        return self.tensors([t])

    def tensors(self, batch: list[TensorInfo]) -> str:
        """`,`-joined text of a batch of tensors; TypeError if a field is not of its type."""
        requires_grad = list(map(_REQUIRES_GRAD, batch))
        offsets = list(map(_STORAGE_OFFSET, batch))
        storage_nbytes = list(map(_STORAGE_NBYTES, batch))
        parts = list(map(_PART, batch))
        if (not set(map(type, requires_grad)) <= _BOOL or not set(map(type, offsets)) <= _INT
                or not set(map(type, storage_nbytes)) <= _INT_OR_NONE or not set(map(type, parts)) <= _INT_OR_NONE):
            raise TypeError("not a bool or an int")
        # Most fields repeat from tensor to tensor: their text is made once per distinct value.
        views = map(self.views.__getitem__, zip(
            map(tuple, map(_SHAPE, batch)), map(_DTYPE, batch), requires_grad, map(_KIND, batch), map(_ROLE, batch),
            map(_LOCATION, batch), map(tuple, map(_STRIDE, batch)), offsets, strict=True))
        places = map(self.places.__getitem__, zip(map(_LAYOUT, batch), parts, strict=True))
        shared = [("[" + ",".join(map(_text, s)) + "]") if s else "[]" for s in map(_SHARED_WITH, batch)]
        sharding = self.shardings(list(map(_SHARDING, batch)))
        rest = (views, map(_text, map(_STORAGE, batch)), ["null" if n is None else n for n in storage_nbytes], shared,
                places, sharding)
        paths = list(map(_PATH, batch))
        firsts = list(map(itemgetter(0), paths)) if set(map(len, paths)) == _ONE else None
        if firsts is not None and set(map(type, firsts)) == _STR:  # a state_dict's: each key its path's one element
            keys = list(map(_text, firsts))
            return ",".join(map(_KEYED_TENSOR.__mod__, zip(keys, keys, *rest, strict=True)))
        return ",".join(map(_TENSOR.__mod__, zip(_paths_and_keys(paths, self.texts), *rest, strict=True)))

    def shardings(self, column: list[ShardingInfo | None]) -> list[str]:
        """`sharding` of each (null for None); the usual ones — one chunk each, its bytes' place
        ints (a torch.distributed checkpoint's) — in C calls, column by column."""
        if set(map(type, column)) != _SHARDING_ONLY:
            return ["null" if s is None else self.sharding(s) for s in column]
        batch = cast("list[ShardingInfo]", column)  # each one a ShardingInfo, checked
        chunk_lists = list(map(_CHUNKS, batch))
        if set(map(len, chunk_lists)) != _ONE:
            return list(map(self.sharding, batch))
        chunks = list(map(itemgetter(0), chunk_lists))
        byte_offsets, byte_lengths = list(map(_BYTE_OFFSET, chunks)), list(map(_BYTE_LENGTH, chunks))
        if not set(map(type, byte_offsets)) | set(map(type, byte_lengths)) <= _INT:
            return list(map(self.sharding, batch))
        locals_, ranks = list(map(_LOCAL, batch)), list(map(_RANK, batch))
        parts, chunk_ranks = list(map(_PART, chunks)), list(map(_RANK, chunks))
        # Everything but the chunk's byte offset and length, by one key: made once per distinct value.
        heads = map(self.one_chunk_heads.__getitem__, zip(
            map(_KIND, batch), map(tuple, map(_GLOBAL_SHAPE, batch)), locals_, map(type, locals_),
            map(tuple, map(_PLACEMENTS, batch)), map(_MESH, batch), ranks, map(type, ranks),
            map(tuple, map(_OFFSETS, chunks)), map(tuple, map(_SIZES, chunks)), parts, map(type, parts), chunk_ranks,
            map(type, chunk_ranks), strict=True))
        return list(map(_ONE_CHUNK.__mod__, zip(heads, byte_offsets, byte_lengths, strict=True)))

    def sharding(self, s: ShardingInfo) -> str:
        # Every field but where each chunk's bytes are repeats from tensor to tensor: made once.
        head = self.sharding_heads[(s.kind, tuple(s.global_shape), s.local, type(s.local), tuple(s.placements),
                                    s.mesh, s.rank, type(s.rank))]
        chunk_heads = self.chunk_heads
        texts = []
        for c in s.chunks:
            where = (c.byte_offset, c.byte_length)
            if None in where or set(map(type, where)) != _INT:
                where = tuple(_null_or_int(list(where)))
            texts.append(_CHUNK % (chunk_heads[(tuple(c.offsets), tuple(c.sizes), c.part, type(c.part), c.rank,
                                                type(c.rank))], *where))
        return f'{head}{",".join(texts)}]}}'

    def _sharding_head(self, key: tuple[Any, ...]) -> str:
        kind, global_shape, local, _, placements, mesh, rank, _ = key
        return (f'{{"kind":{_text(kind)},"global_shape":{self.ints[global_shape]},"local":{_bool(local)},'
                f'"placements":[{",".join(map(_text, placements))}],"mesh":{_text(mesh)},'
                f'"rank":{_null_or_int([rank])[0]},"chunks":[')

    def _chunk_head(self, key: tuple[Any, ...]) -> str:
        offsets, sizes, part, _, rank, _ = key
        part_text, rank_text = _null_or_int([part, rank])
        return f'{{"offsets":{self.ints[offsets]},"sizes":{self.ints[sizes]},"part":{part_text},"rank":{rank_text}'

    def nodes(self, batch: list[Node]) -> str:
        texts = self.texts
        names = list(map(_NAME, batch))
        paths = list(map(_PATH, batch))
        tensors = list(map(_TENSOR_INDEX, batch))
        if (set(map(len, paths)) == _ONE and list(map(itemgetter(0), paths)) == names and set(map(type, names)) == _STR
                and set(map(type, tensors)) == _INT and set(map(_VALUE, batch)) == _NONE_ONLY
                and set(map(_MODULE, batch)) == _NONE_ONLY and not any(map(_CHILDREN, batch))):
            # A state_dict's tensors: name, path and key are its key.
            keys = list(map(_text, names))
            return ",".join(map(_KEYED_LEAF.__mod__, zip(keys, keys, keys, map(texts.__getitem__, map(_NODE_KIND, batch)),
                                                         map(texts.__getitem__, map(_NODE_TYPE, batch)), tensors,
                                                         strict=True)))
        if (set(map(type, tensors)) == _INT and set(map(_VALUE, batch)) == _NONE_ONLY
                and set(map(_MODULE, batch)) == _NONE_ONLY and not any(map(_CHILDREN, batch))):
            # Tensors only (a nested dict's: a torch.distributed checkpoint's `model`)
            return ",".join(map(_LEAF.__mod__, zip(map(_text, names), _paths_and_keys(paths, self.texts),
                                                   map(texts.__getitem__, map(_NODE_KIND, batch)),
                                                   map(texts.__getitem__, map(_NODE_TYPE, batch)), tensors,
                                                   strict=True)))
        return ",".join([
            _LEAF % (_text(n.name), _path_and_key(n.path), texts[n.kind], texts[n.type], n.tensor)
            if n.tensor is not None and not n.children and n.value is None and n.module is None else self.node(n)
            for n in batch])

    def node(self, node: Node) -> str:
        texts = self.texts
        head = (f'{{"name":{_text(node.name)},{_path_and_key(node.path)},"kind":{texts[node.kind]},'
                f'"type":{texts[node.type]}')
        if node.value is not None:
            head += f',"value":{_text(node.value)}'
        if node.tensor is not None:
            head += f',"tensor":{node.tensor}'
        if node.module is not None:
            head += f',"module":{node.module}'
        if not node.children:
            return head + ',"children":[]}'
        return head + ',"children":[' + self.nodes(node.children) + "]}"


def _list_chunks(items: list[Any], text: Callable[[list[Any]], str] | None,
                to_json: Callable[[Any], Any]) -> Iterator[str]:
    """`[...]` of items, in chunks of _BATCH items; `text` None (or a batch it cannot write, a
    field not of its type): through their dicts."""
    yield "["
    for start in range(0, len(items), _BATCH):
        batch = items[start:start + _BATCH]
        part = None
        if text is not None:
            try:
                part = text(batch)
            except (TypeError, KeyError):
                part = None
        if part is None:
            part = _encode([to_json(item) for item in batch])[1:-1]
        yield "," + part if start else part
    yield "]"


def _first_tensor_node(root: Node | None) -> Node | None:
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if node.kind == "tensor":
            return node
        stack.extend(reversed(node.children))
    return None


def _agrees(writer: _Writer, checkpoint: Checkpoint) -> bool:
    """Does the fast text say what json says of `to_json()`, for this file's first tensor and node?"""
    try:
        for tensor in checkpoint.tensors[:1]:
            if writer.tensor(tensor) != _encode(tensor.to_json()):
                return False
        node = _first_tensor_node(checkpoint.root)
        return node is None or writer.node(node) == _encode(node.to_json())
    except (TypeError, KeyError):  # a field not of its type: the dicts say it
        return False


def json_chunks(checkpoint: Checkpoint, tree: bool = True,
                keep: Callable[[str], bool] | None = None) -> Iterator[str]:
    """The text of `checkpoint.to_json(tree)` plus a newline, in chunks; `keep`: only the tensors
    and modules whose key it accepts (the CLI's --filter)."""
    payload = checkpoint.to_json(tree, long_lists=False)
    tensors = checkpoint.tensors if keep is None else [t for t in checkpoint.tensors if keep(t.key)]
    if keep is not None:
        payload["modules"] = [m for m in payload["modules"] if keep(m["key"])]
    writer = _Writer()
    fast = _agrees(writer, checkpoint)
    yield "{"
    for i, (name, value) in enumerate(payload.items()):
        yield ("," if i else "") + _text(name) + ":"
        if name == "tensors":
            yield from _list_chunks(tensors, writer.tensors if fast else None, TensorInfo.to_json)
        elif name == "tree" and checkpoint.root is not None:
            yield from _tree_chunks(checkpoint.root, writer if fast else None)
        else:
            yield _encode(value)
    yield "}\n"


def _tree_chunks(node: Node, writer: _Writer | None) -> Iterator[str]:
    """A node, its children in chunks (a state_dict's root, or the `model` dict of a
    torch.distributed checkpoint, holds every tensor); a child with many children in turn."""
    bare = replace(node, children=[])
    yield (writer.node(bare) if writer else _encode(bare.to_json()))[:-3]  # up to `"children":`
    children = node.children
    if max(map(len, map(_CHILDREN, children)), default=0) <= _BATCH:
        yield from _list_chunks(children, writer.nodes if writer else None, Node.to_json)
    else:
        yield "["
        for i, child in enumerate(children):
            if i:
                yield ","
            if len(child.children) > _BATCH:
                yield from _tree_chunks(child, writer)
            else:
                yield "".join(_list_chunks([child], writer.nodes if writer else None, Node.to_json))[1:-1]
        yield "]"
    yield "}"
