"""The one way text from a file (keys, class and global names, file names, the reader's messages)
enters the Markdown of hovers.

- `text(s)`: inline text. Every ASCII punctuation character is backslash-escaped (CommonMark
  allows that for all of them), so nothing in `s` can open emphasis, a link, an image, HTML, an
  entity, a heading, a list or a table cell, and no bare URL or e-mail address is linkified
  (`www\\.x\\.com` is not a URL to a linkifier).
- `code(s)`: an inline code span whose fence is longer than any run of backticks in `s`, so it
  cannot be closed from inside. Not for table cells (a `|` would split the cell): use `text`.
- `block(s)`: a fenced code block, fenced the same way.

All three first make invisible characters visible (`plain_text.visible`), so `s` stays on one
line and cannot reorder or hide what follows. The hover's own markup (its tables, `**stored**`)
is written by hover.py and never contains file text unescaped.

- `command_link(title, command, args)`: the one link a hover may hold, `[title](command:…)`, for
  a command of ours (`COMMANDS`; the client trusts hover Markdown for those only). The title is
  our own text; the arguments (a file's absolute path) are JSON, percent-encoded whole, so that
  nothing in them can end the link or add markup.
"""

from __future__ import annotations

import json
import re
import string
from urllib.parse import quote

from ..plain_text import visible

OPEN_CHECKPOINT = "pthscope.openCheckpoint"
COMMANDS = (OPEN_CHECKPOINT,)
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_BACKTICKS = re.compile("`+")


def text(s: str) -> str:
    return _PUNCTUATION.sub(r"\\\1", visible(s))


def code(s: str) -> str:
    shown = visible(s)
    fence = "`" * (_longest_backtick_run(shown) + 1)
    if not shown.strip(" "):
        shown = shown or " "  # an all-space span is shown as it is
    elif shown[0] in " `" or shown[-1] in " `":
        # CommonMark strips one space from each side of a padded span: `` ` `` shows one backtick.
        shown = f" {shown} "
    return f"{fence}{shown}{fence}"


def block(s: str, language: str = "python") -> str:
    shown = visible(s)
    fence = "`" * max(3, _longest_backtick_run(shown) + 1)
    return f"{fence}{language}\n{shown}\n{fence}"


def _longest_backtick_run(s: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(s)), default=0)


def command_link(title: str, command: str, args: list[str]) -> str:
    return f"[{text(title)}]({command_target(command, args)})"


def command_target(command: str, args: list[str]) -> str:
    """`command:<ours>?<JSON arguments, percent-encoded whole>` (also a document link's target)."""
    if command not in COMMANDS:
        raise ValueError(f"not a command of ours: {command}")
    return f"command:{command}?{quote(json.dumps(args), safe='')}"
