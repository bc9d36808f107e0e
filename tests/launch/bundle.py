"""The extension's server bundle and a workspace of decoys, for the launch tests.

`make_bundle` lays out what scripts/package.sh puts in the .vsix's `bundled/`: the launcher
script, a copy of `pthscope` and `libs/` holding the distributions scripts/bundled-requirements.txt
names, copied file by file (their RECORD) from this interpreter's site-packages, which is where
the package script's pip install gets the same pure-Python wheels. `make_decoys` writes modules
that leave a marker file when imported; `client_command` is the command line the client runs
(client/src/launch.ts, whose node test pins the same arguments).
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = "pthscope_launch.py"
WORKSPACE_FOLDERS_VARIABLE = "PTHSCOPE_WORKSPACE_FOLDERS"

# Imported at start-up by Python, the server or the worker: a workspace copy must never be used.
WORKSPACE_DECOYS = (
    "json.py", "argparse.py", "typing.py", "logging/__init__.py", "asyncio/__init__.py",
    "encodings/__init__.py", "sitecustomize.py", "usercustomize.py", "startup.py",
    "pygls/__init__.py", "lsprotocol/__init__.py", "cattrs/__init__.py", "attrs/__init__.py",
    "typing_extensions.py", "pthscope/__init__.py", "pthscope/worker.py", "pthscope_launch.py",
    "torch/__init__.py", "numpy/__init__.py",
)
# Installed in the user's environment: the bundled copies must win over these.
ENVIRONMENT_DECOYS = ("pygls/__init__.py", "lsprotocol/__init__.py", "cattrs/__init__.py",
                      "pthscope/__init__.py", "pthscope/worker.py")


def bundled_distributions() -> list[str]:
    lines = (REPO / "scripts" / "bundled-requirements.txt").read_text().splitlines()
    return [line.split("==")[0] for line in lines if line and not line.startswith("#")]


def make_bundle(root: Path) -> tuple[Path, list[str]]:
    """`root` laid out like the .vsix's bundled/; returns it and the distributions left out
    because this interpreter does not have them."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "server" / LAUNCHER, root / LAUNCHER)
    shutil.copytree(REPO / "server" / "pthscope", root / "pthscope",
                    ignore=shutil.ignore_patterns("__pycache__"))
    libs = root / "libs"
    missing = []
    for name in bundled_distributions():
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        for file in distribution.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue
            target = libs / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(str(file.locate())), target)
    return root, missing


def make_decoys(folder: Path, markers: Path, modules: tuple[str, ...]) -> None:
    """Each module writes `markers/<module path>` when it is imported (or run)."""
    markers.mkdir(parents=True, exist_ok=True)
    for module in modules:
        path = folder / module
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = markers / module.replace("/", ".")
        path.write_text(f"open({str(marker)!r}, 'w').close()\n")


def markers_in(markers: Path) -> list[str]:
    return sorted(p.name for p in markers.iterdir())


def client_command(python: str, bundle: Path) -> list[str]:
    """What the client runs (client/src/launch.ts), with `bundle` as the working directory."""
    return [python, "-I", "-S", "-X", "utf8", str(bundle / LAUNCHER), "pthscope", "lsp"]
