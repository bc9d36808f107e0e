"""Run a pthscope module with a `sys.path` that nothing from a workspace can get into.

The extension starts the language server as

    <python> -I -S -X utf8 <this folder>/pthscope_launch.py pthscope lsp

from this folder, and the server starts its parse worker the same way (`... pthscope_launch.py
pthscope.worker --memory-limit N`). `-I` leaves the script's folder and the working directory
off `sys.path` (on every Python >= 3.4, so also on 3.10, which has no `-P`), and ignores every
`PYTHON*` variable (PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, ...) and the user site. `-S` leaves
`site` to this script. Before importing anything but the standard library, it builds `sys.path`:

1. `libs/` (the bundled pygls, lsprotocol, cattrs, attrs) and this folder (`pthscope`), first,
   so that a pygls or pthscope installed in the user's Python never wins;
2. the interpreter's own entries, as `site` makes them: its site-packages and what their `.pth`
   files add, then the user site-packages (as a plain entry) where that Python would use one;
3. the absolute entries of the user's PYTHONPATH, last: they can add what the interpreter lacks
   (torch or numpy, for tensor values), never replace a module found before them.

Any entry inside a folder of `PTHSCOPE_WORKSPACE_FOLDERS` (os.pathsep-separated, set by the
client) is dropped, unless it is this folder or in an environment of the interpreter that lives
in that workspace (a trusted workspace's `.venv`): a workspace that an editable install's `.pth`
file or PYTHONPATH names is never imported from. Only then is `sitecustomize` imported (before PYTHONPATH is added, as
under `-I`). The environment itself, its site-packages and `.pth` files, is the user's choice
and is trusted; the client never runs one inside an untrusted workspace. Run without `-I -S`,
the same rules rebuild `sys.path` after the fact.

Usage: python -I -S pthscope_launch.py MODULE [ARGS...]   (like `python -m MODULE ARGS...`)
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterable, Mapping

WORKSPACE_FOLDERS_VARIABLE = "PTHSCOPE_WORKSPACE_FOLDERS"


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def safe_sys_path(current: list[str], here: str, environ: Mapping[str, str],
                  own_prefixes: Iterable[str], environment_ignored: bool,
                  add_pythonpath: bool = True) -> list[str]:
    """The `sys.path` to run with: the bundled code first, the interpreter's entries, the user's
    absolute PYTHONPATH entries last (if `add_pythonpath`); no relative entry, and no entry
    inside a workspace folder unless it is in an environment that lives in that folder."""
    user_path = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(p)]
    workspaces = [_real(f) for f in environ.get(WORKSPACE_FOLDERS_VARIABLE, "").split(os.pathsep)
                  if os.path.isabs(f)]
    prefixes = [_real(p) for p in own_prefixes]

    def from_workspace(real: str) -> bool:
        return any(_inside(real, w) and not any(_inside(real, p) and _inside(p, w) for p in prefixes)
                   for w in workspaces)

    # Without -I, PYTHONPATH's entries stand in front of the standard library: move them last.
    moved = set() if environment_ignored else {_real(p) for p in user_path}
    interpreter = [p for p in current if os.path.isabs(p) and _real(p) not in moved]
    bundled = [p for p in (os.path.join(here, "libs"), here) if os.path.isdir(p)]
    result: list[str] = list(bundled)
    seen = {_real(p) for p in bundled}
    for entry in [*interpreter, *(user_path if add_pythonpath else [])]:
        real = _real(entry)
        if real not in seen and not from_workspace(real):
            seen.add(real)
            result.append(entry)
    return result


def _add_site_packages() -> None:
    """What `site` does at start-up (run with -S), up to `sitecustomize`: the venv, site-packages
    and their `.pth` files; the user site-packages as a plain entry where it would be used."""
    import site

    known = site.venv(site.removeduppaths()) or set()
    site.addsitepackages(known)
    user_site = site.getusersitepackages()
    if site.ENABLE_USER_SITE is not False and os.path.isdir(user_site):  # a venv says False
        sys.path.append(user_site)


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: python -I -S pthscope_launch.py MODULE [ARGS...]\n")
        return 2
    here = os.path.dirname(os.path.realpath(__file__))
    run_site = bool(sys.flags.no_site)
    if run_site:
        _add_site_packages()
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    ignored = bool(sys.flags.ignore_environment)
    sys.path[:] = safe_sys_path(sys.path, here, os.environ, prefixes, ignored, add_pythonpath=False)
    if run_site:  # looked up where Python would, less the workspace (and, as with -I, PYTHONPATH)
        import site

        site.execsitecustomize()
    sys.path[:] = safe_sys_path(sys.path, here, os.environ, prefixes, ignored)
    module = sys.argv[1]
    del sys.argv[1]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
