"""Edits of the quick fixes: restore flags (PTH001), weights_only (PTH002), save a state_dict and
requires_grad map (PTH003), and `# noqa` suppression. Each returns None when it cannot apply.
"""

from __future__ import annotations

import re

from ..analysis.facts import ModuleFacts
from .linking import Checkpoints, checkpoint_for_path
from .lost_flags import find_lost_flags, restore_lines
from .text_edits import already_there, append_to_line, insert_after, quote, quote_char, replace
from .types import Range, TextEdit

_NOQA = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*", re.I)


def restore_flags(
    facts: ModuleFacts, checkpoints: Checkpoints, load_index: int, source: str
) -> list[TextEdit] | None:
    """Insert code re-applying the flags right after the flagged load statement."""
    for lost in find_lost_flags(facts, checkpoints):
        if lost.index != load_index or not lost.load.single_line_stmt:
            continue
        code = restore_lines(facts, lost, source)
        if not code:
            return None
        line, indent = lost.load.stmt.end_line, lost.load.indent
        if already_there(facts, line, indent, code):
            return None
        return [insert_after(facts, line, indent, code)]
    return None


def weights_only(facts: ModuleFacts, index: int, value: bool) -> list[TextEdit] | None:
    """Add `weights_only=True|False` after the last argument of a torch.load call."""
    if index >= len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if load.has_weights_only or load.has_star_kwargs or load.insert_at is None:
        return None
    return [TextEdit(Range.at(*load.insert_at), f", weights_only={value}")]


def state_dict_load(
    facts: ModuleFacts, checkpoints: Checkpoints, index: int
) -> list[TextEdit] | None:
    """`m = torch.load(p)` of a whole model → `m = Net()` + `m.load_state_dict(torch.load(...))`,
    with a comment saying how to re-save the file once as a state_dict.

    Offered only when the saved class is defined or imported in this file.
    """
    if index >= len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if load.assigned_to is None or load.path is None or load.insert_at is None:
        return None
    checkpoint = checkpoint_for_path(load.path, checkpoints)
    root = checkpoint.root_class if checkpoint is not None else None
    stmt, call_span = load.stmt, load.call
    one_line = stmt.start_line == stmt.end_line == call_span.start_line == call_span.end_line
    if not root or not one_line or stmt.end_char != call_span.end_char:
        return None
    class_name = root.rsplit(".", 1)[-1]
    if not _class_known(facts, class_name):
        return None
    text = facts.lines[load.call.start_line]
    call = (
        text[load.call.start_char : load.insert_at[1]]
        + ", weights_only=True"
        + text[load.insert_at[1] : load.call.end_char]
    )
    var = load.assigned_to
    indent = text[: len(text) - len(text.lstrip())]
    path = text[load.path.span.start_char : load.path.span.end_char]
    new = (
        "# A whole-model pickle: re-save it once as a state_dict, from a session you trust:\n"
        f"{indent}#   torch.save(torch.load({path}, weights_only=False).state_dict(), {path})\n"
        f"{indent}{var} = {class_name}()\n{indent}{var}.load_state_dict({call})"
    )
    return [replace(load.stmt, new)]


def _class_known(facts: ModuleFacts, name: str) -> bool:
    defined = re.compile(rf"^\s*class\s+{re.escape(name)}\b|\bimport\b.*\b{re.escape(name)}\b")
    return any(defined.search(line) for line in facts.lines)


def save_with_grad_map(facts: ModuleFacts, index: int) -> list[TextEdit] | None:
    """`torch.save(model, p)` → save `{"model": state_dict, "requires_grad": {...}}` to p."""
    if index >= len(facts.saves):
        return None
    save = facts.saves[index]
    if save.kind != "model" or save.var is None or not save.rest_text:
        return None
    text = facts.lines[save.call.start_line]
    func = text[save.call.start_char :].split("(", 1)[0]
    q, var, ind = quote_char(facts), save.var, save.indent
    new = (
        f"{func}({{\n"
        f"{ind}    {quote('model', q)}: {var}.state_dict(),\n"
        f"{ind}    {quote('requires_grad', q)}: {{n: p.requires_grad for n, p in {var}.named_parameters()}},\n"
        f"{ind}}}, {save.rest_text})"
    )
    return [replace(save.call, new)]


def suppress(facts: ModuleFacts, line: int, code: str) -> list[TextEdit] | None:
    """Append `# noqa: CODE` to the line, or add CODE to its existing `# noqa:` list."""
    if line >= len(facts.lines) or facts.suppressed(line, code):
        return None
    text = facts.lines[line]
    match = _NOQA.search(text)
    if match:
        return [TextEdit(Range.at(line, match.end()), f", {code}")]
    return [append_to_line(facts, line, f"  # noqa: {code}")]
