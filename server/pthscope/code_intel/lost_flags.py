"""PTH001: requires_grad flags lost by `load_state_dict` into a fresh model, and the code that
restores them.

A load is flagged only when all of these hold: the target was constructed in the same function
(`model_new = Net()`), nothing sets its flags (or passes it to code we cannot see) after that,
its class does not freeze itself in `__init__`, and either another instance of the same class is
frozen in this file or a linked whole-model checkpoint of that class has frozen parameters.
Loading into the very object that was frozen keeps its flags and is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.facts import Assignment, FlagOp, ModuleFacts, StateDictLoad
from ..reader.model_view import ModelView
from .linking import Checkpoints, named_views
from .python_text import attribute_path, comment, string_literal
from .text_edits import quote_char, retarget, statement_lines


@dataclass
class FrozenInstance:
    """A variable of some class whose flags the file sets, and the statements that do it."""

    var: str
    scope: str
    callee: str
    line: int
    ops: list[FlagOp] = field(default_factory=list)


@dataclass
class LostFlags:
    """One flagged load and what can restore its flags."""

    index: int
    load: StateDictLoad
    callee: str
    instance: FrozenInstance | None
    checkpoint: ModelView | None
    grad_map: tuple[str, str] | None

    def sources(self) -> list[str]:
        """Ways to restore the flags, best first: "code", "map", "checkpoint"."""
        found = []
        if self.instance is not None:
            found.append("code")
        if self.grad_map is not None:
            found.append("map")
        if self.checkpoint is not None:
            found.append("checkpoint")
        return found


def find_lost_flags(facts: ModuleFacts, checkpoints: Checkpoints) -> list[LostFlags]:
    """Every `load_state_dict` that silently makes a frozen model trainable again."""
    found: list[LostFlags] = []
    instances: dict[str, list[FrozenInstance]] | None = None
    frozen_by_class: dict[str, ModelView | None] = {}
    for index, load in enumerate(facts.loads):
        made = latest_assignment(facts, load.var, load.scope, load.call.start_line)
        if made is None or not _constructs(facts, made.callee):
            continue
        assert made.callee is not None
        short = made.callee.rsplit(".", 1)[-1]
        if short in facts.self_freezing_classes or _touched(facts, load.var, load.scope, made.line):
            continue
        if instances is None:
            instances = {}
            for instance in frozen_instances(facts):
                instances.setdefault(instance.callee.rsplit(".", 1)[-1], []).append(instance)
        same_class = instances.get(short, [])
        if short not in frozen_by_class:
            frozen_by_class[short] = _frozen_checkpoint(facts, checkpoints, short)
        checkpoint = frozen_by_class[short]
        if not same_class and checkpoint is None:
            continue
        found.append(
            LostFlags(
                index,
                load,
                made.callee,
                same_class[0] if same_class else None,
                checkpoint,
                _grad_map(facts, load),
            )
        )
    return found


def latest_assignment(facts: ModuleFacts, var: str, scope: str, line: int) -> Assignment | None:
    """The last assignment to `var` in `scope` at or before `line`."""
    best: Assignment | None = None
    for assignment in facts.assignments_to(var, scope):
        if assignment.line <= line and (best is None or assignment.line >= best.line):
            best = assignment
    return best


def _constructs(facts: ModuleFacts, callee: str | None) -> bool:
    """`Net()` or `models.resnet18()` builds a new object; `model.to(device)` returns `model`."""
    if callee is None:
        return False
    root = callee.split(".", 1)[0]
    return "." not in callee or root not in facts.assigned_names()


def _touched(facts: ModuleFacts, var: str, scope: str, since: int) -> bool:
    """Flags set on `var`, or `var` handed to unknown code, after line `since` in `scope`."""
    for op in facts.flag_ops:
        if (
            op.var == var
            and op.scope == scope
            and op.kind != "replace"
            and op.stmt.start_line > since
        ):
            return True
    return any(p.var == var and p.scope == scope and p.line > since for p in facts.opaque_passes)


def frozen_instances(facts: ModuleFacts) -> list[FrozenInstance]:
    """Constructed variables that the file freezes, with their flag statements in order."""
    found: dict[tuple[str, str, int], FrozenInstance] = {}
    for op in facts.flag_ops:
        if op.var == "self":
            continue
        made = latest_assignment(facts, op.var, op.scope, op.stmt.start_line)
        if made is None or made.callee is None or not _constructs(facts, made.callee):
            continue
        key = (op.var, op.scope, made.line)
        instance = found.get(key)
        if instance is None:
            if op.kind == "replace" or not op.may_freeze:
                continue
            instance = found[key] = FrozenInstance(op.var, op.scope, made.callee, made.line)
        instance.ops.append(op)
    return list(found.values())


def _frozen_checkpoint(
    facts: ModuleFacts, checkpoints: Checkpoints, short: str
) -> ModelView | None:
    for lookup in named_views(facts, checkpoints):
        root = lookup.root_class
        if (
            lookup.stores_flags
            and root
            and root.rsplit(".", 1)[-1] == short
            and lookup.model.frozen > 0
        ):
            return lookup
    return None


def _grad_map(facts: ModuleFacts, load: StateDictLoad) -> tuple[str, str] | None:
    """(checkpoint variable, key) of a saved requires_grad map this load can read."""
    if load.source_var is None or load.source_key is None:
        return None
    for save in facts.saves:
        if save.grad_map_keys:
            return load.source_var, save.grad_map_keys[0]
    return None


def restore_lines(facts: ModuleFacts, lost: LostFlags, source: str) -> list[str] | None:
    """Unindented code that re-applies the flags to the loaded variable, or None."""
    var = lost.load.var
    if source == "code" and lost.instance is not None:
        return _from_code(facts, lost.instance, var)
    if source == "map" and lost.grad_map is not None:
        holder, key = lost.grad_map
        q = quote_char(facts)
        return [
            f"for name, param in {var}.named_parameters():",
            f"    param.requires_grad = {holder}[{string_literal(key, q)}].get(name, param.requires_grad)",
        ]
    if source == "checkpoint" and lost.checkpoint is not None:
        return _from_checkpoint(facts, lost.checkpoint, var)
    return None


def _from_code(facts: ModuleFacts, instance: FrozenInstance, var: str) -> list[str] | None:
    """The instance's own flag statements, re-targeted; later module replacements → unfreeze."""
    out: list[str] = []
    froze = False
    for op in instance.ops:
        if op.kind == "replace":
            if froze:
                module = (
                    attribute_path(var, op.module_path, quote_char(facts))
                    if op.module_path
                    else var
                )
                if module is None:
                    return None
                out.append(f"{module}.requires_grad_(True)")
            continue
        froze = froze or op.may_freeze
        out.extend(retarget(statement_lines(facts, op.stmt), instance.var, var))
    return out


def _from_checkpoint(facts: ModuleFacts, lookup: ModelView, var: str) -> list[str]:
    """Explicit trainable names (as module prefixes where a whole module is trainable)."""
    trainable, _ = lookup.frozen_names()
    prefixes: list[str] = []
    exact: list[str] = []
    for name in trainable:
        if any(name.startswith(p) for p in prefixes):
            continue
        prefix = _widest_trainable_prefix(lookup, name)
        if prefix is None:
            exact.append(name)
        else:
            prefixes.append(prefix + ".")
    q = quote_char(facts)
    tests = []
    if prefixes:
        items = ", ".join(string_literal(p, q) for p in prefixes)
        tests.append(
            f"name.startswith(({items},))" if len(prefixes) > 1 else f"name.startswith({items})"
        )
    if exact:
        tests.append("name in {" + ", ".join(string_literal(n, q) for n in exact) + "}")
    condition = " or ".join(tests) if tests else "False"
    file_name = lookup.file.replace("\\", "/").rsplit("/", 1)[-1]
    return [
        comment(f"Trainable parameters as saved in {file_name}"),
        f"for name, param in {var}.named_parameters():",
        f"    param.requires_grad = {condition}",
    ]


def _widest_trainable_prefix(lookup: ModelView, name: str) -> str | None:
    parts = name.split(".")
    for end in range(1, len(parts)):
        counts = lookup.prefixes.get(".".join(parts[:end]))
        if counts is not None and counts.frozen == 0:  # no frozen parameter element under it
            return ".".join(parts[:end])
    return None
