"""The boundaries file text crosses: `python_text` (generated Python), `markdown` (hovers) and
`plain_text.visible`, over the whole family of hostile strings, checked by parsing what they
produce (ast, a CommonMark parser) and, for attribute paths, by evaluating them on real modules.
"""

from __future__ import annotations

import ast
import io
import tokenize

import pytest
from torch import nn

from pthscope.code_intel import markdown as md
from pthscope.code_intel.python_text import (
    attribute_path,
    comment,
    dotted_name,
    is_attribute_name,
    string_literal,
)
from pthscope.plain_text import visible
from tests.code_intel.hostile_text import _PARSER as PARSER
from tests.code_intel.hostile_text import HOSTILE, assert_markdown_is_inert, module_names


def _never_called(*_: object) -> None:
    raise AssertionError("a name from the file was run as code")


@pytest.mark.parametrize("text", module_names())
def test_attribute_path_evaluates_to_the_module_it_names(text: str) -> None:
    """Registered with add_module under `text` and nested: the expression finds exactly it."""
    model = nn.Sequential()
    index = text.isdecimal() and text.isascii() and (text == "0" or not text.startswith("0"))
    for n in range(int(text) if index else 0):
        model.add_module(f"pad{n}", nn.Identity())  # a numeric name is indexed by position
    outer = nn.Sequential(nn.Linear(1, 1))
    model.add_module(text, outer)
    cases: list[tuple[str, nn.Module]] = [(text, outer)]
    if not index:
        outer.add_module(text, nn.Linear(1, 1))
        cases += [(f"{text}.0", outer[0]), (f"{text}.{text}", outer.get_submodule(text))]
    for key, expected in cases:
        for quote in ("'", '"'):
            expression = attribute_path("model", key, quote)
            assert expression is not None
            tree = ast.parse(expression, mode="eval")
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            assert names == {"model"}, expression
            found = eval(compile(tree, "<path>", "eval"), {"model": model, "canary": _never_called})
            assert found is expected, expression


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("layer1.0.conv1", "model.layer1[0].conv1"),
        ("fc", "model.fc"),
        ("match.type._", "model.match.type._"),  # soft keywords are attribute names
        ("blocks.10", "model.blocks[10]"),
        ("blocks.01", "model.get_submodule('blocks.01')"),  # `[01]` does not parse
        ("class.fc", "model.get_submodule('class.fc')"),
        ("__class__", "model.get_submodule('__class__')"),
        ("ﬁ", "model.get_submodule('ﬁ')"),  # NFKC would read `fi`
        ("lаyer", "model.get_submodule('lаyer')"),  # Cyrillic а
        ("١", "model.get_submodule('١')"),
        ("x; import os", "model.get_submodule('x; import os')"),
        ("a\nb", "model.get_submodule('a\\nb')"),
        ("\u202eevil", "model.get_submodule('\\u202eevil')"),
        ("", None),
        ("a..b", None),
        ("a.", None),
    ],
)
def test_attribute_path_is_natural_only_for_identifiers(key: str, expected: str | None) -> None:
    assert attribute_path("model", key) == expected


def test_attribute_path_from_code_elements() -> None:
    assert attribute_path("self.net", ("layer1", 0, "conv")) == "self.net.layer1[0].conv"
    assert attribute_path("model", ("a.b",)) is None  # ambiguous as a dotted key
    assert attribute_path("not a var", "fc") is None


@pytest.mark.parametrize("text", HOSTILE + [t + ".x" for t in HOSTILE])
def test_attribute_path_never_runs_or_names_anything(text: str) -> None:
    expression = attribute_path("model", text)
    if expression is None:
        return
    tree = ast.parse(expression, mode="eval")
    assert {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} == {"model"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    if calls:
        (call,) = calls
        assert attributes == {"get_submodule"}
        assert ast.literal_eval(call.args[0]) == text
    else:
        assert all(is_attribute_name(a) for a in attributes)
    assert expression.isprintable()


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("quote", ["'", '"'])
def test_string_literal_round_trips_and_prints(text: str, quote: str) -> None:
    literal = string_literal(text, quote)
    assert ast.literal_eval(literal) == text
    assert isinstance(ast.parse(literal, mode="eval").body, ast.Constant)
    assert literal.isprintable()


@pytest.mark.parametrize("text", HOSTILE)
def test_comment_stays_one_comment(text: str) -> None:
    source = f"x = 1  {comment(text)}\ny = 2\n"
    assert [type(s) for s in ast.parse(source).body] == [ast.Assign, ast.Assign]
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    assert sum(t.type == tokenize.COMMENT for t in tokens) == 1
    assert source.replace("\n", "").isprintable()


@pytest.mark.parametrize(
    "text", ["layer1", "demo_models.SmallResNet", "torch.nn.modules.linear.Linear"]
)
def test_dotted_name_accepts_class_paths(text: str) -> None:
    assert dotted_name(text)


@pytest.mark.parametrize("text", [t for t in HOSTILE if not t.isascii() or not t.isidentifier()])
def test_dotted_name_refuses_everything_else(text: str) -> None:
    assert not dotted_name(f"mod.{text}") or text.replace(".", "").isidentifier()


@pytest.mark.parametrize("text", HOSTILE)
def test_visible_prints_every_character(text: str) -> None:
    shown = visible(text)
    assert shown.isprintable()
    assert shown == text or not text.isprintable()


def _inline_children(markdown: str) -> list:
    inline = [t for t in PARSER.parse(markdown) if t.type == "inline"]
    return [child for token in inline for child in token.children or []]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_text_is_only_text(text: str) -> None:
    markdown = f"before {md.text(text)} after"
    assert_markdown_is_inert(markdown, text)
    children = _inline_children(markdown)
    assert [c.type for c in children] == ["text"]
    assert children[0].content == f"before {visible(text)} after"


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_code_span_cannot_be_closed(text: str) -> None:
    markdown = f"before {md.code(text)} after"
    assert_markdown_is_inert(markdown, text)
    children = _inline_children(markdown)
    assert [c.type for c in children] == ["text", "code_inline", "text"]
    assert children[1].content == visible(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_code_block_holds_the_line(text: str) -> None:
    markdown = f"{md.block(text)}\nafter"
    assert_markdown_is_inert(markdown, text)
    tokens = PARSER.parse(markdown)
    assert tokens[0].type == "fence" and tokens[0].content == visible(text) + "\n"
    assert [t.type for t in tokens[1:]] == ["paragraph_open", "inline", "paragraph_close"]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_text_stays_in_its_table_cell(text: str) -> None:
    markdown = f"| a | b |\n|---|---|\n| {md.text(text)} | end |"
    assert_markdown_is_inert(markdown, text)
    cells = [t for t in PARSER.parse(markdown) if t.type == "inline"]
    assert [c.content for c in cells][:2] == ["a", "b"]
    row = [child.content for cell in cells[2:] for child in cell.children or []]
    assert row == [visible(text).strip(), "end"] or (not visible(text).strip() and row == ["end"])
