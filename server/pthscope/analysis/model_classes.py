"""Python files of the workspace as parsed text, what their imports name, and their classes.

`ModelSources` reads workspace files as text and parses them with `ast` (cached by path, size
and modification time; an open editor's text can be handed in instead). Nothing is imported or
executed. `resolve_import` says what an import binds: a torch module path, a workspace file or a
name defined in one, or a library outside the workspace (whose models are not derived).
`module_classes` lists a file's top-level classes with whether they are `nn.Module` subclasses.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

from .source import Positions, parse_tolerant, source_lines

_MAX_FILE_BYTES = 2_000_000
# Standard modules a workspace file of the same name does not shadow in practice.
STDLIB = frozenset(["math", "copy", "collections", "functools", "dataclasses", "typing", "typing_extensions", "enum", "os", "sys", "abc", "itertools", "operator", "warnings", "logging", "numbers", "types", "re", "json", "pathlib", "argparse", "random", "time", "inspect", "contextlib", "builtins"])
LIGHTNING_MODULES = frozenset({
    "pytorch_lightning.LightningModule", "pytorch_lightning.core.LightningModule",
    "pytorch_lightning.core.module.LightningModule", "lightning.LightningModule",
    "lightning.pytorch.LightningModule", "lightning.pytorch.core.LightningModule",
    "lightning.pytorch.core.module.LightningModule",
})  # fmt: skip


@dataclass(repr=False)
class SourceFile:
    """One parsed Python file. `module_name` is its dotted name from the folder it was found
    in (the file being analysed is named by its stem)."""

    path: str
    text: str
    tree: ast.Module
    module_name: str
    lines: list[str]
    positions: Positions
    imports: dict[str, ast.Import | ast.ImportFrom] = field(default_factory=dict)
    star_imports: list[ast.ImportFrom] = field(default_factory=list)
    top_level: dict[str, list[ast.stmt]] = field(default_factory=dict)
    # Built on first use (a file with 200 constructions must not be walked 200 times).
    _calls: dict[int, list[ast.Call]] | None = field(default=None, repr=False)
    _functions: list[ast.FunctionDef | ast.AsyncFunctionDef] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"<source {self.path}>"

    def calls_on_line(self, line: int) -> list[ast.Call]:
        """The calls starting on 0-based `line`, by column."""
        if self._calls is None:
            calls: dict[int, list[ast.Call]] = {}
            for node in ast.walk(self.tree):
                if isinstance(node, ast.Call):
                    calls.setdefault(node.lineno - 1, []).append(node)
            for found in calls.values():
                found.sort(key=lambda c: c.col_offset)
            self._calls = calls
        return self._calls.get(line, [])

    def functions(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        if self._functions is None:
            self._functions = [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return self._functions

    def text_of(self, node: ast.AST, first_line_only: bool = True) -> str:
        """The source text of a node (its first line only, by default)."""
        start = getattr(node, "lineno", None)
        if start is None or start - 1 >= len(self.lines):
            return ""
        span = self.positions.span(node)
        if first_line_only or span.end_line == span.start_line:
            line = self.lines[span.start_line]
            end = span.end_char if span.end_line == span.start_line else len(line)
            return line[span.start_char:end].rstrip()
        parts = [self.lines[span.start_line][span.start_char:]]
        parts.extend(self.lines[span.start_line + 1:span.end_line])
        parts.append(self.lines[span.end_line][:span.end_char])
        return "\n".join(parts)


@dataclass(frozen=True)
class TorchPath:
    path: str  # "torch.nn", "torch.nn.Linear"


@dataclass(frozen=True)
class LibraryPath:
    path: str  # "torchvision.models", "math.ceil"


@dataclass(frozen=True)
class FileMember:
    file: SourceFile
    name: str | None  # None: the module object itself


Target = TorchPath | LibraryPath | FileMember


def _index(source: SourceFile) -> None:
    for stmt in source.tree.body:
        for name in _bound_names(stmt):
            source.top_level.setdefault(name, []).append(stmt)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                if alias.name == "*":
                    source.star_imports.append(stmt)  # type: ignore[arg-type]
                    continue
                bound = alias.asname or alias.name.split(".")[0]
                source.imports[bound] = stmt


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*"]
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    names: list[str] = []
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                names.append(node.id)
    return names


class ModelSources:
    """The workspace's Python files, read as text on demand and parsed once per version."""

    def __init__(self, workspace_folders: tuple[str, ...] = (),
                 open_documents: dict[str, str] | None = None) -> None:  # fmt: skip
        self.workspace_folders = tuple(os.path.abspath(f) for f in workspace_folders)
        self.open_documents = dict(open_documents or {})
        self._cache: dict[str, tuple[tuple[int, int] | str, SourceFile | None]] = {}

    def document(self, text: str, path: str) -> SourceFile | None:
        """The file being analysed, from the editor's text."""
        path = os.path.abspath(path) if path else "<document>"
        cached = self._cache.get(path)
        if cached and cached[0] == text and cached[1] is not None:
            return cached[1]
        name = os.path.splitext(os.path.basename(path))[0] or "__main__"
        source = parse_source(path, text, name)
        self._cache[path] = (text, source)
        return source

    def file(self, path: str, module_name: str) -> SourceFile | None:
        """A workspace file by path, or None when it cannot be read or parsed."""
        path = os.path.abspath(path)
        if path in self.open_documents:
            return self.document(self.open_documents[path], path)
        try:
            stat = os.stat(path)
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        source = None
        if stat.st_size <= _MAX_FILE_BYTES:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    source = parse_source(path, handle.read(), module_name)
            except OSError:
                source = None
        self._cache[path] = (stamp, source)
        return source

    def lines_read(self, path: str) -> list[str] | None:
        """The lines of the file at `path` as it was read here (None: not read)."""
        cached = self._cache.get(os.path.abspath(path))
        return cached[1].lines if cached is not None and cached[1] is not None else None

    def find_module(self, dotted: str, level: int, importer: SourceFile) -> SourceFile | None:
        """The workspace file a module name denotes from `importer` (relative when level>0)."""
        parts = [p for p in dotted.split(".") if p]
        if level:
            base = os.path.dirname(importer.path)
            for _ in range(level - 1):
                base = os.path.dirname(base)
            roots = [base]
            package = importer.module_name
            if not importer.path.endswith("__init__.py"):
                package = package.rpartition(".")[0]
            for _ in range(level - 1):
                package = package.rpartition(".")[0]
            prefix = package
        else:
            if not parts or parts[0] in STDLIB or parts[0] == "torch":
                return None
            roots = [os.path.dirname(importer.path), *self.workspace_folders,
                     *(os.path.join(f, "src") for f in self.workspace_folders)]  # fmt: skip
            prefix = ""
        for root in dict.fromkeys(roots):
            if not self._inside_workspace(root, importer):
                continue
            stem = os.path.join(root, *parts)
            name = ".".join(p for p in (prefix, *parts) if p) or importer.module_name
            for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
                if os.path.isfile(candidate):
                    return self.file(candidate, name)
        return None

    def _inside_workspace(self, folder: str, importer: SourceFile) -> bool:
        folder = os.path.abspath(folder)
        allowed = (*self.workspace_folders, os.path.dirname(importer.path))
        return any(folder == a or folder.startswith(a.rstrip(os.sep) + os.sep) for a in allowed)


def parse_source(path: str, text: str, module_name: str) -> SourceFile | None:
    tree, _ = parse_tolerant(text)
    if tree is None:
        return None
    lines = source_lines(text)
    source = SourceFile(path, text, tree, module_name, lines, Positions(lines))
    _index(source)
    return source


def resolve_import(sources: ModelSources, file: SourceFile, name: str) -> Target | None:
    """What the top-level import statement binding `name` in `file` refers to."""
    stmt = file.imports.get(name)
    if stmt is None:
        return None
    for alias in stmt.names:
        if (alias.asname or alias.name.split(".")[0]) == name:
            return import_target(sources, file, stmt, alias)
    return None


def import_target(sources: ModelSources, file: SourceFile, stmt: ast.Import | ast.ImportFrom,
                  alias: ast.alias) -> Target | None:  # fmt: skip
    """What one alias of an import statement binds."""
    if isinstance(stmt, ast.Import):
        # `import a.b` binds `a`; `import a.b as c` binds the module a.b.
        dotted = alias.name if alias.asname else alias.name.split(".")[0]
        return module_target(sources, file, dotted, 0)
    base = stmt.module or ""
    module = module_target(sources, file, base, stmt.level)
    if isinstance(module, FileMember):
        if alias.name in module.file.top_level:
            return FileMember(module.file, alias.name)
        sub = module_target(sources, file, f"{base}.{alias.name}", stmt.level)
        return sub if isinstance(sub, FileMember) else FileMember(module.file, alias.name)
    if module is None:
        return None
    kind = type(module)
    return kind(f"{module.path}.{alias.name}" if module.path else alias.name)


def module_target(sources: ModelSources, file: SourceFile, dotted: str, level: int) -> Target | None:
    if level == 0 and (dotted == "torch" or dotted.startswith("torch.")):
        return TorchPath(dotted)
    found = sources.find_module(dotted, level, file)
    if found is not None:
        return FileMember(found, None)
    if level:
        return None
    return LibraryPath(dotted)


@dataclass(frozen=True)
class ClassInfo:
    """A top-level class: its name, the line of its `class` statement (0-based) and whether
    it is an `nn.Module` subclass ("yes", "no", or "maybe" for library bases)."""

    name: str
    line: int
    is_module: str
    bases: tuple[str, ...]


def module_classes(sources: ModelSources, file: SourceFile) -> list[ClassInfo]:
    """The file's top-level classes and whether each is an nn.Module."""
    found = []
    for stmt in file.tree.body:
        if isinstance(stmt, ast.ClassDef):
            bases = tuple(ast.unparse(b) for b in stmt.bases)
            found.append(ClassInfo(stmt.name, stmt.lineno - 1,
                                   class_is_module(sources, file, stmt, set()), bases))  # fmt: skip
    return found


def class_is_module(sources: ModelSources, file: SourceFile, node: ast.ClassDef,
                    seen: set[tuple[str, str]]) -> str:  # fmt: skip
    """"yes" when a base is torch.nn.Module (or a layer, or such a workspace class)."""
    key = (file.path, node.name)
    if key in seen:
        return "no"
    seen.add(key)
    verdicts = [_base_is_module(sources, file, base, seen) for base in node.bases]
    if "yes" in verdicts:
        return "yes"
    return "maybe" if "maybe" in verdicts else "no"


def _base_is_module(sources: ModelSources, file: SourceFile, base: ast.expr,
                    seen: set[tuple[str, str]]) -> str:  # fmt: skip
    target = resolve_dotted(sources, file, base)
    if isinstance(target, TorchPath):
        last = target.path.rsplit(".", 1)[-1]
        return "yes" if target.path.startswith("torch.nn") and last[:1].isupper() else "no"
    if isinstance(target, LibraryPath):
        if target.path in LIGHTNING_MODULES:
            return "yes"
        return "no" if target.path.split(".")[0] in STDLIB else "maybe"
    if isinstance(target, FileMember) and target.name:
        for stmt in target.file.top_level.get(target.name, []):
            if isinstance(stmt, ast.ClassDef):
                return class_is_module(sources, target.file, stmt, seen)
    return "no"


def resolve_dotted(sources: ModelSources, file: SourceFile, node: ast.expr,
                   depth: int = 0) -> Target | None:  # fmt: skip
    """`nn.Module`, `models.Net`, `Block` → what they name, through imports and re-exports."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or depth > 20:
        return None
    parts.reverse()
    target: Target | None
    if node.id in file.imports:
        target = resolve_import(sources, file, node.id)
    elif node.id in file.top_level:
        target = FileMember(file, node.id)
    else:
        return None
    for part in parts:
        target = member(sources, target, part, depth)
        if target is None:
            return None
    if isinstance(target, FileMember) and target.name and target.name in target.file.imports:
        return resolve_dotted(sources, target.file, ast.Name(target.name), depth + 1)
    return target


def member(sources: ModelSources, target: Target | None, name: str, depth: int = 0) -> Target | None:
    if isinstance(target, (TorchPath, LibraryPath)):
        return type(target)(f"{target.path}.{name}")
    if isinstance(target, FileMember):
        if target.name is None:
            if name in target.file.top_level:
                return FileMember(target.file, name)
            return module_target(sources, target.file, f".{name}", 1) if target.file.path.endswith(
                "__init__.py") else None
        if target.name in target.file.imports:
            inner = resolve_dotted(sources, target.file, ast.Name(target.name), depth + 1)
            return member(sources, inner, name, depth + 1)
    return None
