"""Start-up: fast imports, typed options, and bad options that warn instead of failing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from pthscope.lsp.options import InitializationOptions, parse_initialization_options

from .conftest import ask


def test_server_module_imports_neither_torch_nor_numpy() -> None:
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, pthscope.lsp.server; print(sorted(sys.modules))"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "'torch'" not in imported and "'numpy'" not in imported


def test_options_from_camel_case_keys() -> None:
    options, problems = parse_initialization_options(
        {"parseTimeLimitSeconds": 5, "parseMemoryLimitMiB": 512, "cacheSize": 2,
         "logLevel": "debug"})
    assert problems == []
    assert options == InitializationOptions(
        parse_time_limit_seconds=5.0, parse_memory_limit_mib=512, cache_size=2, log_level="debug")


def test_bad_options_fall_back_to_defaults() -> None:
    options, problems = parse_initialization_options(
        {"parseTimeLimitSeconds": "fast", "cacheSize": 0, "logLevel": "loud", "colour": "red"})
    assert options == InitializationOptions()
    assert problems == [
        "option 'parseTimeLimitSeconds' must be a number, got 'fast'; using 30.0",
        "option 'cacheSize' must be at least 1, got 0; using 8",
        "option 'logLevel' must be one of error, warning, info, debug, got 'loud'; using 'info'",
        "unknown option 'colour' (known: parseTimeLimitSeconds, parseMemoryLimitMiB, "
        "cacheSize, logLevel)",
    ]
    assert parse_initialization_options([1, 2])[1] == [
        "initializationOptions must be an object, got [1, 2]"]


@pytest.mark.server_options({"parseTimeLimitSeconds": -1, "cacheSize": "many"})
async def test_server_warns_about_bad_options_and_starts(
    client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    warnings = [m.message for m in client.messages]
    assert warnings == [
        "pthscope: option 'parseTimeLimitSeconds' must be at least 0.001, got -1; using 30.0",
        "pthscope: option 'cacheSize' must be a whole number, got 'many'; using 8",
    ]
    opened = await ask(client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert opened.errors == []
