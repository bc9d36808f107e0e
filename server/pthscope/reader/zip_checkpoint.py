"""torch's zip format (torch >= 1.6): `<prefix>/data.pkl` plus one member per storage.

Reads the zip's central directory and the pickle only; storage sizes come from the directory.
TorchScript archives (code/, constants.pkl) are recognised and reported as not supported yet.
"""

from __future__ import annotations

import io
from typing import Any

from .limits import Limits
from .model import Checkpoint, Problem
from .pickled import PickleError, fill_checkpoint, report_globals, unpickle
from .safe_repr import key_text, safe_repr
from .unpickler import StorageRef, UnpickleLog, storage_type_dtype
from .zip_directory import Member, ZipError, file_size_of, read_directory, read_member

_SMALL_MEMBERS = ("byteorder", ".format_version", ".storage_alignment", "version", ".data/version")


def probe_zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def read_zip_checkpoint(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="torch-zip")
    with open(path, "rb") as f:
        try:
            return _read(f, checkpoint, limits)
        except ZipError as exc:
            checkpoint.errors.append(Problem("corrupt", str(exc), where=exc.where))
            return checkpoint


def _read(f: Any, checkpoint: Checkpoint, limits: Limits) -> Checkpoint:
    size = file_size_of(f)
    duplicates: list[str] = []
    members = read_directory(f, size, duplicates=duplicates)
    if duplicates:
        checkpoint.errors.append(Problem(
            "corrupt", f"{len(duplicates):,} member names appear more than once ({duplicates[0]}, ...): which copy "
            "torch.load reads is not defined, so what is shown (the first copies) may not be what it would "
            "run; such an archive is likely crafted", where=duplicates[0],
        ))
    pickles = sorted((name for name in members if name == "data.pkl" or name.endswith("/data.pkl")), key=len)
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in members):
        checkpoint.format = "torchscript"
        checkpoint.errors.append(Problem(
            "unsupported", "this is a TorchScript archive (torch.jit.save); pthscope does not read TorchScript yet",
            where=pickles[0] if pickles else "zip directory",
        ))
        return checkpoint
    if not pickles:
        checkpoint.format = "zip"
        checkpoint.errors.append(Problem(
            "unsupported", f"a zip archive without data.pkl is not a torch checkpoint ({len(members)} members)",
            where="zip directory",
        ))
        return checkpoint
    pickle_member = members[pickles[0]]
    prefix = pickle_member.name[: -len("data.pkl")]
    checkpoint.metadata["record prefix"] = prefix.rstrip("/")
    for small in _SMALL_MEMBERS:
        member = members.get(prefix + small)
        if member is not None and member.size <= 64:
            checkpoint.metadata[small.lstrip(".")] = read_member(f, member, size).decode("utf-8", "replace").strip()
    if pickle_member.size > limits.max_pickle_bytes:
        checkpoint.errors.append(Problem(
            "limit", f"{pickle_member.name} is {pickle_member.size:,} bytes, over the "
            f"{limits.max_pickle_bytes:,}-byte limit", where=pickle_member.name,
        ))
        return checkpoint
    storages: dict[str, StorageRef] = {}

    def persistent_load(pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError(f"unsupported persistent id {safe_repr(pid)}")
        _, storage_type, key, location, numel = pid[:5]
        if type(key) is not str:  # never hash or str() an arbitrary object: it may be a DAG bomb
            key = key_text(key)
            if key is None:
                raise ValueError(f"storage key {safe_repr(pid[2])} is not a name")
        ref = storages.get(key)
        if ref is None:
            member = members.get(f"{prefix}data/{key}")
            ref = _storage_ref(key, storage_type, location, numel, member)
            if member is not None:  # where `values` finds its bytes, whatever the record prefix
                checkpoint.storage_offsets[key] = member.header_offset
            if ref.nbytes is None:
                checkpoint.warnings.append(Problem(
                    "missing", f"storage {key} has no member {prefix}data/{key} in the archive",
                    where=f"{prefix}data/{key}",
                ))
            storages[key] = ref
        return ref

    log = UnpickleLog()
    stream = io.BytesIO(read_member(f, pickle_member, size))
    try:
        root = unpickle(stream, pickle_member.name, persistent_load, log, limits)
    except PickleError as exc:
        checkpoint.errors.append(Problem("corrupt", str(exc), where=exc.where))
        return report_globals(checkpoint, log)
    return fill_checkpoint(checkpoint, root, log, limits)


def _storage_ref(key: str, storage_type: Any, location: Any, numel: Any, member: Member | None) -> StorageRef:
    dtype = storage_type_dtype(storage_type)
    return StorageRef(key=key, dtype=dtype, location=location if type(location) is str else safe_repr(location),
                      numel=numel if type(numel) is int and 0 <= numel < 1 << 63 else 0,
                      nbytes=member.size if member else None)
