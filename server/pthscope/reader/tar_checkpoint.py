"""torch's tar format (torch before 0.4), which torch.load still reads — and runs.

For a file that is not a zip, `torch.load` first tries `tarfile.open(f, "r:")`; if that works it
extracts the member `storages` and reads it with `pickle.load`, then `tensors`, then `pickle`
(torch/serialization.py, `legacy_load`). `weights_only=True` refuses the format, so every such
file needs `weights_only=False`: all three members' pickles run unrestricted. This reader finds
the members the way torch does (the stdlib's `tarfile`, the last member of each name), reads
every pickle with the restricted unpickler, so the verdict covers all three, and builds the
tensors from the records torch would:

* `storages`: a pickled count, then per storage a pickled `(key, location, storage_type)`, an
  8-byte element count and the raw bytes (skipped); then a pickled list of storage views
  `(view_key, root_key, offset, numel)`.
* `tensors`: a pickled count, then per tensor a pickled `(key, storage_key, tensor_type)` and
  raw int32 ndim, 4 spare bytes, ndim int64 sizes, ndim int64 strides, int64 storage offset.
* `pickle`: the saved object; persistent ids are keys of those tensors/storages, or a
  `(class, source file, source)` tuple for a module's class.
"""

from __future__ import annotations

import struct
import tarfile
from typing import IO, Any

from .dtypes import itemsize
from .limits import Limits
from .model import Checkpoint, Problem
from .pickled import PickleError, fill_checkpoint, report_globals, unpickle
from .safe_repr import key_text, safe_repr
from .unpickler import StorageRef, UnpickleLog, _tensor_on, storage_type_dtype

_MEMBERS = ("storages", "tensors", "pickle")
# What torch < 0.4 wrote beside them and torch.load does not read: no sign of crafting.
_WRITTEN_UNREAD = ("sys_info",)
_MAX_MEMBERS = 100_000  # headers walked; torch walks them all, so more is itself suspicious
_INT64 = 1 << 63


class _TarError(Exception):
    def __init__(self, message: str, where: str, kind: str = "corrupt") -> None:
        super().__init__(message)
        self.where = where
        self.kind = kind


def probe_tar_checkpoint(head: bytes, path: str) -> bool:
    """A tar archive (as `tarfile.open(mode="r:")` accepts it) with a `storages` member: the
    first thing torch.load extracts and unpickles from a tar."""
    try:
        with tarfile.open(path, "r:") as archive:
            for _ in range(_MAX_MEMBERS):
                member = archive.next()
                if member is None:
                    return False
                if member.name == "storages":
                    return True
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False
    return True  # too many members to look through: let the reader say so


def read_tar_checkpoint(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="torch-tar")
    checkpoint.warnings.append(Problem(
        "legacy-format", "torch's tar format (torch before 0.4): torch.load(weights_only=True) refuses it and "
        "weights_only=False runs the pickles of its storages, tensors and pickle members; once you trust it, "
        "load it and save it again with torch.save for the current format"))
    log = UnpickleLog()
    try:
        with tarfile.open(path, "r:") as archive:
            members = _torch_members(archive, checkpoint)
            storages = _read_storages(archive, members["storages"], log, limits, checkpoint)
            records: dict[int, Any] = dict(storages)
            if "tensors" in members:
                records.update(_read_tensors(archive, members["tensors"], storages, log, limits))
            if "pickle" not in members:
                raise _TarError("the archive has no `pickle` member; torch.load fails after running the pickles "
                                "of `storages` and `tensors`", "pickle")
            with _member_stream(archive, members["pickle"]) as stream:
                root = unpickle(stream, "pickle", lambda pid: _persistent(pid, records), log, limits)
    except _TarError as exc:
        checkpoint.errors.append(Problem(exc.kind, str(exc), where=exc.where))
        return report_globals(checkpoint, log)
    except PickleError as exc:
        checkpoint.errors.append(Problem(exc.kind, str(exc), where=exc.where))
        return report_globals(checkpoint, log)
    except (tarfile.TarError, OSError, EOFError) as exc:
        checkpoint.errors.append(Problem("corrupt", f"the tar archive cannot be read: {exc}", where="tar"))
        return report_globals(checkpoint, log)
    return fill_checkpoint(checkpoint, root, log, limits)


def _torch_members(archive: tarfile.TarFile, checkpoint: Checkpoint) -> dict[str, tarfile.TarInfo]:
    """The members torch would use: `getmember(name)`, the last of each name, after walking all."""
    for count in range(_MAX_MEMBERS + 1):
        if archive.next() is None:
            break
        if count == _MAX_MEMBERS:
            raise _TarError(f"the archive has more than {_MAX_MEMBERS:,} members; torch.load would look through all "
                            "of them for the last `storages`, `tensors` and `pickle` — this one is likely crafted",
                            "tar", kind="limit")
    found: dict[str, tarfile.TarInfo] = {}
    for name in _MEMBERS:
        try:
            member = archive.getmember(name)
        except KeyError:
            continue
        if not member.isreg():
            target = f" to {safe_repr(member.linkname)}" if member.issym() or member.islnk() else ""
            raise _TarError(f"the `{name}` member is not a file but a {_TYPE_NAMES.get(member.type, 'special entry')}"
                            f"{target}: torch.load would extract it and read what it points to as a pickle; "
                            "such an archive is crafted", name, kind="crafted")
        found[name] = member
        copies = sum(1 for m in archive.getmembers() if m.name == name)
        if copies > 1:
            checkpoint.warnings.append(Problem(
                "crafted", f"`{name}` appears {copies} times; torch.load reads the last copy (shown here) — "
                "an archive with such copies is likely crafted", where=name))
    if "storages" not in found:
        raise _TarError("the archive has no `storages` member: torch.load fails on it", "storages")
    others = [m.name for m in archive.getmembers() if m.name not in _MEMBERS and m.name not in _WRITTEN_UNREAD]
    if others:
        shown = ", ".join(safe_repr(n) for n in others[:5]) + (", …" if len(others) > 5 else "")
        checkpoint.warnings.append(Problem(
            "crafted", f"members torch's tar format does not have: {shown}; torch.load ignores them", where="tar"))
    return found


_TYPE_NAMES = {tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "folder",
               tarfile.FIFOTYPE: "pipe", tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device"}


class _member_stream:
    """A member's bytes as a seekable stream, and where they start in the file."""

    def __init__(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        stream = archive.extractfile(member)
        if stream is None:
            raise _TarError(f"the `{member.name}` member has no data", member.name)
        self.stream: IO[bytes] = stream

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, *_: object) -> None:
        self.stream.close()


def _read_storages(archive: tarfile.TarFile, member: tarfile.TarInfo, log: UnpickleLog, limits: Limits,
                   checkpoint: Checkpoint) -> dict[int, StorageRef]:
    storages: dict[int, StorageRef] = {}
    with _member_stream(archive, member) as stream:
        count = unpickle(stream, "storages (count)", _no_ids, log, limits, torch_loader=False)
        if type(count) is not int or not 0 <= count < _INT64:
            raise _TarError(f"the storage count is {safe_repr(count)}, not a number of storages", "storages")
        for index in range(count):
            where = f"storages (storage {index})"
            record = unpickle(stream, where, _no_ids, log, limits, torch_loader=False)
            if not (isinstance(record, tuple) and len(record) == 3):
                raise _TarError(f"storage record {index} is {safe_repr(record)}, not (key, location, type)", where)
            raw_key, location, storage_type = record
            try:
                dtype = storage_type_dtype(storage_type)
            except ValueError as exc:
                raise _TarError(str(exc), where) from None
            key = _int_key(raw_key, where)
            header = stream.read(8)
            if len(header) < 8:
                raise _TarError(f"the archive ends inside storage {key}", where, kind="truncated")
            (numel,) = struct.unpack("<q", header)
            nbytes = numel * itemsize(dtype)
            start = stream.tell()
            if numel < 0 or start + nbytes > member.size:
                raise _TarError(f"storage {key} claims {numel:,} elements ({nbytes:,} bytes) but `storages` holds "
                                f"{member.size - start:,} more bytes", where, kind="truncated")
            text_location = location if type(location) is str else safe_repr(location)
            storages[key] = StorageRef(str(key), dtype, text_location, numel, nbytes)
            checkpoint.storage_offsets[str(key)] = member.offset_data + start
            stream.seek(start + nbytes)
        views = unpickle(stream, "storages (views)", _no_ids, log, limits, torch_loader=False)
        for view in views if isinstance(views, list) else ():
            if isinstance(view, tuple) and len(view) == 4 and all(type(v) is int for v in view[1:]):
                target, root, offset, numel = view
                base = storages.get(root)
                if base is not None and type(target) is int:
                    storages[target] = StorageRef(base.key, base.dtype, base.location, base.numel, base.nbytes,
                                                  view_offset=offset, view_numel=numel)
    return storages


def _read_tensors(archive: tarfile.TarFile, member: tarfile.TarInfo, storages: dict[int, StorageRef],
                  log: UnpickleLog, limits: Limits) -> dict[int, Any]:
    tensors: dict[int, Any] = {}
    with _member_stream(archive, member) as stream:
        count = unpickle(stream, "tensors (count)", _no_ids, log, limits, torch_loader=False)
        if type(count) is not int or not 0 <= count < _INT64:
            raise _TarError(f"the tensor count is {safe_repr(count)}, not a number of tensors", "tensors")
        for index in range(count):
            where = f"tensors (tensor {index})"
            record = unpickle(stream, where, _no_ids, log, limits, torch_loader=False)
            if not (isinstance(record, tuple) and len(record) == 3):
                raise _TarError(f"tensor record {index} is {safe_repr(record)}, not (key, storage, type)", where)
            key, storage_key = _int_key(record[0], where), _int_key(record[1], where)
            storage = storages.get(storage_key)
            if storage is None:
                raise _TarError(f"tensor {key} names storage {storage_key}, which `storages` does not hold", where)
            head = stream.read(8)
            if len(head) < 8:
                raise _TarError(f"the archive ends inside tensor {key}", where, kind="truncated")
            (ndim,) = struct.unpack_from("<i", head)
            if not 0 <= ndim <= 64:
                raise _TarError(f"tensor {key} claims {ndim} dimensions", where)
            body = stream.read(16 * ndim + 8)
            if len(body) < 16 * ndim + 8:
                raise _TarError(f"the archive ends inside tensor {key}", where, kind="truncated")
            values = struct.unpack(f"<{2 * ndim + 1}q", body)
            shape, stride, offset = list(values[:ndim]), list(values[ndim:2 * ndim]), values[-1]
            tensors[key] = _tensor_on(storage, offset + storage.view_offset, shape, stride, False, storage.dtype)
    return tensors


def _persistent(pid: Any, records: dict[int, Any]) -> Any:
    if isinstance(pid, tuple) and pid:
        return pid[0]  # (class, source file, source): a module's class, checked against its source
    key = _int_key(pid, "pickle")
    if key not in records:
        raise ValueError(f"persistent id {safe_repr(pid)} names no storage or tensor of the archive")
    return records[key]


def _int_key(raw: Any, where: str) -> int:
    """A key as torch uses it: `int(key)`."""
    text = key_text(raw)
    try:
        key = int(text) if text is not None else None
    except ValueError:
        key = None
    if key is None:
        raise _TarError(f"the key {safe_repr(raw)} is not a number", where)
    return key


def _no_ids(pid: Any) -> Any:
    raise ValueError(f"unexpected persistent id {safe_repr(pid)}")

