"""The structure worker starts with the server, so that the first page's file is read by a
worker that is already up (the cold start: benchmarks/bench_cold_start.mjs)."""

from __future__ import annotations

import asyncio
import re

import pytest
from pytest_lsp import LanguageClient


async def test_the_structure_worker_starts_before_any_request(client: LanguageClient) -> None:
    for _ in range(400):
        if any(re.search(r"structure worker \d+ started", m.message) for m in client.log_messages):
            return
        await asyncio.sleep(0.05)
    pytest.fail("no structure worker started within 20 s of initialize")
