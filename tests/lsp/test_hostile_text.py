"""Hostile names over stdio: a whole model with a submodule under every hostile string, a
state_dict whose keys hold them, a model whose submodules' classes are named with them, and a
file name full of Markdown (tests/code_intel/hostile_text.py). Through the real server, every
hover is inert Markdown, every diagnostic and title prints, and every code action and tree
command edit parses and adds no name from the files.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

import pthscope
from pthscope.code_intel.python_text import dotted_name, is_attribute_name
from tests.code_intel.hostile_text import (
    HOSTILE,
    assert_edit_is_inert,
    assert_markdown_is_inert,
    module_names,
    script_for,
    shows,
    write_combined_files,
)

from .code_intel import (
    apply_lsp_edits,
    code_actions,
    code_workspace,
    hover_text,
    open_document,
    published,
    python_client,
    text_edits,
    utf16_position,
)

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def hostile_script(code_workspace: Path) -> tuple[Path, str]:
    paths = write_combined_files(code_workspace / "hostile_runs")
    return code_workspace / "hostile_train.py", script_for(paths, code_workspace)


@pytest.fixture(scope="module")
def class_names(code_workspace: Path, hostile_script: tuple[Path, str]) -> set[str]:
    """Parts of the class paths (dotted identifier paths only) a safe_globals fix may import."""
    names: set[str] = set()
    for path in (code_workspace / "hostile_runs").iterdir():
        for found in pthscope.inspect(str(path)).globals:
            if found.risk == "unknown" and dotted_name(found.name):
                names.update(found.name.split("."))
    return names


def _members() -> set[str]:
    parts = {p for text in HOSTILE for p in text.split(".")} | {"raw", "blk", "fc", "weight"}
    return {p for p in parts if is_attribute_name(p)} | {str(n) for n in range(len(HOSTILE))}


async def _open(client: LanguageClient, hostile_script: tuple[Path, str]) -> tuple[str, str]:
    path, text = hostile_script
    uri = open_document(client, path, text)
    # Diagnostics are published again once the linked checkpoints are read.
    await published(
        client, uri, lambda p: any("pickled whole model" in d.message for d in p.diagnostics)
    )
    return uri, text


async def test_every_hover_over_stdio_is_inert(
    python_client: LanguageClient, hostile_script: tuple[Path, str]
) -> None:
    uri, text = await _open(python_client, hostile_script)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in (tokenize.NAME, tokenize.STRING):
            continue
        line = text.split("\n")[token.start[0] - 1]
        offset = len(line[: token.start[1]].encode("utf-16-le")) // 2
        position = types.Position(line=token.start[0] - 1, character=offset + 1)
        contents = await hover_text(python_client, uri, position)
        if contents is not None:
            assert_markdown_is_inert(contents, token.string)
            found.append(contents)
    paths = [h for h in found if "(checkpoint)" in h]
    assert len(paths) >= 3, found
    assert any(shows(h, "whole_`**x**`[a](command:foo)<img src=x>$(id)\u202e.pth") for h in found)
    # The loop over the whole model names the first of its hostile submodules' parameters.
    assert any(shows(h, f"{module_names()[0]}.0.weight") for h in found), found
    # The classes hover lists hostile class names as code, visibly.
    assert any(shows(h, "pkg0x; import os.Clsx; import os") for h in paths), paths


async def test_every_code_action_over_stdio_is_inert(
    python_client: LanguageClient, hostile_script: tuple[Path, str], class_names: set[str]
) -> None:
    uri, text = await _open(python_client, hostile_script)
    diagnostics = (await published(python_client, uri, lambda p: len(p.diagnostics) > 3)).diagnostics
    assert all(d.message.isprintable() for d in diagnostics)
    titles = []
    for line in range(text.count("\n")):
        for action in await code_actions(python_client, uri, line):
            assert action.title.isprintable(), action.title
            titles.append(action.title)
            resolved = await python_client.code_action_resolve_async(action)
            edits = text_edits(resolved.edit, uri)
            if edits:
                after = apply_lsp_edits(text, edits)
                data = action.data if isinstance(action.data, dict) else {}
                imports = class_names if data.get("action") == "safe_globals" else set()
                assert_edit_is_inert(text, after, action.title, _members(), imports)
    assert any(t.startswith("Restore requires_grad flags from whole_") for t in titles), titles


async def test_the_modules_quick_pick_offers_only_keys_it_takes_back(
    python_client: LanguageClient, hostile_script: tuple[Path, str]
) -> None:
    """listModules names the model's modules from its file; a key the command would refuse
    (hostile text) is left out, and each freeze of a listed one is inert code."""
    uri, text = await _open(python_client, hostile_script)
    before = len(python_client.applied_edits)  # type: ignore[attr-defined]
    line = utf16_position(text, "full.fc.requires_grad_").line
    listed = await python_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pthscope.listModules", arguments=[{"uri": uri, "line": line}])
    )
    assert listed["var"] == "full" and listed["modules"], listed
    for choice in listed["modules"]:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", choice["key"]), choice
        assert (choice["label"] + choice["description"]).isprintable() and "$(" not in choice["description"]
        arguments = {"uri": uri, "line": line, "action": "freezeModule", "modules": [choice["key"]]}
        result = await python_client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="pthscope.insertRequiresGradCode", arguments=[arguments])
        )
        assert result["applied"], result
    for params in python_client.applied_edits[before:]:  # type: ignore[attr-defined]
        after = apply_lsp_edits(text, text_edits(params.edit, uri))
        assert_edit_is_inert(text, after, str(params.label), _members())


@pytest.mark.parametrize("module", ["class", "fc"])
async def test_tree_freeze_command_quotes_what_is_not_an_identifier(
    python_client: LanguageClient, hostile_script: tuple[Path, str], module: str
) -> None:
    uri, text = await _open(python_client, hostile_script)
    before = len(python_client.applied_edits)  # type: ignore[attr-defined]
    line = utf16_position(text, "torch.save(model").line
    for action in ("freezeModule", "freezeAllExcept"):
        arguments = {"uri": uri, "line": line, "action": action, "module": module}
        result = await python_client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="pthscope.insertRequiresGradCode", arguments=[arguments]
            )
        )
        assert result is not None
    applied = python_client.applied_edits[before:]  # type: ignore[attr-defined]
    assert len(applied) == 2
    for params in applied:
        after = apply_lsp_edits(text, text_edits(params.edit, uri))
        assert_edit_is_inert(text, after, str(params.label), {p for p in module.split(".")})
        natural = all(is_attribute_name(p) for p in module.split("."))
        assert ("get_submodule" in after) != natural or "startswith" in after, after


@pytest.mark.parametrize("module", ["layer1.01", "match.type", "None.x"])
async def test_tree_freeze_command_refuses_a_module_the_model_lacks(
    python_client: LanguageClient, hostile_script: tuple[Path, str], module: str
) -> None:
    uri, text = await _open(python_client, hostile_script)
    before = len(python_client.applied_edits)  # type: ignore[attr-defined]
    line = utf16_position(text, "torch.save(model").line
    arguments = {"uri": uri, "line": line, "action": "freezeModule", "module": module}
    result = await python_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pthscope.insertRequiresGradCode", arguments=[arguments])
    )
    assert result["applied"] is False and f"has no module `{module}`" in result["message"], result
    assert len(python_client.applied_edits) == before  # type: ignore[attr-defined]
