"""The one-line safety verdict of a file: what the call that loads its format would do with it.

The page's banner and the CLI show it; the hover of a `torch.load` call says what *that call*
does (code_intel/verdict.py: a TorchScript archive is "not a torch.load checkpoint" there). It is
decided from the reader's JSON fields (`globals`' risks, `loader`, the errors' kinds), in order:

1. the loader refuses the file before unpickling it (`loader.refuses`): its pickles run nothing;
2. a loader that takes only its own types (torch.jit.load): what it makes from the file's code;
3. a dangerous global: a load without weights_only's restriction runs it (even in a file that is
   cut short: an unpickler runs what comes before the cut); one only in a pickle the loader does
   not read (a torch zip's `extra.pkl`, `unread`) runs only if someone unpickles it by hand: crafted;
4. the file could not be read whole (any error but a file of a set that is not there): what a
   load would run is not known; or torch.load fails on it (`unloadable`);
5. weights_only=True cannot run the pickle's opcodes (`loader.weights_only_refuses`);
6. classes to import; 7. only torch's allow-list.

`dangerous` is red, `unknown` and `safe` are not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

_NAMES_SHOWN = 3
# Errors that leave what was read whole: a file of a set that is not there.
_ERRORS_THAT_LEAVE_THE_READ_WHOLE = frozenset({"missing"})


Level = Literal["dangerous", "unknown", "safe"]


class SafetyJson(TypedDict):
    level: Level
    headline: str


@dataclass(frozen=True)
class Safety:
    level: Level
    headline: str

    def to_json(self) -> SafetyJson:
        return {"level": self.level, "headline": self.headline}


def safety_verdict(globals_: Sequence[Mapping[str, Any]], loader: Mapping[str, Any], error_kinds: Collection[str],
                   unimportable: Collection[str] = ()) -> Safety | None:
    """The verdict from the reader's `globals` (each with `name` and `risk`), `loader` and the
    kinds of its errors; `unimportable`: the top-level modules the loading Python cannot import
    (the server's environment knows them). None when there is nothing to say (no globals)."""
    call, restricts = loader["call"], loader["weights_only"]
    refused = restricts and bool(loader["weights_only_refuses"])
    if not globals_ and not refused and not loader["refuses"]:
        return None
    unread = [g["name"] for g in globals_ if g["risk"] == "dangerous" and g.get("unread")]
    globals_ = [g for g in globals_ if not g.get("unread")]
    dangerous = [g["name"] for g in globals_ if g["risk"] == "dangerous"]
    classes = [g["name"] for g in globals_ if g["risk"] == "unknown"]
    safe = len(globals_) - len(dangerous) - len(classes)
    unrestricted = f"{call} unpickles it without restriction"
    imports = _classes_line(classes, unimportable)
    if loader["refuses"]:
        if dangerous:
            return Safety("dangerous", f"Crafted: a Python unpickler would run {_names(dangerous)} "
                                       f"({call} refuses the file before unpickling it)")
        return Safety("unknown", f"{call} refuses this file before unpickling it, whatever weights_only says")
    if loader["own_types_only"]:
        if dangerous:
            return Safety("dangerous", f"Crafted: a Python unpickler would run {_names(dangerous)} ({call} refuses them)")
        if classes:
            return Safety("unknown", f"{call} makes {imports} from the file's code, and runs that code")
        return Safety("safe", f"The pickle names {_count(safe, 'global')}, all {call} accepts")
    if dangerous:
        also = f" · also imports {imports}" if classes else ""
        return Safety("dangerous", ("Would run code if loaded with weights_only=False: " if restricts
                                    else f"Runs code when loaded ({unrestricted}): ") + _names(dangerous) + also)
    if unread:
        return Safety("dangerous", f"Crafted: a Python unpickler would run {_names(unread)} (from a pickle in the "
                                   f"file that {call} does not read)")
    errors = [kind for kind in error_kinds if kind not in _ERRORS_THAT_LEAVE_THE_READ_WHOLE]
    if errors and all(kind == "unloadable" for kind in errors):
        return Safety("unknown", f"{call} fails on this file, whatever weights_only says")
    if errors:
        return Safety("unknown", "Not checked: pthscope could not read this file whole, so what a load would run "
                                 "is not known")
    if refused:
        return Safety("unknown", "Needs weights_only=False: torch's weights_only unpickler cannot read its pickle; "
                      + (f"it imports {imports}" if classes else
                         f"the {_count(safe, 'global')} it names {'is' if safe == 1 else 'are all'} on torch's allow-list"))
    if classes:
        return Safety("unknown", f"Needs weights_only=False: {imports}" if restricts
                      else f"Imports {imports} when loaded ({unrestricted})")
    return Safety("safe", f"Loads with weights_only=True: the pickle names {_count(safe, 'global')}, all on torch's "
                          "allow-list" if restricts
                  else f"The pickle names {_count(safe, 'global')}, all on torch's allow-list ({unrestricted})")


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return f"{shown} + {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else shown


def _package(name: str) -> str:
    """"torch.nn.modules.conv.Conv2d" → "torch.nn"; "demo_models.BasicBlock" → "demo_models"."""
    parts = name.replace(":", ".").split(".")
    return f"{parts[0]}.{parts[1]}" if parts[0] == "torch" and len(parts) > 2 else parts[0]


def _classes_line(classes: list[str], unimportable: Collection[str]) -> str:
    """"2 classes from demo_models (not importable here) + 6 torch.nn classes": those the loading
    Python cannot import first, then by count."""
    groups = Counter(map(_package, classes))
    missing = set(unimportable)

    def lacking(package: str) -> bool:
        return package.split(".")[0] in missing

    ordered = sorted(groups.items(), key=lambda group: (not lacking(group[0]), -group[1]))
    return " + ".join(f"{_count(n, 'class', 'classes')} from {package} (not importable here)" if lacking(package)
                      else f"{n:,} {package} {'class' if n == 1 else 'classes'}" for package, n in ordered)
