"""One pass over a parsed file that records the facts `actions` needs.

The walk records candidates for every name (attribute paths, method calls, calls that receive a
name) and `_finish` keeps those that belong to model variables, so a single pass suffices. It
follows statement order within each function, which is all the flow analysis `actions` does.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

from .facts import (
    MODULE_SCOPE,
    Assignment,
    AttrRef,
    CheckpointPath,
    FlagOp,
    KeyString,
    ModuleFacts,
    PathElement,
    PathRole,
    SaveKind,
    Scope,
    Span,
    StateDictLoad,
    Statement,
    TorchLoad,
    TorchSave,
)
from .paths import candidates, dotted_name, names_checkpoint, static_path
from .source import Positions

_KEY_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_MODEL_METHODS = {
    "parameters", "named_parameters", "state_dict", "load_state_dict", "eval", "train",
    "children", "named_children", "modules", "named_modules", "requires_grad_", "buffers",
    "named_buffers",
}  # fmt: skip
_PARAM_ITERATORS = {
    "parameters", "named_parameters", "children", "named_children", "modules", "named_modules",
}  # fmt: skip
_NOT_MODELS = ("optim", "scheduler", "Scaler", "Trainer", "SGD", "Adam", "RMSprop")
_MODEL_FACTORIES = ("models.", "nn.", "create_model", "from_pretrained", "hub.load")
_OPTIMIZER_NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "NAdam")
_HARMLESS_CALLS = {
    "print", "len", "isinstance", "str", "repr", "type", "id", "getattr", "hasattr", "sum",
    "list", "tuple", "sorted", "enumerate", "copy.deepcopy", "deepcopy", "torch.save",
    "nn.DataParallel", "torch.nn.DataParallel", "torch.compile", "summary", "logging.info",
}  # fmt: skip
_COMPOUND = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
    ast.While, ast.With, ast.AsyncWith, ast.Try,
)  # fmt: skip


class _NameArg(NamedTuple):
    """A name passed to a call: `freeze(model)` → callee "freeze", slot 0, var "model"."""

    callee: str
    slot: int | str
    var: str
    scope: str
    line: int
    stmt: ast.stmt


def _chain(node: ast.AST) -> tuple[str, tuple[PathElement, ...]] | None:
    """`model.layer1[0].conv1` → ("model", ("layer1", 0, "conv1")); None for other shapes."""
    path: list[PathElement] = []
    while True:
        if isinstance(node, ast.Attribute):
            path.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            index = node.slice
            if not (isinstance(index, ast.Constant) and type(index.value) is int):
                return None
            path.append(index.value)
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, tuple(reversed(path))
        else:
            return None


def _bool_const(node: ast.AST | None) -> bool | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    return None


def _combine(values: list[bool | None]) -> bool | None:
    if values and all(v is False for v in values):
        return False
    if values and all(v is True for v in values):
        return True
    return None


def _iter_call(node: ast.AST) -> ast.Call | None:
    """The `x.parameters()` call a for-loop iterates over (through enumerate/list)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("enumerate", "list")
        and node.args
    ):
        node = node.args[0]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _PARAM_ITERATORS
    ):
        return node
    return None


def _target_names(target: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


class Collector:
    """Walks one module and fills a `ModuleFacts`."""

    def __init__(
        self, facts: ModuleFacts, positions: Positions, workspace_folders: tuple[str, ...]
    ) -> None:
        self.facts = facts
        self.pos = positions
        self.workspace_folders = workspace_folders
        self.scope = MODULE_SCOPE
        self.classes: list[str] = []
        self.module_classes: set[str] = set()
        self.env: dict[str, str] = {}
        self.loaded: dict[str, CheckpointPath | None] = {}
        self.torch_names = {"torch"}
        self.stmt: ast.stmt | None = None
        # Loop variables bound by a parameter loop that already became a FlagOp.
        self.loop_bound: set[str] = set()
        self.consumed: set[int] = set()
        self.receivers: set[str] = set()
        self.constructed: dict[str, str] = {}
        self.local_functions: dict[str, tuple[str, ...]] = {}
        self.name_args: list[_NameArg] = []
        # (var, path, node) of every attribute path; spans are made only for those kept.
        self.raw_refs: list[tuple[str, tuple[PathElement, ...], ast.AST]] = []
        self.candidates: dict[str, tuple[str, ...]] = {}

    # ----------------------------------------------------------------- statements

    def visit_body(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit_stmt(stmt)

    def visit_stmt(self, node: ast.stmt) -> None:
        previous = self.stmt
        self.stmt = node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._visit_function(node)
        elif isinstance(node, ast.ClassDef):
            self._visit_class(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self._visit_import(node)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._visit_for(node)
        else:
            if not isinstance(node, _COMPOUND):
                span = self.pos.span(node)
                self.facts.statements.append(
                    Statement(self.scope, span, self.pos.indent_of(node.lineno))
                )
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                self._visit_assign(node)
            for field_name, value in ast.iter_fields(node):
                if field_name in ("body", "orelse", "finalbody"):
                    continue
                self._visit_field(value)
            for block in ("body", "orelse", "finalbody", "handlers", "cases"):
                self._visit_block(getattr(node, block, None))
        self.stmt = previous

    def _visit_block(self, block: object) -> None:
        if not isinstance(block, list):
            return
        for item in block:
            if isinstance(item, ast.stmt):
                self.visit_stmt(item)
            elif isinstance(item, (ast.ExceptHandler, ast.match_case)):
                if isinstance(item, ast.ExceptHandler) and item.type is not None:
                    self.visit_expr(item.type)
                self.visit_body(item.body)

    def _visit_field(self, value: object) -> None:
        if isinstance(value, ast.expr):
            self.visit_expr(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, ast.expr):
                    self.visit_expr(item)
                elif isinstance(item, ast.withitem):
                    self.visit_expr(item.context_expr)
                elif isinstance(item, ast.keyword):
                    self.visit_expr(item.value)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit_expr(decorator)
        outer = self.scope
        name = ".".join([*self.classes, node.name]) if self.classes else node.name
        params = tuple(a.arg for a in [*node.args.posonlyargs, *node.args.args])
        if not self.classes:
            self.local_functions[node.name] = params
        self.facts.scopes.append(Scope(name, node.lineno - 1, (node.end_lineno or 1) - 1, params))
        self.scope = name
        outer_bound = self.loop_bound
        self.loop_bound = set()
        self.visit_body(node.body)
        self.loop_bound = outer_bound
        self.scope = outer

    def _visit_class(self, node: ast.ClassDef) -> None:
        bases = [dotted_name(b) or "" for b in node.bases]
        if any(b.endswith("Module") or b in self.module_classes for b in bases):
            self.module_classes.add(node.name)
        self.classes.append(node.name)
        self.visit_body(node.body)
        self.classes.pop()

    def _visit_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch":
                    self.facts.torch_imported = True
                    self.torch_names.add(alias.asname or "torch")

    def _visit_assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        callee = dotted_name(value.func) if isinstance(value, ast.Call) else None
        for target in targets:
            if isinstance(target, ast.Name):
                self._bind(target.id, callee, node.lineno)
                text = static_path(value, self.env) if value is not None else None
                if text is not None:
                    self.env[target.id] = text
                else:
                    self.env.pop(target.id, None)
            elif isinstance(target, ast.Attribute) and target.attr == "requires_grad":
                self._flag_assign(target, value)
            elif isinstance(target, ast.Attribute) and isinstance(value, ast.Call):
                chain = _chain(target)
                if chain and chain[0] not in self.loop_bound and chain[0] != "self":
                    self._add_op(chain[0], "replace", chain[1], True, [self.pos.span(target)])
            else:
                for name in _target_names(target):
                    self._bind(name, None, node.lineno)

    def _bind(self, var: str, callee: str | None, lineno: int) -> None:
        self.facts.assignments.append(Assignment(var, self.scope, lineno - 1, callee))
        self.loaded.pop(var, None)
        if callee is None:
            return
        short = callee.rsplit(".", 1)[-1]
        if "optim." in callee or short in _OPTIMIZER_NAMES:
            self.facts.optimizer_vars.add(var)
        elif not any(word in callee for word in _NOT_MODELS):
            self.constructed[var] = callee

    def _visit_for(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit_expr(node.iter)
        names = _target_names(node.target)
        for name in names:
            self._bind(name, None, node.lineno)
        if isinstance(node.iter, ast.Call) and dotted_name(node.iter.func) == "range":
            self.facts.epoch_vars.update(n for n in names if "epoch" in n)
        call = _iter_call(node.iter)
        chain = _chain(call.func.value) if call and isinstance(call.func, ast.Attribute) else None
        outer_bound = set(self.loop_bound)
        if chain and chain[0] in self.loop_bound:
            self.loop_bound.update(names)
        elif call and chain and isinstance(node, ast.For):
            values = self._loop_flag_values(node, set(names))
            if values is not None:
                values_list, sites = values
                attr = call.func
                site = self.pos.tail_span(attr, len(attr.attr))  # type: ignore[attr-defined]
                op = self._add_op(chain[0], "loop", chain[1], _combine(values_list), [site, *sites])
                op.loop = node
                self.loop_bound.update(names)
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        self.loop_bound = outer_bound

    def _loop_flag_values(
        self, node: ast.For, bound: set[str]
    ) -> tuple[list[bool | None], list[Span]] | None:
        """Values a parameter loop assigns to `requires_grad`, or None if it assigns none."""
        values: list[bool | None] = []
        sites: list[Span] = []
        for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
            if isinstance(inner, ast.Assign):
                for target in inner.targets:
                    if isinstance(target, ast.Attribute) and target.attr == "requires_grad":
                        values.append(_bool_const(inner.value))
                        sites.append(self.pos.tail_span(target, len("requires_grad")))
            elif (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Attribute)
                and inner.func.attr == "requires_grad_"
            ):
                values.append(_bool_const(inner.args[0]) if inner.args else True)
                sites.append(self.pos.tail_span(inner.func, len("requires_grad_")))
        return (values, sites) if values else None

    def _flag_assign(self, target: ast.Attribute, value: ast.expr | None) -> None:
        chain = _chain(target.value)
        if chain is None or chain[0] in self.loop_bound:
            return
        site = self.pos.tail_span(target, len("requires_grad"))
        self._add_op(chain[0], "assign", chain[1], _bool_const(value), [site])

    def _add_op(
        self,
        var: str,
        kind: str,
        path: tuple[PathElement, ...],
        value: bool | None,
        sites: list[Span],
    ) -> FlagOp:
        assert self.stmt is not None
        op = FlagOp(var, self.scope, kind, path, value, self.pos.span(self.stmt), sites)  # type: ignore[arg-type]
        self.facts.flag_ops.append(op)
        return op

    # ----------------------------------------------------------------- expressions

    def visit_expr(self, node: ast.expr) -> None:
        stack: list[ast.AST] = [node]
        while stack:
            current = stack.pop()
            if id(current) in self.consumed:
                continue
            if isinstance(current, ast.Call):
                self._visit_call(current)
            elif isinstance(current, (ast.Attribute, ast.Subscript)):
                if self._attr_chain(current):
                    continue
            elif isinstance(current, ast.Constant) and isinstance(current.value, str):
                self._string(current)
                continue
            elif isinstance(current, (ast.JoinedStr, ast.Lambda)):
                continue
            stack.extend(ast.iter_child_nodes(current))

    def _attr_chain(self, node: ast.Attribute | ast.Subscript) -> bool:
        """Record every prefix of a whole `name.a[0].b` chain; False if it is not one."""
        chain = _chain(node)
        if chain is None:
            return False
        var, path = chain
        current: ast.AST = node
        while path:
            self.raw_refs.append((var, path, current))
            path = path[:-1]
            current = current.value  # type: ignore[attr-defined]
        return True

    def _ref_span(self, node: ast.AST) -> Span:
        if isinstance(node, ast.Attribute):
            return self.pos.tail_span(node, len(node.attr))
        return self.pos.span(node.slice)  # type: ignore[attr-defined]

    def _string(self, node: ast.Constant) -> None:
        text = str(node.value)
        if names_checkpoint(text):
            self._path(node, text, "other", None)
        elif len(text) <= 200 and _KEY_STRING.fullmatch(text):
            self.facts.key_strings.append(KeyString(text, self.pos.span(node)))

    def _path(self, node: ast.AST, text: str, role: PathRole, var: str | None) -> CheckpointPath:
        where = self.candidates.get(text)
        if where is None:
            where = self.candidates[text] = candidates(
                text, self.facts.file_path, self.workspace_folders
            )
        found = CheckpointPath(text, self.pos.span(node), where, role, var)
        self.facts.paths.append(found)
        for inner in ast.walk(node):
            self.consumed.add(id(inner))
        return found

    def _path_arg(
        self, node: ast.AST | None, role: PathRole, var: str | None
    ) -> CheckpointPath | None:
        if node is None:
            return None
        text = static_path(node, self.env)
        if text is None or not text:
            return None
        return self._path(node, text, role, var)

    def _visit_call(self, node: ast.Call) -> None:
        name = dotted_name(node.func)
        if name is not None and "." in name:
            head, _, tail = name.rpartition(".")
            if head in self.torch_names and tail == "load":
                self._torch_load(node)
            elif head in self.torch_names and tail == "save":
                self._torch_save(node)
        if isinstance(node.func, ast.Attribute):
            self._method_call(node, node.func)
        if name is None or name in _HARMLESS_CALLS or self.stmt is None:
            return
        args: list[tuple[int | str, ast.expr]] = list(enumerate(node.args))
        args += [(k.arg, k.value) for k in node.keywords if k.arg]
        for slot, arg in args:
            if isinstance(arg, ast.Name):
                self.name_args.append(
                    _NameArg(name, slot, arg.id, self.scope, node.lineno - 1, self.stmt)
                )

    def _stmt_span(self) -> Span:
        assert self.stmt is not None
        return self.pos.span(self.stmt)

    def _method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        chain = _chain(func.value)
        if chain is None:
            return
        var, path = chain
        if func.attr in _MODEL_METHODS:
            self.receivers.add(var)
        if func.attr == "requires_grad_" and var not in self.loop_bound:
            value = _bool_const(node.args[0]) if node.args else True
            if node.args and value is None:
                value = None
            site = self.pos.tail_span(func, len("requires_grad_"))
            self._add_op(var, "method", path, value, [site])
        elif func.attr == "load_state_dict" and not path:
            self._state_dict_load(node, var)

    def _torch_load(self, node: ast.Call) -> TorchLoad:
        keywords = {k.arg for k in node.keywords}
        last = [*node.args, *[k.value for k in node.keywords]]
        insert_at = None
        if last:
            end = max(last, key=lambda n: (n.end_lineno or 0, n.end_col_offset or 0))
            end_span = self.pos.span(end)
            insert_at = (end_span.end_line, end_span.end_char)
        target = (
            node.args[0]
            if node.args
            else next((k.value for k in node.keywords if k.arg == "f"), None)
        )
        assigned = None
        if isinstance(self.stmt, ast.Assign) and self.stmt.value is node:
            names = [t.id for t in self.stmt.targets if isinstance(t, ast.Name)]
            assigned = names[0] if names else None
        path = self._path_arg(target, "load", assigned)
        load = TorchLoad(
            self.scope,
            self.pos.span(node),
            self.pos.span(node.func),
            self._stmt_span(),
            "weights_only" in keywords,
            None in keywords,
            insert_at,
            path,
            assigned,
        )
        if assigned is not None:
            self.loaded[assigned] = path
        self.facts.torch_loads.append(load)
        return load

    def _torch_save(self, node: ast.Call) -> None:
        if not node.args:
            return
        obj = node.args[0]
        kind: SaveKind = "other"
        var: str | None = None
        grad_keys: list[str] = []
        if isinstance(obj, ast.Name):
            kind, var = "model", obj.id
        elif (
            isinstance(obj, ast.Call)
            and isinstance(obj.func, ast.Attribute)
            and obj.func.attr == "state_dict"
        ):
            chain = _chain(obj.func.value)
            kind, var = "state_dict", chain[0] if chain else None
        elif isinstance(obj, ast.Dict):
            kind = "dict"
            for key, value in zip(obj.keys, obj.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    continue
                if isinstance(value, ast.DictComp) and "requires_grad" in ast.dump(value.value):
                    grad_keys.append(key.value)
                elif (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "state_dict"
                ):
                    chain = _chain(value.func.value)
                    if chain and chain[0] not in self.facts.optimizer_vars and var is None:
                        var = chain[0]
        target = (
            node.args[1]
            if len(node.args) > 1
            else next((k.value for k in node.keywords if k.arg == "f"), None)
        )
        path = self._path_arg(target, "save", var)
        rest = [self.segment(a) for a in node.args[1:]]
        rest += [
            f"{k.arg}={self.segment(k.value)}" if k.arg else f"**{self.segment(k.value)}"
            for k in node.keywords
        ]
        assert self.stmt is not None
        self.facts.saves.append(
            TorchSave(
                self.scope,
                self.pos.span(node),
                self._stmt_span(),
                self.pos.indent_of(self.stmt.lineno),
                kind,
                var,
                self.segment(obj),
                ", ".join(rest),
                path,
                tuple(grad_keys),
            )
        )

    def _state_dict_load(self, node: ast.Call, var: str) -> None:
        arg = node.args[0] if node.args else None
        path: CheckpointPath | None = None
        source_var = source_key = None
        if isinstance(arg, ast.Subscript) and isinstance(arg.slice, ast.Constant):
            if isinstance(arg.slice.value, str):
                source_key = arg.slice.value
            arg = arg.value
        if isinstance(arg, ast.Name):
            source_var = arg.id
            path = self.loaded.get(arg.id)
        elif isinstance(arg, ast.Call):
            name = dotted_name(arg.func) or ""
            if name.rpartition(".")[0] in self.torch_names and name.endswith(".load"):
                inner = self._torch_load(arg)
                path = inner.path
                for sub in ast.walk(arg):
                    self.consumed.add(id(sub))
        if path is not None:
            path.var = var
            path.role = "load"
        assert self.stmt is not None
        stmt = self.pos.span(self.stmt)
        text = self.pos.lines[stmt.end_line] if stmt.end_line < len(self.pos.lines) else ""
        single = isinstance(self.stmt, (ast.Expr, ast.Assign, ast.AnnAssign)) and not text[
            stmt.end_char :
        ].strip().startswith(";")
        self.facts.loads.append(
            StateDictLoad(
                var,
                self.scope,
                self.pos.span(node),
                stmt,
                self.pos.indent_of(self.stmt.lineno),
                single and self.pos.indent_of(self.stmt.lineno) == self._line_indent(stmt),
                path,
                source_var,
                source_key,
            )
        )

    def _line_indent(self, span: Span) -> str:
        text = self.pos.lines[span.start_line]
        return (
            text[: len(text) - len(text.lstrip())] if text[: span.start_char].strip() == "" else "?"
        )

    def segment(self, node: ast.AST) -> str:
        span = self.pos.span(node)
        lines = self.pos.lines
        if span.start_line == span.end_line:
            return lines[span.start_line][span.start_char : span.end_char]
        parts = [lines[span.start_line][span.start_char :]]
        parts += lines[span.start_line + 1 : span.end_line]
        parts.append(lines[span.end_line][: span.end_char])
        return "\n".join(parts)

    # ----------------------------------------------------------------- after the walk

    def finish(self) -> None:
        """Keep what belongs to model variables; turn calls of freezing helpers into FlagOps."""
        facts = self.facts
        models = {
            var
            for var, callee in self.constructed.items()
            if callee.rsplit(".", 1)[-1] in self.module_classes
            or any(word in callee for word in _MODEL_FACTORIES)
        }
        models |= self.receivers | {load.var for load in facts.loads}
        if self.module_classes:
            models.add("self")
        models -= facts.optimizer_vars
        facts.model_vars = models
        facts.flag_ops = [op for op in facts.flag_ops if op.var in models]
        facts.flag_ops += self._helper_ops()
        facts.flag_ops.sort(key=lambda op: (op.stmt.start_line, op.stmt.start_char))
        # `full = torch.load(...)` may be a whole model: its attribute paths can be hovered.
        hoverable = models | {load.assigned_to for load in facts.torch_loads if load.assigned_to}
        facts.attr_refs = [
            AttrRef(var, path, self._ref_span(node))
            for var, path, node in self.raw_refs
            if var in hoverable
        ]
        facts.opaque_passes = [
            Assignment(a.var, a.scope, a.line, a.callee)
            for a in self.name_args
            if a.var in models and a.callee not in self.local_functions
        ]
        facts.self_freezing_classes = {
            op.scope.split(".")[-2]
            for op in facts.flag_ops
            if op.var == "self" and op.scope.endswith(".__init__") and op.may_freeze
        }

    def _helper_ops(self) -> list[FlagOp]:
        """`freeze(model_ft)` where `freeze` is defined here and sets requires_grad on its arg."""
        ops: list[FlagOp] = []
        helpers: dict[str, dict[int | str, bool | None]] = {}
        for op in self.facts.flag_ops:
            params = self.local_functions.get(op.scope)
            if params and op.var in params:
                slots = helpers.setdefault(op.scope, {})
                value = _combine([slots[op.var], op.value]) if op.var in slots else op.value
                slots[op.var] = slots[params.index(op.var)] = value
        for arg in self.name_args:
            slots = helpers.get(arg.callee, {})
            if arg.slot in slots and arg.var in self.facts.model_vars:
                stmt = self.pos.span(arg.stmt)
                name_at = self.pos.lines[stmt.start_line].find(arg.callee, stmt.start_char)
                site = Span(arg.line, max(name_at, 0), arg.line, max(name_at, 0) + len(arg.callee))
                ops.append(FlagOp(arg.var, arg.scope, "helper", (), slots[arg.slot], stmt, [site]))
        return ops
