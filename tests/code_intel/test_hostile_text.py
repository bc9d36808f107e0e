"""Checkpoints made with torch whose module names, keys, class names and file names hold code,
quotes, newlines, Markdown and control characters (hostile_text.HOSTILE), and a training script
that loads them: every offered edit parses and adds no name from the file, every hover's
Markdown carries file text only as text, every title and message prints.

Both forms the server handles are checked: `Checkpoint` objects and their JSON.
"""

from __future__ import annotations

import io
import os
import tokenize
from pathlib import Path
from typing import Any

import pytest

import pthscope
from pthscope.analysis import analyze
from pthscope.analysis.facts import ModuleFacts
from pthscope.code_intel import (
    CodeAction,
    Range,
    code_actions,
    diagnostics,
    fix_all_actions,
    hover,
    requires_grad_action,
    resolve_code_action,
)
from pthscope.code_intel.insertion import insertion_at, model_in_scope
from pthscope.code_intel.model_modules import model_modules, requires_grad_code
from pthscope.code_intel.python_text import attribute_path, dotted_name, is_attribute_name
from pthscope.reader.model_view import ModelView, model_view
from tests.code_intel.applying import apply_edits
from tests.code_intel.hostile_text import (
    HOSTILE,
    assert_edit_is_inert,
    assert_markdown_is_inert,
    module_names,
    script_for,
    shows,
    write_hostile_files,
)

FLAG_ACTIONS = ("freeze_except", "freeze_module", "unfreeze_all", "print_parameters")
MODULE_ACTIONS = ("freeze_except", "freeze_module", "unfreeze_module")


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Path]]]:
    root = tmp_path_factory.mktemp("hostile")
    runs = root / "runs"
    runs.mkdir()
    return root, [write_hostile_files(runs, text, n) for n, text in enumerate(HOSTILE)]


def _case(hostile_root: Any, index: int, form: str) -> tuple[str, ModuleFacts, dict[str, Any]]:
    root, files = hostile_root
    paths = files[index]
    checkpoints: dict[str, Any] = {}
    for path in paths.values():
        view = model_view(pthscope.inspect(str(path)))
        checkpoints[os.path.normpath(str(path))] = (
            view if form == "model" else ModelView.from_json(view.to_json())  # as the server gets it
        )
    source = script_for(paths, root)
    return source, analyze(source, str(root / "train.py"), (str(root),)), checkpoints


def _offered(facts: ModuleFacts, checkpoints: dict[str, Any]) -> list[CodeAction]:
    """Every action the light bulb, fix-all and the tree's freeze command offer in the file."""
    actions: list[CodeAction] = []
    for found in diagnostics(facts, checkpoints):
        line = found.range.start.line
        actions += code_actions(facts, Range.of_lines(line), checkpoints, [found])
    for line in range(len(facts.lines)):
        actions += code_actions(facts, Range.of_lines(line), checkpoints, [])
    actions += fix_all_actions(facts, checkpoints)
    resolved = [resolve_code_action(facts, a.data, checkpoints) for a in actions]
    modules = {key for c in checkpoints.values() for key in c.prefixes if key}
    for module in sorted(modules):
        for name in FLAG_ACTIONS:
            action = requires_grad_action(facts, len(facts.lines) - 2, name, module)
            if action is not None:
                resolved.append(action)
    # The quick pick of each model's modules (from the file it is loaded from), on every line.
    for line in range(len(facts.lines)):
        at = insertion_at(facts, line)
        var = model_in_scope(facts, at) if at is not None else None
        if at is None or var is None:
            continue
        for choice in model_modules(facts, var, at, checkpoints, ()).modules:
            for name in MODULE_ACTIONS:
                code = requires_grad_code(facts, at, name, [choice.key], checkpoints)
                if code is not None and code.edits:
                    resolved.append(CodeAction(code.title, "refactor", {"action": name}, edits=code.edits))
    return resolved


def _class_names(checkpoints: dict[str, Any]) -> set[str]:
    """The parts of class paths a safe_globals or state_dict fix may import: only those that
    are dotted identifier paths."""
    names: set[str] = set()
    for checkpoint in checkpoints.values():
        for name, risk in checkpoint.risky_globals:
            if risk == "unknown" and dotted_name(name):
                names.update(name.split("."))
    return names


def _key_members(checkpoints: dict[str, Any]) -> set[str]:
    """The parts of the files' keys that may become attributes (`model.layer1`)."""
    names: set[str] = set()
    for checkpoint in checkpoints.values():
        for key in [*checkpoint.prefixes, *checkpoint.by_name]:
            names.update(part for part in key.split(".") if is_attribute_name(part))
    return names


@pytest.mark.parametrize("form", ["model", "json"])
@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=[ascii(t) for t in HOSTILE])
def test_every_offered_edit_is_inert(hostile_root: Any, index: int, form: str) -> None:
    text = HOSTILE[index]
    source, facts, checkpoints = _case(hostile_root, index, form)
    classes, members = _class_names(checkpoints), _key_members(checkpoints)
    titles = []
    checked: set[str] = set()
    for action in _offered(facts, checkpoints):
        assert action.title.isprintable(), action.title
        titles.append(action.title)
        edits = action.edits or []
        if not edits:
            continue
        assert all(e.new_text.replace("\n", "").isprintable() for e in edits), action.title
        imports = action.data.get("action") in ("safe_globals", "state_dict_load")
        after = apply_edits(source, edits)
        if after in checked:
            continue
        checked.add(after)
        assert_edit_is_inert(source, after, action.title, members, classes if imports else set())
    # The fixes that carry file text are among them.
    assert any(t.startswith("Restore requires_grad flags from") for t in titles), titles
    assert any(t.startswith("Load with weights_only=True, allowing") for t in titles), titles
    if text in module_names():
        # The freeze of the hostile module, written as the boundary writes it (`m.get_submodule(…)`),
        # for a model loaded from a file that has it.
        expressions = [attribute_path(var, text) for var in ("model", "full", "fresh")]
        assert any(f"Freeze {e}" in titles for e in expressions), (expressions, titles)
    for found in diagnostics(facts, checkpoints):
        assert found.message.isprintable(), found.message


@pytest.mark.parametrize("form", ["model", "json"])
@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=[ascii(t) for t in HOSTILE])
def test_every_hover_is_inert(hostile_root: Any, index: int, form: str) -> None:
    text = HOSTILE[index]
    source, facts, checkpoints = _case(hostile_root, index, form)
    seen: dict[tuple[int, int], str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        (row, column), end_column = token.start, token.end[1]
        for character in {column, (column + end_column) // 2}:
            found = hover(facts, row - 1, character, checkpoints)
            if found is not None:
                assert_markdown_is_inert(found.contents, f"{ascii(text)} at {row}:{character}")
                seen[(row - 1, character)] = found.contents
    assert seen
    hovers = list(seen.values())
    # The path hovers open with the verdict; the hostile names show, as text.
    paths = [h for h in hovers if "(checkpoint)" in h and "looked in" not in h]
    assert len(paths) >= 3 and all(h.split("\n")[0].startswith(("✓", "⚠", "Needs")) for h in paths)
    odd_class = f"Cls{text}".replace(".", "")
    assert any(shows(h, odd_class) for h in hovers), (odd_class, hovers)
    if text in module_names():
        assert any(shows(h, f"{text}.0.weight") for h in hovers), hovers
