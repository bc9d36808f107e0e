"""Every quick fix and refactor on the scripts: apply it, check it parses, compare with a golden
file, and check that applying it leaves nothing to fix again.

Regenerate the golden files with `PTHSCOPE_REGEN_GOLDEN=1 pytest tests/code_intel` and read the
diff before committing it.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from pthscope.analysis import analyze
from pthscope.code_intel import Range, code_actions, diagnostics, resolve_code_action
from pthscope.code_intel.insertion import insertion_at
from pthscope.code_intel.model_modules import requires_grad_code
from pthscope.reader.model_view import ModelView
from tests.code_intel.applying import apply_edits
from tests.code_intel.conftest import GOLDEN, SCRIPTS

REGENERATE = os.environ.get("PTHSCOPE_REGEN_GOLDEN") == "1"
# Lines (1-based) where the refactors (freeze, print, save/load snippets) are asked for.
REFACTOR_LINES = {
    "transfer_learning.py": [46],
    "training_loop.py": [22],
    "lightning_module.py": [16],
}


# The freeze/unfreeze code the quick pick of modules inserts: (script, 1-based line, action, modules).
REQUIRES_GRAD_CASES = [
    ("training_loop.py", 21, "freeze_module", ["backbone"]),
    ("training_loop.py", 21, "unfreeze_module", ["backbone", "head"]),
    ("training_loop.py", 21, "freeze_except", ["head"]),
    ("transfer_learning.py", 47, "freeze_except", ["layer4", "fc"]),
    ("transfer_learning.py", 47, "unfreeze_all", []),
    ("lightning_module.py", 16, "freeze_module", ["head"]),
]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def _cases() -> list[tuple[str, int | None]]:
    cases: list[tuple[str, int | None]] = []
    for script in sorted(p.name for p in SCRIPTS.glob("*.py")):
        cases.append((script, None))
        cases += [(script, line) for line in REFACTOR_LINES.get(script, [])]
    return cases


@pytest.mark.parametrize(("script", "line"), _cases())
def test_actions_match_golden(
    script: str, line: int | None, workspace: Path, checkpoints: dict[str, ModelView]
) -> None:
    source = (SCRIPTS / script).read_text()
    path = str(SCRIPTS / script)
    folders = (str(workspace),)
    facts = analyze(source, path, folders)
    if line is None:
        found = diagnostics(facts, checkpoints)
        actions = [
            a
            for d in found
            for a in code_actions(facts, Range.of_lines(d.range.start.line), checkpoints, [d])
            if a.kind == "quickfix"
        ]
    else:
        actions = code_actions(facts, Range.of_lines(line - 1), checkpoints, [])
    for action in actions:
        assert action.edits is None, "edits are computed on resolve"
        if action.command is not None:  # the quick pick of modules: the client runs it
            assert not resolve_code_action(facts, action.data, checkpoints).edits
            continue
        resolved = resolve_code_action(facts, action.data, checkpoints)
        assert resolved.edits, action.title
        result = apply_edits(source, resolved.edits)
        ast.parse(result)
        suffix = f"L{line}__" if line else ""
        golden = GOLDEN / f"{Path(script).stem}__{suffix}{_slug(action.title)}.py"
        if REGENERATE:
            golden.write_text(result)
        assert golden.exists(), f"missing golden {golden.name}"
        assert result == golden.read_text(), golden.name
        _assert_idempotent(result, path, folders, checkpoints, action.title, line)


def _assert_idempotent(
    result: str,
    path: str,
    folders: tuple[str, ...],
    checkpoints: dict[str, ModelView],
    title: str,
    line: int | None,
) -> None:
    """After applying, the same action is either not offered or changes nothing harmful."""
    facts = analyze(result, path, folders)
    if line is None:
        again = [
            a.title
            for d in diagnostics(facts, checkpoints)
            for a in code_actions(facts, Range.of_lines(d.range.start.line), checkpoints, [d])
        ]
        assert title not in again or title.startswith(("Suppress", "Add weights_only")), title
        return
    for action in code_actions(facts, Range.of_lines(line - 1), checkpoints, []):
        if action.title == title:
            resolved = resolve_code_action(facts, action.data, checkpoints)
            ast.parse(apply_edits(result, resolved.edits or []))


@pytest.mark.parametrize(("script", "line", "action", "modules"), REQUIRES_GRAD_CASES)
def test_requires_grad_code_matches_golden(
    script: str, line: int, action: str, modules: list[str], workspace: Path,
    checkpoints: dict[str, ModelView],
) -> None:
    source = (SCRIPTS / script).read_text()
    facts = analyze(source, str(SCRIPTS / script), (str(workspace),))
    at = insertion_at(facts, line - 1)
    assert at is not None
    code = requires_grad_code(facts, at, action, modules, checkpoints, (str(workspace),))
    assert code is not None and code.edits, code
    result = apply_edits(source, code.edits)
    ast.parse(result)
    golden = GOLDEN / f"{Path(script).stem}__L{line}__code__{_slug(code.title)}.py"
    if REGENERATE:
        golden.write_text(result)
    assert golden.exists(), f"missing golden {golden.name}"
    assert result == golden.read_text(), golden.name
