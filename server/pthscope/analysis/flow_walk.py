"""The walk's data flow (flow.py) at the statements that need more than one pass in order:
the ways through an `if`, loop, `try` or `match` joined, a function's parameters, and after the
walk the parameters resolved from what the file's calls pass (collect.py calls these with
itself, `c`).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .facts import Assignment
from .flow import UNCLEAR, Loaded, Param, Value, join, key_choice, resolve_params, same_value
from .flow_values import key_test
from .paths import static_path

if TYPE_CHECKING:
    from .collect import Collector


def visit_branches(c: Collector, node: ast.If | ast.While | ast.Try | ast.Match) -> None:
    """Each way through an `if`, `while`, `try` or `match` from the same names; after it,
    a name the ways disagree on is UNCLEAR (flow.py)."""
    for field_name in ("test", "subject"):
        test = getattr(node, field_name, None)
        if isinstance(test, ast.expr):
            c.visit_expr(test)
    before = c.flow.fork()
    ways: list[dict[str, Value]] = []
    chosen: dict[str, Value] = {}
    if isinstance(node, ast.If):
        guard = key_test(c, node.test)
        c.key_guards.append(guard)
        c.visit_body(node.body)
        c.key_guards.pop()
        ways.append(c.flow.fork())
        c.flow.restore(before)
        c.visit_body(node.orelse)
        if guard is not None:
            chosen = _chosen_entries(c, guard, ways[0])
    elif isinstance(node, ast.While):
        c.visit_body(node.body)
        c.visit_body(node.orelse)
        ways.append(before)
    elif isinstance(node, ast.Match):
        for case in node.cases:
            c.flow.restore(before)
            c.visit_body(case.body)
            ways.append(c.flow.fork())
        c.flow.restore(before)
    else:  # try: a handler may start anywhere in the body
        c.visit_body(node.body)
        c.visit_body(node.orelse)
        normal = c.flow.fork()
        for handler in node.handlers:
            c.flow.restore(normal)
            c.flow.join_with(before)
            if handler.type is not None:
                c.visit_expr(handler.type)
            c.visit_body(handler.body)
            ways.append(c.flow.fork())
        c.flow.restore(normal)
    changed: dict[str, Value] = {}
    for way in ways:
        changed.update(c.flow.join_with(way))
    for name, value in chosen.items():
        c.flow.set(name, value)
        changed[name] = value
    if isinstance(node, ast.Try):
        c.visit_body(node.finalbody)
    rebind(c, changed, node.end_lineno or node.lineno)


def _chosen_entries(c: Collector, guard: tuple[Loaded, str], taken: dict[str, Value]) -> dict[str, Value]:
    """After `if "k" in x:`, the names the body set to `x["k"]` whose other way kept `x` or took
    another entry of it: the entry the file has (flow.key_choice)."""
    base, key = guard
    entry = base.at(key)
    otherwise = c.flow.frames[-1]
    chosen: dict[str, Value] = {}
    for name, value in taken.items():
        if name in otherwise and same_value(value, entry, c.same_file):
            found = key_choice(base, key, otherwise[name], c.same_file)
            if found is not None:
                chosen[name] = found
    return chosen


def rebind(c: Collector, changed: dict[str, Value], line: int) -> None:
    """Record what the names a branch changed hold after it (0-based `line`: the first line
    after the statement), so that later look-ups by line see the joined value."""
    for name, value in changed.items():
        c.facts.assignments.append(Assignment(name, c.scope, line, None, value))


def parameter_values(c: Collector, function: str, args: ast.arguments) -> dict[str, Value]:
    """A parameter holds its default when that is a static string (calls that pass another
    value undo that after the walk), else what the callers pass (`Param`)."""
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    names: dict[str, Value] = {}
    pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    for arg, default in pairs:
        text = static_path(default, c.text_of) if default is not None else None
        if text is not None:
            names[arg.arg] = text
            c.param_defaults[(function, arg.arg)] = text
        else:
            names[arg.arg] = Param(function, arg.arg)
    for extra in (args.vararg, args.kwarg):
        if extra is not None:
            names[extra.arg] = UNCLEAR
    return names


def undo_overridden_defaults(c: Collector) -> None:
    """A load whose path came from a parameter's default reads another file when a call
    passes that parameter: its path is then not known."""
    overridden: set[tuple[str, str]] = set()
    for function, passed in c.local_calls:
        params = c.local_functions.get(function, ())
        for slot, value in passed.items():
            name = params[slot] if isinstance(slot, int) and slot < len(params) else slot
            default = c.param_defaults.get((function, str(name)))
            if default is not None and value != default:
                overridden.add((function, str(name)))
    for index, depends in c.load_params.items():
        load = c.facts.torch_loads[index]
        if depends & overridden and load.path is not None:
            c.facts.paths = [p for p in c.facts.paths if p is not load.path]
            load.path = None


def resolve_parameters(c: Collector) -> None:
    """Replace each `Param` by what the file's calls of its function pass (joined); a
    function called with nothing for it, or never called, keeps the `Param`."""
    passed: dict[Param, Value | None] = {}
    for function, values in c.local_calls:
        params = c.local_functions.get(function, ())
        for position, name in enumerate(params):
            param = Param(function, name)
            value = values.get(position, values.get(name))
            if value is None:
                value = c.param_defaults.get((function, name), UNCLEAR)
            passed[param] = join(passed.get(param), value, c.same_file)
    if not passed:
        return
    resolved: dict[Param, Value] = {p: v for p, v in passed.items() if v is not None}
    for _ in range(3):  # a parameter passed on to another function of the file
        resolved = {p: resolve_params(v, resolved) for p, v in resolved.items()}
    facts = c.facts
    for assignment in facts.assignments:
        if isinstance(assignment.value, Param):
            assignment.value = resolve_params(assignment.value, resolved)
    for op in facts.flag_ops:
        if isinstance(op.target, Param):
            op.target = resolve_params(op.target, resolved)
    for ref in facts.attr_refs:
        if isinstance(ref.target, Param):
            ref.target = resolve_params(ref.target, resolved)
    for load in facts.loads:
        load.target = resolve_params(load.target, resolved) if load.target else None
        load.source = resolve_params(load.source, resolved) if load.source else None
    for save in facts.saves:
        save.target = resolve_params(save.target, resolved) if save.target else None
    for index, param, node, var in c.param_paths:  # `def load(path): torch.load(path)`, called with one path
        text = resolve_params(param, resolved)
        if isinstance(text, str) and text:
            facts.torch_loads[index].path = c.path_at(node, text, "load", var)
    if c.param_paths:
        facts.paths.sort(key=lambda p: (p.span.start_line, p.span.start_char))  # in file order again
    for base, key_ref in c.param_key_refs:
        found = resolve_params(base, resolved)
        if isinstance(found, Loaded):
            key_ref.value = found.at(key_ref.key)
            facts.key_refs.append(key_ref)
