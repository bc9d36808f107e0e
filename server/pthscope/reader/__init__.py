"""Open any checkpoint, safely and lazily: `inspect(path) -> Checkpoint`.

The format is found by content (magic bytes), never by file extension; what torch.load would
unpickle from the file, which it decides by the name and the first bytes, is added to any
format's verdict (torch_route.py). Each format module has a
cheap probe and a reader; this module only holds their order, and gives every result its roles
(roles.py) whatever the format. A folder, an index or a `.metadata` opens the checkpoint of
several files it stands for (checkpoint_sets.py); a file that is one part of such a set says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from .limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .model import Checkpoint, Problem

Reader = Callable[[str, Limits], "Checkpoint"]
# A probe sees the file's first bytes and its path; it reads more only when the head makes the
# file a candidate, so that probing stays cheap for every other format.
Probe = Callable[[bytes, str], bool]
_HEAD_BYTES = 64


def _by_head(probe: Callable[[bytes], bool]) -> Probe:
    return lambda head, _path: probe(head)


@cache
def _formats() -> list[tuple[Probe, Reader]]:
    """The probes in the order they are tried. Imported on first use: the language server uses
    the model (model.py) without ever reading a file itself."""
    from .distributed_checkpoint import probe_distributed_metadata, read_distributed_checkpoint
    from .doctor import (
        probe_empty,
        probe_pickle_lookalike,
        probe_text,
        read_empty,
        read_pickle_lookalike,
        read_text_file,
    )
    from .gguf_file import probe_gguf, read_gguf
    from .legacy_checkpoint import (
        probe_legacy,
        probe_pickle,
        read_legacy_checkpoint,
        read_pickle_file,
    )
    from .numpy_file import probe_npy, probe_npz, read_npy, read_npz
    from .onnx_file import probe_onnx, read_onnx
    from .other_formats import (
        probe_other_format,
        probe_other_zip,
        read_other_format,
        read_other_zip,
    )
    from .safetensors_file import probe_safetensors, read_safetensors
    from .sharded_set import probe_shard_index
    from .tar_checkpoint import probe_tar_checkpoint, read_tar_checkpoint
    from .torch_export import probe_torch_export, read_torch_export
    from .truncated_zip import probe_truncated_zip, read_truncated_zip
    from .zip_checkpoint import probe_zip, read_zip_checkpoint

    return [
        (probe_empty, read_empty),
        (probe_truncated_zip, read_truncated_zip),  # before every zip format: no directory to read
        (probe_torch_export, read_torch_export),
        (probe_npz, read_npz),
        (probe_other_zip, read_other_zip),  # Keras 3, TorchServe, archives of files
        (_by_head(probe_zip), read_zip_checkpoint),
        (probe_tar_checkpoint, read_tar_checkpoint),  # torch.load tries tar before the legacy format
        (_by_head(probe_legacy), read_legacy_checkpoint),
        (probe_distributed_metadata, read_distributed_checkpoint),  # a pickle: before the pickle probe
        (_by_head(probe_safetensors), read_safetensors),
        (_by_head(probe_pickle), read_pickle_file),
        (_by_head(probe_gguf), read_gguf),
        (_by_head(probe_npy), read_npy),
        (_by_head(probe_onnx), read_onnx),
        (probe_other_format, read_other_format),  # HDF5, TFLite, gzip, tar
        (probe_shard_index, _read_sharded_set),  # JSON: before the text probe
        (probe_text, read_text_file),  # LFS and annex pointers, error pages, source code, text
        (probe_pickle_lookalike, read_pickle_lookalike),  # a pickle starting with any other opcode
    ]


def preload() -> None:
    """Import all the reader now: a process that caps its memory (the worker) does it first."""
    _formats()
    from . import extensions, pickled, roles  # noqa: F401


def inspect(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """Read a checkpoint's structure. Never raises for a bad file: problems are in `.errors`."""
    from .checkpoint_sets import PART_FORMATS, read_folder, set_of
    from .distributed_checkpoint import distributed_folder_of, read_distcp_file
    from .doctor import unopenable_file
    from .extensions import extension_mismatch
    from .model import Checkpoint

    path = os.path.abspath(os.fspath(path))
    checkpoint = Checkpoint(file=path, format="unknown")
    try:
        if os.path.isdir(path):
            checkpoint.format = "directory"
            result = _with_roles(lambda: read_folder(path, limits, read_by_content), checkpoint)
            result.size = sum(part.size for part in result.parts)
            return result
        checkpoint.size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        return unopenable_file(path, exc)
    folder = distributed_folder_of(path) if head else None
    if folder is not None and head[:1] != b"\x80":  # a .distcp file, not the .metadata pickle
        return read_distcp_file(path, folder, limits)
    for probe, read in _formats():
        if probe(head, path):
            result = _with_roles(lambda read=read: _read_as_torch_would(read, head, path, limits), checkpoint)  # type: ignore[misc]
            if result is checkpoint:
                return checkpoint
            result.size = checkpoint.size + sum(part.size for part in result.parts)
            result.warnings.extend(extension_mismatch(path, result.format))
            if result.format in PART_FORMATS and result.part_of is None:
                result.part_of = set_of(path)
            return result

    def unknown(_path: str, _limits: Limits) -> Checkpoint:  # no reader: still what torch.load would unpickle
        checkpoint.errors.append(_unknown_format(path, head))
        return checkpoint

    return _with_roles(lambda: _read_as_torch_would(unknown, head, path, limits), checkpoint)


def read_by_content(path: str, limits: Limits) -> Checkpoint:
    """One file read by the reader its content names, without roles: a part of a set (never a
    set itself: an index or a `.metadata` is no shard)."""
    from .model import Checkpoint

    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    for probe, read in _formats():
        if read.__name__ not in _SET_READERS and probe(head, path):
            result = _read_as_torch_would(read, head, path, limits)
            result.size = os.path.getsize(path)
            return result
    checkpoint = Checkpoint(file=path, format="unknown")
    checkpoint.errors.append(_unknown_format(path, head))
    return checkpoint


_SET_READERS = frozenset({"_read_sharded_set", "read_distributed_checkpoint"})


def _read_as_torch_would(read: Reader, head: bytes, path: str, limits: Limits) -> Checkpoint:
    """`read(path)`, with what torch.load would unpickle from the file when it reads the file
    as another format than the reader does (torch_route.py)."""
    from .torch_route import add_torch_route

    result = read(path, limits)
    add_torch_route(result, head, path, limits)
    return result


def _read_sharded_set(path: str, limits: Limits) -> Checkpoint:
    from .sharded_set import read_sharded_set

    return read_sharded_set(path, limits, read_by_content)


def _with_roles(read: Callable[[], Checkpoint], checkpoint: Checkpoint) -> Checkpoint:
    """`read()` with roles given; `checkpoint` with the error when the read failed."""
    from ..gc_pause import gc_paused
    from .model import Problem
    from .pickled import memory_allowance
    from .roles import assign_roles

    try:
        with gc_paused():
            result = read()
            assign_roles(result)
    except MemoryError:
        checkpoint.errors.append(Problem("limit", f"reading the file needs more memory than {memory_allowance()}"))
        return checkpoint
    except Exception as exc:  # a reader bug must still end in a clear message, not a crash
        checkpoint.errors.append(Problem(
            "internal", f"pthscope failed while reading this file ({type(exc).__name__}: {exc}); "
            "please report it with the file if you can"))
        return checkpoint
    return result


def _unknown_format(path: str, head: bytes) -> Problem:
    from .model import Problem

    return Problem("unknown-format", f"not a checkpoint format pthscope knows (first bytes: {head[:8].hex(' ')}); "
                   "expected a torch zip, a legacy torch pickle, a pickle or safetensors")


__all__ = ["Limits", "inspect", "preload"]
