"""Checkpoints made of several files, found from a folder or from one of their files.

A folder opens as what it holds: a torch.distributed checkpoint (`.metadata`), a sharded set
(one `*.index.json`), per-rank files (`rank0.pt`, `rank1.pt`, …), or its one checkpoint file.
A file that is one part of such a set (a shard named by an index beside it, a rank's file)
gets `part_of`, so that whoever shows it can offer the whole set. The readers of each kind are
sharded_set.py, distributed_checkpoint.py and rank_files.py; the merging of what the parts'
pickles name is here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from .limits import Limits
from .model import Checkpoint, GlobalRef, PartInfo, PartOf, Problem

ReadFile = Callable[[str, Limits], Checkpoint]
_CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".pth.tar", ".pt2", ".gguf", ".onnx")
_RISK_RANK = {"safe": 0, "unknown": 1, "dangerous": 2}
# Formats of the single files that may be parts of a set.
PART_FORMATS = frozenset({"safetensors", "torch-zip", "torch-legacy"})


def read_folder(folder: str, limits: Limits, read_file: ReadFile) -> Checkpoint:
    from .distributed_checkpoint import is_distributed_folder, read_distributed_checkpoint
    from .rank_files import rank_files, read_rank_set
    from .sharded_set import INDEX_SUFFIX, read_sharded_set

    if is_distributed_folder(folder):
        return read_distributed_checkpoint(folder, limits)
    names = sorted(os.listdir(folder))
    indexes = [n for n in names if n.endswith(INDEX_SUFFIX) and os.path.isfile(os.path.join(folder, n))]
    if indexes:
        checkpoint = read_sharded_set(os.path.join(folder, _preferred_index(indexes)), limits, read_file)
        checkpoint.file = folder
        if len(indexes) > 1:
            checkpoint.warnings.append(Problem(
                "unexpected", f"the folder holds {len(indexes)} indexes ({', '.join(indexes)}); shown is "
                f"{checkpoint.metadata.get('index')} — open another index file to see its set", where=folder))
        return checkpoint
    ranks = rank_files(folder)
    if ranks:
        return read_rank_set(folder, ranks, limits, read_file)
    candidates = [n for n in names if n.lower().endswith(_CHECKPOINT_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, n))]
    if len(candidates) == 1:
        return _one_file_folder(folder, os.path.join(folder, candidates[0]), limits, read_file)
    checkpoint = Checkpoint(file=folder, format="directory")
    if candidates:
        shown = ", ".join(candidates[:5]) + (", …" if len(candidates) > 5 else "")
        message = (f"a folder of {len(candidates)} checkpoint files ({shown}) that are no one set (no index, no "
                   ".metadata, no rank numbers): open one of them")
    else:
        message = (f"a folder of {len(names):,} entries without a checkpoint: no torch.distributed .metadata, no "
                   "*.index.json, no rank files, no .pth/.pt/.bin/.safetensors file")
    checkpoint.errors.append(Problem("unsupported", message, where=folder))
    return checkpoint


def _preferred_index(indexes: list[str]) -> str:
    for preferred in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if preferred in indexes:
            return preferred
    return indexes[0]


def _one_file_folder(folder: str, path: str, limits: Limits, read_file: ReadFile) -> Checkpoint:
    """The folder's one checkpoint file, as a one-part checkpoint named by the folder."""
    checkpoint = read_file(path, limits)
    st = os.stat(path)
    checkpoint.parts = [PartInfo(path, checkpoint.format, st.st_size, st.st_mtime_ns, len(checkpoint.tensors),
                                 checkpoint.metadata.get("byteorder", "little"))]
    for tensor in checkpoint.tensors:
        tensor.part = 0
    checkpoint.metadata["file"] = os.path.basename(path)
    checkpoint.file = folder
    return checkpoint


def set_of(path: str) -> PartOf | None:
    """The set a single checkpoint file is part of: a shard an index beside it names, one rank's
    file of several."""
    from .rank_files import rank_set_of
    from .sharded_set import index_naming

    return index_naming(path) or rank_set_of(path)


def merge_global(known: dict[str, GlobalRef], ref: GlobalRef) -> None:
    """Add what one part's pickles name to the set's globals: counts and uses add up, the worst
    risk stays."""
    mine = known.get(ref.name)
    if mine is None:
        known[ref.name] = GlobalRef(ref.name, ref.risk, ref.count, dict(ref.uses), ref.effect, ref.unread)
        return
    mine.count += ref.count
    mine.unread = mine.unread and ref.unread  # read by one file's loader: read
    if _RISK_RANK[ref.risk] > _RISK_RANK[mine.risk]:
        mine.risk, mine.effect = ref.risk, ref.effect
    for use, value in ref.uses.items():
        if isinstance(value, int):
            mine.uses[use] = mine.uses.get(use, 0) + value
        elif isinstance(value, list):
            mine.uses[use] = sorted(set(mine.uses.get(use, [])) | set(value))


def sorted_globals(refs: Iterable[GlobalRef]) -> list[GlobalRef]:
    """Dangerous first, then unknown, then safe; by name within each."""
    return sorted(refs, key=lambda g: (-_RISK_RANK[g.risk], g.name))
