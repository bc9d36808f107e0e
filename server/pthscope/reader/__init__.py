"""Open any checkpoint, safely and lazily: `inspect(path) -> Checkpoint`.

The format is found by content (magic bytes), never by file extension. Each format module has a
cheap probe and a reader; this module only holds their order.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..gc_pause import gc_paused
from .legacy_checkpoint import probe_legacy, probe_pickle, read_legacy_checkpoint, read_pickle_file
from .limits import DEFAULT_LIMITS, Limits
from .model import Checkpoint, Problem
from .pickled import memory_allowance
from .safetensors_file import probe_safetensors, read_safetensors
from .zip_checkpoint import probe_zip, read_zip_checkpoint

Reader = Callable[[str, Limits], Checkpoint]

_FORMATS: list[tuple[Callable[[bytes], bool], Reader]] = [
    (probe_zip, read_zip_checkpoint),
    (probe_legacy, read_legacy_checkpoint),
    (probe_safetensors, read_safetensors),
    (probe_pickle, read_pickle_file),
]

_HEAD_BYTES = 64


def inspect(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """Read a checkpoint's structure. Never raises for a bad file: problems are in `.errors`."""
    path = os.path.abspath(os.fspath(path))
    checkpoint = Checkpoint(file=path, format="unknown")
    try:
        if os.path.isdir(path):
            return _unsupported_directory(path)
        checkpoint.size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        checkpoint.errors.append(Problem("unreadable", f"cannot open the file: {exc.strerror or exc}"))
        return checkpoint
    if not head:
        checkpoint.errors.append(Problem("empty", "the file is empty (0 bytes)"))
        return checkpoint
    if _is_distributed_shard(path):
        checkpoint.format = "torch-distributed"
        checkpoint.errors.append(Problem(
            "unsupported", "this is one shard of a torch.distributed checkpoint; its tensors are described "
            "by the .metadata file beside it (distributed checkpoints are not supported yet)"))
        return checkpoint
    for probe, read in _FORMATS:
        if probe(head):
            try:
                with gc_paused():
                    result = read(path, limits)
            except MemoryError:
                checkpoint.errors.append(Problem("limit", f"reading the file needs more memory than {memory_allowance()}"))
                return checkpoint
            except Exception as exc:  # a reader bug must still end in a clear message, not a crash
                checkpoint.errors.append(Problem(
                    "internal", f"pthscope failed while reading this file ({type(exc).__name__}: {exc}); "
                    "please report it with the file if you can"))
                return checkpoint
            result.size = checkpoint.size
            return result
    checkpoint.errors.append(_unknown_format(path, head))
    return checkpoint


def _unknown_format(path: str, head: bytes) -> Problem:
    if head.lstrip()[:1] == b"{" and _looks_like_shard_index(path):
        return Problem("unsupported", "this is the index of a sharded checkpoint (weight_map); "
                       "sharded checkpoints are not supported yet — open one of its shards")
    if len(head) > 262 and head[257:262] == b"ustar" or _is_tar(path):
        return Problem("unsupported", "this is a tar archive (torch's pre-0.4 format); not supported yet")
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


def _is_tar(path: str) -> bool:
    import tarfile  # only for files no other format claims: not worth 10 ms at every start

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _unsupported_directory(path: str) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="directory")
    if os.path.exists(os.path.join(path, ".metadata")):
        checkpoint.format = "torch-distributed"
        checkpoint.errors.append(Problem("unsupported", "this is a torch.distributed checkpoint folder "
                                         "(.metadata + .distcp shards); not supported yet"))
    else:
        checkpoint.errors.append(Problem("unsupported", "this is a folder, not a checkpoint file"))
    return checkpoint


__all__ = ["Checkpoint", "Limits", "inspect"]
