"""The real server and worker, started the way the client starts them, import nothing from a
workspace full of decoys, and the user's PYTHONPATH and environment shadow none of their code.

The workspace holds `json.py`, `argparse.py`, `asyncio/`, `encodings/`, `pygls/`, `pthscope/`,
`sitecustomize.py`, `torch/`... each writing a marker file when imported. It is named on the
user's PYTHONPATH and by a `.pth` file in the user's environment (as an editable install of it
would), PYTHONSTARTUP points into it and PYTHONHOME is garbage; the environment also holds
decoy `pygls`/`pthscope` packages. The server still answers `pthscope/open` (the worker),
`pthscope/stats` (the worker with the environment's real torch) and hovers, with no marker.
Other Pythons found on this machine (3.10, which has no `-P`, 3.12, 3.13) run the bundle too.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from pytest_lsp import LanguageClient

from pthscope.worker.client import worker_command
from tests.lsp.code_intel import (
    hover_text,
    initialize,
    make_python_client,
    open_document,
    utf16_position,
)
from tests.lsp.conftest import ask

from .bundle import (
    ENVIRONMENT_DECOYS,
    LAUNCHER,
    WORKSPACE_DECOYS,
    WORKSPACE_FOLDERS_VARIABLE,
    client_command,
    make_bundle,
    make_decoys,
    markers_in,
)

TRAIN_PY = 'import torch\n\nstate = torch.load("model.pt", weights_only=True)\n'


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return make_bundle(tmp_path_factory.mktemp("extension") / "bundled")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A decoy workspace with a checkpoint and a Python file, a folder of the user's named on
    PYTHONPATH, and a user environment (a venv) with decoys and a `.pth` file into the workspace."""
    root = tmp_path_factory.mktemp("world")
    world = {name: root / name for name in ("workspace", "user_libs", "markers", "env")}
    make_decoys(world["workspace"], world["markers"] / "workspace", WORKSPACE_DECOYS)
    make_decoys(world["user_libs"], world["markers"] / "user_libs", WORKSPACE_DECOYS)
    torch.manual_seed(0)
    torch.save({"layer.weight": torch.randn(4, 3), "layer.bias": torch.zeros(4)},
               world["workspace"] / "model.pt")
    (world["workspace"] / "train.py").write_text(TRAIN_PY)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(world["env"])], check=True)
    env_python = world["env"] / "bin" / "python"
    site_packages = Path(subprocess.run(
        [env_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    make_decoys(site_packages, world["markers"] / "env", ENVIRONMENT_DECOYS)
    # an editable install of the workspace, then torch (this venv's own site-packages)
    (site_packages / "a_workspace_editable.pth").write_text(f"{world['workspace']}\n")
    (site_packages / "zz_torch.pth").write_text(f"{sysconfig.get_path('purelib')}\n")
    world["python"] = env_python
    return world


def hostile_environment(world: dict[str, Path]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(world["workspace"]), str(world["user_libs"]), "."]),
        "PYTHONSTARTUP": str(world["workspace"] / "startup.py"),
        "PYTHONHOME": "/nonexistent",
        WORKSPACE_FOLDERS_VARIABLE: str(world["workspace"]),
    }


async def started(command: list[str], cwd: Path, env: dict[str, str], workspace: Path) -> LanguageClient:
    client = make_python_client()
    await client.start_io(*command, cwd=str(cwd), env=env)
    await initialize(client, workspace)
    return client


@pytest.fixture
async def stop_after() -> AsyncIterator[list[LanguageClient]]:
    clients: list[LanguageClient] = []
    yield clients
    for client in clients:
        await client.shutdown_session()
        await client.stop()


@pytest.mark.parametrize("cwd", ["extension", "workspace"])
async def test_server_and_worker_import_nothing_from_the_workspace(
    bundle: tuple[Path, list[str]], world: dict[str, Path], cwd: str,
    stop_after: list[LanguageClient],
) -> None:
    """`extension`: the client's working directory; `workspace`: -I is enough even from there."""
    folder, _ = bundle
    workspace = world["workspace"]
    client = await started(client_command(str(world["python"]), folder),
                           folder if cwd == "extension" else workspace,
                           hostile_environment(world), workspace)
    stop_after.append(client)
    model = str(workspace / "model.pt")

    opened = await ask(client, "pthscope/open", {"file": model})
    assert opened.summary["tensors"] == 2 and opened.errors == []
    stats = await ask(client, "pthscope/stats", {"file": model, "path": ["layer.weight"]})
    assert stats.error is None and stats.stats["engine"] == "torch"
    weight = torch.load(model, weights_only=True)["layer.weight"]
    assert stats.stats["min"] == pytest.approx(float(weight.min()))
    uri = open_document(client, workspace / "train.py")
    hover = await hover_text(client, uri, utf16_position(TRAIN_PY, '"model.pt"', 2))
    assert hover is not None and "model.pt" in hover

    assert markers_in(world["markers"] / "workspace") == []
    assert markers_in(world["markers"] / "user_libs") == []
    assert markers_in(world["markers"] / "env") == []


def other_pythons() -> list[Path]:
    """Interpreters of other versions on this machine (pyenv's or on PATH), one per version."""
    found: dict[str, Path] = {}
    for minor in ("3.10", "3.12", "3.13"):
        candidates = [shutil.which(f"python{minor}")] + sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python{minor}")))
        for candidate in candidates:
            if candidate and "shims" not in candidate:
                found.setdefault(minor, Path(candidate))
    return list(found.values())


@pytest.mark.parametrize("python", other_pythons(), ids=lambda p: p.name)
async def test_other_pythons_run_the_bundle_isolated(
    python: Path, bundle: tuple[Path, list[str]], world: dict[str, Path],
    stop_after: list[LanguageClient],
) -> None:
    folder, missing = bundle
    if python.name == "python3.10" and "exceptiongroup" in missing:
        pytest.skip("cattrs needs exceptiongroup on 3.10, and this interpreter lacks it to bundle")
    env = hostile_environment(world)
    env["PYTHONPATH"] = str(world["workspace"])  # no torch there: user_libs' decoy torch would be used
    client = await started(client_command(str(python), folder), folder, env, world["workspace"])
    stop_after.append(client)
    opened = await ask(client, "pthscope/open", {"file": str(world["workspace"] / "model.pt")})
    assert opened.summary["tensors"] == 2
    assert markers_in(world["markers"] / "workspace") == []


def test_worker_command_is_isolated_through_the_launcher() -> None:
    command = worker_command(1 << 30)
    assert command[:3] == [sys.executable, "-I", "-S"]
    assert Path(command[3]).name == LAUNCHER and command[4:] == ["pthscope.worker", "--memory-limit", str(1 << 30)]


def test_the_decoys_catch_the_old_launch(world: dict[str, Path], tmp_path: Path) -> None:
    """A negative control: `python -m pthscope` from the workspace (how the client used to start
    the server) imports the workspace's modules."""
    markers = tmp_path / "markers"
    make_decoys(tmp_path / "ws", markers, WORKSPACE_DECOYS)
    subprocess.run([sys.executable, "-m", "pthscope", "--version"], cwd=tmp_path / "ws",
                   capture_output=True, timeout=60)
    assert "pthscope.__init__.py" in markers_in(markers)
