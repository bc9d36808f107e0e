"""Open any checkpoint, safely and lazily: `inspect(path) -> Checkpoint`.

The format is found by content (magic bytes), never by file extension. Each format module has a
cheap probe and a reader; this module only holds their order, and gives every result its roles
(roles.py) whatever the format.
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
        (_by_head(probe_safetensors), read_safetensors),
        (_by_head(probe_pickle), read_pickle_file),
        (_by_head(probe_gguf), read_gguf),
        (_by_head(probe_npy), read_npy),
        (_by_head(probe_onnx), read_onnx),
        (probe_other_format, read_other_format),  # HDF5, TFLite, gzip, tar
        (probe_text, read_text_file),  # LFS and annex pointers, error pages, source code, text
        (probe_pickle_lookalike, read_pickle_lookalike),  # a pickle starting with any other opcode
    ]


def preload() -> None:
    """Import all the reader now: a process that caps its memory (the worker) does it first."""
    _formats()
    from . import extensions, pickled, roles  # noqa: F401


def inspect(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """Read a checkpoint's structure. Never raises for a bad file: problems are in `.errors`."""
    from ..gc_pause import gc_paused
    from .doctor import unopenable_file
    from .extensions import extension_mismatch
    from .model import Checkpoint, Problem
    from .pickled import memory_allowance
    from .roles import assign_roles

    path = os.path.abspath(os.fspath(path))
    checkpoint = Checkpoint(file=path, format="unknown")
    try:
        if os.path.isdir(path):
            return _unsupported_directory(path)
        checkpoint.size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        return unopenable_file(path, exc)
    if head and _is_distributed_shard(path):
        checkpoint.format = "torch-distributed"
        checkpoint.errors.append(Problem(
            "unsupported", "this is one shard of a torch.distributed checkpoint; its tensors are described "
            "by the .metadata file beside it (distributed checkpoints are not supported yet)"))
        return checkpoint
    for probe, read in _formats():
        if probe(head, path):
            try:
                with gc_paused():
                    result = read(path, limits)
                    assign_roles(result)
            except MemoryError:
                checkpoint.errors.append(Problem("limit", f"reading the file needs more memory than {memory_allowance()}"))
                return checkpoint
            except Exception as exc:  # a reader bug must still end in a clear message, not a crash
                checkpoint.errors.append(Problem(
                    "internal", f"pthscope failed while reading this file ({type(exc).__name__}: {exc}); "
                    "please report it with the file if you can"))
                return checkpoint
            result.size = checkpoint.size
            result.warnings.extend(extension_mismatch(path, result.format))
            return result
    checkpoint.errors.append(_unknown_format(path, head))
    return checkpoint


def _unknown_format(path: str, head: bytes) -> Problem:
    from .model import Problem

    if head.lstrip()[:1] == b"{" and _looks_like_shard_index(path):
        return Problem("unsupported", "this is the index of a sharded checkpoint (weight_map); "
                       "sharded checkpoints are not supported yet — open one of its shards")
    return Problem("unknown-format", f"not a checkpoint format pthscope knows (first bytes: {head[:8].hex(' ')}); "
                   "expected a torch zip, a legacy torch pickle, a pickle or safetensors")


def _is_distributed_shard(path: str) -> bool:
    """A file named by the torch.distributed `.metadata` pickle beside it."""
    metadata = os.path.join(os.path.dirname(path), ".metadata")
    if os.path.basename(path) == ".metadata" or not os.path.isfile(metadata):
        return False
    try:
        with open(metadata, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return b"torch.distributed.checkpoint" in head and os.path.basename(path).encode() in head


def _looks_like_shard_index(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b'"weight_map"' in f.read(1 << 20)
    except OSError:
        return False


def _unsupported_directory(path: str) -> Checkpoint:
    from .model import Checkpoint, Problem

    checkpoint = Checkpoint(file=path, format="directory")
    if os.path.exists(os.path.join(path, ".metadata")):
        checkpoint.format = "torch-distributed"
        checkpoint.errors.append(Problem("unsupported", "this is a torch.distributed checkpoint folder "
                                         "(.metadata + .distcp shards); not supported yet"))
    else:
        checkpoint.errors.append(Problem("unsupported", "this is a folder, not a checkpoint file"))
    return checkpoint


__all__ = ["Limits", "inspect", "preload"]
