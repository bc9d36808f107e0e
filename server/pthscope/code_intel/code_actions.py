"""The light-bulb list (`code_actions`) and the edit of one entry (`resolve_code_action`).

Listing is cheap: it decides which actions apply and stores in `data` what resolving needs.
Resolving recomputes the edit from fresh facts, so an entry resolved after the file changed
still edits the right place (or returns no edits when its target is gone). The list stays short:
the quick fixes of the line's findings first, then for the model in scope one entry that opens
a quick pick of its modules (`command`), printing its flags, and the save or load snippets that
fit the line (`snippet`: their paths and names are tab stops, snippet_text.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..analysis.facts import ModuleFacts
from ..analysis.flow import Built
from ..plain_text import visible
from . import compat_checks, fixes, snippets
from .diagnostics import (
    CUDA_WITHOUT_MAP_LOCATION,
    FLAGS_LOST,
    MISSING_KEY,
    REFUSED_LOAD,
    RUNS_CODE_LOAD,
    UNSAFE_LOAD,
    WHOLE_MODEL_SAVE,
    diagnostics,
)
from .insertion import Insertion, already_there, insert_edit, insertion_at, model_in_scope
from .linking import Checkpoints
from .lost_flags import find_lost_flags, latest_assignment
from .model_modules import flag_title, requires_grad_code, value_at
from .python_text import string_literal
from .safe_globals_fix import safe_globals_load
from .snippet_text import plain, snippet
from .text_edits import quote_char
from .types import SOURCE, CodeAction, Diagnostic, Range, TextEdit
from .verdict import Verdict, linked_verdict

CHOOSE_MODULES = "pthscope.chooseModules"  # the client's quick pick of the model's modules
QUICKFIX = "quickfix"
REFACTOR = "refactor"
SOURCE_ACTION = "source"
FIX_ALL_TITLE = "Restore requires_grad flags and add weights_only=True in this file"
_DEFAULT_PATHS = {
    "state_dict": "model.pth",
    "entire": "model_full.pth",
    "training": "checkpoint.pth",
}


def code_actions(
    facts: ModuleFacts,
    range: Range,
    checkpoints: Checkpoints,
    diagnostics_in_range: Sequence[Diagnostic] | None = None,
) -> list[CodeAction]:
    """Quick fixes for the diagnostics in `range` (recomputed when None), then refactors."""
    first, last = range.start.line, range.end.line
    if diagnostics_in_range is None:
        diagnostics_in_range = diagnostics(facts, checkpoints)
    actions: list[CodeAction] = []
    for diagnostic in diagnostics_in_range:
        line = diagnostic.range.start.line
        if diagnostic.source == SOURCE and line <= last and first <= diagnostic.range.end.line:
            actions += _fixes_for(facts, checkpoints, diagnostic)
    actions += _refactors(facts, first, checkpoints)
    return actions


def resolve_code_action(
    facts: ModuleFacts, data: Mapping[str, Any], checkpoints: Checkpoints | None = None
) -> CodeAction:
    """The action described by `data`, with its edits (empty if it no longer applies)."""
    action = data.get("action")
    kind = QUICKFIX if action in _FIXES else SOURCE_ACTION if action == "fix_all" else REFACTOR
    edits = _edits(facts, data, checkpoints or {})
    return CodeAction(str(data.get("title", "")), kind, dict(data), edits=edits or [])


# ----------------------------------------------------------------------------- quick fixes


def _fixes_for(
    facts: ModuleFacts, checkpoints: Checkpoints, diagnostic: Diagnostic
) -> list[CodeAction]:
    out: list[CodeAction] = []
    data = diagnostic.data

    def offer(title: str, preferred: bool = False, **fields: Any) -> None:
        payload = {"title": title, **fields}
        if _edits(facts, payload, checkpoints):
            # One preferred fix per finding (protocol.md): the first one offered as such.
            preferred = preferred and not any(a.is_preferred for a in out)
            out.append(CodeAction(title, QUICKFIX, payload, [diagnostic], None, preferred))

    if diagnostic.code == FLAGS_LOST:
        for lost in find_lost_flags(facts, checkpoints):
            if lost.index != data.get("load"):
                continue
            for n, source in enumerate(lost.sources()):
                suffix = {"code": "", "map": " from the saved requires_grad map"}.get(
                    source,
                    f" from {visible(_basename(lost.checkpoint.file)) if lost.checkpoint else ''}",
                )
                offer(
                    f"Restore requires_grad flags{suffix}",
                    n == 0,
                    action="restore_flags",
                    load=lost.index,
                    source=source,
                )
    elif diagnostic.code == UNSAFE_LOAD:
        index = int(data.get("torch_load", -1))
        verdict = _verdict_of(facts, checkpoints, index)
        level = verdict.level if verdict is not None else None
        if verdict is not None and level == "classes":
            offer(
                "Switch to the state_dict pattern (re-save the file once)",
                True,
                action="state_dict_load",
                torch_load=index,
            )
            offer(
                "Load with weights_only=True, allowing its classes (safe_globals)",
                not any(a.data["action"] == "state_dict_load" for a in out),
                action="safe_globals",
                torch_load=index,
            )
            offer(f"Add {_weights_only_false(verdict.classes)}", action="weights_only", torch_load=index, value=False)
        elif verdict is not None and level == "refused":
            offer(f"Add {_weights_only_false(verdict.classes)}", not verdict.classes, action="weights_only",
                  torch_load=index, value=False)
        else:
            title = "Add weights_only=True"
            if level == "runs_code":
                title += " (this file would run code with weights_only=False)"
            offer(title, True, action="weights_only", torch_load=index, value=True)
    elif diagnostic.code == RUNS_CODE_LOAD:
        offer("Use weights_only=True", True, action="set_weights_only", torch_load=data.get("torch_load", -1), value=True)
    elif diagnostic.code == REFUSED_LOAD:
        index = int(data.get("torch_load", -1))
        verdict = _verdict_of(facts, checkpoints, index)
        if verdict is not None and verdict.level == "classes":
            offer("Allow its classes (safe_globals)", True, action="safe_globals", torch_load=index)
        if verdict is not None and verdict.allows_weights_only_false:
            offer(f"Use {_weights_only_false(verdict.classes)}", not verdict.classes, action="set_weights_only",
                  torch_load=index, value=False)
    elif diagnostic.code == MISSING_KEY:
        for n, key in enumerate(data.get("closest", [])):
            offer(f"Use {visible(string_literal(str(key)))}", n == 0, action="replace_key",
                  key_ref=data.get("key_ref", -1), key=str(key))
    elif diagnostic.code == compat_checks.INCOMPATIBLE_LOAD:
        check = compat_checks.check_load(facts, int(data.get("load", -1)), checkpoints)
        for n, (fix, title) in enumerate(compat_checks.available_fixes(facts, check) if check else []):
            # A changed head on purpose is a choice, not the fix (protocol.md: never preferred).
            offer(title, n == 0 and fix != "finetune", action="compat_fix", load=data.get("load", -1), fix=fix)
    elif diagnostic.code == CUDA_WITHOUT_MAP_LOCATION:
        offer("Add map_location='cpu'", True, action="map_location", torch_load=data.get("torch_load", -1))
    elif diagnostic.code == WHOLE_MODEL_SAVE:
        offer(
            "Save the state_dict and a requires_grad map instead",
            True,
            action="save_grad_map",
            save=data.get("save", -1),
        )
    offer(
        f"Suppress {diagnostic.code} on this line",
        action="suppress",
        line=diagnostic.range.start.line,
        code=diagnostic.code,
    )
    return out


def _verdict_of(facts: ModuleFacts, checkpoints: Checkpoints, index: int) -> Verdict | None:
    """The verdict on the file torch.load call `index` reads, when it is linked."""
    load = facts.torch_loads[index] if 0 <= index < len(facts.torch_loads) else None
    linked = linked_verdict(load, checkpoints) if load is not None else None
    return linked[1] if linked is not None else None


def _weights_only_false(classes: tuple[str, ...]) -> str:
    """The title of a weights_only=False fix: safe said so only when it imports nothing."""
    return ("weights_only=False (the file names nothing that runs code)" if not classes
            else "weights_only=False (only for a file you trust)")


def fix_all_actions(facts: ModuleFacts, checkpoints: Checkpoints) -> list[CodeAction]:
    """One "fix all" source action when some finding has a safe preferred fix: restoring
    requires_grad flags after a load, adding weights_only=True (never the rewrites)."""
    if not _fix_all_edits(facts, checkpoints):
        return []
    data = {"title": FIX_ALL_TITLE, "action": "fix_all"}
    return [CodeAction(FIX_ALL_TITLE, SOURCE_ACTION, data)]


def _fix_all_edits(facts: ModuleFacts, checkpoints: Checkpoints) -> list[TextEdit]:
    edits: list[TextEdit] = []
    for diagnostic in diagnostics(facts, checkpoints):
        for action in _fixes_for(facts, checkpoints, diagnostic):
            data = action.data
            safe = data.get("action") == "restore_flags" or (
                data.get("action") == "weights_only" and data.get("value") is True
            )
            if action.is_preferred and safe:
                new = _edits(facts, data, checkpoints) or []
                if not any(_overlap(a.range, b.range) for a in new for b in edits):
                    edits += new
                break
    return edits


def _overlap(a: Range, b: Range) -> bool:
    """True when the ranges share a point (touching counts: the order would be unclear)."""
    a_start, a_end = (a.start.line, a.start.character), (a.end.line, a.end.character)
    b_start, b_end = (b.start.line, b.start.character), (b.end.line, b.end.character)
    return a_start <= b_end and b_start <= a_end


# ----------------------------------------------------------------------------- refactors


def _refactors(facts: ModuleFacts, line: int, checkpoints: Checkpoints) -> list[CodeAction]:
    """A short list for the model in scope: its modules' freezing (one entry: a quick pick),
    printing its flags, and the save or load snippets that fit the line."""
    at = insertion_at(facts, line)
    var = model_in_scope(facts, at) if at is not None else None
    if at is None or var is None:
        return []
    offers: list[tuple[str, str]] = [(f"Freeze / unfreeze modules of {var}…", "choose_modules")]
    offers.append((flag_title("print_parameters", var, ()), "print_parameters"))
    if facts.torch_imported and var != "self":
        optimizer = _optimizer(facts) is not None
        value = value_at(facts, var, at)
        if _saves_on(facts, line) or _loads_on(facts, line):
            pass  # the line already saves or loads: no snippet
        elif isinstance(value, Built) and value.line == line:  # protocol.md: Load on the line that builds it
            offers.append((f"Load {var}: state_dict", "load_state_dict"))
            if optimizer:
                offers.append((f"Load {var}: training checkpoint", "load_training_checkpoint"))
        else:
            offers.append((f"Save {var}: state_dict", "save_state_dict"))
            if optimizer:
                offers.append((f"Save {var}: training checkpoint", "save_training_checkpoint"))
    out = []
    for title, name in offers:
        data = {"title": title, "action": name, "var": var, "line": line, "module": None}
        if name == "choose_modules":
            out.append(CodeAction(title, REFACTOR, data, command=CHOOSE_MODULES))
        elif _snippet(facts, data) is not None:
            out.append(CodeAction(title, REFACTOR, data, snippet=name in _SNIPPETS))
    return out


def _loads_on(facts: ModuleFacts, line: int) -> bool:
    spans = [load.stmt for load in facts.torch_loads] + [load.stmt for load in facts.loads]
    return any(span.start_line <= line <= span.end_line for span in spans)


def _saves_on(facts: ModuleFacts, line: int) -> bool:
    return any(save.stmt.start_line <= line <= save.stmt.end_line for save in facts.saves)


def requires_grad_action(
    facts: ModuleFacts, line: int, action: str, module: str | None = None
) -> CodeAction | None:
    """One freeze/unfreeze/print refactor for the model variable in scope at `line`, with its
    edits (for a module chosen outside the light bulb, e.g. in the checkpoint tree); None when
    no model variable is in scope there or the code is already in place. Nothing is checked
    against a checkpoint here: `model_modules.requires_grad_code` does that."""
    at = insertion_at(facts, line)
    if at is None or action not in _FLAG_ACTIONS or (action in _NEEDS_MODULE and not module):
        return None
    found = requires_grad_code(facts, at, action, [module] if module else [], {})
    if found is None or not found.edits:
        return None
    var = model_in_scope(facts, at)
    data = {"title": found.title, "action": action, "var": var, "line": line, "module": module}
    return CodeAction(found.title, REFACTOR, data, edits=found.edits)


_FLAG_ACTIONS = ("freeze_except", "freeze_module", "unfreeze_module", "unfreeze_all", "print_parameters")
_NEEDS_MODULE = ("freeze_except", "freeze_module", "unfreeze_module")


def _snippet(facts: ModuleFacts, data: Mapping[str, Any]) -> tuple[Insertion, list[str]] | None:
    """Where a refactor's code goes and its lines, with tab stops (snippet_text.py)."""
    at = insertion_at(facts, int(data.get("line", -1)))
    var = str(data.get("var"))
    if at is None or var not in facts.model_vars or model_in_scope(facts, at) != var:
        return None
    q = quote_char(facts)
    name = data.get("action")
    lines: list[str] | None
    if name == "print_parameters":
        lines = snippets.print_parameters(var)
    elif name == "unfreeze_all":
        lines = snippets.unfreeze_all(var)
    elif isinstance(name, str) and name in _SNIPPETS and facts.torch_imported:
        lines = _SNIPPETS[name](facts, var, q, at)
    else:
        return None
    if lines is None or already_there(facts, at, [plain(text) for text in lines]):
        return None
    return at, lines


def _snippet_edit(facts: ModuleFacts, data: Mapping[str, Any]) -> list[TextEdit] | None:
    found = _snippet(facts, data)
    if found is None:
        return None
    at, lines = found
    return [insert_edit(facts, at, [plain(text) for text in lines])]


def snippet_insertion(facts: ModuleFacts, data: Mapping[str, Any]) -> tuple[TextEdit, str] | None:
    """A save/load refactor as a snippet: the (plain) edit whose range it replaces, and the
    snippet text with tab stops for its path and names."""
    found = _snippet(facts, data)
    if found is None:
        return None
    at, lines = found
    edit = insert_edit(facts, at, [plain(text) for text in lines])
    marked = insert_edit(facts, at, lines).new_text
    return edit, snippet(marked)


def _path_for(facts: ModuleFacts, var: str, kind: str, q: str) -> str:
    """The path expression this file already saves this kind of checkpoint of `var` to."""
    save_kind = {"state_dict": "state_dict", "entire": "model", "training": "dict"}[kind]
    for save in facts.saves:
        span = save.path.span if save.path else None
        if save.kind == save_kind and save.var == var and span and span.start_line == span.end_line:
            return facts.lines[span.start_line][span.start_char : span.end_char]
    return string_literal(_DEFAULT_PATHS[kind], q)


def _free_name(facts: ModuleFacts, wanted: str) -> str:
    taken = {a.var for a in facts.assignments}
    name, n = wanted, 2
    while name in taken:
        name, n = f"{wanted}_{n}", n + 1
    return name


def _optimizer(facts: ModuleFacts) -> str | None:
    return min(facts.optimizer_vars) if facts.optimizer_vars else None


def _epoch(facts: ModuleFacts, at: Insertion) -> str | None:
    """An epoch loop variable already bound where the snippet goes."""
    for name in sorted(facts.epoch_vars):
        if latest_assignment(facts, name, at.scope, at.line):
            return name
    return None


_SNIPPETS: dict[str, Callable[[ModuleFacts, str, str, Insertion], list[str]]] = {
    "save_state_dict": lambda f, v, q, s: snippets.save_state_dict(
        v, _path_for(f, v, "state_dict", q)
    ),
    "save_entire_model": lambda f, v, q, s: snippets.save_entire_model(
        v, _path_for(f, v, "entire", q)
    ),
    "save_training_checkpoint": lambda f, v, q, s: snippets.save_training_checkpoint(
        v, _optimizer(f), _epoch(f, s), _path_for(f, v, "training", q), q
    ),
    "load_state_dict": lambda f, v, q, s: snippets.load_state_dict(
        v, _path_for(f, v, "state_dict", q), q
    ),
    "load_entire_model": lambda f, v, q, s: snippets.load_entire_model(
        v, _path_for(f, v, "entire", q), q
    ),
    "load_training_checkpoint": lambda f, v, q, s: snippets.load_training_checkpoint(
        v, _optimizer(f), _free_name(f, "checkpoint"), _path_for(f, v, "training", q), q
    ),
}


# ----------------------------------------------------------------------------- dispatch

_FIXES = {
    "restore_flags",
    "weights_only",
    "set_weights_only",
    "replace_key",
    "map_location",
    "state_dict_load",
    "safe_globals",
    "save_grad_map",
    "compat_fix",
    "suppress",
}


def _edits(
    facts: ModuleFacts, data: Mapping[str, Any], checkpoints: Checkpoints
) -> list[TextEdit] | None:
    action = data.get("action")
    if action == "restore_flags":
        return fixes.restore_flags(facts, checkpoints, int(data["load"]), str(data["source"]))
    if action == "weights_only":
        return fixes.weights_only(facts, checkpoints, int(data["torch_load"]), bool(data["value"]))
    if action == "set_weights_only":
        return fixes.set_weights_only(facts, checkpoints, int(data["torch_load"]), bool(data["value"]))
    if action == "replace_key":
        return fixes.replace_key(facts, checkpoints, int(data["key_ref"]), str(data["key"]))
    if action == "map_location":
        return fixes.map_location_cpu(facts, int(data["torch_load"]))
    if action == "safe_globals":
        return safe_globals_load(facts, checkpoints, int(data["torch_load"]))
    if action == "state_dict_load":
        return fixes.state_dict_load(facts, checkpoints, int(data["torch_load"]))
    if action == "save_grad_map":
        return fixes.save_with_grad_map(facts, int(data["save"]))
    if action == "compat_fix":
        return compat_checks.fix_edits(facts, checkpoints, int(data["load"]), str(data["fix"]))
    if action == "suppress":
        return fixes.suppress(facts, int(data["line"]), str(data["code"]))
    if action == "fix_all":
        return _fix_all_edits(facts, checkpoints)
    return _snippet_edit(facts, data)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path
