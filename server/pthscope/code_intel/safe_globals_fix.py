"""PTH002's safe_globals fix: load a file whose only non-allowlisted globals are classes with
`weights_only=True`, allowing exactly those classes:

    from demo_models import SmallResNet
    from torch.nn.modules.linear import Linear
    with torch.serialization.safe_globals([SmallResNet, Linear]):
        model = torch.load(path, weights_only=True)

(`torch.serialization.safe_globals`, torch >= 2.5.) Offered only when the linked file's verdict is
`classes` and every class path is a dotted identifier path (python_text.dotted_name): the imports
are built from those names and nothing else. A class saved from a script (`__main__.Net`) is
used as it is when this file defines it at the top level; otherwise the fix is not offered.
Imports go right above the `with`, so the block works inside a function too; an existing
`from module import Class` is reused, and a name the file already binds gets an alias. What the
file binds comes from the analysis (`ModuleFacts.bound_names`), read once per text.
"""

from __future__ import annotations

import ast

from ..analysis.facts import ModuleFacts, TorchLoad
from .linking import Checkpoints
from .python_text import dotted_name, is_attribute_name
from .text_edits import indent_lines
from .types import Position, Range, TextEdit
from .verdict import linked_verdict

_LINE_LENGTH = 100


def safe_globals_load(
    facts: ModuleFacts, checkpoints: Checkpoints, index: int
) -> list[TextEdit] | None:
    """Wrap the statement of `torch.load` call `index` (without weights_only=, or with
    weights_only=True) in the safe_globals block."""
    if index >= len(facts.torch_loads):
        return None
    load = facts.torch_loads[index]
    if (load.has_weights_only and load.weights_only is not True) or load.has_star_kwargs or load.insert_at is None:
        return None
    linked = linked_verdict(load, checkpoints)
    torch_name = _torch_name(facts, load)
    statement = _own_lines(facts, load)
    if linked is None or linked[1].level != "classes" or torch_name is None or statement is None:
        return None
    names = _Names.of(facts)
    refs: list[str] = []
    imports: list[str] = []
    for class_path in linked[1].classes:
        found = names.reference(class_path)
        if found is None:
            return None
        refs.append(found[0])
        imports += found[1]
    indent = statement[0][: len(statement[0]) - len(statement[0].lstrip())]
    body = indent_lines(statement, indent, "\t" if "\t" in indent else "    ")
    if body is None:
        return None
    opening = f"with {torch_name}.serialization.safe_globals("
    header = [f"{indent}{opening}[{', '.join(refs)}]):"]
    if len(header[0]) > _LINE_LENGTH:
        header = [f"{indent}{opening}[", *(f"{indent}    {r}," for r in refs), f"{indent}]):"]
    new = "\n".join([*(indent + line for line in imports), *header, *body])
    first, last = load.stmt.start_line, load.stmt.end_line
    return [TextEdit(Range(Position(first, 0), Position(last, len(facts.lines[last]))), new)]


def _torch_name(facts: ModuleFacts, load: TorchLoad) -> str | None:
    """`torch` (or the file's alias for it) from the call's own spelling, `torch.load`."""
    func = load.func
    if func.start_line != func.end_line:
        return None
    text = facts.lines[func.start_line][func.start_char : func.end_char]
    root = text.split(".", 1)[0]
    return root if "." in text and is_attribute_name(root) else None


def _own_lines(facts: ModuleFacts, load: TorchLoad) -> list[str] | None:
    """The statement's lines with `, weights_only=True` added (unless it is there), when it is a
    simple statement alone on its lines (nothing before it, only a comment after it)."""
    stmt = load.stmt
    if not any(s.span == stmt for s in facts.statements) or load.insert_at is None:
        return None
    lines = facts.lines[stmt.start_line : stmt.end_line + 1]
    if lines[0][: stmt.start_char].strip() or not _only_comment(lines[-1][stmt.end_char :]):
        return None
    if not load.has_weights_only:
        row, column = load.insert_at[0] - stmt.start_line, load.insert_at[1]
        lines[row] = lines[row][:column] + ", weights_only=True" + lines[row][column:]
    return lines


def _only_comment(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.startswith("#")


class _Names:
    """What the file binds, the classes it defines at the top level and what it imports there
    (`reference` adds the aliases it makes: each use starts from a copy)."""

    def __init__(
        self, bound: set[str], top_classes: set[str], imported: dict[tuple[str, str], str]
    ) -> None:
        self.bound, self.top_classes, self.imported = set(bound), top_classes, dict(imported)

    @classmethod
    def of(cls, facts: ModuleFacts) -> _Names:
        known: _Names | None = facts.memo.get("safe_globals_names")
        if known is None:
            known = facts.memo["safe_globals_names"] = cls._read(facts)
        return cls(known.bound, known.top_classes, known.imported)

    @classmethod
    def _read(cls, facts: ModuleFacts) -> _Names:
        top = facts.top_level()
        top_classes = {n.name for n in top if isinstance(n, ast.ClassDef)}
        imported: dict[tuple[str, str], str] = {}
        for node in top:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    imported[(node.module, alias.name)] = alias.asname or alias.name
        return cls(set(facts.bound_names()), top_classes, imported)

    def reference(self, class_path: str) -> tuple[str, list[str]] | None:
        """(the name to put in the list, import lines it needs), or None if it cannot be named."""
        module, _, name = class_path.rpartition(".")
        if module == "__main__":
            return (name, []) if is_attribute_name(name) and name in self.top_classes else None
        if not module or not dotted_name(class_path):
            return None
        if (module, name) in self.imported:
            return self.imported[(module, name)], []
        alias, n = name, 2
        while alias in self.bound:
            alias, n = f"{name}_{n}", n + 1
        self.bound.add(alias)
        self.imported[(module, name)] = alias
        suffix = "" if alias == name else f" as {alias}"
        return alias, [f"from {module} import {name}{suffix}"]
