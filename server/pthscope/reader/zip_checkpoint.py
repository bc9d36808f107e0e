"""torch's zip format (torch >= 1.6): `<archive>/data.pkl` plus one member per storage.

Reads the zip's central directory and the pickles only; storage sizes come from the directory.
The record shown is the one torch 2.13 runs (caffe2/serialize/inline_container.cc,
`PyTorchStreamReader::init` and `getRecord`; torch/serialization.py, `torch.load` and `_load`):
the archive name is the first central-directory entry's name up to its first `/`, and
`<archive>/data.pkl`, `<archive>/data/<key>`, `byteorder`, `version` are found by miniz's lookup
(zip_directory.py). torch refuses an archive with a member outside that folder, without a
`version` record, or with a byteorder other than little/big; those are errors here too. Every
other pickle in the archive is read for its globals as well (marked `unread`: torch.load runs
none of them) and named as a crafted-archive problem. TorchScript archives (torch's test:
a `constants.pkl` record) are read by torchscript.py.
"""

from __future__ import annotations

import functools
import io
import re
from itertools import repeat
from typing import Any

from .dtypes import ITEMSIZE, UNTYPED
from .limits import Limits
from .model import Checkpoint, Problem
from .pickle_opcodes import weights_only_refusal
from .pickled import PickleError, fill_checkpoint, report_globals, side_pickle_limit, unpickle
from .safe_repr import key_text, safe_repr
from .torch_route import torch_reads_as_zip
from .unpickler import StorageRef, StorageType, UnpickleLog, storage_type_dtype
from .zip_directory import Member, ZipDirectory, ZipError, file_size_of, read_directory, read_member

_SMALL_MEMBERS = ("byteorder", ".format_version", ".storage_alignment", "version", ".data/version")
_NAME_BUFFER = 511  # miniz copies at most this many bytes of a name for getAllRecords
_PICKLE_BUFFER = 1 << 16


def probe_zip(head: bytes) -> bool:
    return torch_reads_as_zip(head)  # anything else torch.load reads as a tar or as pickles


def read_zip_checkpoint(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="torch-zip")
    with open(path, "rb") as f:
        try:
            return _read(f, checkpoint, limits)
        except ZipError as exc:
            checkpoint.errors.append(Problem("corrupt", str(exc), where=exc.where))
            return checkpoint


def _c_string(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _read(f: Any, checkpoint: Checkpoint, limits: Limits) -> Checkpoint:
    size = file_size_of(f)
    directory = read_directory(f, size)
    refuse = checkpoint.errors.append
    for reason in directory.refusals[:3]:
        refuse(Problem("corrupt", f"torch's zip reader refuses this archive: {reason}", where="zip directory"))
    if not len(directory):
        checkpoint.format = "zip"
        refuse(Problem("unsupported", "the zip archive is empty; torch.load refuses it", where="zip directory"))
        return checkpoint
    first = directory.names[0]
    slash = first.find(b"/")
    prefix = first[:slash + 1] if slash >= 0 else b""
    records = _record_names(directory)
    # "constants.pkl" among getAllRecords' names (a prefix with a NUL matches no C string)
    torchscript = bool(prefix) and prefix + b"constants.pkl" in records
    main = directory.get(prefix + b"data.pkl") if prefix else None
    if not torchscript and main is None:
        if prefix and not any(n.lower().endswith(".pkl") for n in _records_in(records, prefix)):
            checkpoint.format = "zip"
            refuse(Problem("unsupported", f"a zip archive without data.pkl is not a torch checkpoint "
                           f"({len(directory):,} members)", where="zip directory"))
            return checkpoint
        refuse(Problem("crafted", _no_main_record(first, prefix), where=directory.member(0).name))
    if prefix:
        checkpoint.metadata["record prefix"] = prefix[:-1].decode("utf-8", "replace")
        _check_archive_rules(directory, prefix, records, checkpoint)
        _read_small_records(f, directory, prefix, size, checkpoint)
    # Everything refused so far, torch refuses before it unpickles a byte: its pickles run nothing.
    checkpoint.torch_load_refuses = checkpoint.errors[0].message if checkpoint.errors else ""
    log = UnpickleLog()
    storages: dict[str, StorageRef] = {}
    prefix_text = prefix.decode("utf-8", "surrogateescape")
    persistent_load = _storage_loader(directory, prefix_text, storages, checkpoint, whole=not torchscript)
    others = _other_pickles(directory, main)
    if torchscript:
        from .torchscript import read_torchscript

        loader_for_folder = functools.partial(_storage_loader, directory, prefix_text, storages, checkpoint)
        return read_torchscript(f, directory, prefix, size, checkpoint, log, limits, loader_for_folder)
    unread = UnpickleLog()  # what the pickles torch.load does not read name
    left = limits.max_side_pickle_bytes
    for member in others:
        _analyse_other_pickle(f, member, size, unread, limits, checkpoint, crafted=True, main=main, left=left)
        left -= member.size
    if main is None:
        return report_globals(checkpoint, log, unread)
    if main.size > limits.max_pickle_bytes:
        refuse(Problem("limit", f"{main.name} is {main.size:,} bytes, over the {limits.max_pickle_bytes:,}-byte "
                       "limit", where=main.name))
        return report_globals(checkpoint, log, unread)
    # Buffered: the C unpickler then parses from the buffer it peeks at, instead of calling
    # read() for every opcode (3x faster on a pickle of 30,000 tensors).
    pickled = read_member(f, main, size)
    stream = io.BufferedReader(io.BytesIO(pickled), _PICKLE_BUFFER)
    try:
        root = unpickle(stream, main.name, persistent_load, log, limits)
    except PickleError as exc:
        refuse(Problem(exc.kind, str(exc), where=exc.where))
        return report_globals(checkpoint, log, unread)
    checkpoint.weights_only_refusal = weights_only_refusal(pickled, main.name)
    # The tree needs none of these: let go of the directory, the pickle and the storage records
    # first (for 30,000 members, 15 MiB less at the peak).
    del directory, records, persistent_load, storages, stream, others, pickled
    return fill_checkpoint(checkpoint, root, log, limits, unread)


def _record_names(directory: ZipDirectory) -> list[bytes]:
    """Each member's name as torch's getAllRecords sees it: a C string of at most 511 bytes."""
    names = directory.names
    if b"\0" not in b"".join(names) and max(map(len, names)) <= _NAME_BUFFER:
        return names  # the usual case, checked in C: every name is its own C string
    return [_c_string(raw[:_NAME_BUFFER]) for raw in names]


def _in_folder(records: list[bytes], prefix: bytes) -> list[bool]:
    """For each record name: does torch see it inside the archive folder?"""
    folder = _c_string(prefix)[:len(prefix)]
    if len(folder) == len(prefix):
        return list(map(bytes.startswith, records, repeat(folder)))
    return [name[:len(prefix)] == folder for name in records]


def _records_in(records: list[bytes], prefix: bytes) -> set[str]:
    """torch's getAllRecords: the names inside the archive folder, without the prefix."""
    return {name[len(prefix):].decode("utf-8", "replace")
            for name, inside in zip(records, _in_folder(records, prefix), strict=True) if inside}


def _other_pickles(directory: ZipDirectory, main: Member | None) -> list[Member]:
    """Every member named *.pkl except the main record."""
    names = directory.names
    own = main.raw.lower().count(b".pkl") if main is not None else 0
    if b"\n".join(names).lower().count(b".pkl") == own:
        return []  # no other name so much as contains ".pkl" (checked in C)
    return [directory.member(i) for i, raw in enumerate(names)
            if raw.lower().endswith(b".pkl") and (main is None or directory.member(i) is not main)]


def _no_main_record(first: bytes, prefix: bytes) -> str:
    shown = safe_repr(first.decode("utf-8", "replace"))
    if not prefix:
        return (f"the archive's first member {shown} is not inside a folder, so torch.load refuses the archive "
                "(it takes the archive's folder from its first member); its pickles are read for their globals")
    return (f"the archive has no {safe_repr(prefix.decode('utf-8', 'replace') + 'data.pkl')} (torch reads the folder "
            "of the first member); torch.load would fail, other loaders might read its other pickles, whose "
            "globals are listed")


def _check_archive_rules(directory: ZipDirectory, prefix: bytes, records: list[bytes], checkpoint: Checkpoint) -> None:
    """What torch.load checks before it unpickles anything: it refuses such an archive."""
    refuse = checkpoint.errors.append
    inside = _in_folder(records, prefix)
    outside = [] if all(inside) else [directory.member(i).name for i, ok in enumerate(inside) if not ok]
    if outside:
        refuse(Problem("crafted", f"{len(outside):,} member(s) lie outside the archive folder "
                       f"{safe_repr(prefix.decode('utf-8', 'replace'))} ({safe_repr(outside[0])}, ...): torch.load "
                       "refuses such an archive; such a file is crafted or not a torch checkpoint", where=outside[0]))
    if b"\0" in prefix:
        refuse(Problem("crafted", "the archive folder name holds a NUL byte: which records torch would read cannot "
                       "be told; such a file is crafted", where=directory.member(0).name))
    colliding = directory.colliding_names()
    if colliding:
        chosen = directory.get(colliding[0])
        checkpoint.warnings.append(Problem(
            "crafted", f"{len(colliding):,} members share a name (ignoring case), e.g. {safe_repr(colliding[0])}: "
            f"shown is the copy torch's zip reader finds (at byte {chosen.header_offset if chosen else 0:,}); "
            "other zip tools may read another. Such an archive is crafted", where=colliding[0]))
    if directory.get(prefix + b".data/version") is None and directory.get(prefix + b"version") is None:
        refuse(Problem("corrupt", "the archive has no version record; torch.load refuses it", where="zip directory"))


def _read_small_records(f: Any, directory: ZipDirectory, prefix: bytes, size: int, checkpoint: Checkpoint) -> None:
    versions: dict[str, tuple[bytes, str]] = {}
    for small in _SMALL_MEMBERS:
        member = directory.get(prefix + small.encode())
        if member is None or member.unreadable_reason():
            continue
        if member.size > 64:  # no record torch.save writes is this long
            if small in _CHECKED_BEFORE_UNPICKLING:
                checkpoint.errors.append(Problem(
                    "unloadable", f"the {small} record is {member.size:,} bytes, which torch.load cannot read as "
                    f"{_CHECKED_BEFORE_UNPICKLING[small]}: it refuses the file before unpickling anything",
                    where=member.name))
            continue
        data = read_member(f, member, size)
        checkpoint.metadata[small.lstrip(".")] = data.decode("utf-8", "replace").strip()
        if small in ("version", ".data/version"):
            versions[small] = (data, member.name)
        if small == "byteorder" and data not in (b"little", b"big"):
            checkpoint.errors.append(Problem(
                "corrupt", f"the byteorder record says {safe_repr(data[:20])}; torch.load accepts only 'little' or "
                "'big' and refuses this file", where=member.name))
        if small == ".storage_alignment" and not _is_int_text(data):
            checkpoint.errors.append(Problem(
                "unloadable", f"the .storage_alignment record says {safe_repr(data[:20])}, not a number: torch.load "
                "refuses the file before unpickling anything", where=member.name))
    version = versions.get(".data/version") or versions.get("version")  # the one torch reads
    if version is not None:
        _check_version(*version, checkpoint)


# The records torch.load reads before unpickling (torch/serialization.py _load), and what it accepts.
_CHECKED_BEFORE_UNPICKLING = {"byteorder": "'little' or 'big'", ".storage_alignment": "a number"}


def _is_int_text(data: bytes) -> bool:
    """What torch's `int(record)` accepts."""
    try:
        int(data)
    except ValueError:
        return False
    return True


# torch 2.13's reader (caffe2/serialize/inline_container.cc) parses the record as a signed
# integer (strtoll: leading whitespace, a sign, digits) and reads format versions 1 to 10.
_VERSION_NUMBER = re.compile(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_READ_VERSIONS = range(1, 11)


def _check_version(data: bytes, where: str, checkpoint: Checkpoint) -> None:
    number = _VERSION_NUMBER.match(data)
    if number is None:
        checkpoint.errors.append(Problem(
            "unloadable", f"the archive's version record says {safe_repr(data)}, which torch cannot read as a number: "
            "torch.load refuses the file before unpickling anything", where=where))
    elif int(number.group(1)) not in _READ_VERSIONS:
        checkpoint.errors.append(Problem(
            "unloadable", f"the archive says it is format version {int(number.group(1)):,}; torch 2.13 reads versions "
            f"{_READ_VERSIONS[0]} to {_READ_VERSIONS[-1]} and refuses the file before unpickling anything "
            "(a newer torch may read it)", where=where))


def _analyse_other_pickle(f: Any, member: Member, size: int, log: UnpickleLog, limits: Limits,
                          checkpoint: Checkpoint, crafted: bool, main: Member | None = None, left: int = 0) -> None:
    """Read another pickle of the archive for its globals only (into the same log); `left`: the
    bytes of such pickles still to be read in this archive."""
    if crafted:
        runs = f"torch.load runs {main.name}" if main else "torch.load finds no main record"
        checkpoint.warnings.append(Problem(
            "crafted", f"the archive holds another pickle, {safe_repr(member.name)}, which torch.load does not run "
            f"({runs}); its globals are listed as not read by torch.load (a Python unpickler run on it by hand "
            "would run them)", where=member.name))
    if member.size > left:
        checkpoint.warnings.append(side_pickle_limit(member.name, limits))
        return
    if member.unreadable_reason():
        return
    try:
        stream = io.BytesIO(read_member(f, member, size))
        unpickle(stream, member.name, _any_storage, log, limits)
    except (PickleError, ZipError):
        pass  # its globals up to the damage are in the log


def _any_storage(pid: Any) -> Any:
    return StorageRef("?", UNTYPED, "cpu", 0, 0)


def _storage_loader(directory: ZipDirectory, prefix: str, storages: dict[str, StorageRef],
                    checkpoint: Checkpoint, folder: str = "data", whole: bool = False) -> Any:
    """Storages named by persistent ids, in `<prefix><folder>/<key>` (a TorchScript archive's
    constants are in `constants/`; their storage keys say so: `constants/0`). `whole`: torch.load
    reads each storage's record whole, so a missing one or one of another size than its id
    says fails the load."""
    data_prefix = f"{prefix}{folder}/"
    key_prefix = "" if folder == "data" else f"{folder}/"
    new_object, set_field = object.__new__, object.__setattr__
    by_name = directory.folded_names()  # None when names collide: then miniz's own search
    sizes = directory.sizes()
    header_offsets = directory.header_offsets()

    def persistent_load(pid: Any) -> StorageRef:
        # torch's _load: ("storage", storage_type, key, location, numel), exactly. Called once per
        # tensor: the usual id is checked inline, any other by `_checked_storage`, which names the problem.
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError(f"persistent id {safe_repr(pid)} is not ('storage', type, key, location, numel), "
                             "the only kind torch reads from a zip checkpoint")
        _, storage_type, key, location, numel = pid
        if type(key) is not str:  # never hash or str() an arbitrary object: it may be a DAG bomb
            key = key_text(key)
            if key is None:
                raise ValueError(f"storage key {safe_repr(pid[2])} is not a name")
        if key_prefix:
            key = key_prefix + key
        ref = storages.get(key)
        if ref is not None:
            return ref
        if type(storage_type) is StorageType and type(location) is str and type(numel) is int and 0 <= numel < 1 << 63:
            dtype = storage_type.dtype
        else:
            dtype = _checked_storage(key, storage_type, location, numel)
        name = data_prefix + key[len(key_prefix):]
        if by_name is not None and "\0" not in name:
            index = by_name.get(name.encode("utf-8", "surrogateescape").lower())
        else:
            index = directory.index(name)
        # StorageRef(key, dtype, location, numel, nbytes) in two C calls, no frame: one per storage
        ref = storages[key] = new_object(StorageRef)
        set_field(ref, "fields", (key, dtype, location, numel, None if index is None else sizes[index], 0, None))
        if index is not None:  # where `values` finds its bytes, whatever the record prefix
            checkpoint.storage_offsets[key] = header_offsets[index]
            if (whole and dtype in ITEMSIZE and sizes[index] != numel * ITEMSIZE[dtype]
                    and len(checkpoint.errors) < _LISTED_STORAGE_ERRORS):
                checkpoint.errors.append(_record_size_problem(name, sizes[index], numel, dtype))
        elif not whole:
            checkpoint.warnings.append(Problem("missing", f"storage {key} has no member {name} in the archive", where=name))
        elif len(checkpoint.errors) < _LISTED_STORAGE_ERRORS:
            checkpoint.errors.append(Problem(
                "unloadable", f"storage {key} has no member {name} in the archive: torch.load fails on it "
                "(\"failed locating file\"), whatever weights_only says", where=name))
        return ref

    return persistent_load


_LISTED_STORAGE_ERRORS = 20  # the first few name the problem; a crafted file may have a million


def _record_size_problem(name: str, size: int, numel: int, dtype: str) -> Problem:
    return Problem("unloadable", f"{name} is {size:,} bytes, but its persistent id says {numel:,} elements of "
                   f"{dtype} ({numel * ITEMSIZE[dtype]:,} bytes): torch.load fails on it (\"record size does not "
                   "match expected size\"), whatever weights_only says; with mmap=True it reads the bytes anyway",
                   where=name)


def _checked_storage(key: str, storage_type: Any, location: Any, numel: Any) -> str:
    """The dtype of a storage whose persistent id is not the usual kind; ValueError naming what
    torch could not use (its storage class, location or element count)."""
    dtype = storage_type_dtype(storage_type)
    if type(location) is not str:
        raise ValueError(f"storage {key} has location {safe_repr(location)}, not a device name")
    if type(numel) is not int or not 0 <= numel < 1 << 63:
        raise ValueError(f"storage {key} has {safe_repr(numel)} elements, not a count")
    return dtype
