"""Sharded checkpoints: an index naming the shard file of every tensor, read as one checkpoint.

The index is the JSON that transformers and huggingface_hub write beside the shards —
`model.safetensors.index.json`, `pytorch_model.bin.index.json`, or any `*.index.json` with a
`weight_map` (`{"metadata": {"total_size": N}, "weight_map": {key: shard file}}`); the shards are
safetensors or torch files (`.bin`, `.pt`, `.pth`), each read by its own reader, by content. The
set is one logical state dict: every tensor keeps its shard (`part`), and what a loader that
follows the index would trip over is named — a missing or unreadable shard, keys the index puts
in a shard that lacks them (and the reverse), a key in two shards, a `total_size` that
disagrees with the shards. `index_naming` finds the index of a shard opened alone.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Callable, Collection, Iterable
from itertools import repeat
from operator import attrgetter, mul
from typing import Any

from .checkpoint_sets import merge_global, sorted_globals
from .dtypes import ITEMSIZE
from .limits import Limits
from .model import Checkpoint, GlobalRef, Node, PartInfo, PartOf, Problem, TensorInfo, key_of
from .pickled import warn_dangerous_globals
from .safe_repr import safe_repr
from .safetensors_file import no_key_repeats

FORMAT = "sharded"
INDEX_SUFFIX = ".index.json"
_INDEX_MAX = 256 << 20
_SHOWN = 3  # keys named in a message

ReadFile = Callable[[str, Limits], Checkpoint]


class IndexError_(Exception):
    """The index is not a weight map."""


def probe_shard_index(head: bytes, path: str) -> bool:
    if head.lstrip()[:1] != b"{":
        return False
    try:
        with open(path, "rb") as f:
            return b'"weight_map"' in f.read(1 << 20)
    except OSError:
        return False


def read_sharded_set(path: str, limits: Limits, read_file: ReadFile) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format=FORMAT)
    try:
        weight_map, total_size = _read_index(path)
    except IndexError_ as exc:
        checkpoint.errors.append(Problem("corrupt", f"the index is not a weight map: {exc}", where=os.path.basename(path)))
        return checkpoint
    folder = os.path.dirname(path)
    shards = sorted(set(weight_map.values()))
    checkpoint.metadata.update({"index": os.path.basename(path), "shards": f"{len(shards):,}"})
    if total_size is not None:
        checkpoint.metadata["total_size"] = f"{total_size:,}"
    root = Node("", [], "dict", "dict")
    checkpoint.root = root
    holder: dict[str, int] = {}  # key → the part holding it (the first shard read that has it)
    expected: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        expected.setdefault(shard, []).append(key)
    globals_by_name: dict[str, GlobalRef] = {}
    formats: set[str] = set()
    for shard in shards:
        shard_path = _shard_path(folder, shard, checkpoint)
        if shard_path is None:
            continue
        if not os.path.isfile(shard_path):
            keys = expected[shard]
            checkpoint.errors.append(Problem("missing", f"shard {shard} is missing: the index puts {len(keys):,} tensors "
                                             f"in it ({_some(keys)})", where=shard))
            continue
        read = read_file(shard_path, limits)
        part = _add_shard(checkpoint, shard_path, shard, read, holder, globals_by_name)
        if part is not None:
            formats.add(checkpoint.parts[part].format)
            _compare_with_index(checkpoint, shard, _keys(read.tensors), expected.get(shard, []), weight_map)
    if formats:
        checkpoint.metadata["shard format"] = ", ".join(sorted(formats))
    checkpoint.globals = sorted_globals(globals_by_name.values())
    warn_dangerous_globals(checkpoint)
    _check_total_size(checkpoint, total_size)
    return checkpoint


def _read_index(path: str) -> tuple[dict[str, str], int | None]:
    if os.path.getsize(path) > _INDEX_MAX:
        raise IndexError_(f"it is over {_INDEX_MAX >> 20} MiB")
    duplicates: list[str] = []

    def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            duplicates.extend(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        return out

    try:
        with open(path, "rb") as f:
            raw = f.read()
        index = json.loads(raw)  # in C, objects as dicts: twice as fast as with a pairs hook
        if not _each_key_once(raw, index):  # again, as pairs, to name the key given twice
            index = json.loads(raw, object_pairs_hook=pairs_to_dict)
    except (ValueError, RecursionError) as exc:
        raise IndexError_(f"its JSON is malformed ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise IndexError_("it has no weight_map object")
    if duplicates:
        raise IndexError_(f"it names {safe_repr(duplicates[0])} twice: which shard a loader takes is not defined")
    weight_map = index["weight_map"]
    try:
        names = set(weight_map.values())
    except TypeError:  # a list or an object: unhashable, and not a file name
        names = {None}
    if not set(map(type, names)) <= _STR_ONLY or "" in names:
        bad = next(k for k, v in weight_map.items() if type(v) is not str or not v)
        raise IndexError_(f"the weight_map maps {safe_repr(bad)} to {safe_repr(weight_map[bad])}, not a file name")
    # One string per shard name, not one per key (json makes each anew: 100,000 keys, 8 MiB).
    shards = {shard: shard for shard in names}
    weight_map = dict(zip(weight_map, map(shards.__getitem__, weight_map.values()), strict=True))
    metadata = index.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    return weight_map, total if type(total) is int else None


_STR_ONLY = {str}


def _each_key_once(raw: bytes, index: Any) -> bool:
    """No object of the index names a key twice (safetensors_file.no_key_repeats, every key of
    every object counted)."""
    keys, objects = 0, [index]
    values: Collection[Any]
    while objects:
        value = objects.pop()
        if type(value) is dict:
            keys += len(value)
            values = value.values()
        elif type(value) is list:
            values = value
        else:
            continue
        if not set(map(type, values)) <= _SCALARS:  # the weight map: strings only, in one C pass
            objects.extend(values)
    return no_key_repeats(raw, keys)


_SCALARS = {str, int, float, bool, type(None)}


def _shard_path(folder: str, shard: str, checkpoint: Checkpoint) -> str | None:
    """The shard's path; None (with an error) for a name outside the index's folder."""
    path = os.path.normpath(os.path.join(folder, shard))
    if os.path.isabs(shard) or os.path.relpath(path, folder).split(os.sep)[0] == "..":
        checkpoint.errors.append(Problem("crafted", f"the index names shard {safe_repr(shard)}, outside its folder; "
                                         "it was not read", where=shard))
        return None
    return path


def _add_shard(checkpoint: Checkpoint, path: str, shard: str, read: Checkpoint, holder: dict[str, int],
               globals_by_name: dict[str, GlobalRef]) -> int | None:
    """Merge one shard's state dict into the set's; its part index, or None if it has none."""
    for problem in read.errors:
        checkpoint.errors.append(Problem(problem.kind, f"shard {shard}: {problem.message}", _where(shard, problem)))
    for problem in read.warnings:
        if problem.kind != "dangerous-globals":  # said once for the set, below
            checkpoint.warnings.append(Problem(problem.kind, f"shard {shard}: {problem.message}", _where(shard, problem)))
    for ref in read.globals:
        merge_global(globals_by_name, ref)
    if read.root is None:
        return None
    if read.root.kind != "dict" or read.modules:
        checkpoint.errors.append(Problem("unexpected", f"shard {shard} holds a {read.root.type}, not a state dict; "
                                         "it was not merged", where=shard))
        return None
    st = os.stat(path)
    part_index = len(checkpoint.parts)
    checkpoint.parts.append(PartInfo(path, read.format, st.st_size, st.st_mtime_ns, len(read.tensors),
                                     read.metadata.get("byteorder", "little")))
    prefix = f"{part_index}/"
    offset = len(checkpoint.tensors)
    tensors = read.tensors
    # The set's storage keys: the shard's, prefixed by its part; one string each, which the
    # tensors and `storage_offsets` share (100,000 tensors in a big set: 5-8 MiB less).
    renamed = dict(zip(read.storage_offsets, map(prefix.__add__, read.storage_offsets), strict=True))
    shard_storages = list(map(_STORAGE, tensors))
    storages = list(map(renamed.get, shard_storages))
    if None in storages or "" in shard_storages:  # a storage without a place (a missing member), or none
        storages = [prefix + key if key else key for key in shard_storages]
    # Each field set by map (C), one call per column.
    _set_all(tensors, "part", repeat(part_index))
    _set_all(tensors, "storage", storages)
    checkpoint.storage_offsets.update(zip(renamed.values(), read.storage_offsets.values(), strict=True))
    checkpoint.tensors.extend(tensors)
    children = checkpoint.root.children if checkpoint.root else []
    nodes = read.root.children
    names = list(map(_NAME, nodes))
    indices = list(map(_TENSOR_INDEX, nodes))
    duplicates: list[str] = []
    if holder.keys().isdisjoint(names) and len(set(names)) == len(names) and None not in indices:
        # The usual shard: tensors only, none seen before.
        _set_all(nodes, "tensor", map(offset.__add__, indices))
        holder.update(zip(names, repeat(part_index)))
        children.extend(nodes)
        nodes = []
    for node in nodes:
        if node.name in holder:
            duplicates.append(node.name)
            continue
        if node.tensor is not None:
            node.tensor += offset
            holder[node.name] = part_index
        elif node.children:
            _shift(node, offset)
        children.append(node)
    if duplicates:
        first = os.path.basename(checkpoint.parts[holder[duplicates[0]]].file)
        checkpoint.warnings.append(Problem(
            "duplicate", f"shard {shard} holds {len(duplicates):,} keys another shard holds too ({_some(duplicates)}; "
            f"first in {first}): which copy a loader keeps depends on the order it reads the shards; the tree shows "
            "the first", where=shard))
    return part_index


def _set_all(objects: list[Any], name: str, values: Iterable[Any]) -> None:
    deque(map(setattr, objects, repeat(name), values), maxlen=0)


_STORAGE, _NAME, _TENSOR_INDEX, _PATH, _SHAPE, _DTYPE = map(attrgetter, (
    "storage", "name", "tensor", "path", "shape", "dtype"))


def _keys(tensors: list[TensorInfo]) -> list[str]:
    """Each tensor's key; a state dict's is its path's one element."""
    return [p[0] if len(p) == 1 and type(p[0]) is str else key_of(p) for p in map(_PATH, tensors)]


def _shift(node: Node, offset: int) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.tensor is not None:
            current.tensor += offset
        stack.extend(current.children)


def _compare_with_index(checkpoint: Checkpoint, shard: str, holds: list[str], expected: list[str],
                        weight_map: dict[str, str]) -> None:
    held = set(holds)
    if len(held) == len(holds) == len(expected) and held.issuperset(expected):
        return  # what the index says, exactly (in C)
    lacking = [k for k in expected if k not in held]
    if lacking:
        checkpoint.errors.append(Problem(
            "missing", f"the index puts {len(lacking):,} keys in shard {shard} that it does not hold ({_some(lacking)}): "
            "loading the set fails on them", where=shard))
    unnamed = [k for k in holds if k not in weight_map]
    elsewhere = [k for k in holds if weight_map.get(k, shard) != shard]
    if unnamed:
        checkpoint.warnings.append(Problem(
            "unexpected", f"shard {shard} holds {len(unnamed):,} tensors the index does not name ({_some(unnamed)}): "
            "a loader that follows the index skips them", where=shard))
    if elsewhere:
        checkpoint.warnings.append(Problem(
            "unexpected", f"shard {shard} holds {len(elsewhere):,} tensors the index puts in another shard "
            f"({_some(elsewhere)}, in {weight_map[elsewhere[0]]})", where=shard))


def _check_total_size(checkpoint: Checkpoint, total_size: int | None) -> None:
    if total_size is None or not checkpoint.tensors or checkpoint.errors:
        return
    tensors = checkpoint.tensors
    tensor_bytes = sum(map(mul, map(math.prod, map(_SHAPE, tensors)), map(ITEMSIZE.get, map(_DTYPE, tensors), repeat(1))))
    if total_size != tensor_bytes and total_size != checkpoint.summary()["storage_bytes"]:
        checkpoint.warnings.append(Problem(
            "unexpected", f"the index's total_size is {total_size:,} bytes, but the shards' tensors hold "
            f"{tensor_bytes:,}: the index was written for other shards, or they changed since", where="metadata"))


def _where(shard: str, problem: Problem) -> str:
    return f"{shard}: {problem.where}" if problem.where else shard


def _some(keys: list[str]) -> str:
    shown = ", ".join(safe_repr(k) for k in keys[:_SHOWN])
    return shown + (", …" if len(keys) > _SHOWN else "")


def index_naming(path: str) -> PartOf | None:
    """The index beside `path` that names it as a shard: which part of how many."""
    folder = os.path.dirname(path)
    name = os.path.basename(path)
    needle = json.dumps(name).encode()
    try:
        candidates = sorted(n for n in os.listdir(folder) if n.endswith(INDEX_SUFFIX))
    except OSError:
        return None
    for candidate in candidates:
        index_path = os.path.join(folder, candidate)
        try:
            with open(index_path, "rb") as f:
                raw = f.read(_INDEX_MAX)
            if needle not in raw:
                continue
            weight_map, _ = _read_index(index_path)
        except (OSError, IndexError_):
            continue
        shards = sorted(set(weight_map.values()))
        if name in shards:
            return PartOf(index_path, FORMAT, shards.index(name) + 1, len(shards))
    return None
