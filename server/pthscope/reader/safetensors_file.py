"""safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

Only the header is read. Offsets are checked against the file size so a truncated or lying file
gets a precise message per tensor.
"""

from __future__ import annotations

import json
import os
import struct

from .limits import Limits
from .model import Checkpoint, Node, Problem, TensorInfo, contiguous_stride

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
_INT_ONLY = frozenset((int,))  # the types a shape may hold (not bool, as the library)


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
    duplicates: list[str] = []
    try:
        header = json.loads(raw, object_pairs_hook=lambda pairs: _no_duplicates(pairs, duplicates))
    except (ValueError, RecursionError) as exc:
        checkpoint.errors.append(Problem("corrupt", f"the JSON header is malformed: {exc}", where="header"))
        return checkpoint
    if not isinstance(header, dict):
        checkpoint.errors.append(Problem("corrupt", "the JSON header is not an object", where="header"))
        return checkpoint
    if duplicates:
        checkpoint.errors.append(Problem("corrupt", f"the header names {duplicates[0]!r} twice: which entry a "
                                         "reader takes is not defined", where=duplicates[0]))
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        checkpoint.errors.append(Problem("corrupt", "__metadata__ must map names to strings; the safetensors "
                                         "library refuses this header", where="__metadata__"))
    if isinstance(meta, dict):
        checkpoint.metadata.update({str(k): str(v)[: limits.max_value_chars] for k, v in meta.items()})
    data_size = size - 8 - header_len
    root = Node("", [], "dict", "dict")
    tensors, children = checkpoint.tensors, root.children
    strides: dict[tuple[int, ...], list[int]] = {}  # contiguous stride by shape: shapes repeat
    for name, entry in header.items():
        problem = _check_entry(name, entry, data_size)
        if problem:
            checkpoint.errors.append(problem)
            continue
        begin, end = entry["data_offsets"]
        dtype = _DTYPES.get(entry["dtype"], entry["dtype"].lower())
        shape = list(entry["shape"])
        stride = strides.get(key := tuple(shape))
        if stride is None:
            stride = strides[key] = contiguous_stride(shape)
        key_path = [name]
        # Positional (keywords cost a third more per call): one TensorInfo and one Node per tensor.
        tensors.append(TensorInfo(key_path, shape, dtype, False, "tensor", "cpu", list(stride), 0, name, end - begin,
                                  [], True, "strided"))
        checkpoint.storage_offsets[name] = 8 + header_len + begin
        children.append(Node(name, key_path, "tensor", "torch.Tensor", None, len(tensors) - 1, None, []))
    checkpoint.root = root
    if not checkpoint.errors:
        _check_layout(header, data_size, checkpoint)
    return checkpoint


def _no_duplicates(pairs: list[tuple[str, object]], duplicates: list[str]) -> dict[str, object]:
    out = dict(pairs)  # in C; the names of a key given twice are looked for only when there is one
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
    return out


def _check_layout(header: dict[str, dict[str, list[int]]], data_size: int, checkpoint: Checkpoint) -> None:
    """The library's validate(): tensors tile the data section from 0 to its end, no gap, no
    overlap, nothing after the last one."""
    spans = sorted((entry["data_offsets"][0], entry["data_offsets"][1], name) for name, entry in header.items())
    end, previous = 0, ""
    for begin, stop, name in spans:
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
    if not (isinstance(dtype, str) and isinstance(shape, list) and _INT_ONLY.issuperset(map(type, shape))
            and (not shape or min(shape) >= 0 and max(shape) < _INT64)):
        return Problem("corrupt", f"tensor {name!r} has no valid dtype/shape", where=name)
    if dtype not in _BITS:
        return Problem("corrupt", f"tensor {name!r} has dtype {dtype[:40]!r}, which safetensors does not define",
                       where=name)
    numel = 1
    for d in shape:
        numel *= d
        if numel >= _INT64:
            return Problem("corrupt", f"tensor {name!r} claims more elements than a tensor can hold", where=name)
    if not (isinstance(offsets, list) and len(offsets) == 2 and type(offsets[0]) is int and type(offsets[1]) is int
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
