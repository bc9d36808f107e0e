"""One pass over a parsed file that records the facts `actions` needs.

The walk records candidates for every name (attribute paths, method calls, calls that receive a
name) and `finish` keeps those that belong to model variables, so a single pass suffices. It follows
statement order within each function and what each name holds (flow.py: the branches of an `if`,
a loop, a `try` are joined), which is how code is tied to the checkpoint it reads.
torch.load/save and load_state_dict calls become facts in torch_calls.py, values and the keys read
from loaded checkpoints in flow_values.py, in-place changes (a model's submodule replaced, a
loaded dict edited) in flow_stores.py, parameter loops and freezing helpers in flag_ops.py;
node shapes are read by ast_shapes.py.
"""

from __future__ import annotations

import ast
import re
from collections import Counter

from .ast_shapes import (
    COMPOUND,
    attr_chain,
    bool_const,
    combine,
    param_iter_call,
    push_children,
    root_name,
    target_names,
)
from .facts import (
    MODULE_SCOPE,
    Assignment,
    AttrRef,
    CheckpointPath,
    FlagOp,
    KeyRef,
    KeyString,
    ModuleFacts,
    PathElement,
    PathRole,
    Scope,
    Span,
    Statement,
)
from .flag_ops import NameArg, helper_flag_ops, loop_flag_values
from .flow import UNCLEAR, Built, Flow, Loaded, Param, Renamed, Value
from .flow_stores import DictEdit, record_call, record_stores
from .flow_values import (
    copy_loop,
    is_key_access,
    key_loop,
    key_test,
    record_key_ref,
    renamed_copy,
    value_of,
)
from .flow_walk import (
    parameter_values,
    rebind,
    resolve_parameters,
    undo_overridden_defaults,
    visit_branches,
)
from .paths import candidates, dotted_name, names_checkpoint, static_path
from .self_attributes import followed_attributes, self_attribute
from .source import Positions
from .torch_calls import record_state_dict_load, record_torch_load, record_torch_save

_KEY_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_MODEL_METHODS = {
    "parameters", "named_parameters", "state_dict", "load_state_dict", "eval", "train",
    "children", "named_children", "modules", "named_modules", "requires_grad_", "buffers",
    "named_buffers",
}  # fmt: skip
_NOT_MODELS = ("optim", "scheduler", "Scaler", "Trainer", "SGD", "Adam", "RMSprop")
# torch.nn modules that are not models to freeze, save or load: losses and parameterless layers.
_PARAMETERLESS = {
    "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "LeakyReLU", "Dropout",
    "Identity", "Flatten", "MaxPool1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
}  # fmt: skip


def _not_a_model_module(name: str) -> bool:
    return name.endswith("Loss") or name in _PARAMETERLESS


_MODEL_FACTORIES = ("models.", "nn.", "create_model", "from_pretrained", "hub.load")
_OPTIMIZER_NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "NAdam")
_HARMLESS_CALLS = {
    "print", "len", "isinstance", "str", "repr", "type", "id", "getattr", "hasattr", "sum",
    "list", "tuple", "sorted", "enumerate", "copy.deepcopy", "deepcopy", "torch.save",
    "nn.DataParallel", "torch.nn.DataParallel", "torch.compile", "summary", "logging.info",
}  # fmt: skip


_BRANCHING = (ast.If, ast.While, ast.Try, ast.Match) + (
    (ast.TryStar,) if hasattr(ast, "TryStar") else ()
)


class Collector:
    """Walks one module and fills a `ModuleFacts`."""

    def __init__(
        self, facts: ModuleFacts, positions: Positions, workspace_folders: tuple[str, ...],
        attribute_stores: Counter[str] | None = None,
    ) -> None:
        self.facts = facts
        # How many statements of the file store into each attribute name (self_attributes.py).
        self.attribute_stores: Counter[str] = attribute_stores if attribute_stores is not None else Counter()
        self.pos = positions
        self.workspace_folders = workspace_folders
        self.scope = MODULE_SCOPE
        self.classes: list[str] = []
        self.module_classes: set[str] = set()
        self.flow = Flow(self.same_file)
        # id(torch.load call node) → its index in facts.torch_loads.
        self.load_calls: dict[int, int] = {}
        # (function, parameter) → its default, when that is a static string.
        self.param_defaults: dict[tuple[str, str], str] = {}
        # torch.load index → the parameters with defaults its path was built from.
        self.load_params: dict[int, set[tuple[str, str]]] = {}
        # Calls of this file's functions: (function, slot → the value passed).
        self.local_calls: list[tuple[str, dict[int | str, Value]]] = []
        self.param_key_refs: list[tuple[Param, KeyRef]] = []
        # torch.load calls whose path is a parameter: (load index, the parameter, its node, var).
        self.param_paths: list[tuple[int, Param, ast.Name, str | None]] = []
        self._names_used: set[str] | None = None
        self.torch_names = {"torch"}
        # Name → the dotted path its import binds (`DDP` → torch.nn.parallel.DistributedDataParallel).
        self.imports: dict[str, str] = {}
        self.stmt: ast.stmt | None = None
        self.before: ast.stmt | None = None  # the statement before the one being visited, in its body
        # Loop variables bound by a parameter loop that already became a FlagOp.
        self.loop_bound: set[str] = set()
        self.consumed: set[int] = set()
        self.receivers: set[str] = set()
        self.constructed: dict[str, str] = {}
        # The file's functions and (undecorated) methods, `Trainer.load`, by their parameters.
        self.local_functions: dict[str, tuple[str, ...]] = {}
        # The attributes set once in a class's `__init__` that nothing else changes
        # (self_attributes.py), by class, and what they hold: `(class, X)` → the value.
        self.followed_attributes: dict[str, set[str]] = {}
        self.self_attributes: dict[tuple[str, str], Value] = {}
        self.name_args: list[NameArg] = []
        # (var, path, node, value) of every attribute path; spans are made only for those kept.
        self.raw_refs: list[tuple[str, tuple[PathElement, ...], ast.AST, Value | None]] = []
        self.candidates: dict[str, tuple[str, ...]] = {}
        # Edits of loaded dicts so far, and the statement lists being walked (flow_stores.py).
        self.dict_edits: list[DictEdit] = []
        # The `if "k" in x:` tests around the statement being walked ((x, "k"), None for other
        # tests) and the `x["k"]` of `x["k"] if "k" in x else ...`: reads a missing key cannot fail.
        self.key_guards: list[tuple[Loaded, str] | None] = []
        self.guarded_reads: set[int] = set()
        self.blocks: tuple[int, ...] = ()

    # ----------------------------------------------------------------- statements

    def visit_body(self, body: list[ast.stmt]) -> None:
        outer = self.blocks
        self.blocks = (*outer, id(body))
        for index, stmt in enumerate(body):
            self.before = body[index - 1] if index else None
            self.visit_stmt(stmt)
        self.blocks = outer

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
        elif isinstance(node, _BRANCHING):
            visit_branches(self, node)
        else:
            if not isinstance(node, COMPOUND):
                span = self.pos.span(node)
                self.facts.statements.append(
                    Statement(self.scope, span, self.pos.indent_of(node.lineno))
                )
            stores = isinstance(node, (ast.Assign, ast.AnnAssign))
            for field_name, value in ast.iter_fields(node):
                if field_name in ("body", "orelse", "finalbody") or (stores and field_name in ("targets", "target")):
                    continue
                self._visit_field(value)
            # After the right-hand side: what it evaluates to is known by then.
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                self._visit_assign(node)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self.flow.set(node.target.id, UNCLEAR)
            record_stores(self, node)
            if isinstance(node, ast.Assign):  # a stored attribute is what it holds now
                self._visit_field(node.targets)
            elif isinstance(node, ast.AnnAssign):
                self._visit_field(node.target)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                self._bind_with_items(node)
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
                    if item.optional_vars is not None:
                        self.visit_expr(item.optional_vars)
                elif isinstance(item, ast.keyword):
                    self.visit_expr(item.value)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit_expr(decorator)
        outer = self.scope
        name = ".".join([*self.classes, node.name]) if self.classes else node.name
        params = _parameters(node)
        if not self.classes:
            self.local_functions[node.name] = params
        self.facts.scopes.append(Scope(name, node.lineno - 1, (node.end_lineno or 1) - 1, params))
        names = parameter_values(self, name, node.args)
        for param, held in names.items():  # so that look-ups by line find what it holds
            self.facts.assignments.append(Assignment(param, name, node.lineno - 1, None, held))
        self.scope = name
        outer_bound = self.loop_bound
        self.loop_bound = set()
        self.flow.enter(names)
        self.visit_body(node.body)
        self.flow.leave()
        self.loop_bound = outer_bound
        self.scope = outer

    def _visit_class(self, node: ast.ClassDef) -> None:
        bases = [dotted_name(b) or "" for b in node.bases]
        if any(b.endswith("Module") or b in self.module_classes for b in bases):
            self.module_classes.add(node.name)
        self.classes.append(node.name)
        owner = ".".join(self.classes)
        self.followed_attributes[owner] = followed_attributes(node, self.attribute_stores)
        for method in node.body:  # known before the walk reaches them: `self.load(p)` in `__init__`
            if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and not method.decorator_list:
                self.local_functions[f"{owner}.{method.name}"] = _parameters(method)
        self.visit_body(node.body)
        self.classes.pop()

    def _visit_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch":
                    self.facts.torch_imported = True
                    self.torch_names.add(alias.asname or "torch")
                bound = alias.asname or alias.name.split(".")[0]
                self.imports[bound] = alias.name if alias.asname else bound
        elif node.module and not node.level:
            for alias in node.names:
                self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualified(self, name: str) -> str | None:
        """`name` (dotted, as written) as the full path its imports make it (`nn.DataParallel`
        after `import torch.nn as nn`: `torch.nn.DataParallel`); None when its head is not imported."""
        head, dot, rest = name.partition(".")
        found = self.imports.get(head)
        return None if found is None else found + dot + rest

    def _visit_assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        callee = dotted_name(value.func) if isinstance(value, ast.Call) else None
        held = value_of(self, value) if value is not None else UNCLEAR
        attribute = self_attribute(node) if isinstance(node, ast.Assign) and self.classes else None
        owner = ".".join(self.classes)
        if attribute in self.followed_attributes.get(owner, ()) and self.scope == f"{owner}.__init__":
            self.self_attributes[(owner, attribute)] = held  # type: ignore[index]
        for target in targets:
            if isinstance(target, ast.Name):
                self._bind(target.id, callee, node.lineno, held)
            elif isinstance(target, ast.Attribute) and target.attr == "requires_grad":
                self._flag_assign(target, value)
            elif isinstance(target, ast.Attribute) and isinstance(value, ast.Call):
                chain = attr_chain(target)
                if chain and chain[0] not in self.loop_bound and chain[0] != "self":
                    self._add_op(chain[0], "replace", chain[1], True, [self.pos.span(target)])
            elif isinstance(target, (ast.Attribute, ast.Subscript)) and isinstance(self.flow.get(root_name(target) or ""), Built):
                pass  # a store on a model: what it holds next is flow_stores.py's
            else:
                for name in target_names(target):
                    self._bind(name, None, node.lineno)

    def _bind_with_items(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if isinstance(item.optional_vars, ast.Name):
                held = value_of(self, item.context_expr)
                self._bind(item.optional_vars.id, None, node.lineno, held)
            elif item.optional_vars is not None:
                for name in target_names(item.optional_vars):
                    self._bind(name, None, node.lineno)

    def _bind(self, var: str, callee: str | None, lineno: int, value: Value = UNCLEAR) -> None:
        self.facts.assignments.append(Assignment(var, self.scope, lineno - 1, callee, value))
        self.flow.set(var, value)
        if callee is None:
            return
        short = callee.rsplit(".", 1)[-1]
        if "optim." in callee or short in _OPTIMIZER_NAMES:
            self.facts.optimizer_vars.add(var)
        elif not any(word in callee for word in _NOT_MODELS) and not _not_a_model_module(short):
            self.constructed[var] = callee

    def _visit_for(self, node: ast.For | ast.AsyncFor) -> None:
        copied = copy_loop(node, self.before)
        # What the copy holds after the loop: the loaded dict as it is now, renamed (flow.Renamed).
        copy = renamed_copy(self, copied[1], copied[2]) if copied is not None else UNCLEAR
        chosen = key_loop(self, node)  # `for key in ("state_dict", "model"): if key in ckpt: ...`
        self.visit_expr(node.iter)
        names = target_names(node.target)
        for name in names:
            self._bind(name, None, node.lineno)
        if isinstance(node.iter, ast.Call) and dotted_name(node.iter.func) == "range":
            self.facts.epoch_vars.update(n for n in names if "epoch" in n)
        call = param_iter_call(node.iter)
        chain = (
            attr_chain(call.func.value) if call and isinstance(call.func, ast.Attribute) else None
        )
        outer_bound = set(self.loop_bound)
        before = self.flow.fork()
        if chain and chain[0] in self.loop_bound:
            self.loop_bound.update(names)
        elif call and chain and isinstance(node, ast.For):
            values = loop_flag_values(self.pos, node)
            if values is not None:
                values_list, sites = values
                attr = call.func
                site = self.pos.tail_span(attr, len(attr.attr))  # type: ignore[attr-defined]
                op = self._add_op(chain[0], "loop", chain[1], combine(values_list), [site, *sites])
                op.loop = node
                self.loop_bound.update(names)
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        rebind(self, self.flow.join_with(before), node.end_lineno or node.lineno)
        if copied is not None and isinstance(copy, Renamed):
            self.flow.set(copied[0], copy)
            rebind(self, {copied[0]: copy}, node.end_lineno or node.lineno)
        if chosen is not None:
            self.flow.set(chosen[0], chosen[1])
            rebind(self, {chosen[0]: chosen[1]}, node.end_lineno or node.lineno)
        self.loop_bound = outer_bound

    def _flag_assign(self, target: ast.Attribute, value: ast.expr | None) -> None:
        chain = attr_chain(target.value)
        if chain is None or chain[0] in self.loop_bound:
            return
        site = self.pos.tail_span(target, len("requires_grad"))
        self._add_op(chain[0], "assign", chain[1], bool_const(value), [site])

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
        op.target = self.flow.get(var)
        self.facts.flag_ops.append(op)
        return op

    # ----------------------------------------------------------------- expressions

    def visit_expr(self, node: ast.expr) -> None:
        stack: list[ast.AST] = [node]
        consumed = self.consumed
        while stack:
            current = stack.pop()
            kind = type(current)
            if kind is ast.Name or id(current) in consumed:
                continue
            if kind is ast.Call:
                if is_key_access(current):
                    record_key_ref(self, current)  # type: ignore[arg-type]
                self._visit_call(current)  # type: ignore[arg-type]
            elif kind is ast.Attribute or kind is ast.Subscript:
                if self._record_chain(current):  # type: ignore[arg-type]
                    continue
                if kind is ast.Subscript and is_key_access(current):
                    record_key_ref(self, current)  # type: ignore[arg-type]
            elif kind is ast.Constant:
                if isinstance(current.value, str):  # type: ignore[attr-defined]
                    self._string(current)  # type: ignore[arg-type]
                continue
            elif kind is ast.JoinedStr or kind is ast.Lambda:
                continue
            elif kind is ast.IfExp and key_test(self, current.test) is not None:  # type: ignore[attr-defined]
                self.guarded_reads.add(id(current.body))  # type: ignore[attr-defined]
            push_children(stack, current)

    def _record_chain(self, node: ast.Attribute | ast.Subscript) -> bool:
        """Record every prefix of a whole `name.a[0].b` chain; False if it is not one."""
        chain = attr_chain(node)
        if chain is None:
            return False
        var, path = chain
        current: ast.AST = node
        held = self.flow.get(var)
        while path:
            self.raw_refs.append((var, path, current, held))
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
            self.path_at(node, text, "other", None)
        elif len(text) <= 200 and _KEY_STRING.fullmatch(text):
            self.facts.key_strings.append(KeyString(text, self.pos.span(node)))

    def path_at(self, node: ast.AST, text: str, role: PathRole, var: str | None) -> CheckpointPath:
        where = self.candidates.get(text)
        if where is None:
            where = self.candidates[text] = candidates(
                text, self.facts.file_path, self.workspace_folders
            )
        found = CheckpointPath(text, self.pos.span(node), where, role, var)
        self.facts.paths.append(found)
        if isinstance(node, ast.Constant):
            self.consumed.add(id(node))
        else:
            self.consumed.update(id(inner) for inner in ast.walk(node))
        return found

    def path_arg(
        self, node: ast.AST | None, role: PathRole, var: str | None
    ) -> CheckpointPath | None:
        if node is None:
            return None
        self._names_used = set()
        text = static_path(node, self.text_of)
        used, self._names_used = self._names_used, None
        if text is None and role == "load" and isinstance(node, ast.Name):
            param = self.flow.get(node.id)
            if isinstance(param, Param):  # the path its callers pass, once the walk has seen them
                self.param_paths.append((len(self.facts.torch_loads), param, node, var))
        if text is None or not text:
            return None
        depends = {(self.scope, n) for n in used if (self.scope, n) in self.param_defaults}
        if depends and role == "load":
            self.load_params[len(self.facts.torch_loads)] = depends
        return self.path_at(node, text, role, var)

    def text_of(self, name: str) -> str | None:
        """The string `name` holds here, if known (static_path's look-up)."""
        value = self.flow.get(name)
        if value is None and name == "__file__" and self.facts.file_path:
            value = self.facts.file_path  # Python sets it to the script's path
        if not isinstance(value, str):
            return None
        if self._names_used is not None:
            self._names_used.add(name)
        return value

    def same_file(self, a: int, b: int) -> bool:
        """Whether torch.load calls `a` and `b` read the same path."""
        loads = self.facts.torch_loads
        first = loads[a].path if 0 <= a < len(loads) else None
        second = loads[b].path if 0 <= b < len(loads) else None
        return first is not None and second is not None and first.candidates == second.candidates

    def torch_load_index(self, node: ast.Call) -> int | None:
        """The index of the `torch.load` call `node` (recorded now if the walk has not reached
        it yet), or None when it is another call."""
        index = self.load_calls.get(id(node))
        if index is not None:
            return index
        name = dotted_name(node.func)
        if name is None or "." not in name:
            return None
        head, _, tail = name.rpartition(".")
        if head not in self.torch_names or tail != "load":
            return None
        record_torch_load(self, node)
        self.consumed.update(id(inner) for inner in ast.walk(node))
        return self.load_calls[id(node)]

    def _visit_call(self, node: ast.Call) -> None:
        record_call(self, node)
        name = dotted_name(node.func)
        if name is not None and "." in name:
            head, _, tail = name.rpartition(".")
            if head in self.torch_names and tail == "load" and id(node) not in self.load_calls:
                record_torch_load(self, node)
            elif head in self.torch_names and tail == "save":
                record_torch_save(self, node)
        if isinstance(node.func, ast.Attribute):
            self._method_call(node, node.func)
        args: list[tuple[int | str, ast.expr]] = list(enumerate(node.args))
        args += [(k.arg, k.value) for k in node.keywords if k.arg]
        method = self._method_of(node.func) if isinstance(node.func, ast.Attribute) else None
        if method is not None:  # `trainer.load(path)`: the instance is the first parameter
            passed = {(slot + 1 if isinstance(slot, int) else slot): value_of(self, arg) for slot, arg in args}
            self.local_calls.append((method[0], {0: method[1], **passed}))
        if name is None or name in _HARMLESS_CALLS or self.stmt is None:
            return
        if name in self.local_functions:
            self.local_calls.append((name, {slot: value_of(self, arg) for slot, arg in args}))
        for slot, arg in args:
            if isinstance(arg, ast.Name):
                held = self.flow.get(arg.id)
                self.name_args.append(
                    NameArg(name, slot, arg.id, self.scope, node.lineno - 1, self.stmt, held)
                )

    def _method_of(self, func: ast.Attribute) -> tuple[str, Value] | None:
        """The file's method `receiver.name(...)` calls and its receiver: an object a class of the
        file made (`Trainer().load`), or `self` inside that class."""
        if isinstance(func.value, ast.Name) and func.value.id == "self" and self.classes:
            method = f"{'.'.join(self.classes)}.{func.attr}"
            return (method, self.flow.get("self") or UNCLEAR) if method in self.local_functions else None
        receiver = value_of(self, func.value)
        if isinstance(receiver, Built) and f"{receiver.callee}.{func.attr}" in self.local_functions:
            return f"{receiver.callee}.{func.attr}", receiver
        return None

    def stmt_span(self) -> Span:
        assert self.stmt is not None
        return self.pos.span(self.stmt)

    def _method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        chain = attr_chain(func.value)
        if chain is None:
            return
        var, path = chain
        if func.attr in _MODEL_METHODS:
            self.receivers.add(var)
        if func.attr == "requires_grad_" and var not in self.loop_bound:
            value = bool_const(node.args[0]) if node.args else True
            if node.args and value is None:
                value = None
            site = self.pos.tail_span(func, len("requires_grad_"))
            self._add_op(var, "method", path, value, [site])
        elif func.attr == "load_state_dict" and not path:
            record_state_dict_load(self, node, var, self.flow.get(var))
        elif func.attr == "load_state_dict":  # `model_dp.module.load_state_dict(...)`: the inner model
            inner = value_of(self, func.value)
            if isinstance(inner, Built):
                record_state_dict_load(self, node, ast.unparse(func.value), inner)

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
        facts.flag_ops += helper_flag_ops(
            facts.flag_ops, self.local_functions, self.name_args, models, self.pos
        )
        facts.flag_ops.sort(key=lambda op: (op.stmt.start_line, op.stmt.start_char))
        # `full = torch.load(...)` may be a whole model: its attribute paths can be hovered.
        hoverable = models | {load.assigned_to for load in facts.torch_loads if load.assigned_to}
        facts.attr_refs = [
            AttrRef(var, path, self._ref_span(node), held)
            for var, path, node, held in self.raw_refs
            if var in hoverable
        ]
        undo_overridden_defaults(self)
        resolve_parameters(self)
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


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    """The positional parameters (a method's first is the instance)."""
    return tuple(a.arg for a in [*node.args.posonlyargs, *node.args.args])
