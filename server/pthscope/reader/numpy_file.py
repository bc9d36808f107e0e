"""NumPy `.npy` arrays and `.npz` archives of them: names, shapes and dtypes from the headers.

An `.npy` file is the magic `\\x93NUMPY`, a version, a header length and a Python dict literal
(`descr`, `fortran_order`, `shape`), then the raw data. The literal is parsed with
`ast.literal_eval` (literals only, nothing is called) after a length check. An `.npz` is a zip
of `.npy` members (deflated by `savez_compressed`): each member's header is read, or inflated
just far enough to read it. An array of Python objects is a pickle after its header, which
numpy.load(allow_pickle=True) runs: it goes through the restricted unpickler, for its globals.
torch.load reads neither format, so each gets a warning saying what does.
"""

from __future__ import annotations

import ast
import io
import math
import os
import struct
import zlib
from typing import Any, BinaryIO

from .dtypes import dtype_from_numpy_code, itemsize_of_numpy_code
from .file_slice import FileSlice
from .limits import Limits
from .model import Checkpoint, Node, Problem, TensorInfo, contiguous_stride
from .pickled import PickleError, report_globals, unpickle
from .safe_repr import safe_repr
from .truncated_zip import first_member_name, zip_format_of
from .unpickler import UnpickleLog
from .zip_directory import Member, ZipError, data_offset, file_size_of, read_directory

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 16  # numpy itself refuses headers over 10,000 bytes unless told otherwise
_INT64 = 1 << 63


class NpyError(Exception):
    pass


def probe_npy(head: bytes) -> bool:
    return head.startswith(_MAGIC)


def probe_npz(head: bytes, path: str) -> bool:
    """A zip whose first member is an .npy, and whose members all are (no pickle hides in it)."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    name = first_member_name(path)
    if name is None or not name.endswith(".npy"):
        return False
    try:
        with open(path, "rb") as f:
            return zip_format_of([m.name for m in read_directory(f, file_size_of(f))]) == "npz"
    except (ZipError, OSError):
        return False


def read_npy(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="numpy")
    log = UnpickleLog()
    with open(path, "rb") as f:
        try:
            header, data_start = _npy_header(f.read(_MAX_HEADER + 12))
        except NpyError as exc:
            checkpoint.errors.append(Problem("corrupt", f"the .npy header is unreadable: {exc}", where="header"))
            return checkpoint
        if _is_object(header):
            f.seek(data_start)
            _audit_pickle(f, "array", log, limits, checkpoint)
    report_globals(checkpoint, log)
    info = _array_info(["array"], header)
    checkpoint.warnings.append(_how_to_load("a NumPy .npy array", "`numpy.load(path)`", _is_object(header)))
    checkpoint.storage_offsets["array"] = data_start
    size = os.path.getsize(path)
    if info.storage_nbytes is not None and data_start + info.storage_nbytes > size:
        checkpoint.errors.append(Problem("truncated", f"the array needs {info.storage_nbytes:,} bytes after its "
                                         f"{data_start}-byte header, but the file has {size:,}", where="array"))
    checkpoint.tensors.append(info)
    checkpoint.root = Node("", [], "dict", "dict", children=[Node("array", ["array"], "tensor", "numpy.ndarray", tensor=0)])
    return checkpoint


def read_npz(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="npz")
    root = Node("", [], "dict", "numpy.lib.npyio.NpzFile")
    pickled = False
    log = UnpickleLog()
    with open(path, "rb") as f:
        size = file_size_of(f)
        try:
            members = read_directory(f, size, max_members=limits.max_nodes)
        except ZipError as exc:
            checkpoint.errors.append(Problem("corrupt", str(exc), where=exc.where))
            return checkpoint
        for member in members:
            if not member.name.endswith(".npy"):
                checkpoint.warnings.append(Problem("unexpected", f"{member.name} is not an .npy array (numpy.load "
                                                   "gives its raw bytes)", where=member.name))
                continue
            key = member.name[: -len(".npy")]
            try:
                header, header_end = _npy_header(_member_head(f, member, size))
            except (NpyError, ZipError) as exc:
                checkpoint.errors.append(Problem("corrupt", f"{member.name}: {exc}", where=member.name))
                continue
            if _is_object(header):
                pickled = True
                _audit_member_pickle(f, member, header_end, log, limits, checkpoint)
            info = _array_info([key], header)
            checkpoint.tensors.append(info)
            root.children.append(Node(key, [key], "tensor", "numpy.ndarray", tensor=len(checkpoint.tensors) - 1))
    checkpoint.root = root
    report_globals(checkpoint, log)
    checkpoint.warnings.insert(0, _how_to_load("NumPy arrays in an .npz archive",
                                               "`numpy.load(path)` (a dict-like of arrays)", pickled))
    return checkpoint


def _audit_pickle(stream: Any, where: str, log: UnpickleLog, limits: Limits, checkpoint: Checkpoint) -> None:
    try:
        unpickle(stream, where, _no_persistent_ids, log, limits)
    except PickleError as exc:
        checkpoint.warnings.append(Problem("corrupt", f"the pickled objects of {where} cannot be read: {exc}",
                                           where=exc.where))


def _audit_member_pickle(f: BinaryIO, member: Member, header_end: int, log: UnpickleLog, limits: Limits,
                         checkpoint: Checkpoint) -> None:
    """The pickle after an object array's header in an .npz member (inflated when deflated)."""
    key = member.name[: -len(".npy")]
    if member.method == 0:
        start = data_offset(f, member)
        _audit_pickle(FileSlice(f, start + header_end, member.size - header_end), key, log, limits, checkpoint)
    elif member.method == 8 and member.size <= limits.max_pickle_bytes:
        f.seek(data_offset(f, member))
        try:
            data = zlib.decompressobj(-15).decompress(f.read(member.compressed_size), member.size)
        except zlib.error as exc:
            checkpoint.errors.append(Problem("corrupt", f"{member.name} cannot be inflated ({exc})", where=member.name))
            return
        _audit_pickle(io.BytesIO(data[header_end:]), key, log, limits, checkpoint)
    else:
        checkpoint.warnings.append(Problem("limit", f"the pickled objects of {key} were not read (compressed and over "
                                           f"the {limits.max_pickle_bytes:,}-byte pickle limit)", where=member.name))


def _no_persistent_ids(pid: object) -> object:
    raise ValueError(f"unexpected persistent id {safe_repr(pid)}")


def _how_to_load(what: str, loader: str, holds_objects: bool) -> Problem:
    pickle_note = (" It holds Python objects: numpy.load needs allow_pickle=True for them, which unpickles (runs) "
                   "whatever they name — only for files you trust." if holds_objects else "")
    return Problem("other-format", f"{what}, not a PyTorch checkpoint: torch.load cannot read it — load it with {loader}, "
                   f"then `torch.from_numpy(array)`.{pickle_note}")


def _is_object(header: dict[str, object]) -> bool:
    descr = header.get("descr")
    return isinstance(descr, list) or isinstance(descr, str) and descr.lstrip("<>|=").startswith("O")


def _npy_header(raw: bytes) -> tuple[dict[str, object], int]:
    """The header dict and where the data starts."""
    if not raw.startswith(_MAGIC) or len(raw) < 10:
        raise NpyError("no NUMPY magic")
    major = raw[6]
    if major == 1:
        (length,), start = struct.unpack_from("<H", raw, 8), 10
    elif major in (2, 3):
        (length,), start = struct.unpack_from("<I", raw, 8), 12
    else:
        raise NpyError(f"unknown .npy version {major}.{raw[7]}")
    if length > _MAX_HEADER:
        raise NpyError(f"the header claims {length:,} bytes, over the {_MAX_HEADER:,}-byte limit")
    text = raw[start:start + length]
    if len(text) < length:
        raise NpyError("the header is cut short (the file is truncated)")
    try:
        header = ast.literal_eval(text.decode("latin-1" if major < 3 else "utf-8"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise NpyError(f"the header is not a literal dict ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("shape"), tuple) or "descr" not in header:
        raise NpyError("the header has no shape/descr")
    shape = header["shape"]
    if not all(type(d) is int and 0 <= d < _INT64 for d in shape) or math.prod(shape) >= _INT64:
        raise NpyError(f"the shape {str(shape)[:80]} is not a shape")
    return header, start + length


def _array_info(path: list[str | int], header: dict[str, object]) -> TensorInfo:
    shape = list(header["shape"])  # type: ignore[call-overload]
    descr = header["descr"]
    if isinstance(descr, str):
        dtype = "object" if _is_object(header) else dtype_from_numpy_code(descr)
        nbytes: int | None = None if dtype == "object" else math.prod(shape) * itemsize_of_numpy_code(descr)
    else:
        dtype, nbytes = "numpy:structured", None
    stride = contiguous_stride(shape)
    if header.get("fortran_order") is True:
        stride = list(reversed(contiguous_stride(list(reversed(shape)))))
    return TensorInfo(path=path, shape=shape, dtype=dtype, requires_grad=False, kind="ndarray", stride=stride,
                      storage=".".join(map(str, path)), storage_nbytes=nbytes)


def _member_head(f: BinaryIO, member: Member, size: int) -> bytes:
    """The first bytes of a member: its .npy header, inflated if the member is deflated."""
    start = data_offset(f, member)
    f.seek(start)
    raw = f.read(min(member.compressed_size, _MAX_HEADER + 12 if member.method == 0 else 1 << 20))
    if member.method == 0:
        return raw
    if member.method == 8:
        try:
            return zlib.decompressobj(-15).decompress(raw, _MAX_HEADER + 12)
        except zlib.error as exc:
            raise NpyError(f"cannot be inflated ({exc})") from None
    raise NpyError(f"uses zip compression method {member.method}")
