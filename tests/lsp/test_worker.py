"""The isolated worker: crashes, time-outs, memory limits and cancellation stay per-file.

Each failure must come back as an error in the result for that file, and the server must go
on answering with a fresh worker.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

from .conftest import ask, make_client, server_command, server_env
from .faulty_worker import SLOW_STATS_FILE_NAME, SLOW_VALUES_FILE_NAME


def worker_pids(client: LanguageClient, role: str = "structure") -> list[int]:
    """Workers (parsing ones, by default) the server said it started, in order."""
    return [
        int(m.group(1))
        for message in client.log_messages
        if (m := re.search(rf"{role} worker (\d+) started", message.message))
    ]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


async def wait_until_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_exists(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_crash_is_an_error_and_the_worker_restarts(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    crashed = await ask(client, "pthscope/open", {"file": str(checkpoints["crash"])})
    assert [e["kind"] for e in crashed.errors] == ["worker"]
    assert crashed.errors[0]["message"] == (
        f"worker crashed (signal 11, SIGSEGV) reading {checkpoints['crash']}")
    assert crashed.root is None and crashed.children == []

    fine = await ask(client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert fine.errors == [] and fine.root["child_count"] > 0
    first, second = worker_pids(client)
    assert first != second and not process_exists(first)


@pytest.mark.server_options({"parseTimeLimitSeconds": 0.3})
async def test_time_limit(client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    started = time.monotonic()
    slow = await ask(client, "pthscope/open", {"file": str(checkpoints["slow_read"])})
    assert time.monotonic() - started < 10
    assert [e["message"] for e in slow.errors] == [
        f"worker timed out after 0.3 s reading {checkpoints['slow_read']}"]

    fine = await ask(client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert fine.errors == []
    first, second = worker_pids(client)
    assert not process_exists(first)


@pytest.mark.server_options({"parseMemoryLimitMiB": 64})
async def test_memory_limit(client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    # Listing 30,000 tensors needs far more than 64 MiB; the reader reports it for the file.
    big = await ask(client, "pthscope/open", {"file": str(checkpoints["big"])})
    assert len(big.errors) == 1 and "memory" in big.errors[0]["message"]

    # Running out outside the reader ends the worker's read, and the next read gets a new one.
    hog = await ask(client, "pthscope/open", {"file": str(checkpoints["memory_hog"])})
    assert [e["message"] for e in hog.errors] == [
        f"worker ran out of memory (limit 64 MiB) reading {checkpoints['memory_hog']}"]
    fine = await ask(client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert fine.errors == []
    first, second = worker_pids(client)
    assert await wait_until_gone(first)


async def test_cancel_stops_a_long_read(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    await ask(client, "pthscope/open", {"file": str(checkpoints["state_dict"])})  # worker is up
    pending = asyncio.create_task(client.protocol.send_request_async(
        "pthscope/open", {"file": str(checkpoints["slow_read"])}, msg_id="read-slow"))
    await asyncio.sleep(0.5)  # the worker is reading the file now (for 3 s)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="read-slow"))
    with pytest.raises(JsonRpcRequestCancelled):
        await pending
    [busy_worker] = worker_pids(client)
    assert await wait_until_gone(busy_worker)

    after = await ask(client, "pthscope/details", {
        "file": str(checkpoints["state_dict"]), "path": ["fc.weight"]})
    assert after.node["key"] == "fc.weight"
    fresh = await ask(client, "pthscope/open", {"file": str(checkpoints["training"])})
    assert fresh.errors == [] and len(worker_pids(client)) == 2


async def test_exit_stops_the_server_and_its_worker(checkpoints: dict[str, Path]) -> None:
    client = make_client()
    await client.start_io(*server_command(), env=server_env())
    try:
        await client.initialize_session(types.InitializeParams(capabilities=types.ClientCapabilities()))
        await ask(client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
        [worker] = worker_pids(client)
        assert process_exists(worker)
        await client.shutdown_session()
        assert await wait_until_gone(worker)
    finally:
        await client.stop()


async def test_requests_for_one_file_share_one_read(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    file = str(checkpoints["slow_read"])
    opening = asyncio.create_task(client.protocol.send_request_async(
        "pthscope/open", {"file": file}, msg_id="open-slow"))
    listing = asyncio.create_task(ask(client, "pthscope/tensors", {"file": file, "limit": 3}))
    await asyncio.sleep(0.3)  # within the 3 s read
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="open-slow"))
    with pytest.raises(JsonRpcRequestCancelled):
        await opening
    # The read goes on for the request that still wants it.
    assert (await listing).total == len(torch.load(file, weights_only=True))
    reads = [m for m in client.log_messages if f"read {file}:" in m.message]
    assert len(reads) == 1 and len(worker_pids(client)) == 1


async def test_a_long_statistics_request_holds_up_nothing_and_cancels(
    client: LanguageClient, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    slow = tmp_path / SLOW_STATS_FILE_NAME
    shutil.copy(checkpoints["state_dict"], slow)
    await ask(client, "pthscope/open", {"file": str(slow)})
    computing = asyncio.create_task(client.protocol.send_request_async(
        "pthscope/stats", {"file": str(slow), "path": ["fc.weight"]}, msg_id="slow-stats"))
    await asyncio.sleep(0.5)
    # The tree and the table of the same file are answered while the values are computed.
    page = await ask(client, "pthscope/children", {"file": str(slow), "path": ["fc"]})
    table = await ask(client, "pthscope/tensors", {"file": str(slow), "limit": 2})
    assert page.total == 2 and table.total > 2 and not computing.done()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow-stats"))
    with pytest.raises(JsonRpcRequestCancelled):
        await computing
    [values_worker] = worker_pids(client, "values")
    assert await wait_until_gone(values_worker)
    # Only the values worker was stopped: what the structure worker parsed is still there.
    again = await ask(client, "pthscope/stats", {"file": str(slow), "path": ["stem.bias"]})
    assert again.error is None and again.stats["numel"] == 8
    assert len(worker_pids(client)) == 1
    assert [m for m in client.log_messages if f"read {slow}:" in m.message][1:] == []


async def test_pages_of_a_parsed_file_come_while_another_is_parsed(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    small = str(checkpoints["state_dict"])
    await ask(client, "pthscope/open", {"file": small})
    done: list[str] = []

    async def record(name: str, method: str, params: dict[str, object]) -> None:
        await ask(client, method, params)
        done.append(name)

    slow = asyncio.create_task(record("slow", "pthscope/open", {"file": str(checkpoints["slow_read"])}))
    await asyncio.sleep(0.2)  # the structure worker is reading the slow file now (for 3 s)
    await record("small", "pthscope/children", {"file": small, "path": ["fc"]})
    await slow
    assert done == ["small", "slow"]


async def test_cancelling_a_scan_stops_the_values_worker_and_keeps_serving(
    client: LanguageClient, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    slow = tmp_path / SLOW_VALUES_FILE_NAME
    shutil.copy(checkpoints["state_dict"], slow)
    await ask(client, "pthscope/open", {"file": str(slow)})
    scanning = asyncio.create_task(client.protocol.send_request_async(
        "pthscope/scan", {"file": str(slow)}, msg_id="slow-scan"))
    await asyncio.sleep(1.0)
    # The tree of the same file is answered while its values are read.
    page = await ask(client, "pthscope/children", {"file": str(slow), "path": ["fc"]})
    assert page.total == 2 and not scanning.done()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow-scan"))
    with pytest.raises(JsonRpcRequestCancelled):
        await scanning
    [values_worker] = worker_pids(client, "values")
    assert await wait_until_gone(values_worker)
    again = await ask(client, "pthscope/scan", {"file": str(checkpoints["state_dict"])})
    assert again.complete and again.scanned > 0
