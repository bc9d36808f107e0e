"""Run the restricted unpickler over one pickle and turn its result into a `Checkpoint`.

Shared by every pickle-based format (torch zip, legacy torch, plain pickle); the formats differ
only in where the pickle lives and how persistent ids name storages.
"""

from __future__ import annotations

import copyreg
import pickle
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, Any

from . import audit
from .limits import Limits, address_space_limit, memory_budget
from .model import Checkpoint, GlobalRef, Problem, loader_of
from .tree import TreeBuilder
from .unpickler import GlobalUse, PersistentLoad, RestrictedUnpickler, UnpickleLog


class PickleError(Exception):
    """A pickle that cannot be read; `where` names the member and byte offset."""

    def __init__(self, message: str, where: str, kind: str = "corrupt"):
        super().__init__(message)
        self.where = where
        self.kind = kind


def unpickle(stream: IO[bytes], where: str, persistent_load: PersistentLoad,
             log: UnpickleLog, limits: Limits, torch_loader: bool = True) -> Any:
    """One pickle through the restricted unpickler. `torch_loader`: read it as torch's own
    unpickler reads a checkpoint's main pickle (else as plain pickle.load). A buffered stream
    (with `peek`) is read 3x faster: the C unpickler then parses from its buffer."""
    start = stream.tell()
    started = time.monotonic()
    try:
        return _load(stream, where, persistent_load, log, limits, torch_loader)
    except audit.LoadEscaped as escaped:
        raise PickleError(
            f"reading stopped: while this pickle was read, something tried to {escaped.event} "
            f"({escaped.detail or 'no detail'}); pthscope never runs what a file names, so this is a pthscope "
            "bug — please report it with the file", f"{where} byte {stream.tell() - start}", kind="blocked",
        ) from None
    except MemoryError:
        raise PickleError(
            f"the pickle asks for more memory than {memory_allowance()} (a memo or size field is "
            "implausibly large: the file is corrupt or hostile)", f"{where} byte {stream.tell() - start}",
        ) from None
    except RecursionError:
        raise PickleError("the pickle nests too deeply", f"{where} byte {stream.tell() - start}") from None
    except EOFError:
        at = _failed_at(stream, start, started, where, persistent_load, limits, torch_loader)
        raise PickleError("the pickle ends early (the file is truncated)", f"{where} byte {at}") from None
    except _MALFORMED as exc:
        at = _failed_at(stream, start, started, where, persistent_load, limits, torch_loader)
        raise PickleError(f"the pickle is malformed: {_one_line(exc)}", f"{where} byte {at}") from None


_MALFORMED = (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
              UnicodeDecodeError, OverflowError, struct.error)


def _load(stream: IO[bytes], where: str, persistent_load: PersistentLoad, log: UnpickleLog, limits: Limits,
          torch_loader: bool) -> Any:
    unpickler = RestrictedUnpickler(stream, persistent_load, log, torch_loader)
    with memory_budget(limits.memory_budget_bytes), _no_extension_cache(), audit.loading(where):
        return unpickler.load()


def _failed_at(stream: IO[bytes], start: int, started: float, where: str, persistent_load: PersistentLoad,
               limits: Limits, torch_loader: bool) -> int:
    """The byte where a pickle that failed stopped being readable. Through a buffer the unpickler
    only tells the chunk it was in, so a pickle that failed quickly is read again, unbuffered
    (position exact, read by read), into a scratch log: the same bytes with the same
    persistent_load (it keeps what it made) fail at the same opcode."""
    raw = getattr(stream, "raw", None)
    if raw is None or time.monotonic() - started > _REREAD_SECONDS:
        return stream.tell() - start
    try:
        raw.seek(start)
        _load(raw, where, persistent_load, UnpickleLog(), limits, torch_loader)
    except (EOFError, MemoryError, RecursionError, *_MALFORMED):
        return int(raw.tell()) - start
    except OSError:
        pass
    return stream.tell() - start


_REREAD_SECONDS = 1.0  # a slower failure (a hostile file's work) keeps the chunk's position


@contextmanager
def _no_extension_cache() -> Iterator[None]:
    """Keep the C unpickler away from copyreg's process-wide extension cache.

    For the EXT1/EXT2/EXT4 opcodes, `_pickle` looks in `copyreg._extension_cache` *before* calling
    find_class. An entry left there by an ordinary pickle.load in this process is the real
    object (os.system, say), which REDUCE would then call; and the stubs our find_class returns
    would be cached there for everyone else. So the cache is empty while we unpickle, and as it
    was afterwards.
    """
    cache = copyreg._extension_cache  # type: ignore[attr-defined]
    saved = dict(cache)
    cache.clear()
    try:
        yield
    finally:
        cache.clear()
        cache.update(saved)


def fill_checkpoint(checkpoint: Checkpoint, root: Any, log: UnpickleLog, limits: Limits,
                    unread: UnpickleLog | None = None) -> Checkpoint:
    builder = TreeBuilder(limits, checkpoint.warnings)
    checkpoint.root = builder.build(root)
    checkpoint.tensors = builder.tensors
    checkpoint.modules = builder.modules
    checkpoint.warnings.extend(Problem("rebuild", p) for p in log.problems)
    if log.more_problems:
        checkpoint.warnings.append(Problem("rebuild", f"... and {log.more_problems:,} more tensors that "
                                           "could not be rebuilt"))
    return report_globals(checkpoint, log, unread)


_RISK_ORDER = {"dangerous": 0, "unknown": 1, "safe": 2}


def global_refs(log: UnpickleLog, unread: UnpickleLog | None = None, mark_unread: bool = True) -> list[GlobalRef]:
    """Every global the pickles named, classified by how they used it; dangerous first. Those of
    `unread` (pickles the loader does not read) that `log`'s do not name are marked `unread`
    (if `mark_unread`); a global both name keeps the use the loader's pickle makes of it."""
    refs = [_ref(use) for use in log.globals.values()]
    if unread is not None:
        named = {ref.name for ref in refs}
        refs += [replace(ref, unread=mark_unread) for ref in map(_ref, unread.globals.values())
                 if ref.name not in named]
    return sorted(refs, key=lambda g: (_RISK_ORDER[g.risk], g.name))


def _ref(use: GlobalUse) -> GlobalRef:
    risk, effect = use.classify()
    return GlobalRef(use.full_name, risk, use.references, use.uses_json(risk), effect)


def report_globals(checkpoint: Checkpoint, log: UnpickleLog, unread: UnpickleLog | None = None) -> Checkpoint:
    """Every global the pickle named, dangerous first, with a warning naming the dangerous ones
    and what a load would do with each; also when the pickle could not be read to its end
    (torch.load would have run them by then). `unread`: what pickles the loader does not read name;
    in a file the loader refuses before unpickling, no pickle is read: they are all alike."""
    checkpoint.globals = global_refs(log, unread, mark_unread=not checkpoint.torch_load_refuses)
    return warn_dangerous_globals(checkpoint)


def warn_dangerous_globals(checkpoint: Checkpoint) -> Checkpoint:
    """The warning naming `checkpoint.globals`' dangerous ones and what a load would do with each
    (those of pickles the loader does not read have their own warning: zip_checkpoint.py)."""
    dangerous = [g for g in checkpoint.globals if g.risk == "dangerous" and not g.unread]
    if dangerous:
        shown = "; ".join(f"{g.name} ({g.effect})" for g in dangerous[:5])
        more = f"; and {len(dangerous) - 5} more" if len(dangerous) > 5 else ""
        loader = loader_of(checkpoint.format)
        if checkpoint.torch_load_refuses:
            advice = (f"{loader['call']} refuses the file before unpickling anything ({checkpoint.torch_load_refuses}), "
                      "so the file is crafted: never unpickle its pickles yourself")
        elif loader["own_types_only"]:
            advice = f"{loader['call']} refuses such globals, so the file was crafted: never unpickle its members yourself"
        elif loader["weights_only"]:
            advice = "do not load this file with weights_only=False"
        else:
            advice = f"do not load it: {loader['call']} unpickles it without restriction"
        checkpoint.warnings.insert(0, Problem(
            "dangerous-globals",
            f"{checkpoint.unrestricted_load()} would run code from this file: {shown}{more}. pthscope only listed them; {advice}.",
        ))
    return checkpoint


def side_pickle_limit(name: str, limits: Limits) -> Problem:
    """A pickle read for its globals only that is left unread: such pickles are over their limit together."""
    return Problem("limit", f"{name} was not read: an archive's pickles read for their globals only are over "
                   f"{limits.max_side_pickle_bytes >> 20} MiB together; what it names is not listed", where=name)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def memory_allowance() -> str:
    """How much memory this process may use, for messages about running out of it."""
    limit = address_space_limit()
    return f"the {limit / (1 << 30):.1f} GiB this process may use" if limit else "is available"
