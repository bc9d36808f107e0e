"""Which strings name checkpoints, what path expressions evaluate to statically, and where they
may live on disk (the file's folder first, then each workspace folder).

Only literals, names bound to known strings (`__file__`: the document's path), `+`, f-strings of
known parts, `Path(...) / "x"`, `.joinpath(...)`, `.parent`, `.parents[n]`, `.resolve()`, `.absolute()`,
`os.path.join(...)`, `os.path.dirname(...)`, `os.path.abspath(...)` (and `realpath`, `normpath`),
`str(...)`, `os.fspath(...)` and `os.path.expanduser(...)` are evaluated; anything else makes the
expression "not statically clear" (None).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable

CHECKPOINT_EXTENSIONS = (
    ".pth",
    ".pt",
    ".ckpt",
    ".bin",
    ".pth.tar",
    ".safetensors",
    ".safetensors.index.json",
    ".bin.index.json",
)
_PATH_CALLS = {"Path", "pathlib.Path", "PurePath", "pathlib.PurePath"}
_JOIN_CALLS = {"os.path.join", "path.join", "osp.join", "join"}
_SAME_TEXT_CALLS = {"str", "os.fspath", "fspath", "os.path.expanduser", "expanduser", "os.path.abspath", "abspath",
                    "osp.abspath", "os.path.realpath", "realpath", "osp.realpath", "os.path.normpath", "normpath",
                    "osp.normpath"}
_DIRNAME_CALLS = {"os.path.dirname", "dirname", "osp.dirname", "path.dirname"}
# Methods of a Path that name the same file (relative paths stay relative: candidates() places them).
_SAME_PATH_METHODS = {"resolve", "absolute", "expanduser"}
# The string a name holds, if known (the walk's data flow, flow.py).
Lookup = Callable[[str], "str | None"]


def dotted_name(node: ast.AST) -> str | None:
    """`torch.nn.Linear` for an attribute chain of names, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def names_checkpoint(text: str) -> bool:
    return len(text) < 1024 and "\n" not in text and text.lower().endswith(CHECKPOINT_EXTENSIONS)


def static_path(node: ast.AST, lookup: Lookup) -> str | None:
    """The string a path expression always evaluates to, when that is statically clear."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.Name):
        return lookup(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
        left, right = static_path(node.left, lookup), static_path(node.right, lookup)
        if left is None or right is None:
            return None
        return left + right if isinstance(node.op, ast.Add) else _join(left, right)
    if isinstance(node, ast.JoinedStr):
        return _f_string(node, lookup)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        base = static_path(node.value, lookup)
        return _parent(base) if base is not None else None
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant) and type(node.slice.value) is int and node.slice.value >= 0):
        base = static_path(node.value.value, lookup)
        for _ in range(node.slice.value + 1 if base is not None else 0):
            base = _parent(base)  # type: ignore[arg-type]
        return base
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _SAME_PATH_METHODS and not node.args:
            return static_path(func.value, lookup)
        parts = [static_path(a, lookup) for a in node.args]
        if any(p is None for p in parts):
            return None
        strings = [p for p in parts if p is not None]
        if isinstance(func, ast.Attribute) and func.attr == "joinpath":
            base = static_path(func.value, lookup)
            return _join(base, *strings) if base is not None and strings else None
        name = dotted_name(func)
        if name in _PATH_CALLS:
            return _join(*strings) if strings else "."
        if name in _JOIN_CALLS and strings:
            return _join(*strings)
        if name in _SAME_TEXT_CALLS and len(strings) == 1:
            return strings[0]
        if name in _DIRNAME_CALLS and len(strings) == 1:
            return os.path.dirname(strings[0])
    return None


def _parent(path: str) -> str:
    """`Path(path).parent`: "." for a bare name, where os.path.dirname gives ""."""
    return os.path.dirname(path.rstrip("/") or "/") or "."


def _f_string(node: ast.JoinedStr, lookup: Lookup) -> str | None:
    """`f"{root}/best.pth"` when every part is known and shown as it is (no format spec)."""
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(value.value)
        elif (
            isinstance(value, ast.FormattedValue)
            and value.format_spec is None
            and value.conversion in (-1, ord("s"))
        ):
            text = static_path(value.value, lookup)
            if text is None:
                return None
            parts.append(text)
        else:
            return None
    return "".join(parts)


def _join(*parts: str) -> str:
    return os.path.join(*parts)


def candidates(text: str, file_path: str, workspace_folders: tuple[str, ...]) -> tuple[str, ...]:
    """Absolute paths the string may name, best guess first."""
    expanded = os.path.expanduser(text)
    if os.path.isabs(expanded):
        return (os.path.normpath(expanded),)
    folders = (os.path.dirname(os.path.abspath(file_path)) if file_path else "", *workspace_folders)
    seen: list[str] = []
    for folder in folders:
        if not folder:
            continue
        full = os.path.normpath(os.path.join(folder, expanded))
        if full not in seen:
            seen.append(full)
    return tuple(seen)
