"""A PEP 578 audit hook: while a pickle is being read, nothing may import, exec, spawn or connect.

The restricted unpickler never imports or calls what a file names; this is defence in depth and
a test oracle. `install()` adds a hook (once per process; audit hooks cannot be removed) that
does nothing unless a read is in progress (`loading()` around each unpickle). During a read, an
import, exec/compile, process, socket, ctypes or file-writing event (and `pickle.find_class`,
which only the real unpickler raises) aborts the read with `LoadEscaped` — or, in record mode
(tests), is only recorded. pthscope does every import it needs before a read starts.

The worker (`worker.py`) and the CLI's reading child install it.
"""

from __future__ import annotations

import os
import sys
from _thread import get_ident
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_EXACT = frozenset((
    "import", "exec", "compile", "code.__new__", "function.__new__", "pickle.find_class",
    "marshal.loads", "marshal.load", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
    "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.startfile", "pty.spawn",
    "os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
    "os.symlink", "os.link", "os.utime", "os.putenv", "os.unsetenv", "webbrowser.open",
    "urllib.Request", "builtins.input", "sys.addaudithook", "sys.settrace", "sys.setprofile",
    "cpython.run_command", "cpython.run_file", "cpython.run_module", "cpython.run_startup",
    "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
))
_PREFIXES = ("socket.", "ctypes.", "shutil.", "http.client.", "ftplib.", "smtplib.", "telnetlib.",
             "poplib.", "imaplib.", "nntplib.", "winreg.", "_winapi.", "msvcrt.", "sqlite3.", "os.exec",
             "os.spawn", "os.posix_spawn", "subprocess.")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class LoadEscaped(BaseException):
    """Something tried to import, run, spawn, connect or write while a pickle was being read.

    A BaseException, so that no `except Exception` in the reader (which turns malformed
    arguments into problems) can swallow it."""

    def __init__(self, event: str, detail: str, where: str) -> None:
        super().__init__(f"{event} {detail}".strip())
        self.event, self.detail, self.where = event, detail, where


_state: dict[str, Any] = {"installed": False, "record": False, "loading": None}
recorded: list[tuple[str, str, str]] = []  # (event, detail, where), in record mode


def install(record: bool = False) -> None:
    """Add the hook to this process (once); `record` keeps events instead of aborting."""
    _state["record"] = record or _state["record"]
    if not _state["installed"]:
        _state["installed"] = True
        sys.addaudithook(_hook)


def installed() -> bool:
    return bool(_state["installed"])


@contextmanager
def loading(where: str) -> Iterator[None]:
    """Mark a read in progress in this thread (`where`: the pickle being read). Other threads
    (the worker answers requests about files it read while it reads another) run our own code,
    never the pickle's: their events are not the read's."""
    outer = _state["loading"]
    _state["loading"] = (where, get_ident())
    try:
        yield
    finally:
        _state["loading"] = outer


def _hook(event: str, args: tuple[Any, ...]) -> None:
    reading = _state["loading"]
    if reading is None or reading[1] != get_ident():  # the cheap path: no read in this thread
        return
    where = reading[0]
    if event == "open":
        if not _writes(args):
            return
    elif event not in _EXACT and not event.startswith(_PREFIXES):
        return
    detail = _detail(args)
    if _state["record"]:
        recorded.append((event, detail, where))
        return
    _state["loading"] = None  # the abort itself must not trip the hook again
    raise LoadEscaped(event, detail, where)


def _writes(args: tuple[Any, ...]) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _detail(args: tuple[Any, ...]) -> str:
    first = args[0] if args else ""
    text = first if isinstance(first, str) else type(first).__name__
    return text[:120]
