"""Fixtures shared by the reader's tests: distributed checkpoints written by two real ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def distributed_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/reader/distributed_maker.py's files (FSDP2 DCP save, per-rank DTensor and
    ShardedTensor files, torch's view of each), made once per run by two gloo processes."""
    folder = tmp_path_factory.mktemp("distributed")
    subprocess.run([sys.executable, "-m", "tests.reader.distributed_maker", str(folder)], cwd=_REPO, check=True,
                   timeout=600, capture_output=True)
    return folder
