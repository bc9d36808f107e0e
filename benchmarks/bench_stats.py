"""Tensor statistics on a 30,000-tensor file: the first request does not read the pickle again.

    .venv/bin/python benchmarks/bench_stats.py [--runs 20]

Writes a state dict of 30,000 tensors (4×4 each, plus one 1,000,000-element tensor) with torch,
starts `python -m pthscope lsp`, opens the file (the structure worker parses it once), then
times `pthscope/stats`: the first request right after the open (the values worker, which the
open starts in the background, may still be importing torch), the first one on a second server
a few seconds after its open (as a user clicks), then further requests on other tensors; and
checks that the server read the file once. For scale it also times what a statistics request
that parsed the file again would at least cost: `pthscope.inspect` of the file in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

import pthscope  # noqa: E402

TENSORS = 30_000


def write_file(folder: Path) -> Path:
    path = folder / "30k-tensors.pt"
    state = {f"layer{i // 10}.sub{i % 10}.weight": torch.randn(4, 4) for i in range(TENSORS)}
    state["big"] = torch.randn(1000, 1000)
    torch.save(state, path)
    return path


async def ask(client: LanguageClient, method: str, params: dict[str, object]) -> object:
    return await client.protocol.send_request_async(method, params)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.1f} ms"


async def session(file: str, runs: int, logs: list[str], pause: float) -> tuple[float, float, list[float], list[float]]:
    """One server: open the file, wait `pause` s, then the statistics requests."""
    client = LanguageClient("bench", "1")

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        logs.append(params.message)

    await client.start_io(sys.executable, "-m", "pthscope", "lsp")
    try:
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        started = time.perf_counter()
        await ask(client, "pthscope/open", {"file": file})
        opened = time.perf_counter() - started
        await asyncio.sleep(pause)

        async def stats(key: str) -> float:
            started = time.perf_counter()
            result = await ask(client, "pthscope/stats", {"file": file, "path": [key]})
            assert getattr(result, "error", None) is None, result
            return time.perf_counter() - started

        first = await stats("layer0.sub0.weight")
        later = [await stats(f"layer{n * 97 % 3000}.sub{n % 10}.weight") for n in range(1, runs + 1)]
        big = [await stats("big") for _ in range(5)] if runs > 1 else []
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
    return first, opened, later, big


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = str(write_file(Path(folder)))
        parse = []
        for _ in range(3):
            started = time.perf_counter()
            pthscope.inspect(file)
            parse.append(time.perf_counter() - started)
        logs: list[str] = []
        first_now, opened, later, big = await session(file, runs, logs, pause=0.0)
        first_later, _, _, _ = await session(file, 1, logs, pause=5.0)
        reads = sum(f"read {file}:" in line for line in logs)
    print(f"file: {TENSORS:,} tensors of 4×4 float32 + one of 1000×1000")
    print(f"pthscope.inspect in-process (what a re-parse costs at least) {ms(statistics.median(parse))}")
    print(f"pthscope/open (parse in the structure worker)               {ms(opened)}")
    print(f"first pthscope/stats, at once after the open                {ms(first_now)}")
    print(f"first pthscope/stats, 5 s after the open                    {ms(first_later)}")
    print(f"later pthscope/stats, 4×4 tensors (median of {runs})            {ms(statistics.median(later))}")
    print(f"pthscope/stats of the 1,000,000-element tensor (median of 5) {ms(statistics.median(big))}")
    print(f"times each server read the file: {reads / 2:g} (statistics read no pickle)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
