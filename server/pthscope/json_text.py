"""`pthscope inspect --json`: `Checkpoint.to_json()` as compact JSON, byte for byte, made fast.

The long parts of the payload are one entry per tensor, in `tensors` and in the `tree`: 60,000
dicts for a 30,000-tensor checkpoint, 0.3 s and 40 MiB to build and encode. Here each tensor and
each tree node is one f-string instead, whose text from the file (keys, names, dtypes, values)
goes through the json module's own C string encoder; the rest of the payload is `to_json()`
encoded by json. Every other field is a number the reader validated (exact ints) or a literal.

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
from json.encoder import encode_basestring_ascii
from typing import Any

from .reader.dtypes import itemsize
from .reader.model import Checkpoint, Node, TensorInfo

_encode = json.JSONEncoder(separators=(",", ":")).encode
_text = encode_basestring_ascii  # what json.dumps makes of a str (ensure_ascii), in C
_BATCH = 512  # tensors or nodes per chunk: one join each


class _Texts(dict[str, str]):
    """JSON text of strings that repeat (dtypes, locations, layouts, type names), made once each."""

    def __missing__(self, text: str) -> str:
        out = self[text] = _text(text)
        return out


def _path_and_key(path: list[Any]) -> tuple[str, str]:
    """JSON text of a path and of its key (`".".join(map(str, path))`)."""
    if len(path) == 1 and type(path[0]) is str:  # a state_dict's: the key is the path's one element
        key = _text(path[0])
        return f"[{key}]", key
    path_text = "[" + ",".join([_text(p) if type(p) is str else str(p) if type(p) is int else _encode(p)
                                for p in path]) + "]"
    return path_text, _text(".".join(map(str, path)))


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


class _Writer:
    """Text of tensors and nodes; a tensor node reuses its tensor's path and key text."""

    def __init__(self) -> None:
        self.texts = _Texts()
        self.itemsizes = _Itemsizes()
        self.ints = _IntsTexts()
        self.key_texts: dict[int, tuple[str, str]] = {}  # id(path) → (path text, key text)

    def path_and_key(self, path: list[Any]) -> tuple[str, str]:
        found = self.key_texts.get(id(path))
        if found is None:
            found = self.key_texts[id(path)] = _path_and_key(path)
        return found

    def tensor(self, t: TensorInfo) -> str:
        # One expression per field, no call that can be avoided: this runs for every tensor.
        texts, ints = self.texts, self.ints
        path = t.path
        path_text, key = self.key_texts.get(id(path)) or self.path_and_key(path)
        shape, dtype, storage_nbytes, shared_with = t.shape, t.dtype, t.storage_nbytes, t.shared_with
        requires_grad, part, sharding = t.requires_grad, t.part, t.sharding
        numel = math.prod(shape)
        return (f'{{"path":{path_text},"key":{key},"shape":{ints[tuple(shape)]},"dtype":{texts[dtype]},'
                f'"requires_grad":{_bool(requires_grad) if type(requires_grad) is not bool else "true" if requires_grad else "false"},'
                f'"grad_state":{texts[t.grad_state]},"kind":{texts[t.kind]},"role":{texts[t.role]},"location":{texts[t.location]},'
                f'"stride":{ints[tuple(t.stride)]},"storage_offset":{t.storage_offset},"numel":{numel},'
                f'"nbytes":{numel * self.itemsizes[dtype]},"storage":{_text(t.storage)},'
                f'"storage_nbytes":{"null" if storage_nbytes is None else storage_nbytes},'
                f'"shared_with":[{",".join(map(_text, shared_with)) if shared_with else ""}],"layout":{texts[t.layout]},'
                f'"part":{"null" if part is None else part},'
                f'"sharding":{"null" if sharding is None else _encode(sharding.to_json())}}}')

    def node(self, node: Node) -> str:
        texts = self.texts
        path, key = self.path_and_key(node.path)
        name = node.name
        # A state_dict's tensor: its name is its one-element path, and its key.
        name_text = key if len(node.path) == 1 and node.path[0] == name else _text(name)
        head = f'{{"name":{name_text},"path":{path},"key":{key},"kind":{texts[node.kind]},"type":{texts[node.type]}'
        if node.value is not None:
            head += f',"value":{_text(node.value)}'
        if node.tensor is not None:
            head += f',"tensor":{node.tensor}'
        if node.module is not None:
            head += f',"module":{node.module}'
        if not node.children:
            return head + ',"children":[]}'
        return head + ',"children":[' + ",".join(map(self.node, node.children)) + "]}"


def _dicts_text(items: list[Any], to_json: Callable[[Any], Any]) -> Iterator[str]:
    for start in range(0, len(items), _BATCH):
        yield _encode([to_json(item) for item in items[start:start + _BATCH]])[1:-1]


def _list_chunks(items: list[Any], text: Callable[[Any], str] | None, to_json: Callable[[Any], Any]) -> Iterator[str]:
    """`[...]` of items, in chunks of _BATCH items; `text` None: through their dicts."""
    yield "["
    if text is None:
        parts: Iterator[str] = _dicts_text(items, to_json)
    else:
        parts = (",".join(map(text, items[start:start + _BATCH])) for start in range(0, len(items), _BATCH))
    for i, part in enumerate(parts):
        yield "," + part if i else part
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
    for tensor in checkpoint.tensors[:1]:
        if writer.tensor(tensor) != _encode(tensor.to_json()):
            return False
    node = _first_tensor_node(checkpoint.root)
    return node is None or writer.node(node) == _encode(node.to_json())


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
            yield from _list_chunks(tensors, writer.tensor if fast else None, TensorInfo.to_json)
        elif name == "tree" and checkpoint.root is not None:
            yield from _tree_chunks(checkpoint.root, writer if fast else None)
        else:
            yield _encode(value)
    yield "}\n"


def _tree_chunks(root: Node, writer: _Writer | None) -> Iterator[str]:
    """The root node, its children in chunks (a state_dict's root holds every tensor)."""
    yield _encode(replace(root, children=[]).to_json())[:-3]  # up to `"children":`
    yield from _list_chunks(root.children, writer.node if writer else None, Node.to_json)
    yield "}"
