"""safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

Only the header is read. Offsets are checked against the file size so a truncated or lying file
gets a precise message per tensor.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from itertools import chain, repeat
from operator import add, itemgetter, mul, sub
from typing import Any

from .limits import Limits
from .model import Checkpoint, Node, PathElement, Problem, TensorInfo, contiguous_stride

_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn_x2", "F6_E2M3": "float6_e2m3", "F6_E3M2": "float6_e3m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "C64": "complex64", "C128": "complex128",
}

# Bits per element, as the safetensors format counts them (sub-byte types are packed).
_BITS = {
    "F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "I64": 64, "I32": 32, "I16": 16, "I8": 8,
    "U64": 64, "U32": 32, "U16": 16, "U8": 8, "BOOL": 8, "C64": 64, "C128": 128,
}
_INT64 = 1 << 63


def probe_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n < (1 << 40) and head[8:9] == b"{"


def read_safetensors(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="safetensors")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > limits.max_header_bytes or 8 + header_len > size:
            checkpoint.errors.append(Problem(
                "corrupt", f"the header claims {header_len:,} bytes but the file has {size:,}"
                if 8 + header_len > size else f"the header is over the {limits.max_header_bytes:,}-byte limit",
                where="header",
            ))
            return checkpoint
        raw = f.read(header_len)
    if not raw.startswith(b"{"):
        checkpoint.errors.append(Problem("corrupt", "the header does not start with '{'; the safetensors library "
                                         "refuses it", where="header"))
        return checkpoint
    try:
        header = json.loads(raw)  # in C, objects as dicts
    except (ValueError, RecursionError) as exc:
        checkpoint.errors.append(Problem("corrupt", f"the JSON header is malformed: {exc}", where="header"))
        return checkpoint
    if type(header) is not dict:
        checkpoint.errors.append(Problem("corrupt", "the JSON header is not an object", where="header"))
        return checkpoint
    duplicate: str | None = None
    if not _keys_unique(raw, header):
        # Again, every object as its (key, value) pairs, so that a key given twice stays visible;
        # the pairs' own type tells an object from an array. All of it runs in C.
        pairs = json.loads(raw, object_pairs_hook=_Pairs)
        header = dict(pairs)
        duplicate = _first_duplicate(pairs) if len(header) != len(pairs) else None
    meta = header.pop("__metadata__", None)
    if type(meta) is _Pairs:
        meta_pairs, meta = meta, dict(meta)
        if len(meta) != len(meta_pairs):
            duplicate = duplicate or _first_duplicate(meta_pairs)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        checkpoint.errors.append(Problem("corrupt", "__metadata__ must map names to strings; the safetensors "
                                         "library refuses this header", where="__metadata__"))
    if isinstance(meta, dict):
        checkpoint.metadata.update({str(k): str(v)[: limits.max_value_chars] for k, v in meta.items()})
    data_size = size - 8 - header_len
    if duplicate is None and _read_valid_entries(header, data_size, 8 + header_len, checkpoint):
        return checkpoint
    root = Node("", [], "dict", "dict")
    children, tensors, offsets = root.children, checkpoint.tensors, checkpoint.storage_offsets
    data_start = 8 + header_len
    strides: dict[tuple[int, ...], list[int]] = {}  # one stride list per shape: tensors share them
    spans: list[tuple[int, int, str]] = []
    bits_of, int64, prod = _BITS.get, _INT64, math.prod
    entry: Any
    dtype: Any
    shape: Any
    span: Any
    for name, value in header.items():
        entry = dict(value) if type(value) is _Pairs else value
        if type(value) is _Pairs and len(entry) != len(value):
            duplicate = duplicate or _first_duplicate(value)
        dtype = entry.get("dtype") if type(entry) is dict else None
        shape = entry.get("shape") if type(entry) is dict else None
        span = entry.get("data_offsets") if type(entry) is dict else None
        # The common case, checked in a few C calls; anything else gets _check_entry's message.
        bits = bits_of(dtype) if type(dtype) is str else None
        numel = prod(shape) if type(shape) is list and _all_ints(shape) else 0
        if (bits is None or not 0 < numel < int64 or type(span) is not list or len(span) != 2
                or type(span[0]) is not int or type(span[1]) is not int
                or not 0 <= span[0] <= span[1] <= data_size or (numel * bits + 7) // 8 != span[1] - span[0]
                or min(shape, default=1) < 0 or max(shape, default=0) >= int64):
            problem = _check_entry(name, entry, data_size)
            if problem:
                checkpoint.errors.append(problem)
                continue
        begin, end = span
        spans.append((begin, end, name))
        shape_key = tuple(shape)
        stride = strides.get(shape_key)
        if stride is None:
            stride = strides[shape_key] = contiguous_stride(shape)
        key_path: list[PathElement] = [name]
        tensors.append(TensorInfo(key_path, shape, _DTYPES.get(dtype) or dtype.lower(), False, "tensor", "cpu", stride,
                                  0, name, end - begin))
        offsets[name] = data_start + begin
        children.append(Node(name, key_path, "tensor", "torch.Tensor", None, len(tensors) - 1))
    if duplicate is not None:
        checkpoint.errors.insert(0, Problem("corrupt", f"the header names {duplicate!r} twice: which entry a reader "
                                            "takes is not defined", where=duplicate))
    checkpoint.root = root
    if not checkpoint.errors:
        _check_layout(spans, data_size, checkpoint)
    return checkpoint


def _keys_unique(raw: bytes, header: dict[str, Any]) -> bool:
    """No object of the header names a key twice (the header's and its entries' keys counted;
    deeper objects: False, and the pairs say)."""
    values = list(header.values())
    return no_key_repeats(raw, len(header) + sum([len(v) for v in values if type(v) is dict]))


def no_key_repeats(raw: bytes, keys: int) -> bool:
    """Whether the JSON text `raw`, which decoded as dicts holds `keys` keys in all, names no key
    twice in an object — known without decoding it as pairs: a key is a string followed by `:`,
    so without whitespace before a colon `":` occurs at least once per key, and the keys decoded
    are fewer when one repeats. Equal counts: none repeats. Anything else (a string holding `":`,
    keys not counted): False, and the pairs say."""
    return _SPACED_COLON.search(raw) is None and raw.count(b'":') == keys


_SPACED_COLON = re.compile(rb'"[ \t\n\r]+:')  # JSON whitespace before a key's colon


def _read_valid_entries(header: dict[str, Any], data_size: int, data_start: int, checkpoint: Checkpoint) -> bool:
    """The tensors of a header whose every entry is valid (the common case), checked column by
    column in C; False, with nothing added, when one is not: the per-entry loop says which."""
    entries = list(header.values())
    if not entries or set(map(type, entries)) != _DICT_ONLY or set(map(len, entries)) != _THREE:
        return False
    try:
        dtypes = list(map(_GET_DTYPE, entries))
        shapes = list(map(_GET_SHAPE, entries))
        spans = list(map(_GET_SPAN, entries))
        if not set(dtypes) <= _BYTES.keys():  # sub-byte dtypes: the loop
            return False
    except (KeyError, TypeError):
        return False
    if set(map(type, shapes)) != _LIST_ONLY or set(map(type, spans)) != _LIST_ONLY or set(map(len, spans)) != _TWO:
        return False
    dims = list(chain.from_iterable(shapes))
    if dims and (set(map(type, dims)) != _INT_ONLY or min(dims) < 0 or max(dims) >= _INT64):
        return False
    begins, ends = list(map(itemgetter(0), spans)), list(map(itemgetter(1), spans))
    if (set(map(type, begins)) | set(map(type, ends))) != _INT_ONLY or min(begins) < 0 or max(ends) > data_size:
        return False
    numels = list(map(math.prod, shapes))
    if min(numels) <= 0 or max(numels) >= _INT64:  # an empty tensor: the loop checks its dims' product
        return False
    nbytes = list(map(sub, ends, begins))
    if nbytes != list(map(mul, numels, map(_BYTES.__getitem__, dtypes))):
        return False
    names = list(header)
    if begins[0] != 0 or begins[1:] != ends[:-1] or ends[-1] != data_size:  # not tiled in header order
        known = len(checkpoint.errors)
        _check_layout(list(zip(begins, ends, names, strict=True)), data_size, checkpoint)
        if len(checkpoint.errors) > known:
            del checkpoint.errors[known:]
            return False
    strides: dict[tuple[int, ...], list[int]] = {}  # one stride list per shape: tensors share them
    for shape in map(tuple, shapes):
        if shape not in strides:
            strides[shape] = contiguous_stride(list(shape))
    paths: list[list[PathElement]] = [[name] for name in names]
    start = len(checkpoint.tensors)
    checkpoint.tensors.extend(map(TensorInfo, paths, shapes, map(_DTYPE_NAMES.__getitem__, dtypes), repeat(False),
                                  repeat("tensor"), repeat("cpu"), map(strides.__getitem__, map(tuple, shapes)),
                                  repeat(0), names, nbytes))
    checkpoint.storage_offsets.update(zip(names, map(add, begins, repeat(data_start)), strict=True))
    root = Node("", [], "dict", "dict")
    root.children.extend(map(Node, names, paths, repeat("tensor"), repeat("torch.Tensor"), repeat(None),
                             range(start, start + len(names))))
    checkpoint.root = root
    return True


_DICT_ONLY, _LIST_ONLY, _THREE, _TWO = {dict}, {list}, {3}, {2}
_GET_DTYPE, _GET_SHAPE, _GET_SPAN = itemgetter("dtype"), itemgetter("shape"), itemgetter("data_offsets")
_BYTES = {name: bits // 8 for name, bits in _BITS.items() if bits % 8 == 0}
_DTYPE_NAMES = {name: _DTYPES.get(name) or name.lower() for name in _BITS}


class _Pairs(list[Any]):
    """A JSON object's (key, value) pairs, in order (json's object_pairs_hook)."""

    __slots__ = ()


def _first_duplicate(pairs: list[tuple[str, object]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _all_ints(values: list[object]) -> bool:
    """Every item is an int (not a bool, not a float): one C pass."""
    return not values or set(map(type, values)) == _INT_ONLY


_INT_ONLY = {int}


def _check_layout(spans: list[tuple[int, int, str]], data_size: int, checkpoint: Checkpoint) -> None:
    """The library's validate(): tensors tile the data section from 0 to its end, no gap, no
    overlap, nothing after the last one."""
    end, previous = 0, ""
    for begin, stop, name in sorted(spans):
        if begin != end:
            what = f"overlaps {previous!r}" if begin < end else f"leaves a gap of {begin - end:,} bytes after " + (
                repr(previous) if previous else "the header")
            checkpoint.errors.append(Problem("corrupt", f"tensor {name!r} {what}; the safetensors library refuses "
                                             "the file", where=name))
            return
        end, previous = stop, name
    if end != data_size:
        checkpoint.errors.append(Problem("corrupt", f"the data section has {data_size - end:,} bytes after the last "
                                         "tensor; the safetensors library refuses the file", where="data"))


def _check_entry(name: str, entry: object, data_size: int) -> Problem | None:
    if not isinstance(entry, dict):
        return Problem("corrupt", f"entry {name!r} is not an object", where=name)
    offsets, shape, dtype = entry.get("data_offsets"), entry.get("shape"), entry.get("dtype")
    if not (isinstance(dtype, str) and isinstance(shape, list) and all(type(d) is int and 0 <= d < _INT64 for d in shape)):
        return Problem("corrupt", f"tensor {name!r} has no valid dtype/shape", where=name)
    if dtype not in _BITS:
        return Problem("corrupt", f"tensor {name!r} has dtype {dtype[:40]!r}, which safetensors does not define",
                       where=name)
    numel = 1
    for d in shape:
        numel *= d
        if numel >= _INT64:
            return Problem("corrupt", f"tensor {name!r} claims more elements than a tensor can hold", where=name)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        return Problem("corrupt", f"tensor {name!r} has invalid data_offsets {offsets!r}", where=name)
    if offsets[1] > data_size:
        return Problem("truncated", f"tensor {name!r} ends at byte {offsets[1]:,} of a {data_size:,}-byte data "
                       "section (the file is truncated)", where=name)
    bits = _BITS.get(dtype)
    if bits is not None and (numel * bits + 7) // 8 != offsets[1] - offsets[0]:
        return Problem("corrupt", f"tensor {name!r} is {shape} of {dtype} ({(numel * bits + 7) // 8:,} bytes) but "
                       f"its data_offsets span {offsets[1] - offsets[0]:,} bytes", where=name)
    return None
