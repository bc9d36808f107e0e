"""The one way text from a checkpoint (or any text not written as code) enters generated Python.

- `attribute_path(var, key)` turns a module key into an expression: `model.layer1[0]` when every
  part is a plain ASCII identifier or a decimal index, else `model.get_submodule('…')` with the
  key as a string literal; None when no expression can name it (an empty part).
- `dotted_name(text)` says whether a class path (`demo_models.SmallResNet`) can be written in an
  import as it is.
- `string_literal(text, quote)` is the only way a string becomes a literal (repr-based, so quotes,
  backslashes, newlines and non-printing characters are escaped; never spliced into an f-string).
- `comment(text)` is a one-line `#` comment whose invisible characters are shown as escapes.

Identifiers are ASCII only: Python normalises non-ASCII identifiers (NFKC), so `model.ﬁ` would
read the attribute `fi`, and look-alike letters would hide which module is meant; such keys get a
string literal, which names the module exactly. Hard keywords (`class`, `None`) are not
identifiers; soft keywords (`match`, `type`, `_`) are, as attributes they parse. Dunder names are
written as strings too: `model.__class__` is the class, not a submodule of that name.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence

from ..plain_text import visible

PathElement = str | int

_INDEX = re.compile(r"0|[1-9][0-9]*")


def is_attribute_name(name: str) -> bool:
    """True when `obj.<name>` reads the attribute `name` and nothing else."""
    return (
        name.isascii()
        and name.isidentifier()
        and not keyword.iskeyword(name)
        and not (name.startswith("__") and name.endswith("__"))
    )


def dotted_name(text: str) -> bool:
    """True for `a.b.C`: non-empty parts that are all attribute names."""
    return all(is_attribute_name(part) for part in text.split("."))


def attribute_path(var: str, key: str | Sequence[PathElement], quote: str = "'") -> str | None:
    """The expression for the submodule (or parameter) `key` of the variable `var`.

    `key` is a dotted checkpoint key ("layer1.0.conv") or the elements of a path in code
    (("layer1", 0, "conv")). Decimal parts become indices, the way `nn.Sequential` and
    `nn.ModuleList` are indexed.
    """
    if not dotted_name(var):
        return None
    parts = key.split(".") if isinstance(key, str) else [str(p) for p in key]
    if not parts or any(part == "" or "." in part for part in parts):
        return None
    if all(is_attribute_name(part) or _INDEX.fullmatch(part) for part in parts):
        return var + "".join(f"[{p}]" if _INDEX.fullmatch(p) else f".{p}" for p in parts)
    return f"{var}.get_submodule({string_literal('.'.join(parts), quote)})"


def string_literal(text: str, quote: str = "'") -> str:
    """A Python string literal for `text`, in the quote character the file uses when it can."""
    literal = repr(text)
    if quote == '"' and literal.startswith("'") and '"' not in text:
        return '"' + literal[1:-1] + '"'
    return literal


def comment(text: str) -> str:
    """`# text` on one line: newlines and other invisible characters become escapes."""
    return f"# {visible(text)}"
