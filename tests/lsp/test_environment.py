"""`pthscope/environment` (the status bar's Python and its torch) and the `unimportable`
modules of `pthscope/open` (the banner's "not importable here"), found without importing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from pytest_lsp import LanguageClient

from pthscope.lsp.environment import installed_version, unimportable_modules

from .conftest import ask

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

MISSING = "pthscope_test_no_such_module"


@MODULE_LOOP
async def test_environment_names_the_python_and_torch(shared_client: LanguageClient) -> None:
    env = await ask(shared_client, "pthscope/environment", {})
    assert env.python == ".".join(map(str, sys.version_info[:3]))
    assert Path(env.executable).resolve() == Path(sys.executable).resolve()
    assert env.prefix == sys.prefix
    assert env.torch == torch.__version__.split("+")[0] or env.torch == torch.__version__




def _class_pickle(path: Path, module: str) -> Path:
    """A pickle that rebuilds an instance of `module.Thing` (as torch.save of such an object would)."""
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\nThing\nq\x00)\x81q\x01}q\x02b.")
    return path


@MODULE_LOOP
async def test_open_names_the_modules_this_python_lacks(shared_client: LanguageClient, tmp_path: Path) -> None:
    file = _class_pickle(tmp_path / "needs_class.pt", MISSING)
    opened = await ask(shared_client, "pthscope/open", {"file": str(file)})
    assert [g["name"] for g in opened.globals if g["risk"] == "unknown"] == [f"{MISSING}.Thing"]
    assert opened.unimportable == [MISSING]
    importable = _class_pickle(tmp_path / "needs_collections.pt", "collections")
    assert (await ask(shared_client, "pthscope/open", {"file": str(importable)})).unimportable == []


def test_a_workspace_module_counts_as_importable(tmp_path: Path) -> None:
    globals_ = [{"name": f"{MISSING}.Thing", "risk": "unknown", "count": 1, "uses": {}, "effect": ""},
                {"name": "os.system", "risk": "dangerous", "count": 1, "uses": {}, "effect": ""},
                {"name": "torch.nn.modules.linear.Linear", "risk": "unknown", "count": 1, "uses": {}, "effect": ""},
                {"name": "not an identifier.X", "risk": "unknown", "count": 1, "uses": {}, "effect": ""}]
    assert unimportable_modules(globals_, []) == [MISSING]
    (tmp_path / f"{MISSING}.py").write_text("raise SystemExit('never imported')\n")
    assert unimportable_modules(globals_, [str(tmp_path)]) == []
    assert MISSING not in sys.modules


def test_versions_without_importing() -> None:
    assert installed_version(MISSING) is None
    assert installed_version("torch") == torch.__version__ or installed_version("torch") == torch.__version__.split("+")[0]
