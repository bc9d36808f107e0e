"""The safetensors reader's fast path (headers decoded as dicts, entries checked column by column)
says exactly what its per-entry path says, for usual and odd headers alike."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from pthscope.reader import safetensors_file
from pthscope.reader.limits import DEFAULT_LIMITS
from pthscope.reader.safetensors_file import read_safetensors


def _file(folder: Path, name: str, header: str, data_size: int) -> Path:
    raw = header.encode()
    path = folder / name
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data_size))
    return path


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> str:
    return json.dumps({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}, separators=(",", ":"))


_A, _B = _entry("F32", [2, 2], 0, 16), _entry("F16", [4], 16, 24)
HEADERS = {
    "usual": (f'{{"__metadata__":{{"format":"pt"}},"a":{_A},"b":{_B}}}', 24),
    "pretty": (json.dumps({"a": json.loads(_A), "b": json.loads(_B)}, indent=2), 24),
    "space before colon": (f'{{"a" :{_A},"b":{_B}}}', 24),
    "key twice": (f'{{"a":{_A},"a":{_B}}}', 24),
    "inner key twice": ('{"a":{"dtype":"F32","dtype":"F16","shape":[4],"data_offsets":[0,8]}}', 8),
    "escaped key twice": ('{"a":{"dtype":"F16","dt\\u0079pe":"F16","shape":[4],"data_offsets":[0,8]}}', 8),
    "metadata twice": (f'{{"__metadata__":{{"x":"1"}},"__metadata__":{{"x":"2"}},"a":{_A}}}', 16),
    "metadata key twice": (f'{{"__metadata__":{{"x":"1","x":"2"}},"a":{_A}}}', 16),
    "metadata not text": (f'{{"__metadata__":{{"x":1}},"a":{_A}}}', 16),
    "colon in a name": (f'{{"a\\":":{_A},":b":{_B}}}', 24),
    "out of order": (f'{{"b":{_B},"a":{_A}}}', 24),
    "gap": (f'{{"a":{_A},"b":{_entry("F16", [4], 20, 28)}}}', 28),
    "overlap": (f'{{"a":{_A},"b":{_entry("F16", [4], 8, 16)}}}', 24),
    "trailing bytes": (f'{{"a":{_A}}}', 20),
    "empty tensor": (f'{{"a":{_A},"e":{_entry("F32", [0, 3], 16, 16)}}}', 16),
    "sub-byte dtype": (f'{{"a":{_A},"f":{_entry("F4", [4], 16, 18)}}}', 18),
    "unknown dtype": (f'{{"a":{_entry("Q7", [4], 0, 16)}}}', 16),
    "wrong size": (f'{{"a":{_entry("F32", [4], 0, 8)}}}', 8),
    "past the end": (f'{{"a":{_entry("F32", [4], 0, 16)}}}', 8),
    "bool dim": (f'{{"a":{_entry("F32", [True, 4], 0, 16)}}}', 16),
    "float offset": ('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0.0,16]}}', 16),
    "extra field": ('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"x":1}}', 16),
    "missing field": ('{"a":{"dtype":"F32","data_offsets":[0,16]}}', 16),
    "not an object": (f'{{"a":[{_A}]}}', 16),
    "nested object": ('{"a":{"dtype":"F32","shape":[{"n":4}],"data_offsets":[0,16]}}', 16),
    "huge": (f'{{"a":{_entry("U8", [2**40, 2**40], 0, 16)}}}', 16),
    "no tensors": ('{"__metadata__":{"format":"pt"}}', 0),
}


@pytest.mark.parametrize("name", list(HEADERS))
def test_fast_and_per_entry_paths_agree(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header, data_size = HEADERS[name]
    path = str(_file(tmp_path, "x.safetensors", header, data_size))
    fast = read_safetensors(path, DEFAULT_LIMITS)
    monkeypatch.setattr(safetensors_file, "_keys_unique", lambda raw, header: False)
    monkeypatch.setattr(safetensors_file, "_read_valid_entries", lambda *args: False)
    plain = read_safetensors(path, DEFAULT_LIMITS)
    assert fast.to_json() == plain.to_json()
    assert fast.storage_offsets == plain.storage_offsets
    if "twice" in name:
        assert any("twice" in e.message for e in fast.errors), fast.errors
    if name in ("usual", "pretty", "space before colon", "out of order"):
        assert fast.ok and [t.key for t in fast.tensors] == [t.key for t in plain.tensors]


@pytest.mark.parametrize("name", ["usual", "pretty", "out of order"])
def test_usual_headers_take_the_fast_path(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header, data_size = HEADERS[name]
    taken: list[bool] = []
    fast = safetensors_file._read_valid_entries

    def spy(*args: Any) -> bool:
        taken.append(fast(*args))
        return taken[-1]

    monkeypatch.setattr(safetensors_file, "_read_valid_entries", spy)
    monkeypatch.setattr(safetensors_file, "_Pairs", None)  # the pairs are never decoded
    assert read_safetensors(str(_file(tmp_path, "x.safetensors", header, data_size)), DEFAULT_LIMITS).ok
    assert taken == [True]
