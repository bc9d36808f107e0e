"""Per-rank files of one distributed save — `rank0.pt`, `rank1.pt`, … (an FSDP2 or DTensor state
dict, FSDP1's sharded state dict, saved with torch.save on every rank) — read as one checkpoint.

Each file is read by its own reader (by content); distributed_tensors.py has made each DTensor
or ShardedTensor the rank's local piece with its `ShardingInfo`. The set takes the lowest
rank's tree and turns every distributed tensor into the global one: its shape is the global
shape and its chunks are the pieces of all ranks, each in its rank's file (`part`). A replicated
tensor's bytes are the lowest rank's copy; a sharded one has no single storage. Plain tensors are
the lowest rank's; keys or shapes that differ between ranks are named.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from .checkpoint_sets import merge_global, sorted_globals
from .limits import Limits
from .model import (
    Checkpoint,
    ChunkInfo,
    GlobalRef,
    PartInfo,
    PartOf,
    Problem,
    ShardingInfo,
    TensorInfo,
    contiguous_stride,
)
from .pickled import warn_dangerous_globals

FORMAT = "torch-ranks"
_RANK = re.compile(r"(?i)^(.*?rank[_-]?)(\d+)(\D.*|)$")
_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".tar")

ReadFile = Callable[[str, Limits], Checkpoint]


def rank_files(folder: str) -> list[tuple[int, str]]:
    """The largest group of files in `folder` named alike but for a rank number (at least two),
    as (rank, path) sorted by rank."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for name in names:
        found = _RANK.match(name)
        if found and name.lower().endswith(_EXTENSIONS) and os.path.isfile(os.path.join(folder, name)):
            groups.setdefault((found[1], found[3]), []).append((int(found[2]), os.path.join(folder, name)))
    best = max(groups.values(), key=len, default=[])
    return sorted(best) if len(best) >= 2 else []


def rank_set_of(path: str) -> PartOf | None:
    """The rank folder a file belongs to: which part of how many."""
    folder = os.path.dirname(path)
    files = rank_files(folder)
    paths = [p for _, p in files]
    if path not in paths:
        return None
    return PartOf(folder, FORMAT, paths.index(path) + 1, len(paths))


def read_rank_set(folder: str, files: list[tuple[int, str]], limits: Limits, read_file: ReadFile) -> Checkpoint:
    checkpoint = Checkpoint(file=folder, format=FORMAT)
    checkpoint.metadata["ranks"] = ", ".join(str(rank) for rank, _ in files)
    reads: list[tuple[int, Checkpoint]] = []
    globals_by_name: dict[str, GlobalRef] = {}
    for rank, path in files:
        read = read_file(path, limits)
        name = os.path.basename(path)
        for problem in read.errors:
            checkpoint.errors.append(Problem(problem.kind, f"rank {rank} ({name}): {problem.message}", problem.where or name))
        for problem in read.warnings:
            if problem.kind != "dangerous-globals":
                checkpoint.warnings.append(Problem(problem.kind, f"rank {rank} ({name}): {problem.message}",
                                                   problem.where or name))
        for ref in read.globals:
            merge_global(globals_by_name, ref)
        st = os.stat(path)
        checkpoint.parts.append(PartInfo(path, read.format, st.st_size, st.st_mtime_ns, len(read.tensors),
                                         read.metadata.get("byteorder", "little")))
        reads.append((rank, read))
    checkpoint.globals = sorted_globals(globals_by_name.values())
    warn_dangerous_globals(checkpoint)
    usable = [(i, rank, read) for i, (rank, read) in enumerate(reads) if read.root is not None]
    if not usable:
        return checkpoint
    first, _, lead = usable[0]
    checkpoint.root, checkpoint.modules, checkpoint.tensors = lead.root, lead.modules, lead.tensors
    checkpoint.storage_offsets = {f"{first}/{k}": v for k, v in lead.storage_offsets.items()}
    for tensor in lead.tensors:
        tensor.part = first
        if tensor.storage:
            tensor.storage = f"{first}/{tensor.storage}"
    others = {i: {t.key: t for t in read.tensors} for i, _, read in usable[1:]}
    for tensor in checkpoint.tensors:
        _merge_ranks(checkpoint, first, tensor, {i: found.get(tensor.key) for i, found in others.items()})
    lead_keys = {t.key for t in lead.tensors}
    for i, found in others.items():
        extra = [k for k in found if k not in lead_keys]
        if extra:
            checkpoint.warnings.append(Problem(
                "unexpected", f"{os.path.basename(checkpoint.parts[i].file)} holds {len(extra):,} tensors the lowest "
                f"rank's file lacks ({', '.join(extra[:3])}{', …' if len(extra) > 3 else ''}); they are not shown",
                where=os.path.basename(checkpoint.parts[i].file)))
    return checkpoint


def _merge_ranks(checkpoint: Checkpoint, first: int, tensor: TensorInfo, pieces: dict[int, TensorInfo | None]) -> None:
    """Make `tensor` (the lowest rank's) the global tensor, with every rank's piece as a chunk."""
    missing = [i for i, t in pieces.items() if t is None]
    if missing:
        checkpoint.warnings.append(Problem(
            "missing", f"{tensor.key} is not in {', '.join(os.path.basename(checkpoint.parts[i].file) for i in missing)}",
            where=tensor.key))
    sharding = tensor.sharding
    if sharding is None:
        for i, other in pieces.items():
            if other is not None and (other.shape, other.dtype) != (tensor.shape, tensor.dtype):
                checkpoint.warnings.append(Problem(
                    "unexpected", f"{tensor.key} is {other.shape} {other.dtype} in "
                    f"{os.path.basename(checkpoint.parts[i].file)} but {tensor.shape} {tensor.dtype} in the lowest "
                    "rank's file, which is shown", where=tensor.key))
        return
    if sharding.kind == "ShardedTensor":
        by_rank = {p.sharding.rank: i for i, p in [(first, tensor), *pieces.items()] if p is not None and p.sharding}
        chunks = [ChunkInfo(c.offsets, c.sizes, part=by_rank.get(c.rank), rank=c.rank) for c in sharding.chunks]
    else:
        chunks = [ChunkInfo(c.offsets, c.sizes, part=i, rank=c.rank)
                  for i, piece in [(first, tensor), *pieces.items()] if piece is not None and piece.sharding
                  for c in piece.sharding.chunks[:1]]
    partial = any(p.startswith("Partial") for p in sharding.placements)  # each rank holds a summand
    whole = [c for c in chunks if c.sizes == sharding.global_shape and c.part == first and not partial]
    tensor.sharding = ShardingInfo(sharding.kind, sharding.global_shape, local=False, placements=sharding.placements,
                                   mesh=sharding.mesh, chunks=chunks)
    if not whole:  # sharded: no one storage holds the global tensor
        tensor.shape, tensor.stride, tensor.storage, tensor.storage_nbytes, tensor.part = (
            list(sharding.global_shape), contiguous_stride(sharding.global_shape), "", None, None)
        tensor.storage_offset = 0
