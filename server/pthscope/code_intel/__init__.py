"""Facts about a Python file + checkpoints → hovers, diagnostics and code actions.

The API the language server wires (all pure functions, no pygls, plain dataclasses from
`code_intel.types`; positions are 0-based lines and characters in code points, i.e. `str` indices):

    facts = analysis.analyze(source, file_path, workspace_folders, previous=last_facts)
    facts.checkpoint_paths()   # literals naming checkpoints; .candidates are absolute paths
    hover(facts, line, character, checkpoints) -> Hover | None
    diagnostics(facts, checkpoints) -> list[Diagnostic]
    code_actions(facts, range, checkpoints, diagnostics=None) -> list[CodeAction]
    resolve_code_action(facts, action.data, checkpoints) -> CodeAction   # fills .edits
    requires_grad_action(facts, line, "freeze_except", "layer4") -> CodeAction | None  # resolved
    fix_all_actions(facts, checkpoints) -> list[CodeAction]   # a "source" fix-all, or none

`checkpoints` maps absolute normalised paths (`os.path.normpath`) to checkpoints' views
(`reader.model_view.ModelView`: the reader's roles, names and counts, typed); put there the
files whose candidates exist (see `checkpoint_paths()`) and the one open in the side panel.
Missing files simply give no hover. Answers derived from a view are kept on it (`memo`), so
pass the same object until the file changes.

`code_actions` returns entries with `edits=None` and JSON-safe `data`; send `data` back to
`resolve_code_action` on codeAction/resolve. Pass the client's diagnostics (converted back to
`Diagnostic`, keeping `data`) or None to recompute them. Diagnostic codes: PTH001 flags lost on
load, PTH002 torch.load without weights_only, PTH003 whole-model save, PTH008 a linked checkpoint
that does not load into its model (compat_checks.py); every one has a quick
fix and a "Suppress … on this line" fix that appends `# noqa: PTH00x`. PTH002, its fixes and the
path hover follow the linked file's verdict (verdict.py).

File text crosses one boundary per output: generated Python through `python_text` (identifiers
or quoted strings), hover Markdown through `markdown`, plain text (messages, titles) through
`plain_text.visible`.
"""

from .code_actions import (
    CHOOSE_MODULES,
    code_actions,
    fix_all_actions,
    requires_grad_action,
    resolve_code_action,
    snippet_insertion,
)
from .compat_checks import checks_ready, prepare_checks
from .diagnostics import FLAGS_LOST, INCOMPATIBLE_LOAD, UNSAFE_LOAD, WHOLE_MODEL_SAVE, diagnostics
from .hover import hover
from .types import CodeAction, Diagnostic, Hover, Position, Range, TextEdit

__all__ = [
    "CHOOSE_MODULES",
    "FLAGS_LOST",
    "INCOMPATIBLE_LOAD",
    "UNSAFE_LOAD",
    "WHOLE_MODEL_SAVE",
    "CodeAction",
    "Diagnostic",
    "Hover",
    "Position",
    "Range",
    "TextEdit",
    "checks_ready",
    "code_actions",
    "diagnostics",
    "fix_all_actions",
    "hover",
    "prepare_checks",
    "requires_grad_action",
    "resolve_code_action",
    "snippet_insertion",
]
