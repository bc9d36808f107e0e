"""Keys code reads from a loaded checkpoint (`sd["fc.weight"]`, `ckpt["state_dict"]`): what the
file holds there, or that it holds nothing there and which of its keys come closest.

One rule for the hover and the missing-key diagnostic (PTH006): a key is *missing* only when the
container it is read from is a dict whose children the view lists completely
(`reader.model_view.Entry.listed`); a key under anything else (a module, a tensor, a container
cut short) is simply not known.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..analysis.facts import KeyRef, ModuleFacts
from ..reader.model_view import Entry, ModelTensor, ModelView
from .linking import Checkpoints, loaded_entry

_CLOSEST = 3
_CANDIDATES = 5_000
_DICT_KINDS = ("dict", "group")
_WORD = re.compile(r"[a-z]+")


@dataclass
class KeyLookup:
    view: ModelView
    keys: tuple[str, ...]  # as the file has them (absent `.get(k, x)` keys left out)
    found: ModelTensor | Entry | None
    # The key read is a `.get(k, x)` one the file does not have: `x` is used instead.
    skipped: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.keys)

    @property
    def parent(self) -> str:
        return ".".join(self.keys[:-1])

    @property
    def missing(self) -> bool:
        """The file really has no such key."""
        if self.found is not None or self.skipped or not self.keys:
            return False
        container = self.view.entries.get(self.parent)
        return container is not None and container.listed and container.kind in _DICT_KINDS

    def closest(self) -> list[str]:
        """Keys of the same container that look most like the missing one: spelled alike, or
        else sharing a word part few of them have (`state_dict_ema` → `model_ema`)."""
        start = self.parent + "." if self.parent else ""
        names = [n for k in self.view.children_keys(self.parent)
                 if _at_this_level(self.view, start, n := k[len(start):])]  # fmt: skip
        wanted = self.keys[-1]
        head = wanted.split(".", 1)[0]
        similar = [n for n in names if n.split(".", 1)[0] == head] or names
        found = difflib.get_close_matches(wanted, similar[:_CANDIDATES], _CLOSEST, 0.5)
        # Then keys sharing a word part that at most _CLOSEST keys have ("weight" or "state"
        # in every key says nothing).
        words = sorted(_words(wanted))
        sharing = {w: [n for n in names[:_CANDIDATES] if w in _words(n)] for w in words}
        rare = [n for w in words if len(sharing[w]) <= _CLOSEST for n in sharing[w]]
        return list(dict.fromkeys(found + rare))[:_CLOSEST]


def _words(key: str) -> set[str]:
    return {w for w in _WORD.findall(key.lower()) if len(w) >= 3}


def _at_this_level(view: ModelView, start: str, name: str) -> bool:
    """Whether `name` is a key of the container at `start`, not a key inside a dict (or list,
    module…) under it: `hyper_parameters.lr` is `ckpt["hyper_parameters"]["lr"]`, not a key of
    `ckpt`; `layer1.0.weight` of a state_dict is one key (its dotted parts are only a "group")."""
    dot = name.find(".")
    while dot != -1:
        entry = view.entries.get(start + name[:dot])
        if entry is not None and entry.kind != "group":
            return False
        dot = name.find(".", dot + 1)
    return True


def look_up(facts: ModuleFacts, ref: KeyRef, checkpoints: Checkpoints) -> KeyLookup | None:
    """What the key read names in the file it is read from; None when that file is not linked
    or the way there is not known."""
    entry = loaded_entry(facts, ref.value, checkpoints)
    if entry is None:
        return None
    view, keys = entry
    skipped = len(keys) < len(ref.value.keys) and (len(ref.value.keys) - 1) in ref.value.optional
    found = view.entry(".".join(keys)) if keys else view.entries.get("")
    return KeyLookup(view, keys, found, skipped)
