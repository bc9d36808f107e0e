"""Shared set-up for the Python-file features over stdio: a workspace, a client, helpers.

`code_workspace` is a folder with the action tests' torch-made checkpoints under `runs/`
(tests/code_intel/conftest.py), hostile files under `hostile/`, and the action test scripts.
`python_client` starts a server whose workspace folder that is; its client records every
`publishDiagnostics` (with the version) and answers `workspace/applyEdit` by keeping the edit.
Positions go to the server in UTF-16, as VS Code sends them; `apply_lsp_edits` applies edits
the same way.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from tests.code_intel.conftest import GOLDEN, SCRIPTS, make_workspace

from .conftest import CRASH_FILE_NAME, SERVER, PthscopeClientProtocol, client_converter

__all__ = ["GOLDEN", "SCRIPTS"]

WAIT_SECONDS = 20.0


def write_code_workspace(root: Path, state_dict: Path) -> Path:
    make_workspace(root)
    hostile = root / "hostile"
    hostile.mkdir()
    shutil.copy(state_dict, hostile / CRASH_FILE_NAME)  # the worker segfaults reading it
    (hostile / "garbage.pt").write_bytes(b"not a checkpoint\n" * 8)
    for script in SCRIPTS.glob("*.py"):
        shutil.copy(script, root / script.name)
    return root


@pytest.fixture(scope="session")
def code_workspace(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> Path:
    return write_code_workspace(tmp_path_factory.mktemp("code"), checkpoints["state_dict"])


def _record_diagnostics(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
    client.diagnostics[params.uri] = params.diagnostics
    client.published.setdefault(params.uri, []).append(params)  # type: ignore[attr-defined]


def _apply_edit(
    client: LanguageClient, params: types.ApplyWorkspaceEditParams
) -> types.ApplyWorkspaceEditResult:
    client.applied_edits.append(params)  # type: ignore[attr-defined]
    return types.ApplyWorkspaceEditResult(applied=True)


def _converter() -> Any:
    """The tests' converter (our results as the server sends them), reading a code action that
    runs a command as a CodeAction (lsprotocol takes anything with a `command` key for a bare
    Command; VS Code looks at its type)."""
    converter = client_converter()

    def code_action_or_command(value: Any, _: type) -> types.Command | types.CodeAction:
        if isinstance(value.get("command"), str):
            return converter.structure(value, types.Command)
        return converter.structure(value, types.CodeAction)

    converter.register_structure_hook(
        Union[types.Command, types.CodeAction], code_action_or_command  # noqa: UP007
    )
    return converter


def make_python_client() -> LanguageClient:
    client = LanguageClient(protocol_cls=PthscopeClientProtocol, converter_factory=_converter)
    client.published = {}  # type: ignore[attr-defined]
    client.applied_edits = []  # type: ignore[attr-defined]
    features = {
        **DEFAULT_CLIENT_FEATURES,
        types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: _record_diagnostics,
        types.WORKSPACE_APPLY_EDIT: _apply_edit,
    }
    register_lsp_features(client, features)
    return client


PYTHON_SERVER = ClientServerConfig(
    server_command=SERVER.server_command,
    client_factory=make_python_client,
    server_env=SERVER.server_env,
)


async def initialize(client: LanguageClient, root: Path) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities("visual-studio-code"),
            root_uri=from_fs_path(str(root)),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(root)), name="code")],
        )
    )


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def python_client(lsp_client: LanguageClient, code_workspace: Path):
    """One server per test module, its workspace folder `code_workspace` (tests use their own
    file names so that they do not see each other's documents)."""
    await initialize(lsp_client, code_workspace)
    yield
    await lsp_client.shutdown_session()


# ----------------------------------------------------------------------------- documents


def open_document(client: LanguageClient, path: Path, text: str | None = None) -> str:
    """Open `path` (with `text`, or its contents) as version 1; returns its URI."""
    uri = from_fs_path(str(path))
    assert uri is not None
    if text is None:
        text = path.read_text()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    return uri


def change_document(client: LanguageClient, uri: str, version: int, text: str) -> None:
    """Replace the whole text (the server also accepts incremental changes)."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def published(
    client: LanguageClient,
    uri: str,
    accept: Callable[[types.PublishDiagnosticsParams], bool] = lambda _: True,
    after: int = 0,
) -> types.PublishDiagnosticsParams:
    """The first publication for `uri` (from the `after`-th on) that `accept`s."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for params in client.published.get(uri, [])[after:]:  # type: ignore[attr-defined]
            if accept(params):
                return params
        await asyncio.sleep(0.02)
    seen = client.published.get(uri, [])  # type: ignore[attr-defined]
    raise AssertionError(f"no accepted diagnostics for {uri}; got {seen}")


def codes(params: types.PublishDiagnosticsParams) -> list[str]:
    return sorted(str(d.code) for d in params.diagnostics)


def utf16_position(text: str, needle: str, offset: int = 0, occurrence: int = 0) -> types.Position:
    """The LSP position (UTF-16) of `needle` + `offset` code points in `text`."""
    at = -1
    for _ in range(occurrence + 1):
        at = text.index(needle, at + 1)
    at += offset
    line_start = max(text.rfind("\n", 0, at) + 1, 0)
    prefix = text[line_start:at]
    return types.Position(
        line=text.count("\n", 0, at), character=len(prefix.encode("utf-16-le")) // 2
    )


async def hover_text(client: LanguageClient, uri: str, position: types.Position) -> str | None:
    found = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    if found is None:
        return None
    assert isinstance(found.contents, types.MarkupContent)
    return found.contents.value


async def code_actions(
    client: LanguageClient,
    uri: str,
    line: int,
    only: Sequence[str] | None = None,
    end_line: int | None = None,
) -> list[types.CodeAction]:
    found = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=line, character=0),
                end=types.Position(line=line if end_line is None else end_line, character=0),
            ),
            context=types.CodeActionContext(diagnostics=[], only=list(only) if only else None),
        )
    )
    return [a for a in found or [] if isinstance(a, types.CodeAction)]


def text_edits(edit: types.WorkspaceEdit | None, uri: str) -> list[types.TextEdit]:
    assert edit is not None
    if edit.document_changes:
        out: list[Any] = []
        for change in edit.document_changes:
            assert isinstance(change, types.TextDocumentEdit)
            assert change.text_document.uri == uri
            out += change.edits
        return out
    return list((edit.changes or {})[uri])


def apply_lsp_edits(text: str, edits: Sequence[types.TextEdit]) -> str:
    """Apply edits whose positions count UTF-16 code units, all relative to `text`."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def offset(position: types.Position) -> int:
        if position.line >= len(lines):
            return len(text)
        units = 0
        for index, char in enumerate(lines[position.line]):
            if units >= position.character:
                return starts[position.line] + index
            units += len(char.encode("utf-16-le")) // 2
        return starts[position.line] + len(lines[position.line])

    spans = sorted((offset(e.range.start), offset(e.range.end), e.new_text) for e in edits)
    for start, end, new_text in reversed(spans):
        text = text[:start] + new_text + text[end:]
    return text
