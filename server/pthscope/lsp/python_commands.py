"""The commands of the Python-file features (`workspace/executeCommand`, typed in protocol.py):

- `pthscope.insertRequiresGradCode`: freeze/unfreeze/print code for the model in scope at a line
  (the side panel's menu on a module; the quick pick of a model's modules), checked against that
  model, applied with `workspace/applyEdit`. When it would freeze after an optimizer over the
  model was built, placement "check" answers with that optimizer's line instead (the client asks
  whether to put it there or before the optimizer).
- `pthscope.listModules`: the choices of that quick pick: the model's modules (from the file it
  is loaded from, or its class) and the actions.
- `pthscope.snippetEdit`: a save/load snippet with tab stops, for the client to insert as one.

Module keys reach the client only when they are keys the command accepts back (dotted
identifiers), class names only when they are dotted names: a quick pick renders `$(…)` as icons.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lsprotocol import types

from .. import code_intel
from ..code_intel.insertion import insertion_at, model_in_scope
from ..code_intel.model_modules import model_modules, requires_grad_code
from ..code_intel.python_text import dotted_name
from ..plain_text import visible
from . import convert
from . import protocol as p

if TYPE_CHECKING:
    from .python_files import PythonFiles

_ACTIONS = {
    "freezeAllExcept": "freeze_except",
    "freezeModule": "freeze_module",
    "unfreezeModule": "unfreeze_module",
    "unfreezeAll": "unfreeze_all",
    "printParameters": "print_parameters",
}
_PLACEMENTS = {"check": "check", "here": "here", "beforeOptimizer": "before_optimizer"}
_MODULE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_PICK_ACTIONS: list[p.ModuleAction] = [
    {"action": "freezeModule", "label": "Freeze the picked modules",
     "detail": "requires_grad_(False) on each"},
    {"action": "freezeAllExcept", "label": "Train only the picked modules",
     "detail": "freeze every other parameter"},
    {"action": "unfreezeModule", "label": "Unfreeze the picked modules",
     "detail": "requires_grad_(True) on each"},
]  # fmt: skip
_NOT_HERE = "put the cursor on a statement or a blank line after the model is made"


async def insert_requires_grad_code(
    files: PythonFiles, args: p.InsertRequiresGradCodeArgs
) -> p.InsertRequiresGradCodeResult:
    found = await files.analyzed(args.uri)
    if found is None or not found[1].current:
        why = "is not an open Python file" if found is None else "does not parse; fix it first"
        return p.InsertRequiresGradCodeResult(False, f"{args.uri} {why}", None)
    document, state = found
    facts = state.facts
    at = insertion_at(facts, args.line)
    if at is None:
        return p.InsertRequiresGradCodeResult(False, f"line {args.line + 1}: {_NOT_HERE}", None)
    modules = args.modules or ([args.module] if args.module else [])
    checkpoints = await files.linked_waiting(document.uri, facts)
    code = requires_grad_code(
        facts, at, _ACTIONS[args.action], modules, checkpoints, files.workspace_folders(),
        _PLACEMENTS[args.placement],  # type: ignore[arg-type]
    )  # fmt: skip
    if code is None:
        why = f"no model variable in scope at line {args.line + 1}"
        return p.InsertRequiresGradCodeResult(False, why, None)
    if not code.edits:
        return p.InsertRequiresGradCodeResult(False, code.message, code.optimizer_line)
    edit = files.workspace_edit(document, code.edits, facts.lines)
    response = await files.ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=edit, label=code.title)
    )
    if response.applied:
        return p.InsertRequiresGradCodeResult(True, code.title, None)
    why = response.failure_reason or "the editor did not apply the edit"
    return p.InsertRequiresGradCodeResult(False, why, None)


async def list_modules(files: PythonFiles, args: p.ListModulesArgs) -> p.ListModulesResult:
    found = await files.analyzed(args.uri)
    if found is None:
        return p.ListModulesResult(None, "", [], [], f"{args.uri} is not an open Python file")
    document, state = found
    if args.version is not None and args.version != document.version:
        return p.ListModulesResult(None, "", [], [], "the file changed since: ask again")
    facts = state.facts
    at = insertion_at(facts, args.line)
    var = model_in_scope(facts, at) if at is not None else None
    if at is None or var is None:
        why = f"no model variable in scope at line {args.line + 1}"
        return p.ListModulesResult(None, "", [], [], why)
    checkpoints = await files.linked_waiting(document.uri, facts)
    listed = model_modules(facts, var, at, checkpoints, files.workspace_folders())
    title = f"Freeze / unfreeze modules of {var}"
    if listed.source:
        title += f" (from {visible(listed.source)})"
    choices: list[p.ModuleChoice] = []
    for module in listed.modules:
        if not _MODULE_KEY.fullmatch(module.key):
            continue  # not a key the command takes back
        parts = [module.class_name if dotted_name(module.class_name) else ""]
        if module.parameters is not None:
            parts.append(f"{module.parameters:,} parameters")
        parts.append(module.detail)
        indent = "    " * module.key.count(".")
        choices.append({"key": module.key, "label": indent + module.key,
                        "description": " · ".join(part for part in parts if part)})  # fmt: skip
    actions = list(_PICK_ACTIONS)
    actions.append({"action": "unfreezeAll", "label": f"Unfreeze all parameters of {var}",
                    "detail": "whatever is picked"})  # fmt: skip
    message = "" if choices else (
        f"the modules of `{var}` are not known: it is not loaded from a checkpoint pthscope has "
        "read, and its class could not be read"
    )
    return p.ListModulesResult(var, title, choices, actions, message)


async def snippet_edit(files: PythonFiles, args: p.SnippetEditArgs) -> p.SnippetEditResult:
    found = await files.analyzed(args.uri)
    if found is None or not found[1].current:
        return _no_snippet(f"{args.uri} is not an open Python file that parses")
    document, state = found
    if args.version is not None and args.version != document.version:
        return _no_snippet("the file changed since: ask for the action again")
    data = {"action": args.action, "var": args.var, "line": args.line}
    got = code_intel.snippet_insertion(state.facts, data)
    if got is None:
        return _no_snippet("nothing to insert here now (the code is there, or the model is gone)")
    edit, text = got
    where = convert.lsp_range(edit.range, state.facts.lines, document.position_codec)
    return p.SnippetEditResult(
        document.version, where.start.line, where.start.character, where.end.line,
        where.end.character, text, "",
    )  # fmt: skip


def _no_snippet(message: str) -> p.SnippetEditResult:
    return p.SnippetEditResult(None, 0, 0, 0, 0, "", message)
