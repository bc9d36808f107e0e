"""client/src/protocol.ts and server/pthscope/lsp/protocol.py name the same methods and fields."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from pthscope.lsp import protocol

PROTOCOL_TS = Path(__file__).parents[2] / "client" / "src" / "protocol.ts"
# LSP's own WorkDoneProgressParams field; the client sends it through vscode-languageclient.
STANDARD_FIELDS = {"workDoneToken"}


@pytest.fixture(scope="module")
def protocol_ts() -> str:
    if not PROTOCOL_TS.exists():
        pytest.skip(f"{PROTOCOL_TS} is not written yet")
    return PROTOCOL_TS.read_text()


def ts_requests(source: str) -> dict[str, tuple[str, str]]:
    """method → (params interface, result interface) from `new RequestType<P, R, E>('m')`."""
    found = re.findall(r"new RequestType<\s*(\w+),\s*(\w+),\s*\w+\s*>\(\s*'([^']+)'\s*\)", source)
    return {method: (params, result) for params, result, method in found}


def ts_fields(source: str, interface: str) -> set[str]:
    body = re.search(rf"export interface {interface}\s*\{{(.*?)\n\}}", source, re.DOTALL)
    assert body, f"protocol.ts has no interface {interface}"
    return set(re.findall(r"^\s*(\w+)\??\s*:", body.group(1), re.MULTILINE))


def py_fields(cls: type) -> set[str]:
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), a.name) for a in attrs.fields(cls)}


def test_same_methods(protocol_ts: str) -> None:
    assert set(ts_requests(protocol_ts)) == set(protocol.METHODS)


def test_same_params_and_result_fields(protocol_ts: str) -> None:
    for method, (ts_params, ts_result) in ts_requests(protocol_ts).items():
        params_type, result_type = protocol.METHODS[method]
        assert (ts_params, ts_result) == (params_type.__name__, result_type.__name__), method
        assert ts_fields(protocol_ts, ts_params) == py_fields(params_type) - STANDARD_FIELDS, method
        assert ts_fields(protocol_ts, ts_result) == py_fields(result_type), method
