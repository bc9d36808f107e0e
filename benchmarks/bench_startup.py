"""Start-up of the language server against pygls and lsprotocol alone, in fresh processes.

    .venv/bin/python benchmarks/bench_startup.py [--runs 21]

Each run starts, in turn, a bare interpreter (`-c pass`), one that imports pygls' server and
lsprotocol's types (what any pygls server needs), one that imports `pthscope.lsp.server` (which
also makes the server object and registers every feature) and one that runs what `pthscope lsp`
imports before it serves (`pthscope.cli` too). Prints the medians and the ratio of the import
costs (each minus the bare interpreter). Target: the server ≤ 1.15× pygls + lsprotocol. The last
programs import as `pthscope lsp` really does: with the cyclic collector paused, and with attrs'
generated methods read from their cache (cli.py, lsp/attrs_cache.py; the first run writes it).
Every program runs under `-I`, as the server does (so PYTHONDONTWRITEBYTECODE does not apply). Also
checks what the server does not import at start: torch, numpy, the reader's formats, the Python
analysis and code intelligence (imported when first used).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PROGRAMS = {
    "bare interpreter": "pass",
    "pygls + lsprotocol": "import pygls.lsp.server, lsprotocol.types",
    "pthscope.lsp.server": "import pthscope.lsp.server",
    "pthscope lsp (cli + server)": "import pthscope.cli, pthscope.lsp.server",
    # what `pthscope lsp` does (cli.py): the server's imports with the cyclic collector paused
    "pthscope lsp, GC paused": "import gc; gc.disable(); import pthscope.cli, pthscope.lsp.server; gc.enable()",
    "pthscope lsp, GC paused, attrs cache": (
        "import gc; gc.disable(); import pthscope.cli; from pthscope.lsp.attrs_cache import attrs_methods_cached\n"
        "with attrs_methods_cached(): import pthscope.lsp.server\ngc.enable()"),
}
NOT_AT_START = ("torch", "numpy", "pthscope.reader.unpickler", "pthscope.reader.zip_checkpoint",
                "pthscope.analysis", "pthscope.code_intel", "pthscope.values", "pthscope.worker.index")


def run(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", code + "\nimport os; os._exit(0)"], check=True)  # no teardown
    return time.perf_counter() - started


def main(runs: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    for _ in range(runs):
        for name, code in PROGRAMS.items():  # interleaved: load on the machine hits all alike
            times[name].append(run(code))
    median = {name: statistics.median(t) * 1000 for name, t in times.items()}
    bare = median["bare interpreter"]
    for name, ms in median.items():
        print(f"{name:<38} {ms:7.1f} ms   (import {ms - bare:6.1f} ms)")
    base = median["pygls + lsprotocol"] - bare
    for name in ("pthscope.lsp.server", "pthscope lsp (cli + server)"):
        print(f"{name} / pygls + lsprotocol: {(median[name] - bare) / base:.2f}×  (target ≤ 1.15×)")
    for name in ("pthscope lsp, GC paused", "pthscope lsp, GC paused, attrs cache"):
        print(f"{name} / pygls + lsprotocol: {(median[name] - bare) / base:.2f}×")
    probe = ("import sys, json, pthscope.cli, pthscope.lsp.server; "
             f"print(json.dumps([m for m in {list(NOT_AT_START)!r} if m in sys.modules]))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                       text=True).stdout)
    print("imported at start, but should not be:", ", ".join(loaded) or "none")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    main(parser.parse_args().runs)
