"""torch's zip format (torch >= 1.6): `<prefix>/data.pkl` plus one member per storage.

Reads the zip's central directory and the pickle only; storage sizes come from the directory.
TorchScript archives (code/, constants.pkl) are recognised and reported as not supported yet.
"""

from __future__ import annotations

import zipfile
from typing import Any

from .limits import Limits
from .model import Checkpoint, Problem
from .pickled import PickleError, fill_checkpoint, unpickle
from .unpickler import StorageRef, UnpickleLog, storage_type_dtype

_SMALL_MEMBERS = ("byteorder", ".format_version", ".storage_alignment", "version", ".data/version")


def probe_zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def read_zip_checkpoint(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="torch-zip")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        checkpoint.errors.append(Problem(
            "truncated" if isinstance(exc, zipfile.BadZipFile) else "corrupt",
            f"the zip archive cannot be read ({exc}): its directory at the end of the file is missing "
            "or damaged, usually because the file is truncated or was not fully written",
            where="zip directory",
        ))
        return checkpoint
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        pickles = sorted((name for name in members if name == "data.pkl" or name.endswith("/data.pkl")), key=len)
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in members):
            checkpoint.format = "torchscript"
            checkpoint.errors.append(Problem(
                "unsupported",
                "this is a TorchScript archive (torch.jit.save); pthscope does not read TorchScript yet",
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
        pickle_name = pickles[0]
        prefix = pickle_name[: -len("data.pkl")]
        checkpoint.metadata["record prefix"] = prefix.rstrip("/")
        for small in _SMALL_MEMBERS:
            info = members.get(prefix + small)
            if info is not None and info.file_size <= 64:
                checkpoint.metadata[small.lstrip(".")] = _read_text(archive, info)
        info = members[pickle_name]
        if info.file_size > limits.max_pickle_bytes:
            checkpoint.errors.append(Problem(
                "limit", f"{pickle_name} is {info.file_size:,} bytes, over the {limits.max_pickle_bytes:,}-byte limit",
                where=pickle_name,
            ))
            return checkpoint
        storages: dict[str, StorageRef] = {}

        def persistent_load(pid: Any) -> StorageRef:
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
                raise ValueError(f"unsupported persistent id {str(pid)[:80]}")
            _, storage_type, key, location, numel = pid[:5]
            key = str(key)
            ref = storages.get(key)
            if ref is None:
                dtype, _cuda = storage_type_dtype(storage_type)
                member = members.get(f"{prefix}data/{key}")
                ref = StorageRef(key=key, dtype=dtype, location=str(location),
                                 numel=numel if type(numel) is int else 0,
                                 nbytes=member.file_size if member else None)
                if member is None:
                    checkpoint.warnings.append(Problem(
                        "missing", f"storage {key} has no member {prefix}data/{key} in the archive",
                        where=f"{prefix}data/{key}",
                    ))
                storages[key] = ref
            return ref

        log = UnpickleLog()
        try:
            with archive.open(info) as stream:
                root = unpickle(stream, pickle_name, persistent_load, log, limits)
        except PickleError as exc:
            checkpoint.errors.append(Problem("corrupt", str(exc), where=exc.where))
            checkpoint.globals = list(log.globals.values())
            return checkpoint
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            checkpoint.errors.append(Problem("corrupt", f"cannot read {pickle_name}: {exc}", where=pickle_name))
            return checkpoint
    return fill_checkpoint(checkpoint, root, log, limits)


def _read_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    try:
        return archive.read(info).decode("utf-8", "replace").strip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "?"
