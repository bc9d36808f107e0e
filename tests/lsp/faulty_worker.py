"""The workers as the tests start them: the real ones, with two faults no file can cause.

The server under test runs `python -m tests.lsp.faulty_worker` instead of `pthscope.worker`
(`pthscope lsp --worker-module`). Asked to read a file named `crash-me.pt`, this worker kills
itself with SIGSEGV; asked to read `hog-memory.pt`, it exhausts its memory limit outside the
reader; `slow-read.pt` it reads after 3 s (a read still under way when a test acts on it, however
fast the machine). Every other file is read by the real reader. The values worker takes 30 s over the
statistics of `fc.weight` in `slow-stats.pt` and over each batch of a scan, diff or conversion
that reads `slow-values.pt`, and, since it must never parse a file (it is told where the bytes
are), fails if it tries to. Production code has no fault hook.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from pthscope.reader.model import Checkpoint
from pthscope.values import TensorBytes
from pthscope.worker import process

CRASH_FILE_NAME = "crash-me.pt"
MEMORY_HOG_FILE_NAME = "hog-memory.pt"
SLOW_READ_FILE_NAME = "slow-read.pt"
SLOW_STATS_FILE_NAME = "slow-stats.pt"
SLOW_VALUES_FILE_NAME = "slow-values.pt"
_read = process.read_checkpoint
_stats = process.compute_stats
_values = process.compute_values


def read_with_faults(file: str) -> Checkpoint:
    name = os.path.basename(file)
    if name == CRASH_FILE_NAME:
        os.kill(os.getpid(), signal.SIGSEGV)
    if name == MEMORY_HOG_FILE_NAME:
        hog = [bytearray(1 << 20) for _ in range(1 << 20)]  # 1 TiB, a MiB at a time
        del hog
    if name == SLOW_READ_FILE_NAME:
        time.sleep(3)
    return _read(file)


def never_parse(file: str) -> Checkpoint:
    raise AssertionError(f"the values worker parsed {file}")


def slow_stats(tensor: TensorBytes) -> dict[str, Any]:
    if os.path.basename(tensor.file) == SLOW_STATS_FILE_NAME and tensor.key == "fc.weight":
        time.sleep(30)
    return _stats(tensor)


def slow_values(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if SLOW_VALUES_FILE_NAME in repr(params):
        time.sleep(30)
    return _values(method, params)


if __name__ == "__main__":
    if sys.argv[sys.argv.index("--serve") + 1] == "values":
        process.read_checkpoint = never_parse
        process.compute_stats = slow_stats
        process.compute_values = slow_values
    else:
        process.read_checkpoint = read_with_faults
    sys.exit(process.main())
