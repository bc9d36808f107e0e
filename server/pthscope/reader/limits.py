"""Bounds on the work one file may cause, so hostile files end in an error, not a hang."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_pickle_bytes: int = 1 << 30  # one pickle (data.pkl / legacy main pickle)
    # All of an archive's pickles read for their globals only (a zip's extra.pkl, TorchScript's
    # .debug_pkl files), together: a 4 MB file of deflated pickles must not take minutes.
    max_side_pickle_bytes: int = 256 << 20
    max_nodes: int = 2_000_000  # objects visited when building the tree
    max_depth: int = 256  # nesting of containers/modules
    max_value_chars: int = 200  # shown repr of plain values
    # Longer dict keys are shortened in paths: every node repeats its path in the JSON, so one
    # 1 MB key over 2,000 values would otherwise make 4 GB of `inspect --json` output.
    max_key_chars: int = 1_000
    max_shared_listed: int = 32  # other tensors listed as sharing one storage
    max_header_bytes: int = 100 << 20  # safetensors JSON header
    # Address-space budget while unpickling (None: no limit). The CLI and the language server's
    # worker set it; a pickle memo bomb then fails fast with MemoryError instead of eating RAM.
    memory_budget_bytes: int | None = None


DEFAULT_LIMITS = Limits()


@contextlib.contextmanager
def memory_budget(budget: int | None) -> Iterator[None]:
    """Cap this process's address space at its current size plus `budget` bytes."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits; the language server's worker limits still apply
        resource = None  # type: ignore[assignment]
    if budget is None or resource is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    new_soft = _current_address_space() + budget
    if hard != resource.RLIM_INFINITY:
        new_soft = min(new_soft, hard)
    if soft != resource.RLIM_INFINITY:
        new_soft = min(new_soft, soft)
    resource.setrlimit(resource.RLIMIT_AS, (new_soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def address_space_limit() -> int | None:
    """This process's address-space cap in bytes, or None when there is none."""
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _current_address_space() -> int:
    try:
        import mmap

        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        return pages * mmap.PAGESIZE
    except (OSError, ValueError, IndexError):
        return 0
