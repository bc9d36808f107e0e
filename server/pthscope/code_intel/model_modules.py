"""The modules of the model a piece of code is about, and the freeze/unfreeze code for some of
them, checked against that model.

The modules come from the checkpoint the model variable is loaded from (linking.py) or, when
nothing links it to a file, from the model's own class read statically
(`analysis.expected_state`, never run), and from nowhere else: never from an unrelated file.
`requires_grad_code` refuses a module the model does not have, and when the code would freeze
parameters after an optimizer over the model was built (it keeps holding them), says so instead
of inserting, with the line to put it before (`placement="before_optimizer"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..analysis.expected_state import expected_state_dict
from ..analysis.facts import ModuleFacts, Statement
from ..analysis.flow import Built, Value
from ..plain_text import visible
from . import snippets
from .insertion import (
    Insertion,
    already_there,
    before,
    insert_edit,
    model_in_scope,
    statement_at,
    statement_line,
)
from .linking import Checkpoints, views_for
from .lost_flags import latest_assignment
from .python_text import attribute_path
from .text_edits import quote_char
from .types import TextEdit

Placement = Literal["check", "here", "before_optimizer"]
_DEPTH = 2  # module levels offered: `layer1`, `layer1.0`
_LISTED = 200
FREEZING = ("freeze_module", "freeze_except")


@dataclass
class ModuleChoice:
    key: str  # model-relative, as the tree names it
    class_name: str
    parameters: int | None  # elements
    detail: str  # trainable/frozen as saved, when the file says


@dataclass
class ModelModules:
    var: str
    source: str  # where the modules come from: "whole_model.pth", "class SmallResNet"
    modules: list[ModuleChoice] = field(default_factory=list)
    known: bool = True  # False: the model's modules could not be found out

    def has(self, key: str) -> bool:
        return any(m.key == key for m in self.modules) or any(
            m.key.startswith(key + ".") for m in self.modules
        )


@dataclass
class RequiresGradCode:
    title: str
    edits: list[TextEdit] | None  # None: nothing inserted (see `message`)
    message: str = ""
    optimizer_line: int | None = None  # 0-based: freezing here would come after it


def value_at(facts: ModuleFacts, var: str, at: Insertion) -> Value | None:
    """What `var` holds where code goes: its last assignment's value, or a store into it since."""
    line = statement_line(facts, at)
    made = latest_assignment(facts, var, at.scope, line)
    if made is None:
        return None
    stores = [s for s in facts.stored if s.var == var and s.scope == at.scope and made.line <= s.line < line]
    return max(stores, key=lambda s: s.line).value if stores else made.value


def model_modules(
    facts: ModuleFacts, var: str, at: Insertion, checkpoints: Checkpoints, folders: Sequence[str]
) -> ModelModules:
    """The modules of `var` where code goes: from its checkpoint, else from its class."""
    value = value_at(facts, var, at)
    views = views_for(facts, value, checkpoints)
    if views:
        view = views[0]
        found = ModelModules(var, _basename(view.file))
        for prefix, counts in view.prefixes.items():
            if not prefix or prefix.count(".") >= _DEPTH or view.tensor(prefix) is not None:
                continue
            state = (
                f"{counts.trainable:,} trainable, {counts.frozen:,} frozen"
                if view.stores_flags
                else "requires_grad not saved"
            )
            class_name = view.classes.get(prefix, "").rsplit(".", 1)[-1]
            found.modules.append(ModuleChoice(prefix, class_name, counts.parameter_elements, state))
        found.modules = found.modules[:_LISTED]
        return found
    if isinstance(value, Built):
        return _class_modules(facts, var, value, folders)
    return ModelModules(var, "", known=False)


def _class_modules(
    facts: ModuleFacts, var: str, built: Built, folders: Sequence[str]
) -> ModelModules:
    memo = f"class-modules|{built}"
    name = built.callee.rsplit(".", 1)[-1]
    if built.wrappers is None:  # wrapped by something not recognised: its attribute names are not known
        return ModelModules(var, f"class {name}", known=False)
    if memo not in facts.memo:
        source = "\n".join(facts.lines) + ("\n" if facts.trailing_newline else "")
        # The model as it is there: its replaced submodules, under its wrappers (`net.module.fc`).
        facts.memo[memo] = expected_state_dict(
            source, facts.file_path, tuple(folders), built.callee, call_line=built.line,
            wrappers=built.wrappers, stores=built.stores,
        )
    expected = facts.memo[memo]
    if expected.error or not expected.modules:
        return ModelModules(var, f"class {name}", known=False)
    found = ModelModules(var, f"class {name}")
    sizes: dict[str, int | None] = {}
    for key, tensor in expected.tensors.items():
        if tensor.kind != "parameter":
            continue
        parts = key.split(".")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            size = sizes.get(prefix, 0)
            numel = _numel(tensor.shape)
            sizes[prefix] = None if size is None or numel is None else size + numel
    for prefix, (class_name, _) in expected.modules.items():
        if prefix and prefix.count(".") < _DEPTH:
            found.modules.append(
                ModuleChoice(prefix, class_name.rsplit(".", 1)[-1], sizes.get(prefix, 0), "")
            )
    found.modules = found.modules[:_LISTED]
    found.known = not any(part.prefix == "" for part in expected.unknown)
    return found


def requires_grad_code(
    facts: ModuleFacts,
    at: Insertion,
    action: str,
    modules: Sequence[str],
    checkpoints: Checkpoints,
    folders: Sequence[str] = (),
    placement: Placement = "here",
) -> RequiresGradCode | None:
    """Code for `action` on the model in scope at `at`; None when no model is in scope there."""
    var = model_in_scope(facts, at)
    if var is None:
        return None
    title = flag_title(action, var, modules)
    if action in ("freeze_module", "freeze_except", "unfreeze_module"):
        if not modules:
            return RequiresGradCode(title, None, "pick at least one module")
        listed = model_modules(facts, var, at, checkpoints, folders)
        unknown = [m for m in modules if listed.known and not listed.has(m)]
        if unknown:
            have = ", ".join(m.key for m in listed.modules if "." not in m.key)
            message = (
                f"`{var}` has no module {', '.join(f'`{visible(m)}`' for m in unknown)}"
                f" (its modules, from {visible(listed.source)}: {visible(have) or 'none'})"
            )
            return RequiresGradCode(title, None, message)
    code = _code(facts, action, var, modules)
    if code is None:
        return RequiresGradCode(title, None, "a module key cannot be written as Python")
    optimizer = _optimizer_before(facts, var, at) if action in FREEZING else None
    if optimizer is not None:
        if placement == "check":
            message = (
                f"`{optimizer[0]}` (line {optimizer[1].span.start_line + 1}) was built before this "
                f"line from `{var}`'s parameters: it keeps holding the ones frozen here. Freeze "
                "before building it (and build it from the trainable parameters)."
            )
            return RequiresGradCode(title, None, message, optimizer[1].span.start_line)
        if placement == "before_optimizer":
            at = before(optimizer[1])
    if already_there(facts, at, code):
        return RequiresGradCode(title, None, "the code is already there")
    return RequiresGradCode(title, [insert_edit(facts, at, code)])


def flag_title(action: str, var: str, modules: Sequence[str]) -> str:
    named = ", ".join(attribute_path(var, m) or visible(m) for m in modules)
    if action == "freeze_module":
        return f"Freeze {named}"
    if action == "unfreeze_module":
        return f"Unfreeze {named}"
    if action == "freeze_except":
        return f"Freeze all parameters of {var} except {', '.join(visible(m) for m in modules)}"
    if action == "unfreeze_all":
        return f"Unfreeze all parameters of {var}"
    return f"Print parameters and requires_grad of {var}"


def _code(facts: ModuleFacts, action: str, var: str, modules: Sequence[str]) -> list[str] | None:
    q = quote_char(facts)
    if action == "freeze_except":
        return snippets.freeze_all_except(var, list(modules), q)
    if action in ("freeze_module", "unfreeze_module"):
        lines: list[str] = []
        for module in modules:
            one = snippets.set_module_flag(var, module, action == "unfreeze_module", q)
            if one is None:
                return None
            lines += one
        return lines
    if action == "unfreeze_all":
        return snippets.unfreeze_all(var)
    if action == "print_parameters":
        return snippets.print_parameters(var)
    return None


def _optimizer_before(facts: ModuleFacts, var: str, at: Insertion) -> tuple[str, Statement] | None:
    """An optimizer bound in the same function after `var` and before the code, and its
    statement (the statement code goes after counts as before it)."""
    bound = at.line if at.mode == "after" else at.line - 1
    model = latest_assignment(facts, var, at.scope, bound)
    for name in sorted(facts.optimizer_vars):
        made = latest_assignment(facts, name, at.scope, bound)
        if made is None or made.callee is None or (model is not None and made.line < model.line):
            continue
        statement = statement_at(facts, made.line)
        if statement is not None:
            return name, statement
    return None


def _numel(shape: tuple[int | None, ...] | None) -> int | None:
    if shape is None or None in shape:
        return None
    total = 1
    for dim in shape:
        total *= dim  # type: ignore[operator]
    return total


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path
