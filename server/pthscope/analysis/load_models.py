"""The state_dict each `model.load_state_dict(X)` call's model would have, from its source.

For a load whose model is an object a call built (`net = Net(num_classes=10)`, flow.py's
`Built`), `expected_for_loads` derives `expected_state.expected_state_dict` of that construction
(by its line), once per construction, and records it in `ModuleFacts.expected` by the load's
index. A submodule replaced after the construction (`net.fc = nn.Linear(32, 5)`, `Built.stores`)
is replayed by the derivation; a model inside wrappers (`nn.DataParallel(net)`, flow.py) has their
prefixes before its keys, and a `copy.deepcopy` of it the same state as it. It says nothing (no
entry) for a wrapper not recognised, and when the model may have changed otherwise between its
construction and the load: another attribute or item of it assigned or deleted, a method
that is not known to leave its state_dict alone, or the model passed to a call — then what it
holds is not what its class builds, and a check would guess.

Runs in the analysis (a worker thread in the server), never in a request; the parsed workspace
files are kept in a `ModelSources` handed from one analysis of the file to the next.
"""

from __future__ import annotations

import ast
from bisect import bisect_right
from dataclasses import replace
from operator import itemgetter

from .ast_shapes import root_name
from .expected_state import ExpectedStateDict, expected_state_dict
from .facts import ModuleFacts, StateDictLoad
from .flow import Built, Loaded
from .model_classes import ModelSources

# Methods of an nn.Module that leave its state_dict's keys and shapes as they are.
_KEEPING = frozenset({
    "to", "cuda", "cpu", "eval", "train", "float", "half", "double", "bfloat16", "type",
    "parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children",
    "modules", "named_modules", "state_dict", "load_state_dict", "requires_grad_", "zero_grad",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "get_submodule", "get_parameter", "extra_repr", "share_memory", "forward",
    "compile",  # `model.compile()` compiles forward in place; its state_dict keeps its keys
})  # fmt: skip
# Calls that make a wrapper or a copy of the model, leaving it as it is (flow_values).
_MAKING = frozenset({"nn.DataParallel", "torch.nn.DataParallel", "DataParallel", "DDP",
                     "nn.parallel.DistributedDataParallel", "torch.nn.parallel.DistributedDataParallel",
                     "DistributedDataParallel", "torch.compile", "copy.deepcopy", "deepcopy"})  # fmt: skip
# Calls that may take the model without changing it.
_HARMLESS = frozenset({"print", "len", "repr", "str", "type", "id", "isinstance", "hasattr",
                       "getattr", "summary", "logging.info", "log.info", "logger.info"})  # fmt: skip


def expected_for_loads(facts: ModuleFacts, tree: ast.Module, source: str,
                       workspace_folders: tuple[str, ...],
                       sources: ModelSources | None) -> ModelSources | None:  # fmt: skip
    """Fill `facts.expected`; returns the `ModelSources` used (None when nothing was derived)."""
    built: dict[Built, tuple[ExpectedStateDict, int]] = {}
    changes: list[tuple[int, ast.AST]] | None = None
    for index, load in enumerate(facts.loads):
        target = load.target
        if not isinstance(target, Built) or target.wrappers is None or not isinstance(load.source, Loaded):
            continue  # not a model built here, or wrapped in something whose keys are not known
        if changes is None:  # once per file, not once per load
            changes = _possible_changes(tree)
        if _changed_before_load(changes, load, target, _names_of(facts, target)):
            continue
        shape = replace(target, copied=None)  # a deepcopy has the structure of its original
        if shape not in built:
            if sources is None:
                sources = ModelSources(workspace_folders)
            expected = expected_state_dict(source, facts.file_path, workspace_folders, target.callee,
                                           call_line=target.line, sources=sources,
                                           wrappers=target.wrappers, stores=target.stores)  # fmt: skip
            expected.by_lines()  # here, not in a hover
            built[shape] = expected, stamp(expected)
        expected, stamped = built[shape]
        if expected.error is None and not _nothing_known(expected):
            facts.expected[index] = expected
            facts.expected_stamps[index] = stamped
    return sources


def _nothing_known(expected: ExpectedStateDict) -> bool:
    """No tensor known and the whole model unknown (an optimizer, a scheduler, a class not
    followed): a check would only say "0/0 tensors match"."""
    return not expected.tensors and any(part.prefix == "" and part.scope == "all" for part in expected.unknown)


def stamp(expected: ExpectedStateDict) -> int:
    """A hash of what a check against a file depends on: the keys and shapes, and the places
    its messages point at (the statements creating the tensors, the arguments deciding dims)."""
    parts: list[object] = [expected.class_name]
    for key, tensor in expected.tensors.items():
        origin = tensor.origin
        names = tuple(d.source.name for d in tensor.dims or () if d.source is not None and d.source.name)
        parts.append((key, tensor.shape, origin.file if origin else None, origin.span if origin else None,
                      tuple((n.file, n.span, n.value) for n in names)))  # fmt: skip
    parts += [(u.prefix, u.reason, u.scope) for u in expected.unknown]
    parts += [(r.prefix, r.count, r.source.span) for r in expected.repeats]
    parts += [(k, a.span, a.expression) for k, a in expected.absent.items()]
    return hash(tuple(parts))


def _possible_changes(tree: ast.Module) -> list[tuple[int, ast.AST]]:
    """The assignments, deletions and calls of the file, by line (1-based, as ast)."""
    kinds = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete, ast.Call)
    return sorted(((n.lineno, n) for n in ast.walk(tree) if isinstance(n, kinds)), key=lambda item: item[0])


def _names_of(facts: ModuleFacts, built: Built) -> frozenset[str]:
    """The names that hold the construction, its wrappers or copies somewhere: a change
    through any of them (`inner.fc = ...` before `dp = nn.DataParallel(inner)`, `student.fc`
    before `ema = copy.deepcopy(student)`) may be in what the load's model holds."""
    construction = (built.callee, built.scope, built.line)
    return frozenset(a.var for a in facts.assignments
                     if isinstance(a.value, Built) and (a.value.callee, a.value.scope, a.value.line) == construction)


def _changed_before_load(changes: list[tuple[int, ast.AST]], load: StateDictLoad, built: Built,
                         names: frozenset[str] = frozenset()) -> bool:  # fmt: skip
    """Whether code between the model's construction and the load (anywhere in the file, when
    they are in different functions) may change what the model holds: through the load's
    name (`model_dp` of `model_dp.module.load_state_dict`) or `names`."""
    same_scope = load.scope == built.scope
    first, last = built.line + 1, load.call.start_line + 1  # 1-based, as ast
    # A model a class keeps (`self.model`, analysis/self_attributes.py): changes through that
    # attribute, not through all of `self`.
    attribute = load.var if load.var.startswith("self.") else None
    roots = names | ({load.var.partition(".")[0]} if attribute is None else set())

    def through(node: ast.expr) -> bool:
        return root_name(node) in roots or (attribute is not None and _under(node, attribute))

    if same_scope:  # only the lines after the construction, up to the load
        line_of = itemgetter(0)
        changes = changes[bisect_right(changes, first, key=line_of) : bisect_right(changes, last, key=line_of)]
    for line, node in changes:
        if line - 1 in built.stores:  # a submodule replaced: derived with the model (flow_stores.py)
            continue
        if attribute is not None and line == first and isinstance(node, ast.Assign):
            continue  # `self.model = Net(...)` itself
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            if any(through(t) and not isinstance(t, ast.Name) for t in targets):
                return True
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and through(func.value) and func.attr not in _KEEPING:
                return True
            name = ast.unparse(func)
            if name == load.scope:  # a call of the function the load is in: the load is inside it
                continue
            passed = [*node.args, *(k.value for k in node.keywords)]
            if name not in _HARMLESS and name not in _MAKING and any(
                    (isinstance(a, ast.Name) and a.id in roots) or (attribute is not None and _under(a, attribute))
                    for a in passed):  # fmt: skip
                return True
    return False


def _under(node: ast.expr, attribute: str) -> bool:
    """Whether `node` is `attribute` (`self.model`) or reaches into it (`self.model.fc[0]`)."""
    if not isinstance(node, (ast.Attribute, ast.Subscript)):
        return False
    text = ast.unparse(node)
    return text == attribute or text.startswith((attribute + ".", attribute + "["))
