"""Run the restricted unpickler over one pickle and turn its result into a `Checkpoint`.

Shared by every pickle-based format (torch zip, legacy torch, plain pickle); the formats differ
only in where the pickle lives and how persistent ids name storages.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

from .limits import Limits, address_space_limit, memory_budget
from .model import Checkpoint, Problem
from .tree import TreeBuilder
from .unpickler import PersistentLoad, RestrictedUnpickler, UnpickleLog


class PickleError(Exception):
    """A pickle that cannot be read; `where` names the member and byte offset."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


def unpickle(stream: IO[bytes], where: str, persistent_load: PersistentLoad,
             log: UnpickleLog, limits: Limits) -> Any:
    start = stream.tell()
    unpickler = RestrictedUnpickler(stream, persistent_load, log)
    try:
        with memory_budget(limits.memory_budget_bytes):
            return unpickler.load()
    except MemoryError:
        raise PickleError(
            f"the pickle asks for more memory than {memory_allowance()} (a memo or size field is "
            "implausibly large: the file is corrupt or hostile)", f"{where} byte {stream.tell() - start}",
        ) from None
    except RecursionError:
        raise PickleError("the pickle nests too deeply", f"{where} byte {stream.tell() - start}") from None
    except EOFError:
        raise PickleError("the pickle ends early (the file is truncated)",
                          f"{where} byte {stream.tell() - start}") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, OverflowError, struct.error) as exc:
        raise PickleError(f"the pickle is malformed: {_one_line(exc)}",
                          f"{where} byte {stream.tell() - start}") from None


def fill_checkpoint(checkpoint: Checkpoint, root: Any, log: UnpickleLog, limits: Limits) -> Checkpoint:
    builder = TreeBuilder(limits, checkpoint.warnings)
    checkpoint.root = builder.build(root)
    checkpoint.tensors = builder.tensors
    checkpoint.modules = builder.modules
    checkpoint.globals = sorted(log.globals.values(), key=lambda g: ({"dangerous": 0, "unknown": 1, "safe": 2}[g.risk], g.name))
    checkpoint.warnings.extend(Problem("rebuild", p) for p in log.problems)
    dangerous = [g.name for g in checkpoint.globals if g.risk == "dangerous"]
    if dangerous:
        checkpoint.warnings.insert(0, Problem(
            "dangerous-globals",
            "torch.load(weights_only=False) would call " + ", ".join(dangerous)
            + "; pthscope only listed it. Do not load this file with weights_only=False.",
        ))
    return checkpoint


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def memory_allowance() -> str:
    """How much memory this process may use, for messages about running out of it."""
    limit = address_space_limit()
    return f"the {limit / (1 << 30):.1f} GiB this process may use" if limit else "is available"
