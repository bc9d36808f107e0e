"""Checkpoints whose names hold code, quotes, newlines, Markdown and control characters, made
with torch, and the checks every hover and every offered edit on them must pass.

`HOSTILE` is the family of strings; `write_hostile_files(folder, text)` saves, for one string,
a whole model with a submodule registered under it (`add_module`), a state_dict whose keys hold
it, and a whole model whose submodule class has it in its module and class name (pickled at
protocol 4, through a module placed in `sys.modules` for the save only). `script_for` is a
training script that loads them. `assert_edit_is_inert` and `assert_markdown_is_inert` are the
checks: an edit parses and adds no name from the file; a hover's Markdown, rendered by a
CommonMark parser with tables and linkify, has no link, image, HTML or emphasis made from file
text, no invisible character, and one code block that nothing closes early.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import torch
from markdown_it import MarkdownIt
from torch import nn

from pthscope.plain_text import visible
from tests.code_intel.models import Holder

HOSTILE = [
    # Code and things that look like identifiers but are not plain ones.
    "x; import os",
    "__import__('os').system('id')",
    "a b",
    "layer-1",
    "0",
    "00",
    "01",
    "7",
    "class",
    "None",
    "lambda",
    "match",
    "type",
    "_",
    "__class__",
    "__dict__",
    "canary()",
    "a[canary()]",
    "x)or(canary()",
    "ﬁ",
    "lаyer",
    "١",
    "²",
    "é",
    "中文",
    "😀",
    # Quotes, backslashes, newlines, control and format characters.
    "'",
    '"',
    "'''",
    '"""',
    "\\",
    "a\\nb",
    "a\nb",
    "a\r\nb",
    "\x00",
    "\x1b[31mred",
    "\x7f",
    "x\x85y",
    "\u202eevil",
    "\u2066iso\u2069",
    "\u200bzw",
    "x\u2028y",
    "\ufeffbom",
    "\t",
    "\U000e0041tag",
    "\ud800",
    "\xa0",
    # Markdown, HTML, links, commands, shells.
    "`",
    "``",
    "```",
    "````python",
    "**x**",
    "_x_",
    "*y*",
    "~~s~~",
    "[a](command:foo)",
    "[a](https://evil.example)",
    "![i](x.png)",
    "<img src=x onerror=alert(1)>",
    "<script>",
    "&lt;",
    "&#96;",
    "https://evil.example/x",
    "www.evil.example",
    "me@evil.example",
    "<https://evil.example>",
    "$(touch /tmp/pwn)",
    "${HOME}",
    "{x}",
    "{{x}}",
    "%s",
    "# h",
    "- item",
    "1. x",
    "> q",
    "| a | b |",
    "=",
    "---",
    "~~~",
    "    indented",
    " ",
    "  x  ",
    "[^1]",
    "\\`",
    "a:b",
    "command:pthscope.restartServer",
]

# Names the generated code may introduce: the snippets' own vocabulary.
GENERATED_NAMES = {
    "name",
    "param",
    "named_parameters",
    "requires_grad",
    "requires_grad_",
    "startswith",
    "get_submodule",
    "print",
    "tuple",
    "shape",
    "torch",
    "load",
    "save",
    "state_dict",
    "load_state_dict",
    "serialization",
    "safe_globals",
    "weights_only",
    "map_location",
    "strict",
    "get",
    "checkpoint",
    "start_epoch",
    "n",
    "p",
    "True",
    "False",
}
OWN_EMPHASIS = {"stored", "not stored"}


def module_names() -> list[str]:
    """The hostile strings `nn.Module.add_module` accepts (no dot, not empty, not an attribute)."""
    return [s for s in HOSTILE if s and "." not in s and not hasattr(Holder(), s)]


def hostile_class(text: str, tag: str = "") -> type[nn.Module]:
    """A Linear subclass whose module and class name hold `text` (dots removed: pickle would
    walk them); `tag` keeps the modules of several such classes apart."""
    module_name = f"pkg{tag}{text}".replace(".", "")
    class_name = f"Cls{text}".replace(".", "")
    cls = type("HostileLinear", (nn.Linear,), {})
    cls.__module__, cls.__qualname__ = module_name, class_name
    return cls


def write_hostile_files(folder: Path, text: str, index: int) -> dict[str, Path]:
    """Save the three checkpoints for `text` under `folder`; file names hold `text` where the
    file system allows it."""
    torch.manual_seed(index)
    model = Holder()
    if text in module_names():
        model.add_module(text, nn.Sequential(nn.Linear(2, 2)))
        model.get_submodule(text).requires_grad_(False)
    else:
        model.fc.requires_grad_(False)
    paths = {
        "whole": folder / _file_name(f"whole{index}", text),
        "sd": folder / f"sd{index}.pth",
        "classy": folder / f"classy{index}.pth",
    }
    with open(paths["whole"], "wb") as out:  # torch refuses some names it is given as paths
        torch.save(model, out)
    state = dict(model.state_dict())
    state.update(
        {text: torch.zeros(1), f"blk.{text}.w": torch.zeros(2), f"{text}.0.weight": torch.ones(1)}
    )
    torch.save(state, paths["sd"])
    classy = Holder()
    classy.fc = hostile_class(text)(2, 2)
    _save_with_classes(classy, paths["classy"])
    return paths


def write_combined_files(folder: Path) -> dict[str, Path]:
    """The same three files with every hostile string at once (for the tests over stdio)."""
    folder.mkdir()
    torch.manual_seed(0)
    model = Holder()
    for n, text in enumerate(module_names()):
        model.add_module(text, nn.Sequential(nn.Linear(2, 2)))
        model.get_submodule(text).requires_grad_(n % 2 == 0)
    paths = {
        "whole": folder / "whole_`**x**`[a](command:foo)<img src=x>$(id)\u202e.pth",
        "sd": folder / "sd.pth",
        "classy": folder / "classy.pth",
    }
    with open(paths["whole"], "wb") as out:
        torch.save(model, out)
    state = dict(model.state_dict())
    state.update({f"raw.{n}.{text}": torch.zeros(1) for n, text in enumerate(HOSTILE)})
    torch.save(state, paths["sd"])
    classy = Holder()
    for n, text in enumerate(HOSTILE):
        # The reader refuses a NUL or a lone surrogate in a class name (the per-string files
        # have them): keep this one readable.
        if "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            classy.add_module(f"m{n}", hostile_class(text, str(n))(2, 2))
    _save_with_classes(classy, paths["classy"])
    return paths


def _save_with_classes(model: nn.Module, path: Path) -> None:
    """torch.save at protocol 4, the hostile classes' modules in `sys.modules` for the save."""
    placed = []
    for module in model.modules():
        cls = type(module)
        if cls.__module__.startswith("pkg"):
            holder = sys.modules.setdefault(cls.__module__, types.ModuleType(cls.__module__))
            setattr(holder, cls.__qualname__, cls)
            placed.append(cls.__module__)
    try:
        torch.save(model, path, pickle_protocol=4)
    finally:
        for name in placed:
            sys.modules.pop(name, None)


def _file_name(stem: str, text: str) -> str:
    candidate = f"{stem}_{text}.pth"
    try:
        candidate.encode("utf-8")
    except UnicodeEncodeError:
        return f"{stem}.pth"
    if "/" in text or "\x00" in text or len(candidate.encode()) > 200:
        return f"{stem}.pth"
    return candidate


def script_for(paths: dict[str, Path], root: Path) -> str:
    """A script that loads the files (relative to `root`), freezes, saves and reads keys."""

    def rel(name: str) -> str:
        return repr(str(paths[name].relative_to(root)))

    return (
        "import torch\n"
        "\n"
        "from tests.code_intel.models import Holder\n"
        "\n"
        "frozen = Holder()\n"
        "frozen.requires_grad_(False)\n"
        "model = Holder()\n"
        f"model.load_state_dict(torch.load({rel('sd')}))\n"
        f"full = torch.load({rel('whole')})\n"
        "full.fc.requires_grad_(False)\n"
        "for name, p in full.named_parameters():\n"
        "    p.requires_grad = name.startswith('fc')\n"
        f"odd = torch.load({rel('classy')})\n"
        "print(odd.fc.weight)\n"
        "fresh = Holder()\n"
        f"fresh.load_state_dict(torch.load({rel('sd')}, weights_only=True))\n"
        "torch.save(model, 'runs/out.pth')\n"
    )


# ----------------------------------------------------------------------------- checks


@functools.lru_cache(maxsize=64)
def identifiers(source: str) -> dict[str, frozenset[str]]:
    """The code's names by role: variables it binds or reads, members (attributes, keyword
    arguments) and imported modules. Also compiles the code (raising if it does not)."""
    tree = ast.parse(source)
    compile(tree, "<edited>", "exec", dont_inherit=True)
    found: dict[str, set[str]] = {"variables": set(), "members": set(), "modules": set()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found["variables"].add(node.id)
        elif isinstance(node, ast.arg):
            found["variables"].add(node.arg)
        elif isinstance(node, ast.alias):
            found["variables"].add((node.asname or node.name).split(".")[0])
            found["modules" if node.asname is None and "." in node.name else "members"].update(
                node.name.split(".")
            )
        elif isinstance(node, ast.Attribute):
            found["members"].add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            found["members"].add(node.arg)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found["modules"].update(node.module.split("."))
    return {role: frozenset(names) for role, names in found.items()}


def assert_edit_is_inert(
    before: str,
    after: str,
    title: str,
    members: set[str] = frozenset(),
    classes: set[str] = frozenset(),
) -> None:
    """`after` compiles and adds no invisible character; the names it adds are the generator's
    own, plus: as attributes only, `members` (the parts of the file's keys that are plain
    identifiers, as in `model.layer1`); as imports and variables only, `classes` (the parts of
    validated class paths a safe_globals or state_dict fix imports)."""
    old, new = identifiers(before), identifiers(after)
    added = {role: new[role] - old[role] for role in new}
    variables = {re.sub(r"_[0-9]+$", "", v) for v in added["variables"]}  # an alias `Linear_2`
    assert variables <= GENERATED_NAMES | classes, (title, added)
    assert added["members"] <= GENERATED_NAMES | members | classes, (title, added)
    assert added["modules"] <= classes, (title, added)
    assert all(name.isascii() for names in added.values() for name in names), (title, added)
    new_invisible = {c for c in after if not c.isprintable() and c != "\n"} - set(before)
    assert not new_invisible, (title, new_invisible)


_PARSER = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "strikethrough", "linkify"])
_MARKUP_FROM_TEXT = {"link_open", "image", "html_inline", "html_block"}


OWN_LINK_TEXT = "Open in pthscope"
OWN_LINK_COMMAND = "command:pthscope.openCheckpoint?"


def own_link(link: Any, following: list[Any]) -> bool:
    """The one link hovers hold: our command, one absolute path as its JSON argument, our own
    title, closed right after it."""
    href = str(link.attrs.get("href", ""))
    if not href.startswith(OWN_LINK_COMMAND) or len(following) < 2:
        return False
    try:
        args = json.loads(unquote(href[len(OWN_LINK_COMMAND):]))
    except ValueError:
        return False
    return (
        isinstance(args, list) and len(args) == 1 and isinstance(args[0], str)
        and os.path.isabs(args[0]) and following[0].type == "text"
        and following[0].content == OWN_LINK_TEXT and following[1].type == "link_close"
    )


def rendered_text(markdown: str) -> list[str]:
    """The text of each inline run and code block, as a reader would see it."""
    out = []
    for token in _PARSER.parse(markdown):
        if token.type == "fence":
            out.append(token.content)
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                out.append(child.content)
    return out


def assert_markdown_is_inert(markdown: str, context: str = "") -> None:
    """No invisible character; only the block structure the hover writes (paragraphs, one code
    block holding one line, tables, its own `- ` list items); no image or HTML anywhere, no link
    but the hover's own "Open in pthscope" command link (`own_link`); emphasis only around the
    hover's own words."""
    why = (context, markdown)
    assert all(c.isprintable() or c == "\n" for c in markdown), why
    tokens = _PARSER.parse(markdown)
    assert {t.type for t in tokens} <= _OWN_BLOCKS, why
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) <= 1 and all(f.content.count("\n") == 1 for f in fences), why
    for n, token in enumerate(tokens):
        if token.type == "list_item_open":  # the hover's own items start with a name or "…"
            first = (tokens[n + 2].children or [None])[0]
            assert first is not None and (
                first.type == "code_inline" or first.content.startswith("…")
            ), why
    for token in tokens:
        children = token.children or []
        for n, child in enumerate(children):
            if child.type == "link_open" and own_link(child, children[n + 1 : n + 3]):
                continue
            assert child.type not in _MARKUP_FROM_TEXT, why
            if child.type in ("em_open", "strong_open", "s_open"):
                inner = children[n + 1]
                assert inner.type == "text" and inner.content in OWN_EMPHASIS, why


_OWN_BLOCKS = {
    "paragraph_open",
    "paragraph_close",
    "inline",
    "fence",
    "bullet_list_open",
    "bullet_list_close",
    "list_item_open",
    "list_item_close",
    *(
        f"{part}_{edge}"
        for part in ("table", "thead", "tbody", "tr", "th", "td")
        for edge in ("open", "close")
    ),
}


def shows(markdown: str, text: str) -> bool:
    """True when `text` (as `visible` writes it) is one piece of the rendered hover."""
    wanted = visible(text)
    return any(wanted in piece for piece in rendered_text(markdown))
