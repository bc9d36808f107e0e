"""Statements that change an object in place rather than rebind a name: a model's submodule
replaced after construction, a loaded dict edited before it reaches `load_state_dict`. One rule
for both: what can be modelled is kept in the value (flow.py), the rest makes it unclear, so no
check is made against what the class or the file alone would give.

- A model (`Built`): `model.fc = <expr>` (attributes and constant indices) makes it another
  `Built` with that store's line in `stores` (expected_state.py replays it; a value it cannot
  evaluate to a module leaves the model unknown). Any other store or deletion on it,
  `setattr`/`delattr` → UNCLEAR. Inside an `if` or a loop the join (flow_walk.py) makes it
  UNCLEAR too. A loaded whole model (`Loaded`) cannot be replayed: any attribute store → UNCLEAR.
- A renamed copy of a loaded dict (`Renamed`): any edit, or passing it to code, → UNCLEAR.
  `consume_prefix_in_state_dict_if_present(d, "P")` renames `d` in place: `d` is `Renamed`
  from there, and the edit makes the dict's other names unclear.
- A loaded dict (`Loaded`): each edit is recorded (`DictEdit`) and decides the loads of that
  object after it (`edits_for`): `del d["k"]` and `d.pop("k"...)` with a literal key leave "k"
  out, when done on that very dict on every way to the load; anything else (a key from a loop
  or a variable, `d[k] = v`, `update`, `clear`, `popitem`, `setdefault`, an edit in a branch the
  load is not in, the dict passed to code that may change it) makes what is loaded unclear.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .ast_shapes import attr_chain, root_name
from .facts import Assignment, KeyChanges
from .flow import UNCLEAR, Built, Loaded, Renamed
from .flow_values import renamed_copy, value_of
from .paths import dotted_name

if TYPE_CHECKING:
    from .collect import Collector

# Dict methods that change the dict (a literal-key `pop` is modelled, the rest is unclear).
_DICT_EDITS = frozenset({"pop", "update", "clear", "popitem", "setdefault", "__setitem__", "__delitem__"})
_CONSUME_PREFIX = "torch.nn.modules.utils.consume_prefix_in_state_dict_if_present"
# A dict's methods that read it: what they are handed is not changed (`ckpt.get("model", ckpt)`).
_DICT_READS = frozenset({"get", "keys", "values", "items", "copy", "__contains__", "__getitem__"})
# Calls that take a loaded dict without changing it.
_READS = frozenset({
    "print", "len", "list", "tuple", "sorted", "set", "dict", "isinstance", "str", "repr", "type",
    "id", "any", "all", "enumerate", "zip", "iter", "next", "hasattr", "getattr", "torch.save",
    "logging.info", "logger.info", "log.info", "pprint", "pprint.pprint",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class DictEdit:
    """An edit of the loaded dict `target`: the literal key it removes (None: not known), and the
    blocks (ids of statement lists) it sits in, to tell whether every way to a load passes it."""

    target: Loaded
    removed: str | None
    blocks: tuple[int, ...]


def record_stores(c: Collector, node: ast.stmt) -> None:
    """The in-place changes a simple statement makes (after its right-hand side is known)."""
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if not isinstance(target, ast.Name):
                _store(c, target, node)
    elif isinstance(node, ast.Delete):
        for target in node.targets:
            if isinstance(target, ast.Subscript) and _key(target.slice) is not None:
                _edit(c, target.value, _key(target.slice))
            elif isinstance(target, (ast.Attribute, ast.Subscript)):
                _store(c, target, node)


def record_call(c: Collector, node: ast.Call) -> None:
    """`d.pop(...)`, `d.update(...)`, `setattr(model, ...)`, a loaded dict passed to a call."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _DICT_EDITS:
        literal = func.attr == "pop" and 1 <= len(node.args) <= 2 and not node.keywords
        _edit(c, func.value, _key(node.args[0]) if literal else None)
    name = dotted_name(func)
    if name is not None and c.qualified(name) == _CONSUME_PREFIX:
        _consume_prefix(c, node)
        return
    if name in ("setattr", "delattr") and node.args:
        root = root_name(node.args[0])
        if root is not None and isinstance(c.flow.get(root), (Built, Loaded, Renamed)):
            c.flow.set(root, UNCLEAR)
        return
    if name is None or name in _READS or name.endswith(".load_state_dict"):
        return
    reader = root_name(func.value) if isinstance(func, ast.Attribute) and func.attr in _DICT_READS else None
    if reader is not None and isinstance(c.flow.get(reader), Loaded):
        return
    for arg in [*node.args, *(k.value for k in node.keywords)]:
        if isinstance(arg, ast.Name) and isinstance(c.flow.get(arg.id), (Loaded, Renamed)):
            _edit(c, arg, None)  # the callee may change it


def _consume_prefix(c: Collector, node: ast.Call) -> None:
    """`consume_prefix_in_state_dict_if_present(sd, "module.")` strips the prefix off every key
    that has it, in place: `sd` holds the renamed dict from here (as the comprehension with
    `k.removeprefix(P)` makes it); another name for the same dict is no longer followed."""
    target, prefix = (node.args + [None, None])[:2] if not node.keywords else (None, None)
    if not (isinstance(target, ast.Name) and isinstance(prefix, ast.Constant) and isinstance(prefix.value, str)):
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            _edit(c, arg, None)
        return
    renamed = renamed_copy(c, KeyChanges(renames=(prefix.value, "")), target)
    _edit(c, target, None)
    c.flow.set(target.id, renamed)
    c.facts.assignments.append(Assignment(target.id, c.scope, node.lineno - 1, None, renamed))


def _store(c: Collector, target: ast.expr, node: ast.stmt) -> None:
    if _is_flag(target):
        return  # a flag, not the model's state (flag_ops.py)
    root = root_name(target)
    held = c.flow.get(root) if root else None
    if isinstance(held, Built) and root is not None:
        modelled = attr_chain(target) is not None and isinstance(node, ast.Assign) and len(node.targets) == 1
        now = replace(held, stores=(*held.stores, node.lineno - 1)) if modelled else UNCLEAR
        c.flow.set(root, now)
        c.facts.stored.append(Assignment(root, c.scope, node.lineno - 1, None, now))
    elif isinstance(target, ast.Subscript):
        _edit(c, target.value, None)  # `d[k] = v`: what it holds is not known
    elif isinstance(held, Loaded) and root is not None:
        c.flow.set(root, UNCLEAR)  # an attribute of a loaded whole model


def _edit(c: Collector, node: ast.expr, removed: str | None) -> None:
    target = value_of(c, node)
    if isinstance(target, Loaded):
        c.dict_edits.append(DictEdit(target, removed, c.blocks))
    root = root_name(node)
    if root is not None and isinstance(c.flow.get(root), Renamed):
        c.flow.set(root, UNCLEAR)  # a renamed copy edited: what it holds is not followed


def edits_for(c: Collector, source: Loaded) -> tuple[str, ...] | None:
    """The keys the edits so far leave out of what `load_state_dict` gets here; None when
    what it gets is not known."""
    removed: list[str] = []
    for edit in c.dict_edits:
        target = edit.target
        if target.load != source.load or not _related(target, source):
            continue
        if edit.removed is None or target != source or c.blocks[: len(edit.blocks)] != edit.blocks:
            return None
        removed.append(edit.removed)
    return tuple(removed)


def _related(a: Loaded, b: Loaded) -> bool:
    """One entry inside the other (or the same), or maybe so (an entry the file chooses): an
    edit of one changes the other."""
    return a.chosen or b.chosen or a.keys[: len(b.keys)] == b.keys or b.keys[: len(a.keys)] == a.keys


def _is_flag(target: ast.expr) -> bool:
    return isinstance(target, ast.Attribute) and target.attr == "requires_grad"


def _key(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
