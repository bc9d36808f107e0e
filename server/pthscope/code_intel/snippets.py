"""Code inserted by the refactor actions: freezing, printing flags, saving and loading.

Each function returns unindented lines for one model variable; callers indent and place them.
`q` is the quote character the file uses. Module keys come from checkpoints: they reach the code
only through `python_text` (an attribute path of identifiers, or a quoted string). The save/load
snippets mark the path and the names one usually changes as tab stops (snippet_text.py).
"""

from __future__ import annotations

from .python_text import attribute_path, string_literal
from .snippet_text import tab_stop

GRAD_MAP = "{{n: p.requires_grad for n, p in {var}.named_parameters()}}"


def freeze_all_except(var: str, modules: list[str], q: str) -> list[str] | None:
    """Train only `modules` (their parameters keep requires_grad; all others are frozen)."""
    if not modules or any(attribute_path(var, m) is None for m in modules):
        return None
    prefixes = [string_literal(m + ".", q) for m in modules]
    test = prefixes[0] if len(prefixes) == 1 else f"({', '.join(prefixes)})"
    return [
        f"for name, param in {var}.named_parameters():",
        f"    param.requires_grad = name.startswith({test})",
    ]


def freeze_module(var: str, module: str, q: str) -> list[str] | None:
    return set_module_flag(var, module, False, q)


def set_module_flag(var: str, module: str, value: bool, q: str) -> list[str] | None:
    expression = attribute_path(var, module, q)
    return None if expression is None else [f"{expression}.requires_grad_({value})"]


def unfreeze_all(var: str) -> list[str]:
    return [f"{var}.requires_grad_(True)"]


def print_parameters(var: str) -> list[str]:
    return [
        f"for name, param in {var}.named_parameters():",
        "    print(name, tuple(param.shape), param.requires_grad)",
    ]


def save_state_dict(var: str, path: str) -> list[str]:
    return [f"torch.save({var}.state_dict(), {tab_stop(1, path)})"]


def save_entire_model(var: str, path: str) -> list[str]:
    return [
        "# Pickles the whole module: loading it needs its class and weights_only=False.",
        f"torch.save({var}, {tab_stop(1, path)})",
    ]


def save_training_checkpoint(
    var: str, optimizer: str | None, epoch: str | None, path: str, q: str
) -> list[str]:
    lines = ["torch.save({"]
    if epoch:
        lines.append(f"    {string_literal('epoch', q)}: {epoch},")
    lines.append(f"    {string_literal('model', q)}: {var}.state_dict(),")
    if optimizer:
        lines.append(f"    {string_literal('optimizer', q)}: {optimizer}.state_dict(),")
    lines.append(f"    {string_literal('requires_grad', q)}: {GRAD_MAP.format(var=var)},")
    lines.append(f"}}, {tab_stop(1, path)})")
    return lines


def load_state_dict(var: str, path: str, q: str) -> list[str]:
    cpu = string_literal("cpu", q)
    return [
        f"{var}.load_state_dict(torch.load({tab_stop(1, path)}, map_location={cpu}, weights_only=True), strict=True)",
        "# A state_dict does not store requires_grad: re-apply any freezing after this line.",
    ]


def load_entire_model(var: str, path: str, q: str) -> list[str]:
    cpu = string_literal("cpu", q)
    return [
        "# Unpickling runs code from the file: only for files you trust; needs the model's class.",
        f"{var} = torch.load({tab_stop(1, path)}, map_location={cpu}, weights_only=False)",
    ]


def load_training_checkpoint(
    var: str, optimizer: str | None, holder: str, path: str, q: str
) -> list[str]:
    cpu = string_literal("cpu", q)
    holder = tab_stop(2, holder)
    lines = [
        f"{holder} = torch.load({tab_stop(1, path)}, map_location={cpu}, weights_only=True)",
        f"{var}.load_state_dict({holder}[{string_literal('model', q)}], strict=True)",
    ]
    if optimizer:
        lines.append(f"{optimizer}.load_state_dict({holder}[{string_literal('optimizer', q)}])")
    lines += [
        f"start_epoch = {holder}.get({string_literal('epoch', q)}, -1) + 1",
        f"for name, param in {var}.named_parameters():",
        f"    param.requires_grad = {holder}.get({string_literal('requires_grad', q)}, {{}}).get(name, param.requires_grad)",
    ]
    return lines
