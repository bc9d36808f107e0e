"""torch's legacy format (before 1.6, or `_use_new_zipfile_serialization=False`), and plain pickles.

A legacy file is five pickles in a row — magic number, protocol version, sys info, the object,
the sorted storage keys — followed by each storage as an 8-byte element count and raw bytes.
Only the pickles and the 8-byte counts are read; storage bytes are skipped with seek().
"""

from __future__ import annotations

import os
import pickle
import re
import struct
from typing import Any, BinaryIO

from .dtypes import UNTYPED, itemsize
from .limits import Limits
from .model import Checkpoint, Problem
from .pickle_opcodes import weights_only_refusal
from .pickled import PickleError, fill_checkpoint, report_globals, unpickle
from .safe_repr import key_text, safe_repr
from .unpickler import StorageRef, UnpickleLog, storage_type_dtype

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# The magic-number pickle as torch.save writes it at each pickle_protocol (0-5).
_MAGIC_PICKLES = tuple({pickle.dumps(MAGIC_NUMBER, protocol=p) for p in range(6)})


def probe_legacy(head: bytes) -> bool:
    return head.startswith(_MAGIC_PICKLES)


# Protocol 0/1 GLOBAL: "c<module>\n<name>\n", how pickle.dumps starts an object that is a REDUCE.
_TEXT_GLOBAL = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


def probe_pickle(head: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO; protocol 0/1 pickles of dicts/lists with MARK/EMPTY_*,
    # of objects with GLOBAL (torch.load would run such a file: it must be read, not dismissed).
    return (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
            or head[:1] in (b"}", b"]", b"(") or _TEXT_GLOBAL.match(head) is not None)


def read_legacy_checkpoint(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="torch-legacy")
    size = os.path.getsize(path)
    with open(path, "rb", buffering=1 << 20) as stream:
        log = UnpickleLog()
        storages: dict[str, StorageRef] = {}
        try:
            # torch.load reads these three with plain pickle.load, then the object with its own
            # unpickler, then the key list with plain pickle.load again.
            magic = unpickle(stream, "magic number", _no_persistent_ids, log, limits, torch_loader=False)
            protocol = unpickle(stream, "protocol version", _no_persistent_ids, log, limits, torch_loader=False)
            if type(magic) is not int or magic != MAGIC_NUMBER or type(protocol) is not int or protocol != PROTOCOL_VERSION:
                checkpoint.errors.append(Problem(
                    "corrupt", f"the legacy header says magic {safe_repr(magic)}, protocol {safe_repr(protocol)}; "
                    f"torch.load accepts only magic {MAGIC_NUMBER:#x} and protocol {PROTOCOL_VERSION} and refuses "
                    "this file (after running its first two pickles)", where="magic number"))
                return report_globals(checkpoint, log)
            sys_info = unpickle(stream, "sys info", _no_persistent_ids, log, limits, torch_loader=False)
            checkpoint.metadata["protocol version"] = safe_repr(protocol)
            if isinstance(sys_info, dict):
                little = sys_info.get("little_endian", True)
                checkpoint.metadata["byteorder"] = "little" if little else "big"
                if type(little) is not bool:
                    checkpoint.warnings.append(Problem(
                        "corrupt", f"sys info's little_endian is {safe_repr(little)}, not true or false",
                        where="sys info"))
            root = unpickle(stream, "main pickle", lambda pid: _legacy_storage(pid, storages), log, limits)
            keys = unpickle(stream, "storage keys", _no_persistent_ids, log, limits, torch_loader=False)
        except PickleError as exc:
            checkpoint.errors.append(Problem(exc.kind, str(exc), where=exc.where))
            return report_globals(checkpoint, log)
        checkpoint.weights_only_refusal = _weights_only_refusal(stream)
        _locate_storages(stream, keys, storages, size, checkpoint)
    untyped = [key for key, ref in storages.items() if ref.dtype == UNTYPED]
    if untyped:
        # torch.save writes one for a dtype without a typed storage class (uint16, float8, ...),
        # and torch's legacy reader then asks it for the `dtype` it lacks (AttributeError).
        checkpoint.errors.append(Problem(
            "unloadable", f"torch.load fails on this file, with weights_only=True or False: {len(untyped):,} "
            "storage(s) are saved as torch.UntypedStorage, which torch's legacy-format reader cannot read "
            "(\"'UntypedStorage' has no attribute 'dtype'\"); torch.save writes that for dtypes such as uint16 "
            "or float8 in the legacy format. Save with torch.save's default (zip) format instead",
            where=f"storage {untyped[0]}"))
    return fill_checkpoint(checkpoint, root, log, limits)


def read_pickle_file(path: str, limits: Limits) -> Checkpoint:
    """A file that is one plain pickle (no torch framing): read it the same restricted way."""
    checkpoint = Checkpoint(file=path, format="pickle")
    if os.path.getsize(path) > limits.max_pickle_bytes:
        checkpoint.errors.append(Problem("limit", f"pickle over the {limits.max_pickle_bytes:,}-byte limit"))
        return checkpoint
    log = UnpickleLog()
    with open(path, "rb") as f:
        try:
            root = unpickle(f, "pickle", _no_persistent_ids, log, limits, torch_loader=False)
        except PickleError as exc:
            checkpoint.errors.append(Problem(exc.kind, str(exc), where=exc.where))
            return report_globals(checkpoint, log)
    if type(root) is int and root == MAGIC_NUMBER:  # the magic number however pickled: torch reads on
        return read_legacy_checkpoint(path, limits)
    return fill_checkpoint(checkpoint, root, log, limits)


def _weights_only_refusal(stream: BinaryIO) -> str:
    """With weights_only=True, torch reads all five pickles (the three of the header too) with
    its own unpickler: the first opcode it refuses in them, if any."""
    end = stream.tell()
    pickles = _pread(stream, 0, end)
    stream.seek(end)
    return weights_only_refusal(pickles, "a pickle of the file", pickles=5)


def _no_persistent_ids(pid: Any) -> Any:
    raise ValueError(f"unexpected persistent id {safe_repr(pid)}")


def _legacy_storage(pid: Any, storages: dict[str, StorageRef]) -> Any:
    if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module":
        return pid[1]  # a whole-model save names its classes (and their source) this way
    if not (type(pid) is tuple and len(pid) == 6 and pid[0] == "storage"):
        raise ValueError(f"persistent id {safe_repr(pid)} is not ('storage', type, key, location, numel, view), "
                         "the kind torch reads from a legacy checkpoint")
    storage_type, root_key, location, numel, view = pid[1:6]
    if type(location) is not str or type(numel) is not int or not 0 <= numel < 1 << 63:
        raise ValueError(f"persistent id {safe_repr(pid)} has a location or element count torch cannot use")
    key = key_text(root_key)  # never hash or str() an arbitrary object: it may be a DAG bomb
    if key is None:
        raise ValueError(f"storage key {safe_repr(root_key)} is not a name")
    ref = storages.get(key)
    if ref is None:
        dtype = storage_type_dtype(storage_type)
        ref = StorageRef(key=key, dtype=dtype, location=location if type(location) is str else safe_repr(location),
                         numel=numel if type(numel) is int and 0 <= numel < 1 << 63 else 0)
        storages[key] = ref
    if view is None:
        return ref
    if not (isinstance(view, tuple) and len(view) == 3 and type(view[1]) is int and type(view[2]) is int):
        raise ValueError(f"storage {key} has a view record {safe_repr(view)}, not (key, offset, size)")
    offset, size = view[1], view[2]
    if offset < 0 or size < 0 or offset + size > ref.numel:
        raise ValueError(f"a view of storage {key} covers elements {offset:,} to {offset + size:,}, past the "
                         f"{ref.numel:,} elements of the storage")
    # A view of the root storage: tensors built on it start `offset` elements in and end by its end.
    return StorageRef(ref.key, ref.dtype, ref.location, ref.numel, (offset + size) * itemsize(ref.dtype),
                      view_offset=offset, view_numel=size)


def _locate_storages(stream: BinaryIO, keys: Any, storages: dict[str, StorageRef],
                     size: int, checkpoint: Checkpoint) -> None:
    """Walk the raw storage records (8-byte count + bytes each) without reading the bytes."""
    if not isinstance(keys, list):
        checkpoint.warnings.append(Problem("corrupt", "the storage key list is not a list", where="storage keys"))
        return
    position = stream.tell()
    for raw_key in keys:
        key = key_text(raw_key) or safe_repr(raw_key)
        ref = storages.get(key)
        header = _pread(stream, position, 8)
        if len(header) < 8:
            checkpoint.errors.append(Problem(
                "truncated", f"the file ends before storage {key} (byte {position:,} of {size:,})",
                where=f"storage {key}",
            ))
            return
        (numel,) = struct.unpack("<q", header)
        element = itemsize(ref.dtype) if ref else 1
        end = position + 8 + numel * element
        if ref is not None:
            checkpoint.storage_offsets[key] = position + 8
        if numel < 0 or end > size:
            checkpoint.errors.append(Problem(
                "truncated", f"storage {key} claims {numel:,} elements ({numel * element:,} bytes) but the file "
                f"ends at byte {size:,}", where=f"storage {key}",
            ))
            return
        position = end


def _pread(stream: BinaryIO, position: int, n: int) -> bytes:
    stream.seek(position)
    return stream.read(n)
