"""attrs' generated methods are compiled once and then read from the cache (the server's start),
and behave exactly as freshly compiled ones; a broken or unwritable cache changes nothing."""

from __future__ import annotations

import marshal
import sys
from pathlib import Path

import attrs
import pytest

from pthscope.lsp import attrs_cache
from pthscope.lsp.attrs_cache import attrs_methods_cached


@pytest.fixture(autouse=True)
def bytecode_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as under `-I`, which ignores PYTHON* variables


def make_classes() -> tuple[type, type]:
    @attrs.define
    class Point:
        x: int
        y: int = 0
        tags: list[str] = attrs.field(factory=list)

    @attrs.frozen(kw_only=True)
    class Box:
        low: Point
        high: Point

    return Point, Box


def exercise(point: type, box: type) -> list[object]:
    a, b = point(1, 2), point(1, 2)
    made = box(low=a, high=point(3))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.low = b  # type: ignore[misc]
    return [a == b, a != point(2), repr(a), repr(made), hash(made.low.x), attrs.asdict(made)]


def test_a_second_start_compiles_nothing_and_behaves_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache.marshal"
    with attrs_methods_cached(cache):
        first = exercise(*make_classes())
    codes = marshal.loads(cache.read_bytes())
    assert codes and all(isinstance(key, tuple) and len(key) == 3 for key in codes)

    def no_compiling(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"compiled again: {args[1]}")

    monkeypatch.setattr(attrs_cache, "compile", no_compiling, raising=False)
    before = cache.stat().st_mtime_ns
    with attrs_methods_cached(cache):
        second = exercise(*make_classes())
    assert second == first and cache.stat().st_mtime_ns == before


def test_the_shadow_is_gone_after_the_block(tmp_path: Path) -> None:
    import attr._make

    with attrs_methods_cached(tmp_path / "cache.marshal"):
        assert "compile" in vars(attr._make)
    assert "compile" not in vars(attr._make)


@pytest.mark.parametrize("content", [b"", b"garbage\x00\xff", marshal.dumps([1, 2]), marshal.dumps({("a", "b", "c"): 3})])
def test_an_unreadable_cache_is_ignored_and_rewritten(tmp_path: Path, content: bytes) -> None:
    cache = tmp_path / "cache.marshal"
    cache.write_bytes(content)
    with attrs_methods_cached(cache):
        exercise(*make_classes())
    codes = marshal.loads(cache.read_bytes())
    assert isinstance(codes, dict) and len(codes) >= 2


def test_a_folder_that_cannot_be_written_is_fine(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache's folder would be")
    with attrs_methods_cached(blocker / "__pycache__" / "cache.marshal"):
        assert exercise(*make_classes())[0] is True
    assert list(tmp_path.iterdir()) == [blocker]


def test_no_cache_is_written_where_bytecode_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with attrs_methods_cached(tmp_path / "cache.marshal"):
        exercise(*make_classes())
    assert list(tmp_path.iterdir()) == []
