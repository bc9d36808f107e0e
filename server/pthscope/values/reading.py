"""One tensor's bytes, checked and memory-mapped a bounded piece at a time.

`open_tensor(tensor_bytes)` opens the file a `TensorBytes` names (stats.py says how one is made),
checks that it is the file that was parsed (size and mtime), finds the storage's first byte (a
torch zip member's data follows its local header, whose name and extra field are read here; other
formats record it directly), and checks that every element the tensor's view reaches lies inside
its storage and inside the file. `mapped_chunks(tensors, limit)` gives a tensor — or two tensors
of one shape, for a diff — as row-major chunks of at most `limit` elements: contiguous tensors
through read-only windows of `WINDOW_BYTES` mapped one at a time (each mapping costs a syscall
and, when unmapped, a TLB flush on every core: few large ones are much cheaper than many small
ones), views piece by piece (`pieces`), each mapping only the bytes its piece spans. Memory stays
bounded whatever the tensor's size. Errors are `ValuesError`s naming the tensor, what
is wrong and why (truncated, corrupt, changed on disk).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from ..reader.dtypes import itemsize
from ..reader.model import contiguous_stride
from .reduction import value_kind

if TYPE_CHECKING:
    from .stats import TensorBytes

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
# Formats whose storages the reader located (Checkpoint.storage_offsets) as plain bytes.
READABLE_FORMATS = ("torch-zip", "torch-legacy", "torch-tar", "safetensors", "gguf")
WINDOW_BYTES = 8 << 20  # mapped at a time for each contiguous tensor read (RSS grows by this much)
SMALL_READ_BYTES = 1 << 16  # read, not mapped


class ValuesError(Exception):
    """Why the values of a tensor cannot be read; the message is for the user."""


@dataclass(frozen=True)
class View:
    """Where a piece of a tensor is in its storage: element offset and strides."""

    offset: int
    stride: tuple[int, ...]


@dataclass(frozen=True)
class Piece:
    """A row-major piece of one or more same-shaped tensors: its shape and each tensor's view."""

    shape: tuple[int, ...]
    views: tuple[View, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def check_readable(tensor: TensorBytes) -> None:
    """That this tensor has values pthscope can read (before anything is opened)."""
    if tensor.unreadable:
        raise ValuesError(tensor.unreadable)
    if tensor.format not in READABLE_FORMATS:
        raise ValuesError(f"values are not read from {tensor.format} files")
    if tensor.layout != "strided":
        raise ValuesError(f"{tensor.key} is a {tensor.layout} tensor; values are read for plain (strided) tensors only")
    if tensor.location == "meta":
        raise ValuesError(f"{tensor.key} is a meta tensor: it has no values")
    if tensor.byteorder != "little":
        raise ValuesError("the file stores big-endian tensors; values are read from little-endian files only")
    if value_kind(tensor.dtype) is None:
        raise ValuesError(f"values of {tensor.dtype} tensors are not supported")


class OpenedTensor:
    """An open, checked tensor: its file, the byte where its storage starts, its view."""

    def __init__(self, tensor: TensorBytes, f: BinaryIO, storage_start: int) -> None:
        self.tensor = tensor
        self.file = f
        self.storage_start = storage_start
        self.itemsize = itemsize(tensor.dtype)
        self.shape = tuple(tensor.shape)
        self.view = View(tensor.storage_offset, tuple(tensor.stride))
        self.numel = math.prod(self.shape)
        self.contiguous = list(tensor.stride) == contiguous_stride(tensor.shape)

    def flat_view(self) -> tuple[tuple[int, ...], View]:
        """Shape and view to read it by: one dimension when contiguous (pieces split evenly)."""
        if self.contiguous:
            return (self.numel,), View(self.view.offset, (1,))
        return self.shape, self.view

    @contextmanager
    def mapped(self, shape: Sequence[int], view: View) -> Iterator[memoryview]:
        """The bytes the view of `shape` spans, mapped read-only; its first element is at 0."""
        span = 1 + sum((d - 1) * s for d, s in zip(shape, view.stride, strict=True))
        with map_bytes(self.file, self.storage_start + view.offset * self.itemsize, span * self.itemsize) as data:
            yield data


class OpenFiles:
    """The files a batch of tensors reads, each opened (and its stamp checked) once."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[BinaryIO, int, int]] = {}

    def get(self, file: str) -> tuple[BinaryIO, int, int]:
        """The open file, its size and mtime."""
        found = self._files.get(file)
        if found is None:
            try:
                f = open(file, "rb")  # noqa: SIM115  (closed by close())
            except OSError as error:
                raise ValuesError(f"cannot open {file}: {error.strerror or error}") from None
            st = os.fstat(f.fileno())
            found = self._files[file] = (f, st.st_size, st.st_mtime_ns)
        return found

    def close(self) -> None:
        for f, _, _ in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> OpenFiles:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextmanager
def open_tensor(tensor: TensorBytes, files: OpenFiles | None = None) -> Iterator[OpenedTensor]:
    """The tensor, checked, in its open file (from `files`, which keeps it open, or opened here)."""
    check_readable(tensor)
    with contextlib.ExitStack() as stack:
        if files is None:
            files = stack.enter_context(OpenFiles())
        f, size, mtime_ns = files.get(tensor.file)
        if (size, mtime_ns) != (tensor.size, tensor.mtime_ns):
            raise ValuesError(f"{tensor.file} changed since it was read; open it again")
        start = _storage_start(tensor, f)
        _check_bounds(tensor, start, size)
        yield OpenedTensor(tensor, f, start)


def _storage_start(tensor: TensorBytes, f: BinaryIO) -> int:
    start = tensor.storage_start
    if start is None:
        what = "member" if tensor.format == "torch-zip" else "record"
        raise ValuesError(f"storage {tensor.storage} of {tensor.key} is missing: the file has no {what} for it "
                          "(truncated or corrupt)")
    if tensor.format != "torch-zip":
        return start
    f.seek(start)  # the member's local header: its name and extra field come before the data
    header = f.read(30)
    if len(header) < 30 or header[:4] != _ZIP_LOCAL_HEADER:
        raise ValuesError(f"the zip entry of storage {tensor.storage} is damaged (no local header at byte {start:,})")
    (method,) = struct.unpack_from("<H", header, 8)
    if method != 0:
        raise ValuesError(f"storage {tensor.storage} is compressed in the zip; torch stores tensors uncompressed")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return start + 30 + name_len + extra_len


def _check_bounds(tensor: TensorBytes, storage_start: int, size: int) -> None:
    stride, shape = tensor.stride, tensor.shape
    if len(stride) != len(shape) or any(s < 0 for s in stride) or tensor.storage_offset < 0:
        raise ValuesError(f"tensor {tensor.key} has an invalid stride {stride} or storage offset "
                          f"{tensor.storage_offset} (the file is corrupt)")
    if math.prod(shape) == 0:
        return
    element = itemsize(tensor.dtype)
    first = tensor.storage_offset
    end = first + 1 + sum((d - 1) * s for d, s in zip(shape, stride, strict=True))
    if tensor.storage_nbytes is not None and end * element > tensor.storage_nbytes:
        raise ValuesError(f"tensor {tensor.key} views elements {first:,}–{end:,} of {tensor.dtype}, past the "
                          f"end of its {tensor.storage_nbytes:,}-byte storage {tensor.storage} (the file is corrupt)")
    if storage_start < 0 or storage_start + end * element > size:
        raise ValuesError(f"tensor {tensor.key} lies at bytes {storage_start + first * element:,}–"
                          f"{storage_start + end * element:,}, past the end of the {size:,}-byte file "
                          "(the file is truncated or corrupt)")


@contextmanager
def map_bytes(f: BinaryIO, start: int, length: int) -> Iterator[memoryview]:
    """Bytes [start, start + length) of the file, memory-mapped read-only (small ranges are read:
    cheaper than a mapping)."""
    if length <= SMALL_READ_BYTES:
        f.seek(start)
        small = f.read(length)
        if len(small) != length:
            raise ValuesError(f"{f.name} ends at byte {start + len(small):,}, before the {length:,} bytes at {start:,}")
        yield memoryview(small)
        return
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(f.fileno(), length + start - aligned, access=mmap.ACCESS_READ, offset=aligned)
    data = memoryview(mapping)[start - aligned:start - aligned + length]
    try:
        yield data
    finally:
        with contextlib.suppress(BufferError):  # an array still holds it: unmapped when collected
            data.release()
            mapping.close()


Chunk = tuple[tuple[int, ...], list[tuple[memoryview, tuple[int, ...]]]]


def mapped_chunks(tensors: Sequence[OpenedTensor], limit: int) -> Iterator[Chunk]:
    """Chunks of at most `limit` elements of same-shaped tensors, in row-major order: each as
    (shape, [(its bytes, its strides) for each tensor]), the bytes starting at the chunk's first
    element. Callers drop what they made of a chunk before asking for the next."""
    first = tensors[0]
    if first.numel == 0:
        return
    if all(t.contiguous for t in tensors):
        widest = max(t.itemsize for t in tensors)
        window = max(limit, WINDOW_BYTES // widest // limit * limit)
        for start in range(0, first.numel, window):
            count = min(window, first.numel - start)
            with ExitStack() as stack:
                data = [stack.enter_context(map_bytes(t.file, t.storage_start + (t.view.offset + start) * t.itemsize,
                                                      count * t.itemsize)) for t in tensors]
                for at in range(0, count, limit):
                    n = min(limit, count - at)
                    yield (n,), [(d[at * t.itemsize:(at + n) * t.itemsize], (1,)) for d, t in zip(data, tensors, strict=True)]
        return
    for piece in pieces(first.shape, [t.view for t in tensors], limit):
        with ExitStack() as stack:
            data = [stack.enter_context(t.mapped(piece.shape, v)) for t, v in zip(tensors, piece.views, strict=True)]
            yield piece.shape, [(d, v.stride) for d, v in zip(data, piece.views, strict=True)]


def pieces(shape: Sequence[int], views: Sequence[View], limit: int) -> Iterator[Piece]:
    """Row-major pieces of at most `limit` elements (at least one row of the innermost dimension)
    of tensors of `shape`, each seen through its own view; nothing for an empty tensor."""
    shape = tuple(shape)
    if math.prod(shape) == 0:
        return
    stack = [(shape, tuple(views))]
    while stack:
        dims, seen = stack.pop()
        numel = math.prod(dims)
        if numel <= limit or len(dims) <= 1:
            yield from _rows(dims, seen, limit)
            continue
        inner = numel // dims[0]
        if inner <= limit:
            rows = max(1, limit // inner)
            for i in range(0, dims[0], rows):
                n = min(rows, dims[0] - i)
                yield Piece((n, *dims[1:]), tuple(View(v.offset + i * v.stride[0], v.stride) for v in seen))
        else:
            below = [(dims[1:], tuple(View(v.offset + i * v.stride[0], v.stride[1:]) for v in seen))
                     for i in range(dims[0])]
            stack.extend(reversed(below))


def _rows(dims: tuple[int, ...], seen: tuple[View, ...], limit: int) -> Iterator[Piece]:
    """A piece that fits, or a one-dimensional run split into `limit`-element stretches."""
    if len(dims) != 1 or dims[0] <= limit:
        yield Piece(dims, seen)
        return
    for i in range(0, dims[0], limit):
        n = min(limit, dims[0] - i)
        yield Piece((n,), tuple(View(v.offset + i * v.stride[0], v.stride) for v in seen))
