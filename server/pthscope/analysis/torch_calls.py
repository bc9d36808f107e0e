"""`torch.load`, `torch.save` and `model.load_state_dict` calls → `TorchLoad`, `TorchSave` and
`StateDictLoad` facts.

The walk in collect.py calls these with itself (`c`) for what it knows at that point: the
statement and scope being walked, and what names hold (flow.py, flow_values.py).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .ast_shapes import attr_chain, bool_const
from .facts import CheckpointPath, KeyChanges, SaveKind, Span, StateDictLoad, TorchLoad, TorchSave
from .flow import UNCLEAR, Loaded, Renamed, Value
from .flow_stores import edits_for
from .flow_values import key_renaming, value_of
from .module_attributes import saved_object
from .source import Positions

if TYPE_CHECKING:
    from .collect import Collector


def record_torch_load(c: Collector, node: ast.Call) -> TorchLoad:
    """A `torch.load(...)` call: where `weights_only=` would go, which path, what it is bound to."""
    keywords = {k.arg for k in node.keywords}
    last = [*node.args, *[k.value for k in node.keywords]]
    insert_at = None
    if last:
        end = max(last, key=lambda n: (n.end_lineno or 0, n.end_col_offset or 0))
        end_span = c.pos.span(end)
        insert_at = (end_span.end_line, end_span.end_char)
    target = (
        node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "f"), None)
    )
    assigned = None
    if isinstance(c.stmt, ast.Assign) and c.stmt.value is node:
        names = [t.id for t in c.stmt.targets if isinstance(t, ast.Name)]
        assigned = names[0] if names else None
    c.load_calls[id(node)] = len(c.facts.torch_loads)
    path = c.path_arg(target, "load", assigned)
    weights_only = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
    load = TorchLoad(
        c.scope,
        c.pos.span(node),
        c.pos.span(node.func),
        c.stmt_span(),
        "weights_only" in keywords,
        None in keywords,
        insert_at,
        path,
        assigned,
        bool_const(weights_only),
        c.pos.span(weights_only) if weights_only is not None else None,
        "map_location" in keywords or len(node.args) > 1,
    )
    c.facts.torch_loads.append(load)
    return load


def record_torch_save(c: Collector, node: ast.Call) -> None:
    """A `torch.save(obj, f)` call and what kind of object it saves."""
    if not node.args:
        return
    obj = node.args[0]
    kind: SaveKind = "other"
    var: str | None = None
    key: str | None = None
    grad_keys: list[str] = []
    saved = saved_object(obj)  # past `.cpu()`, `.to(device)`
    if isinstance(saved, ast.Name):
        kind, var = "model", saved.id
    elif isinstance(saved, ast.Attribute) and isinstance(saved.value, ast.Name) and saved.value.id == "self":
        kind, var = "model", f"self.{saved.attr}"  # a whole module if the class says so (module_attributes.py)
    elif (
        isinstance(obj, ast.Call)
        and isinstance(obj.func, ast.Attribute)
        and obj.func.attr == "state_dict"
    ):
        chain = attr_chain(obj.func.value)
        kind, var = "state_dict", chain[0] if chain else None
    elif isinstance(obj, ast.Dict):
        kind = "dict"
        for key_node, value in zip(obj.keys, obj.values, strict=True):
            if not (isinstance(key_node, ast.Constant) and isinstance(key_node.value, str)):
                continue
            key_text = key_node.value
            if isinstance(value, ast.DictComp) and "requires_grad" in ast.dump(value.value):
                grad_keys.append(key_text)
            elif (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr == "state_dict"
            ):
                chain = attr_chain(value.func.value)
                if chain and chain[0] not in c.facts.optimizer_vars and var is None:
                    var, key = chain[0], key_text
    target = (
        node.args[1]
        if len(node.args) > 1
        else next((k.value for k in node.keywords if k.arg == "f"), None)
    )
    path = c.path_arg(target, "save", var)
    rest = [source_segment(c.pos, a) for a in node.args[1:]]
    rest += [
        f"{k.arg}={source_segment(c.pos, k.value)}"
        if k.arg
        else f"**{source_segment(c.pos, k.value)}"
        for k in node.keywords
    ]
    assert c.stmt is not None
    c.facts.saves.append(
        TorchSave(
            c.scope,
            c.pos.span(node),
            c.stmt_span(),
            c.pos.indent_of(c.stmt.lineno),
            kind,
            var,
            source_segment(c.pos, obj),
            ", ".join(rest),
            path,
            tuple(grad_keys),
            c.flow.get(var) if var is not None else None,
            key,
        )
    )


def record_state_dict_load(c: Collector, node: ast.Call, var: str, target: Value | None) -> None:
    """`var.load_state_dict(...)`: what is loaded (flow.py), from which path, into what
    (`target`), and where the statement ends."""
    arg = node.args[0] if node.args else None
    source = value_of(c, arg) if arg is not None else None
    changes = KeyChanges()
    if isinstance(source, Renamed):  # the comprehension, here or where the name was bound
        changes, source = source.changes, source.source
        inline = key_renaming(arg) if arg is not None else None
        if inline is not None:
            arg = inline[1]  # the dict it reads: the fixes name that one
    elif isinstance(source, Loaded):  # a dict edited since it was loaded (flow_stores.py)
        removed = edits_for(c, source)
        source = UNCLEAR if removed is None else source
        changes = KeyChanges(drops=removed or ())
    source_var = source_key = None
    inner = arg
    if isinstance(inner, ast.Subscript) and isinstance(inner.slice, ast.Constant):
        if isinstance(inner.slice.value, str):
            source_key = inner.slice.value
        inner = inner.value
    if isinstance(inner, ast.Name):
        source_var = inner.id
    path: CheckpointPath | None = None
    if isinstance(source, Loaded):
        path = c.facts.torch_loads[source.load].path
    if path is not None:
        path.var = var
        path.role = "load"
    assert c.stmt is not None
    stmt = c.pos.span(c.stmt)
    text = c.pos.lines[stmt.end_line] if stmt.end_line < len(c.pos.lines) else ""
    single = isinstance(c.stmt, (ast.Expr, ast.Assign, ast.AnnAssign)) and not text[
        stmt.end_char :
    ].strip().startswith(";")
    c.facts.loads.append(
        StateDictLoad(
            var,
            c.scope,
            c.pos.span(node),
            stmt,
            c.pos.indent_of(c.stmt.lineno),
            single and c.pos.indent_of(c.stmt.lineno) == _line_indent(c.pos, stmt),
            path,
            source_var,
            source_key,
            target,
            source,
            c.pos.tail_span(node.func, len("load_state_dict")),
            c.pos.span(node.args[0]) if node.args else None,
            *_strict(c, node),
            changes,
        )
    )


def _strict(c: Collector, node: ast.Call) -> tuple[bool | None, Span | None]:
    """`strict=` as written: True when absent, None when it is not a constant."""
    given = node.args[1] if len(node.args) > 1 else None
    for keyword in node.keywords:
        if keyword.arg == "strict":
            given = keyword.value
        elif keyword.arg is None:
            return None, None
    if given is None:
        return (None if any(isinstance(a, ast.Starred) for a in node.args) else True), None
    return bool_const(given), c.pos.span(given)


def _line_indent(pos: Positions, span: Span) -> str:
    text = pos.lines[span.start_line]
    return text[: len(text) - len(text.lstrip())] if text[: span.start_char].strip() == "" else "?"


def source_segment(pos: Positions, node: ast.AST) -> str:
    """The source text of a node, as written."""
    span = pos.span(node)
    lines = pos.lines
    if span.start_line == span.end_line:
        return lines[span.start_line][span.start_char : span.end_char]
    parts = [lines[span.start_line][span.start_char :]]
    parts += lines[span.start_line + 1 : span.end_line]
    parts.append(lines[span.end_line][: span.end_char])
    return "\n".join(parts)


# ----------------------------------------------------------------- after the walk
