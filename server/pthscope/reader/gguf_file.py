"""GGUF (llama.cpp / ggml): the header, the key-value metadata and the tensor infos.

Layout (the GGUF spec, versions 1-3): magic `GGUF`, a u32 version, the tensor and key-value
counts (u64; u32 in version 1), the key-value pairs, one info per tensor (name, dims innermost
first, ggml type, offset into the data section), then the data section at the next multiple of
`general.alignment`. Only that header is read; tensor data is never touched. Every count and
length is checked against what is left of the file before it is used, so a lying file ends in a
clear error after a few reads. Shapes are shown outermost first, as torch would see them.

The legacy GGML containers (before GGUF) are recognised and named.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Any, BinaryIO

from .limits import Limits
from .model import Checkpoint, Node, Problem, TensorInfo, contiguous_stride

_MAGIC = b"GGUF"
_LEGACY_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt", b"algg": "ggla"}
_DEFAULT_ALIGNMENT = 32
_MAX_DIMS = 16  # ggml has 4; anything far past that is a corrupt count, not a tensor
_MAX_NAME = 1 << 16  # bytes of a key or tensor name
_INT64 = 1 << 63

# ggml type id → (name, elements per block, bytes per block), from the ggml/gguf type tables.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
# Plain ggml types under torch's dtype names; block-quantized ones keep their ggml name.
_TORCH_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
                 "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64"}

# GGUF value type id → (name, struct code of a fixed-size value; "" for string/array).
_VALUE_TYPES: dict[int, tuple[str, str]] = {
    0: ("uint8", "B"), 1: ("int8", "b"), 2: ("uint16", "H"), 3: ("int16", "h"), 4: ("uint32", "I"),
    5: ("int32", "i"), 6: ("float32", "f"), 7: ("bool", "?"), 8: ("string", ""), 9: ("array", ""),
    10: ("uint64", "Q"), 11: ("int64", "q"), 12: ("float64", "d"),
}
_STRING, _ARRAY = 8, 9
_ARRAY_ITEMS_SHOWN = 3


class GGUFError(Exception):
    def __init__(self, message: str, where: str, kind: str = "corrupt"):
        super().__init__(message)
        self.where = where
        self.kind = kind


def probe_gguf(head: bytes) -> bool:
    return head.startswith(_MAGIC) or head[:4] in _LEGACY_MAGICS


def gguf_dtype(type_id: int) -> str:
    found = GGML_TYPES.get(type_id)
    if found is None:
        return f"gguf:type{type_id}"
    return _TORCH_DTYPES.get(found[0], f"gguf:{found[0]}")


def read_gguf(path: str, limits: Limits) -> Checkpoint:
    with open(path, "rb", buffering=1 << 16) as f:
        magic = f.read(4)
        if magic in _LEGACY_MAGICS:
            return _legacy_ggml(path, _LEGACY_MAGICS[magic], f.read(4))
        checkpoint = Checkpoint(file=path, format="gguf")
        try:
            _read_header(_Cursor(f, os.fstat(f.fileno()).st_size), checkpoint, limits)
        except GGUFError as exc:
            checkpoint.errors.append(Problem(exc.kind, str(exc), where=exc.where))
    architecture = checkpoint.metadata.get("general.architecture", "")
    checkpoint.warnings.insert(0, Problem(
        "other-format", f"a GGUF file (llama.cpp / ggml{', ' + architecture if architecture else ''}), not a PyTorch "
        "checkpoint: torch.load cannot read it — load it with the gguf package (`gguf.GGUFReader(path)`), with "
        "llama.cpp, or into torch with transformers (`from_pretrained(folder, gguf_file=name)`)"))
    return checkpoint


class _Cursor:
    """Reads the header in order, through a 1 MiB window; every read is checked against the
    bytes left in the file first, so no length from the file makes it read (or allocate) more."""

    _CHUNK = 1 << 20

    def __init__(self, f: BinaryIO, size: int):
        self.f, self.size, self.order = f, size, "<"
        self.window, self.base, self.at = b"", 4, 0  # the window holds bytes [base, base + len) of the file
        self._structs: dict[str, struct.Struct] = {}

    @property
    def pos(self) -> int:
        return self.base + self.at

    def _need(self, n: int, what: str) -> None:
        if self.at + n <= len(self.window):
            return
        pos = self.pos
        if n > self.size - pos:
            raise GGUFError(f"{what} needs {n:,} bytes at byte {pos:,}, but the file ends at byte {self.size:,} (it "
                            "is truncated, or a length in it is corrupt)", f"byte {pos:,}",
                            kind="truncated" if n < 1 << 32 else "corrupt")
        self.f.seek(pos)
        self.window, self.base, self.at = self.f.read(max(n, self._CHUNK)), pos, 0

    def take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        data = self.window[self.at:self.at + n]
        self.at += n
        return data

    def skip(self, n: int, what: str) -> None:
        if self.at + n <= len(self.window):
            self.at += n
            return
        if n > self.size - self.pos:
            self._need(n, what)  # raises with the message
        self.window, self.base, self.at = b"", self.pos + n, 0

    def unpack(self, codes: str, what: str) -> tuple[Any, ...]:
        packer = self._structs.get(codes)
        if packer is None:
            packer = self._structs[codes] = struct.Struct(self.order + codes)
        self._need(packer.size, what)
        values = packer.unpack_from(self.window, self.at)
        self.at += packer.size
        return values

    def number(self, code: str, what: str) -> int | float | bool:
        value: int | float | bool = self.unpack(code, what)[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("I", what)[0])

    def u64(self, what: str) -> int:
        return int(self.unpack("Q", what)[0])

    def string(self, what: str, keep: int, long_version: bool) -> str:
        (length,) = self.unpack("Q" if long_version else "I", what)
        shown = self.take(min(length, keep), what)
        if length > len(shown):
            self.skip(length - len(shown), what)
        text = shown.decode("utf-8", "replace")
        return text if len(shown) == length else text + "…"


def _read_header(cursor: _Cursor, checkpoint: Checkpoint, limits: Limits) -> None:
    version = cursor.u32("the version")
    if version & 0xFFFF == 0 and 0 < version >> 24 <= 3:  # written big-endian
        cursor.order, cursor._structs, version = ">", {}, version >> 24
        checkpoint.metadata["byteorder"] = "big"
    if version not in (1, 2, 3):
        raise GGUFError(f"unknown GGUF version {version} (pthscope reads versions 1 to 3)", "byte 4")
    wide = version >= 2  # version 1 has 32-bit counts and string lengths
    tensor_count = cursor.u64("the tensor count") if wide else cursor.u32("the tensor count")
    kv_count = cursor.u64("the metadata count") if wide else cursor.u32("the metadata count")
    checkpoint.metadata["gguf version"] = str(version)
    left = cursor.size - cursor.pos
    for count, what, smallest in ((tensor_count, "tensors", 24), (kv_count, "metadata entries", 12)):
        if count > limits.max_nodes:
            raise GGUFError(f"the file claims {count:,} {what}, over the {limits.max_nodes:,} pthscope reads",
                            "header", kind="limit")
        if count * smallest > left:
            raise GGUFError(f"the file claims {count:,} {what}, more than its {left:,} remaining bytes can hold "
                            "(it is truncated, or the count is corrupt)", "header", kind="truncated")
    budget = [limits.max_nodes]  # array items walked, over all arrays
    alignment = _DEFAULT_ALIGNMENT
    for index in range(kv_count):
        key = cursor.string(f"metadata key {index}", _MAX_NAME, wide)
        value_type = cursor.u32(f"the type of {key}")
        shown = _value(cursor, value_type, key, limits, budget, wide)
        checkpoint.metadata[key[: limits.max_key_chars]] = shown
        if key == "general.alignment" and value_type == 4:
            alignment = int(shown)
            if alignment == 0 or alignment & (alignment - 1):
                raise GGUFError(f"general.alignment is {alignment}, not a power of two", key)
    infos = [_tensor_info(cursor, index, wide) for index in range(tensor_count)]
    data_start = -(-cursor.pos // alignment) * alignment
    data_size = cursor.size - data_start
    root = Node("", [], "dict", "dict")
    first_past_end: Problem | None = None
    past_end = 0
    for info, start in infos:
        if info.key in checkpoint.storage_offsets:
            checkpoint.errors.append(Problem("corrupt", f"tensor name {info.key!r} appears twice", where=info.key))
            continue
        checkpoint.storage_offsets[info.key] = data_start + start
        if info.storage_nbytes is not None and start + info.storage_nbytes > data_size:
            past_end += 1
            if first_past_end is None:
                first_past_end = Problem(
                    "truncated", f"tensor {info.key!r} ends at byte {start + info.storage_nbytes:,} of a "
                    f"{data_size:,}-byte data section (the file is truncated)", where=info.key)
            continue
        checkpoint.tensors.append(info)
        root.children.append(Node(info.key, list(info.path), "tensor", "gguf.tensor", tensor=len(checkpoint.tensors) - 1))
    if first_past_end is not None:  # one message, not one per tensor after the cut
        if past_end > 1:
            first_past_end.message += f"; {past_end - 1:,} more tensors end past the end of the file too"
        checkpoint.errors.append(first_past_end)
    checkpoint.metadata.update({"tensor count": f"{tensor_count:,}", "alignment": str(alignment)})
    checkpoint.root = root


def _tensor_info(cursor: _Cursor, index: int, wide: bool) -> tuple[TensorInfo, int]:
    """One tensor's info and its offset in the data section."""
    name = cursor.string("a tensor name", _MAX_NAME, wide)
    try:
        (n_dims,) = cursor.unpack("I", "a tensor's dimension count")
        if n_dims > _MAX_DIMS:
            raise GGUFError(f"{n_dims:,} dimensions", name)
        dims = list(cursor.unpack(("Q" if wide else "I") * n_dims, "a tensor's shape"))
        type_id, offset = cursor.unpack("IQ", "a tensor's type and offset")
    except GGUFError as exc:
        raise GGUFError(f"tensor {index} ({name!r}): {exc}", name, exc.kind) from None
    numel = math.prod(dims)
    if numel >= _INT64:
        raise GGUFError(f"tensor {name!r} claims shape {dims} (innermost first), more elements than a tensor can hold", name)
    found = GGML_TYPES.get(type_id)
    nbytes = None
    if found is not None:
        _, block, block_bytes = found
        if dims and dims[0] % block:
            raise GGUFError(f"tensor {name!r} has {dims[0]:,} elements per row, not a multiple of its "
                            f"{found[0]} block of {block}", name)
        nbytes = numel // block * block_bytes
    shape = dims[::-1]  # GGUF lists dimensions innermost first; torch outermost first
    return TensorInfo(path=[name], shape=shape, dtype=gguf_dtype(type_id), requires_grad=False, kind="tensor",
                      stride=contiguous_stride(shape), storage=name, storage_nbytes=nbytes), offset


def _value(cursor: _Cursor, value_type: int, key: str, limits: Limits, budget: list[int], wide: bool) -> str:
    """The value, shown short; arrays are counted, not kept (a vocabulary has 100,000s of items)."""
    if value_type == _STRING:
        return cursor.string(f"the value of {key}", limits.max_value_chars, wide)
    if value_type == _ARRAY:
        item_type = cursor.u32(f"the item type of {key}")
        count = cursor.u64(f"the length of {key}") if wide else cursor.u32(f"the length of {key}")
        item = _VALUE_TYPES.get(item_type)
        if item is None or item_type == _ARRAY:
            raise GGUFError(f"{key} is an array of unknown or nested type {item_type}", key)
        size = struct.calcsize(item[1]) if item[1] else (8 if wide else 4)  # a string is at least its length
        if count * size > cursor.size - cursor.pos:
            raise GGUFError(f"{key} claims {count:,} items, more than the {cursor.size - cursor.pos:,} bytes left in the "
                            "file can hold (it is truncated, or the count is corrupt)", key,
                            kind="truncated" if count <= limits.max_nodes else "corrupt")
        shown = []
        if item_type == _STRING:
            if count > budget[0]:
                raise GGUFError(f"{key} holds {count:,} strings, over the {limits.max_nodes:,} items pthscope reads",
                                key, kind="limit")
            budget[0] -= count
            for i in range(count):
                text = cursor.string(key, 40, wide)
                if i < _ARRAY_ITEMS_SHOWN:
                    shown.append(repr(text))
        else:
            shown = [repr(cursor.number(item[1], key)) for _ in range(min(count, _ARRAY_ITEMS_SHOWN))]
            cursor.skip((count - len(shown)) * size, key)
        more = ", …" if count > len(shown) else ""
        return f"[{count:,} × {item[0]}: {', '.join(shown)}{more}]"[: limits.max_value_chars]
    found = _VALUE_TYPES.get(value_type)
    if found is None:
        raise GGUFError(f"{key} has unknown value type {value_type}", key)
    value = cursor.number(found[1], key)
    return str(value)


def _legacy_ggml(path: str, magic: str, version: bytes) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="ggml")
    number = struct.unpack("<I", version)[0] if len(version) == 4 and magic != "ggml" else None
    checkpoint.metadata["magic"] = magic + (f" v{number}" if number is not None else "")
    checkpoint.errors.append(Problem(
        "not-a-checkpoint", f"a GGML file ({magic}, llama.cpp's format before GGUF), not a PyTorch checkpoint: current "
        "tools read GGUF only — convert it with llama.cpp's GGML-to-GGUF script, or get the model as GGUF or "
        "safetensors"))
    return checkpoint
