"""Which Python runs the server, whether it has torch or numpy for tensor values, and which
modules a checkpoint's classes come from that it could not import.

Found without importing anything (a spec on the path, the distribution's metadata, files in the
workspace folders), so that asking costs milliseconds; the values worker runs in this same
Python with this same path. Names from a file are only looked up, never imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from collections.abc import Iterable

from . import protocol as p


def installed_version(module: str) -> str | None:
    """The version of the importable top-level `module`, or None when it is not importable."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def server_environment() -> p.EnvironmentResult:
    return p.EnvironmentResult(
        python=platform.python_version(),
        executable=sys.executable,
        prefix=sys.prefix,
        torch=installed_version("torch"),
        numpy=installed_version("numpy"),
    )


def unimportable_modules(globals_: Iterable[p.GlobalJson], folders: Iterable[str]) -> list[str]:
    """Top-level modules of the classes (`unknown` globals) that this Python cannot find and no
    workspace folder holds as `NAME.py` or `NAME/`: where a user's script, run from there,
    would not find them either."""
    names = {g["name"].replace(":", ".").split(".")[0] for g in globals_ if g["risk"] == "unknown"}
    folders = list(folders)
    return sorted(
        name for name in names
        if name.isidentifier() and installed_version(name) is None
        and not any(os.path.exists(os.path.join(f, name + ".py")) or os.path.isdir(os.path.join(f, name))
                    for f in folders)
    )
