"""The structure worker starts with the server — before the server has even imported pygls,
for the default options — so that the first page's file is read by a worker that is already up
(the cold start: benchmarks/bench_cold_start.mjs)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest
from pytest_lsp import LanguageClient


async def first_structure_worker(client: LanguageClient) -> int:
    for _ in range(400):
        for message in client.log_messages:
            if found := re.search(r"structure worker (\d+) started", message.message):
                return int(found.group(1))
        await asyncio.sleep(0.05)
    pytest.fail("no structure worker started within 20 s of initialize")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields from the third (state) on."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def started_at(pid: int) -> float:
    """When process `pid` started, in epoch seconds (to the kernel's 10 ms)."""
    booted_ago = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - booted_ago + int(_stat(pid)[19]) / os.sysconf("SC_CLK_TCK")


def structure_workers_of(server_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and int(_stat(int(entry.name))[1]) == server_pid
                    and b"--serve\0structure" in (entry / "cmdline").read_bytes()):
                found.append(int(entry.name))
        except (OSError, IndexError):  # gone meanwhile
            continue
    return found


def logged_mark(client: LanguageClient, mark: str) -> float:
    """The epoch seconds of the server's `startup: MARK +N ms at EPOCH_MS` log line."""
    for message in client.log_messages:
        if found := re.search(rf"startup: {mark} \+\d+ ms at (\d+)", message.message):
            return int(found.group(1)) / 1000
    pytest.fail(f"the server logged no {mark!r} mark")


async def test_the_structure_worker_starts_before_the_server_is_imported(client: LanguageClient) -> None:
    worker = await first_structure_worker(client)
    assert started_at(worker) < logged_mark(client, "server imported")
    server = int(_stat(worker)[1])
    assert structure_workers_of(server) == [worker]


@pytest.mark.server_options({"cacheSize": 3})
async def test_other_options_replace_the_early_worker(client: LanguageClient) -> None:
    worker = await first_structure_worker(client)
    assert b"--cache-size\x003\x00" in Path(f"/proc/{worker}/cmdline").read_bytes()
    assert structure_workers_of(int(_stat(worker)[1])) == [worker]  # the early one was stopped
