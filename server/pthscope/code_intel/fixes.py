"""Edits of the quick fixes: restore flags (PTH001), weights_only and the state_dict route
(PTH002; the safe_globals block is in safe_globals_fix.py), save a state_dict and requires_grad
map (PTH003), and `# noqa` suppression. Each returns None when it cannot apply, and the PTH002
ones follow the linked file's verdict (verdict.py).
"""

from __future__ import annotations

import re

from ..analysis.facts import ModuleFacts
from .keys import look_up
from .linking import Checkpoints
from .lost_flags import find_lost_flags, restore_lines
from .python_text import dotted_name, string_literal
from .text_edits import already_there, append_to_line, insert_after, quote_char, replace
from .types import Range, TextEdit
from .verdict import linked_verdict

_CODE = re.compile(r"[A-Z]+[0-9]+")  # the code comes back from the client: only a code
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


def weights_only(
    facts: ModuleFacts, checkpoints: Checkpoints, index: int, value: bool
) -> list[TextEdit] | None:
    """Add `weights_only=True|False` after the last argument of a torch.load call; False only
    for a linked file whose verdict allows it (classes only: never one that would run code, could
    not be checked, or is not linked)."""
    if index >= len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if load.has_weights_only or load.has_star_kwargs or load.insert_at is None:
        return None
    linked = linked_verdict(load, checkpoints)
    if value is False and (linked is None or not linked[1].allows_weights_only_false):
        return None
    return [TextEdit(Range.at(*load.insert_at), f", weights_only={value}")]


def set_weights_only(
    facts: ModuleFacts, checkpoints: Checkpoints, index: int, value: bool
) -> list[TextEdit] | None:
    """`weights_only=<constant>` → `weights_only=True` (PTH004) or `False` (PTH009, for a linked
    file whose verdict allows it)."""
    if not 0 <= index < len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if load.weights_only is None or load.weights_only is value or load.weights_only_span is None:
        return None
    linked = linked_verdict(load, checkpoints)
    if value is False and (linked is None or not linked[1].allows_weights_only_false):
        return None
    return [replace(load.weights_only_span, str(value))]


def map_location_cpu(facts: ModuleFacts, index: int) -> list[TextEdit] | None:
    """Add `, map_location='cpu'` after the last argument of a torch.load call (PTH007)."""
    if not 0 <= index < len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if load.has_map_location or load.has_star_kwargs or load.insert_at is None:
        return None
    cpu = string_literal("cpu", quote_char(facts))
    return [TextEdit(Range.at(*load.insert_at), f", map_location={cpu}")]


def replace_key(
    facts: ModuleFacts, checkpoints: Checkpoints, index: int, key: str
) -> list[TextEdit] | None:
    """A missing key → one of the closest keys the file has (PTH006), checked again here."""
    if not 0 <= index < len(facts.key_refs):
        return None
    ref = facts.key_refs[index]
    found = look_up(facts, ref, checkpoints)
    if found is None or not found.missing or key not in found.closest():
        return None
    return [replace(ref.span, string_literal(key, quote_char(facts)))]


def state_dict_load(
    facts: ModuleFacts, checkpoints: Checkpoints, index: int
) -> list[TextEdit] | None:
    """`m = torch.load(p)` of a whole model → `m = Net()` + `m.load_state_dict(torch.load(...))`,
    with a comment saying how to re-save the file once as a state_dict.

    Offered only when the saved class is defined or imported in this file, and the file imports
    classes only (the re-save goes through weights_only=False).
    """
    if index >= len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if load.assigned_to is None or load.path is None or load.insert_at is None:
        return None
    linked = linked_verdict(load, checkpoints)
    if linked is None or linked[1].level != "classes":
        return None
    root = linked[0].root_class
    stmt, call_span = load.stmt, load.call
    one_line = stmt.start_line == stmt.end_line == call_span.start_line == call_span.end_line
    if not root or not dotted_name(root) or not one_line or stmt.end_char != call_span.end_char:
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
    # The object as written (`self.bert.cpu()` keeps its move to the CPU); a name for `model`.
    q, var, ind = quote_char(facts), save.obj_text if "\n" not in save.obj_text else save.var, save.indent
    new = (
        f"{func}({{\n"
        f"{ind}    {string_literal('model', q)}: {var}.state_dict(),\n"
        f"{ind}    {string_literal('requires_grad', q)}: {{n: p.requires_grad for n, p in {var}.named_parameters()}},\n"
        f"{ind}}}, {save.rest_text})"
    )
    return [replace(save.call, new)]


def suppress(facts: ModuleFacts, line: int, code: str) -> list[TextEdit] | None:
    """Append `# noqa: CODE` to the line, or add CODE to its existing `# noqa:` list."""
    if not _CODE.fullmatch(code) or line >= len(facts.lines) or facts.suppressed(line, code):
        return None
    text = facts.lines[line]
    match = _NOQA.search(text)
    if match:
        return [TextEdit(Range.at(line, match.end()), f", {code}")]
    return [append_to_line(facts, line, f"  # noqa: {code}")]
