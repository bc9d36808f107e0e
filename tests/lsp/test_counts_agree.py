"""One number, everywhere: for a file of every kind (tests/model_kinds.py), the CLI's JSON,
`pthscope/open`'s summary, the tree's root and the hover on the file's path report the same
counts by role — and they are torch's: `model.parameters()` of the model(s) the file was saved
from, the buffers the file stores, the optimizers' state."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient

from pthscope.reader.counts import ROLES, format_bytes
from tests.model_kinds import Kind, write_kinds

from .code_intel import hover_text, open_document, utf16_position
from .conftest import ask

# How the hover names the roles (code_intel/hover.py).
HOVER_ROLE_NAMES = {"parameter": "model parameters", "buffer": "buffers", "optimizer_state": "optimizer state",
                    "other": "other tensors"}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kind]:
    return write_kinds(tmp_path_factory.mktemp("kinds"))


@pytest.fixture(scope="module")
def cli_roles(kinds: dict[str, Kind]) -> dict[str, Any]:
    """`pthscope inspect --json` of every kind, in one process: summary.roles by kind."""
    files = [str(k.file) for k in kinds.values()]
    done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", "--json", "--no-tree", *files],
                          capture_output=True, text=True, timeout=120, check=True)
    by_file = {(out := json.loads(line))["file"]: out["summary"]["roles"] for line in done.stdout.splitlines()}
    return {name: by_file[str(kind.file)] for name, kind in kinds.items()}


def test_the_cli_counts_what_torch_counts(kinds: dict[str, Kind], cli_roles: dict[str, Any]) -> None:
    for name, kind in kinds.items():
        roles, expected = cli_roles[name], kind.expected
        for role in ("parameter", "buffer", "optimizer_state"):
            counted = (roles[role]["tensors"], roles[role]["elements"])
            assert counted == getattr(expected, role), f"{name} ({kind.description}): {role}"
        if expected.grad is not None:
            parameter = roles["parameter"]
            assert (parameter["trainable"], parameter["frozen"], parameter["not_stored"]) == expected.grad, name


@pytest.mark.asyncio(loop_scope="module")
async def test_open_the_tree_and_the_hover_say_the_same(
    shared_client: LanguageClient, kinds: dict[str, Kind], cli_roles: dict[str, Any], tmp_path: Path
) -> None:
    for name, kind in kinds.items():
        opened = await ask(shared_client, "pthscope/open", {"file": str(kind.file)})
        assert opened.errors == [], name
        assert opened.summary["roles"] == cli_roles[name], f"{name}: pthscope/open"
        assert opened.root["counts"] == cli_roles[name], f"{name}: the tree's root"

        text = f'import torch\nstate = torch.load("{kind.file}", weights_only=True)\n'
        uri = open_document(shared_client, tmp_path / f"load_{name}.py", text)
        hover = await _hover_when_linked(shared_client, uri, text, f'"{kind.file}"')
        assert _hover_roles(hover) == _shown(cli_roles[name]), f"{name}: the hover\n{hover}"
        parameters = cli_roles[name]["parameter"]["elements"]
        assert f"| {parameters:,} |" in hover, f"{name}: the hover's parameter count\n{hover}"


async def _hover_when_linked(client: LanguageClient, uri: str, text: str, literal: str) -> str:
    """The hover on the path literal, once the server has read the file it names."""
    for _ in range(50):
        found = await hover_text(client, uri, utf16_position(text, literal, 2))
        if found is not None:
            return found
    raise AssertionError(f"no hover on {literal}")


def _hover_roles(hover: str) -> dict[str, tuple[str, str, str]]:
    """The hover's role table: role name → (tensors, elements, bytes) as shown."""
    names = "|".join(HOVER_ROLE_NAMES.values())
    return {m[0]: (m[1], m[2], m[3]) for m in re.findall(rf"^\| ({names}) \| ([\d,]+) \| ([\d,]+) \| ([^|]+) \|$",
                                                           hover, re.MULTILINE)}


def _shown(roles: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """The rows the hover should show for these counts (the roles a file has)."""
    return {HOVER_ROLE_NAMES[r]: (f"{roles[r]['tensors']:,}", f"{roles[r]['elements']:,}", format_bytes(roles[r]["bytes"]))
            for r in ROLES if roles[r]["tensors"]}
