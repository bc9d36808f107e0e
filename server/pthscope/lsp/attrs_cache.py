"""`attrs_methods_cached()`: the server's start without compiling lsprotocol's methods again.

attrs writes the `__init__`, `__eq__`, ... of every class it decorates as source and compiles
it when the class is made. lsprotocol's ~570 classes (and our protocol's) make that some 770
`compile()` calls, a third of the server's start (0.2 s here, more on a busy machine: the first
page waits for it). Inside the block, attrs' compile is looked up in a cache of code objects
kept next to pthscope's bytecode, keyed by the exact source, file name and mode; what is new is
added when the block ends. The cache is as trusted as the `.pyc` files beside it (the extension's
own folder, never a workspace); anything unreadable in it is ignored, and where it cannot be
written the server just compiles as before.
"""

from __future__ import annotations
import __future__

import contextlib
import marshal
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr._make  # attrs' class builder: the module whose `compile` is shadowed below

_CACHE_FILE = Path(__file__).resolve().parent.parent / "__pycache__" / f"attrs-methods.{sys.implementation.cache_tag}.marshal"
# compile() called from our module would inherit our __future__ flags, not attrs': set its own.
_ATTRS_FLAGS = __future__.annotations.compiler_flag if hasattr(attr._make, "annotations") else 0

CodeKey = tuple[str, str, str]


@contextlib.contextmanager
def attrs_methods_cached(cache_file: Path = _CACHE_FILE) -> Iterator[None]:
    known = _load(cache_file)
    new: dict[CodeKey, types.CodeType] = {}

    def cached_compile(source: str, filename: str, mode: str, *args: Any, **kwargs: Any) -> types.CodeType:
        key = (filename, mode, source)
        code = known.get(key)
        if code is None:
            if args or kwargs:  # not the call attrs makes: compile as asked, uncached
                return compile(source, filename, mode, *args, **kwargs)
            code = new[key] = compile(source, filename, mode, _ATTRS_FLAGS, dont_inherit=True)
        return code

    attr._make.compile = cached_compile  # type: ignore[attr-defined]  # shadows the builtin there only
    try:
        yield
    finally:
        del attr._make.compile  # type: ignore[attr-defined]
        if new and not sys.dont_write_bytecode:
            _save(cache_file, {**known, **new})


def _load(cache_file: Path) -> dict[CodeKey, types.CodeType]:
    try:
        loaded = marshal.loads(cache_file.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {key: code for key, code in loaded.items() if isinstance(code, types.CodeType)}


def _save(cache_file: Path, codes: dict[CodeKey, types.CodeType]) -> None:
    """Write atomically (two servers may start at once); a folder we cannot write is fine."""
    partial = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
    try:
        cache_file.parent.mkdir(exist_ok=True)
        partial.write_bytes(marshal.dumps(codes))
        os.replace(partial, cache_file)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
