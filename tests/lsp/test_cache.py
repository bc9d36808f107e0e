"""Parsed files are cached until they change on disk; reads report `$/progress`."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from pytest_lsp import LanguageClient

from .conftest import ask


def reads_of(client: LanguageClient, file: Path) -> int:
    """How many times the server says it read `file` in its worker."""
    return sum(m.message.startswith(f"pthscope.worker.store: read {file}:")
               for m in client.log_messages)


async def test_rewritten_file_is_read_again(client: LanguageClient, tmp_path: Path) -> None:
    file = tmp_path / "changing.pt"
    torch.save({"a": torch.zeros(1), "b": torch.zeros(2)}, file)
    first = await ask(client, "pthscope/open", {"file": str(file)})
    assert first.root["child_count"] == 2

    children = await ask(client, "pthscope/children", {"file": str(file), "path": []})
    assert children.total == 2
    assert reads_of(client, file) == 1  # the second request was answered from the cache

    torch.save({"a": torch.zeros(1), "b": torch.zeros(2), "c": torch.zeros(3)}, file)
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks
    after = await ask(client, "pthscope/children", {"file": str(file), "path": []})
    assert [c["key"] for c in after.children] == ["a", "b", "c"]
    assert reads_of(client, file) == 2


async def test_progress_on_the_clients_token(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    client.progress_reports["open-token"] = []
    await ask(client, "pthscope/open",
              {"file": str(checkpoints["training"]), "workDoneToken": "open-token"})
    begin, end = client.progress_reports["open-token"]
    assert begin.kind == "begin" and begin.title == "Reading training.pt"
    assert end.kind == "end"


async def test_progress_on_a_server_token_only_while_reading(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    await ask(client, "pthscope/open", {"file": str(checkpoints["whole_model"])})
    [reports] = client.progress_reports.values()
    assert [r.kind for r in reports] == ["begin", "end"]

    await ask(client, "pthscope/open", {"file": str(checkpoints["whole_model"])})  # cached
    assert len(client.progress_reports) == 1
