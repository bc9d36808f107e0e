"""Will the linked checkpoint load into this model? PTH008 at `model.load_state_dict(X)`, its
hover and its quick fixes' edits.

A load is checked when both halves are known: the model's expected state_dict, derived from its
class's source by the analysis (`ModuleFacts.expected`, analysis/load_models.py), and the mapping
X is, rebuilt from the linked file's view (`loaded_mapping`: its model tensors and entries, the
keys and shapes `load_state_dict` would see; None when the view cannot say every key of it).
`compat.compare` says what torch would report. Parts of the model that are not known are skipped
there, so nothing is said about them.

- strict loading (the default) that would raise: an error;
- `strict=False` that loads only k of the model's n tensors (or none): a warning; a shape
  mismatch raises even then: an error;
- `strict=` not a constant: only shape mismatches are reported.

The hovers: on `load_state_dict` the summary (`hover_lines`); on the model's construction the
file it is loaded from (`construction_lines`); on a statement of the model's class that creates
tensors or attaches a module a helper made (`self.conv1 = conv3x3(...)`), in this file or in a
model file whose classes an open script loads into (`layer_checks`), the checkpoint's tensors
for them (`layer_tensors`: the file's key after the prefix or wrapper the check found, its
shape, requires_grad where the file stores it).

The fixes: strip/add a prefix or index the wrapper, construct the model with the checkpoint's
argument, and for a head changed on purpose the fine-tuning pattern (leave the mismatched keys
out with a dict comprehension, strict=False, assert that exactly those are missing); a load
written that way is checked with those keys left out, and says nothing when exactly they miss.

The message is one line (what, and the likeliest why: a prefix, a wrapper dict, an optimizer's
state_dict, a changed head or config); the keys, layers and arguments behind it are related
information. Text from files is plain text through `plain_text.visible`. The rebuilt mapping and
the last comparison (by the expected state_dict's stamp, load_models.py) are kept on the view
(`memo`), so an edit that leaves the model as it was does not compare the tensors again.

Comparing 30,000 tensors takes tens of milliseconds, too long for a request: `prepare_checks`
makes the checks (the server runs it in the analysis thread before it publishes diagnostics),
and everything else (`check_load`, the diagnostic, the hover, the fixes) only reads what it
made; a check not made yet is None, so a hover says nothing about it rather than wait.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any

from ..analysis.expected_state import ExpectedStateDict
from ..analysis.facts import KeyChanges, ModuleFacts, StateDictLoad
from ..analysis.flow import Built, Loaded
from ..analysis.model_values import Dim, NameSource
from ..compat import Compatibility, Explanation, TensorMeta, compare, implied_value, shape_text
from ..gc_pause import gc_paused
from ..plain_text import visible
from ..reader.model_view import Entry, ModelView
from .linking import Checkpoints, loaded_entry
from .python_text import string_literal
from .text_edits import insert_after, quote_char
from .types import Diagnostic, Range, RelatedInformation, TextEdit

INCOMPATIBLE_LOAD = "PTH008"
_RELATED = 12  # related entries at most
_LISTED = 3
_PREFIX_KINDS = ("strip_prefix", "add_prefix", "replace_prefix", "wrapper")
_SHAPE = re.compile(r"^[a-z0-9_]+\[((?:\d+(?:, )?)*)\]$")
_CONTAINERS = frozenset({"dict", "list", "tuple", "set", "object", "module", "group"})


@dataclass
class LoadCheck:
    """One `load_state_dict` call checked against the file it loads."""

    index: int
    load: StateDictLoad
    expected: ExpectedStateDict
    result: Compatibility
    view: ModelView
    keys: tuple[str, ...]
    script: str = ""  # the file of the load
    layers: dict[int, tuple[list[str], list[LayerTensor]]] = field(default_factory=dict, repr=False)

    @property
    def strict(self) -> bool | None:
        return self.load.strict


def prepare_checks(facts: ModuleFacts, checkpoints: Checkpoints) -> None:
    """Make the check of every load whose model is known against the files linked now."""
    with gc_paused():  # tens of thousands of short-lived tuples; collections would walk the view too
        for index in facts.expected:
            check_load(facts, index, checkpoints, compute=True)


def checks_ready(facts: ModuleFacts, checkpoints: Checkpoints) -> bool:
    """Whether `prepare_checks` has made every check there is for these linked files."""
    for index in facts.expected:
        memo = _memo_key(facts, index, checkpoints)
        if memo is not None and memo not in facts.memo:
            return False
    return True


def _memo_key(facts: ModuleFacts, index: int, checkpoints: Checkpoints) -> str | None:
    load = facts.loads[index] if 0 <= index < len(facts.loads) else None
    if load is None or not isinstance(load.source, Loaded):
        return None
    entry = loaded_entry(facts, load.source, checkpoints)
    if entry is None:
        return None
    return f"compat|{index}|{id(entry[0])}|" + "\0".join(entry[1])


def check_load(facts: ModuleFacts, index: int, checkpoints: Checkpoints, *,
               compute: bool = False) -> LoadCheck | None:  # fmt: skip
    """The check of load number `index`, or None when either half is not known or (unless
    `compute`) the comparison has not been made yet."""
    expected = facts.expected.get(index)
    memo = _memo_key(facts, index, checkpoints)
    if expected is None or memo is None:
        return None
    if memo in facts.memo:
        cached: LoadCheck | None = facts.memo[memo]
        return cached
    load = facts.loads[index]
    entry = loaded_entry(facts, load.source, checkpoints)  # type: ignore[arg-type]
    assert entry is not None
    view, keys = entry
    result = _compared(view, keys, load, expected, facts.expected_stamps.get(index), compute)
    if result is _NOT_YET:
        return None
    found = (LoadCheck(index, load, expected, result, view, keys, facts.file_path)
             if isinstance(result, Compatibility) else None)  # fmt: skip
    facts.memo[memo] = found
    return found


_NOT_YET = object()


def _compared(view: ModelView, keys: tuple[str, ...], load: StateDictLoad, expected: ExpectedStateDict,
              stamped: int | None, compute: bool) -> Compatibility | object | None:  # fmt: skip
    """`compare` of the expected state_dict with the mapping X is; the last one for these keys
    is kept on the view and used again while the expected state_dict's stamp is the same (an
    edit elsewhere in the file does not compare 30,000 tensors again). `_NOT_YET` when it
    would have to be made and `compute` is False."""
    slot = f"compat-result|{load.changes}|{load.strict is not False}|" + "\0".join(keys)
    kept = view.memo.get(slot)
    if kept is not None and stamped is not None and kept[0] == stamped:
        cached: Compatibility = kept[1]
        return cached
    if not compute:
        return _NOT_YET
    mapping = loaded_mapping(view, keys)
    if mapping is None:
        return None
    changes = load.changes
    if changes != KeyChanges():  # what the comprehension makes of it (a later key wins, as there)
        mapping = {renamed: v for k, v in mapping.items() if (renamed := changes.model_key(k)) is not None}
    result = compare(expected, mapping, metadata=None, strict=load.strict is not False)
    view.memo[slot] = (stamped, result)
    return result


# --- the mapping X is, from the view -------------------------------------------------------

def loaded_mapping(view: ModelView, keys: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The dict at `keys` of the file as `load_state_dict` sees it (its top-level keys →
    `TensorMeta`, nested dicts, plain values); None when it is not a dict whose every key the
    view lists (a file cut short, EMA tensors left out of the view, an unreadable file)."""
    memo = "compat-mapping|" + "\0".join(keys)
    if memo in view.memo:
        cached: Mapping[str, Any] | None = view.memo[memo]
        return cached
    found = _mapping(view, ".".join(keys)) if _complete(view) else None
    view.memo[memo] = found
    return found


def _complete(view: ModelView) -> bool:
    if view.errors:
        return False
    others = sum(1 for e in view.entries.values() if e.kind == "tensor")
    return view.tensor_count == len(view.tensors) + others


def _mapping(view: ModelView, key: str, depth: int = 0) -> dict[str, Any] | None:
    entry = view.entries.get(key)
    if entry is None or entry.kind != "dict" or not entry.listed:
        return None
    prefix = key + "." if key else ""
    containers = view.memo.get("compat-containers")
    if containers is None:
        containers = view.memo["compat-containers"] = {k for k, e in view.entries.items() if e.kind in _CONTAINERS}
    found: dict[str, Any] = {}
    nested: list[str] = []
    # Tensors under a container inside this dict are not its keys (their container is).
    inner = tuple(c + "." for c in containers if c.startswith(prefix) and c != key)

    def child(full: str) -> str | None:
        """`full`'s key in the dict at `prefix`, None when it is under a container there."""
        rest = full[len(prefix):]
        dot = rest.find(".")
        while dot != -1:
            if prefix + rest[:dot] in containers:
                return None
            dot = rest.find(".", dot + 1)
        return rest

    cut = len(prefix)
    if not prefix and not inner:  # a plain state_dict: built in C (30,000 tensors, a few ms)
        tensors = view.tensors
        shapes = map(tuple, map(attrgetter("shape"), tensors))
        metas = map(tuple.__new__, repeat(TensorMeta), zip(shapes, map(attrgetter("dtype"), tensors), strict=True))
        found = dict(zip(map(attrgetter("key"), tensors), metas, strict=True))
        if len(found) < len(tensors):  # a key twice: the first one counts, as below
            found = {}
    for tensor in view.tensors if not found else ():
        full = tensor.key
        if full.startswith(prefix) and not (inner and full.startswith(inner)):
            rest = full[cut:]
            if rest not in found:
                found[rest] = TensorMeta(tuple(tensor.shape), tensor.dtype)
    for full, item in view.entries.items():
        if not full.startswith(prefix) or full == key:
            continue
        name = child(full)
        if name is None or name in found:
            continue
        if item.kind == "tensor":
            found[name] = _entry_meta(item)
        elif item.kind == "dict":
            found[name] = {}
            nested.append(name)
        elif item.kind in _CONTAINERS:
            found[name] = [item.type]  # not a mapping, not a tensor
        else:
            found[name] = item.value
    for name in nested:
        below = _mapping(view, prefix + name, depth + 1) if depth < 2 else None
        if below is not None:
            found[name] = below
    return found


def _entry_meta(entry: Entry) -> TensorMeta:
    """A tensor the view lists as an entry (outside the model: an EMA copy, a tensor in a dict)."""
    shape = _SHAPE.match(entry.type)
    dims = tuple(int(d) for d in shape.group(1).split(", ") if d) if shape else ()
    return TensorMeta(dims, entry.type.partition("[")[0])


# --- the diagnostic ------------------------------------------------------------------------

def compat_diagnostics(facts: ModuleFacts, checkpoints: Checkpoints) -> list[Diagnostic]:
    found = []
    for index in facts.expected:
        check = check_load(facts, index, checkpoints)
        if check is None:
            continue
        diagnostic = _diagnostic(facts, check)
        if diagnostic is not None:
            found.append(diagnostic)
    return found


def _diagnostic(facts: ModuleFacts, check: LoadCheck) -> Diagnostic | None:
    result, strict = check.result, check.strict
    if result.loads or not result.expected_total:
        return None  # nothing of the model known: nothing to say
    if strict is False and _dropped_on_purpose(check):
        return None  # the fine-tuning pattern: the keys left out are the ones that miss
    if strict is not True and not result.mismatched:
        lenient = next((e for e in result.explanations if e.kind == "strict_false"), None)
        if strict is None or lenient is None:
            return None
        what = f"load_state_dict(strict=False) of `{_file(check.view)}`: {lenient.message}"
        severity = "warning"
    else:
        how = "load_state_dict" if strict is True else "load_state_dict(strict=False)"
        what = f"{how} of `{_file(check.view)}` would raise: {_summary(result)}"
        severity = "error"
    why = _why(check)
    message = visible(what + (f". {why}" if why else ""))
    fixes = [kind for kind, _ in available_fixes(facts, check)]
    data = {"load": check.index, "line": check.load.call.start_line, "fixes": fixes}
    span = check.load.method or check.load.call
    return Diagnostic(Range.of(span), severity, INCOMPATIBLE_LOAD, message, data,  # type: ignore[arg-type]
                      related=_related(facts, check))


def _dropped_on_purpose(check: LoadCheck) -> bool:
    """Whether the keys the argument leaves out are exactly the ones missing, and nothing else
    is wrong (`{k: v for k, v in sd.items() if k not in (...)}` with strict=False)."""
    result, load = check.result, check.load
    if not load.changes.drops or result.unexpected or result.mismatched or result.not_tensors or result.errors:
        return False
    return set(result.missing) == {load.changes.renamed(key) for key in load.changes.drops}


def _why(check: LoadCheck) -> str:
    """The likeliest cause, as one sentence."""
    result = check.result
    kinds = {e.kind: e for e in result.explanations}
    for kind in ("optimizer_state", "not_weights", *_PREFIX_KINDS):
        if kind in kinds:
            return _sentence(kinds[kind].message)
    if result.mismatched:
        return result.mismatched[0].message  # starts with code (`fc = nn.Linear(…)`)
    for kind in ("depth", "config", "changed_head", "vocabulary", "flag"):
        if kind in kinds:
            return _sentence(kinds[kind].message)
    parts = []
    if result.missing:
        parts.append("missing " + _listed(result.missing))
    if result.unexpected:
        parts.append("unexpected " + _listed([str(k) for k in result.unexpected]))
    if result.not_tensors:
        parts.append("not tensors " + _listed(result.not_tensors))
    parts += result.errors[:1]
    return _sentence("; ".join(parts))


def _summary(result: Compatibility) -> str:
    """`Compatibility.summary`, where BatchNorm's missing num_batches_tracked may be filled in:
    whether torch does depends on the state_dict's `_metadata`, which the view does not keep."""
    return result.summary("missing (torch fills them in if the file kept no state_dict version metadata)")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else ""


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")


def _related(facts: ModuleFacts, check: LoadCheck) -> list[RelatedInformation]:
    result, expected = check.result, check.expected
    out: list[RelatedInformation] = []
    for explanation in result.explanations:
        if explanation.kind != "strict_false":
            out.append(RelatedInformation(facts.file_path, Range.of(check.load.call), visible(explanation.message)))
    for mismatch in result.mismatched:
        origin = mismatch.origin
        if origin is not None:
            out.append(RelatedInformation(origin.file, Range.of(origin.span), visible(mismatch.message)))
        for cause in mismatch.causes:
            where = cause.where
            if where is not None and where.span is not None and cause.implied is not None:
                out.append(RelatedInformation(where.file, Range.of(where.span), visible(
                    f"{where.text} ({where.how}); the checkpoint implies {cause.name}={cause.implied}")))
    listed = not any(e.kind in _PREFIX_KINDS or e.kind in ("optimizer_state", "not_weights")
                     for e in result.explanations)  # else the keys only repeat the cause
    for key in result.missing if listed else ():
        tensor = expected.tensors[key]
        origin = tensor.origin
        shape = list(tensor.shape) if tensor.shape is not None else "?"
        text = visible(f"missing in the checkpoint: {key} {shape}")
        out.append(RelatedInformation(origin.file, Range.of(origin.span), text) if origin is not None
                   else RelatedInformation(facts.file_path, Range.of(check.load.call), text))
    path = _loaded_path_range(facts, check)
    for key in result.unexpected[:_RELATED] if listed else ():
        out.append(RelatedInformation(facts.file_path, path, visible(f"unexpected in the checkpoint: {key}")))
    unique = list({(r.file, r.range, r.message): r for r in out}.values())
    return unique[:_RELATED]


def _loaded_path_range(facts: ModuleFacts, check: LoadCheck) -> Range:
    load = check.load
    if isinstance(load.source, Loaded):
        path = facts.torch_loads[load.source.load].path
        if path is not None:
            return Range.of(path.span)
    return Range.of(load.call)


def _file(view: ModelView) -> str:
    return view.file.replace("\\", "/").rsplit("/", 1)[-1] or view.file


# --- the hover -----------------------------------------------------------------------------

def hover_lines(check: LoadCheck) -> list[str]:
    """Plain-text lines for the hover on `load_state_dict` (hover.py escapes them)."""
    result = check.result
    lines = [f"{_file(check.view)} → {check.expected.class_name}: {_summary(result)}"]
    for explanation in result.explanations[:4]:
        lines.append(_sentence(explanation.message))
    for mismatch in result.mismatched[:_LISTED]:
        lines.append(mismatch.message)
    if result.missing and not result.explanations:
        lines.append("Missing: " + _listed(result.missing))
    if result.unexpected and not result.explanations:
        lines.append("Unexpected: " + _listed([str(k) for k in result.unexpected]))
    for key, actual in result.unsized[:_LISTED]:
        tensor = check.expected.tensors[key]
        lines.append(f"Not known here: the size of {key}, {shape_text(tensor.shape)} here and "
                     f"{shape_text(actual)} in the file ({tensor.reason or 'its shape is not known here'})")
    for part in result.unknown[:_LISTED]:
        lines.append(f"Not known here: {part.prefix or 'the whole model'} ({part.reason})")
    if check.load.changes.drops and check.strict is False and _dropped_on_purpose(check):
        lines.append("Left out on purpose (trained here): " + _listed(list(check.load.changes.drops)))
    return lines


def construction_checks(facts: ModuleFacts, line: int, checkpoints: Checkpoints) -> list[LoadCheck]:
    """The made checks of the loads into the model constructed on `line` (`net = Net(...)`),
    or copied there (`ema = copy.deepcopy(net)`: a model of its own)."""
    found = []
    for index in facts.expected:
        target = facts.loads[index].target
        if isinstance(target, Built) and (target.copied[0] if target.copied else target.line) == line:
            check = check_load(facts, index, checkpoints)
            if check is not None:
                found.append(check)
    return found


def construction_lines(check: LoadCheck) -> list[str]:
    """Plain-text lines for the hover on the model's construction."""
    load = check.load
    lines = [f"Loaded from {_file(check.view)} by {load.var}.load_state_dict (line {load.call.start_line + 1}): "
             f"{_summary(check.result)}"]  # fmt: skip
    lines += [_sentence(e.message) for e in check.result.explanations[:2]]
    return lines


@dataclass(frozen=True)
class LayerTensor:
    """One tensor a layer statement creates, beside the checkpoint's tensor for it."""

    key: str  # the model's
    here: tuple[int | None, ...] | None
    file_key: str  # the checkpoint's (after the prefix or wrapper the check found)
    checkpoint: tuple[int, ...] | None  # None: not in the checkpoint
    requires_grad: bool | None  # None: not stored
    lazy: bool = False  # a lazy layer's: it takes the checkpoint's shape

    @property
    def matches(self) -> bool:
        """Loads as it is here: the same shape, or a lazy layer's."""
        return self.checkpoint is not None and (self.lazy or _fits(self.here, self.checkpoint))

    @property
    def unsized(self) -> bool:
        """Fits only where a size is not known here (`[?, 16]`): whether it loads is not known."""
        return self.matches and not self.lazy and self.here != self.checkpoint


def layer_checks(facts: ModuleFacts, line: int, checkpoints: Checkpoints,
                 elsewhere: Sequence[tuple[ModuleFacts, Checkpoints]] = ()) -> list[tuple[LoadCheck, list[str]]]:  # fmt: skip
    """The made checks whose model has tensors created by the statement on `line` of this file
    (a layer assignment in the model's class), with those tensors' keys: of this file's loads,
    then of the loads of `elsewhere` (other open scripts, with their linked files) whose
    analysis read this file as it is now (a model class in models.py loaded by train.py)."""
    found = []
    for other, linked in [(facts, checkpoints), *elsewhere]:
        if other is not facts and (other.file_path == facts.file_path or not other.expected
                                   or _read_as(other, facts.file_path) != facts.lines):  # fmt: skip
            continue
        for index in other.expected:
            keys = other.expected[index].keys_at(facts.file_path, line)
            if keys:
                check = check_load(other, index, linked)
                if check is not None:
                    found.append((check, keys))
    return found


def _read_as(facts: ModuleFacts, path: str) -> list[str] | None:
    sources = facts.model_sources
    return sources.lines_read(path) if sources is not None else None


def layer_tensors(check: LoadCheck, keys: list[str]) -> list[LayerTensor]:
    """`keys` of the model beside the checkpoint's tensors for them (kept on the check: a
    block class's statement has a thousand keys, and the hover asks again on every move)."""
    kept = check.layers.get(id(keys))
    if kept is not None and kept[0] is keys:
        return kept[1]
    found = _layer_tensors(check, keys)
    check.layers[id(keys)] = (keys, found)  # `keys` lives as long as the check's expected state
    return found


def _layer_tensors(check: LoadCheck, keys: list[str]) -> list[LayerTensor]:
    explanation = _view_explanation(check)
    path: tuple[str, ...] = ()
    strip = add = ""
    if explanation is not None:
        path = explanation.path
        strip = (explanation.prefix or "") if explanation.kind != "add_prefix" else ""
        add = explanation.new_prefix or ""
    changes = check.load.changes
    file_keys: dict[str, str] = {}  # the model's name → the file's key, through the comprehension
    if changes.renames_keys and not path:
        file_keys = {changes.renamed(k): k for k in loaded_mapping(check.view, check.keys) or ()}
    out = []
    for key in keys:
        rest = key[len(add):] if add and key.startswith(add) else key
        inner = strip + rest
        inner = file_keys.get(inner, inner)
        file_key = ".".join([*check.keys, *path, inner])
        tensor = check.view.by_key.get(file_key)
        stored = tensor is not None and check.view.stores_flags and tensor.grad_state != "not stored"
        shape = tuple(tensor.shape) if tensor is not None else None
        entry = check.view.entries.get(file_key) if tensor is None else None
        if entry is not None and entry.kind == "tensor":  # outside the view's model: an EMA copy
            shape = _entry_meta(entry).shape
        expected = check.expected.tensors[key]
        out.append(LayerTensor(key, expected.shape, file_key, shape,
                               tensor.requires_grad if tensor is not None and stored else None, expected.lazy))
    return out


def _fits(here: tuple[int | None, ...] | None, actual: tuple[int, ...]) -> bool:
    if here is None:
        return True
    return len(here) == len(actual) and all(h is None or h == a for h, a in zip(here, actual, strict=True))


# --- the quick fixes -----------------------------------------------------------------------

def available_fixes(facts: ModuleFacts, check: LoadCheck) -> list[tuple[str, str]]:
    """(kind, title) of the fixes that apply: "prefix" (strip or add a prefix, index into the
    wrapper), "argument" (construct with the checkpoint's value of an argument)."""
    out = []
    view_fix = _view_explanation(check)
    if view_fix is not None and not check.load.changes.renames_keys and check.load.arg is not None:
        out.append(("prefix", _prefix_title(view_fix)))
    argument = _argument_fix(facts, check)
    if argument is not None:
        name, value, _ = argument
        out.append(("argument", f"Construct the model with {name}={value} (the checkpoint's)"))
    dropped = _fine_tuned_keys(facts, check)
    if dropped is not None:
        layers = list(dict.fromkeys(k.rpartition(".")[0] or k for k in dropped))
        out.append(("finetune", visible(f"Fine-tune {', '.join(layers)}: load without {_listed(dropped)} "
                                        "(strict=False) and assert only those are missing")))  # fmt: skip
    return out


_FINE_TUNED_LAYERS = 3  # a changed head (or two), not a different model


def _fine_tuned_keys(facts: ModuleFacts, check: LoadCheck) -> list[str] | None:
    """The keys to leave out for the fine-tuning fix: those whose shapes differ, when nothing
    else is wrong, every key of the model is known and the load is a statement of its own
    (`net.load_state_dict(X)`, its result unused)."""
    result, load = check.result, check.load
    if not result.mismatched or result.missing or result.unexpected or result.not_tensors or result.errors:
        return None
    if result.unknown or result.skipped or load.changes != KeyChanges() or load.arg is None:
        return None
    if load.strict is None or not (load.single_line_stmt and load.stmt == load.call):
        return None
    keys = [m.key for m in result.mismatched]
    if len({k.rpartition(".")[0] for k in keys}) > _FINE_TUNED_LAYERS:
        return None
    return keys


def _view_explanation(check: LoadCheck) -> Explanation | None:
    for explanation in check.result.explanations:
        if explanation.kind in _PREFIX_KINDS and explanation.would_match:
            return explanation
    return None


def _prefix_title(explanation: Explanation) -> str:
    parts = []
    if explanation.path:
        parts.append("Load " + "".join(f"[{string_literal(p)}]" for p in explanation.path))
    strip = explanation.prefix if explanation.kind != "add_prefix" else None
    if strip:
        parts.append(f"strip the {string_literal(strip)} prefix")
    if explanation.new_prefix:
        parts.append(f"add the {string_literal(explanation.new_prefix)} prefix")
    title = ", ".join(parts)
    title = _sentence(title) + " in the checkpoint's keys" * (not explanation.path and bool(parts))
    if explanation.left_out:  # what the fix does to the keys outside the prefix
        n = explanation.left_out
        title += f", leaving out the {n} key{'s' * (n != 1)} outside it"
    return visible(title)


def _argument_fix(facts: ModuleFacts, check: LoadCheck) -> tuple[str, int, NameSource | int] | None:
    """The construction argument that a config/head/depth explanation names, with the
    checkpoint's value, and where it goes: the argument's span in this file, or (the argument
    left at the default of the class's own `__init__`) the offset in the construction line
    where `name=value` is added."""
    result = check.result
    for explanation in result.explanations:
        if explanation.kind not in ("config", "changed_head", "vocabulary", "depth"):
            continue
        if explanation.name is None or explanation.implied is None:
            continue
        where = _name_source(check, explanation)
        if (where is not None and where.how == "construction argument" and where.span is not None
                and where.file == facts.file_path and where.span.start_line == where.span.end_line):  # fmt: skip
            return explanation.name, explanation.implied, where
        if where is not None and where.how == "default":
            added = _keyword_insertion(facts, check, where)
            if added is not None:
                return explanation.name, explanation.implied, added
    return None


def _keyword_insertion(facts: ModuleFacts, check: LoadCheck, default: NameSource) -> int | None:
    """Where `name=value` goes in the one-line construction `m = Cls(...)` of the loaded
    model, when `default` is the default of a parameter of `Cls.__init__` itself (not of a
    helper it calls: a keyword Cls does not take would raise)."""
    target = check.load.target
    if not isinstance(target, Built) or default.span is None or not 0 <= target.line < len(facts.lines):
        return None
    cls = target.callee.rsplit(".", 1)[-1]
    lines = facts.lines if default.file == facts.file_path else _read_as(facts, default.file)
    try:
        tree = ast.parse("\n".join(lines or []))
        stmt = ast.parse(facts.lines[target.line].strip())
    except SyntaxError:
        return None
    init = next((f for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == cls
                 for f in c.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)  # fmt: skip
    spot = (default.span.start_line + 1, default.span.start_char)
    defaults = [*init.args.defaults, *(d for d in init.args.kw_defaults if d)] if init else []
    params = [a.arg for a in init.args.args + init.args.kwonlyargs] if init else []
    if default.name not in params or not any((d.lineno, d.col_offset) == spot for d in defaults):
        return None
    calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call)
             and ast.unparse(n.func).rsplit(".", 1)[-1] == cls]  # fmt: skip
    if len(calls) != 1 or calls[0].end_lineno != 1 or any(k.arg is None for k in calls[0].keywords):
        return None
    text = facts.lines[target.line]
    return len(text) - len(text.lstrip()) + (calls[0].end_col_offset or 0) - 1  # before its ")"


def _name_source(check: LoadCheck, explanation: Explanation) -> NameSource | None:
    if explanation.kind == "depth":
        for repeat in check.expected.repeats:
            if repeat.prefix == explanation.prefix:
                root, implied = implied_value(Dim(repeat.count - repeat.offset, repeat.source),
                                              explanation.implied - repeat.offset)  # type: ignore[operator]
                return root if root is not None and implied == explanation.implied else None
        return None
    for mismatch in check.result.mismatched:
        for cause in mismatch.causes:
            if cause.name == explanation.name and cause.implied == explanation.implied:
                return cause.where
    return None


def fix_edits(facts: ModuleFacts, checkpoints: Checkpoints, index: int, kind: str) -> list[TextEdit] | None:
    check = check_load(facts, index, checkpoints)
    if check is None or kind not in {k for k, _ in available_fixes(facts, check)}:
        return None
    if kind == "argument":
        found = _argument_fix(facts, check)
        assert found is not None
        name, value, where = found
        if isinstance(where, int):  # left at its default: add the keyword
            line = check.load.target.line  # type: ignore[union-attr]
            opened = facts.lines[line][:where].rstrip().endswith("(")
            return [TextEdit(Range.at(line, where), f"{'' if opened else ', '}{name}={value}")]
        assert where.span is not None
        return [TextEdit(Range.of(where.span), str(value))]
    if kind == "finetune":
        return _fine_tuning_edits(facts, check)
    explanation = _view_explanation(check)
    arg = check.load.arg
    assert explanation is not None and arg is not None
    text = _text(facts, arg)
    if text is None:
        return None
    q = quote_char(facts)
    expression = _atom(text) + "".join(f"[{string_literal(p, q)}]" for p in explanation.path)
    strip = explanation.prefix if explanation.kind != "add_prefix" else None
    add = explanation.new_prefix
    if strip and add:
        expression = (f"{{{string_literal(add, q)} + k.removeprefix({string_literal(strip, q)}): v "
                      f"for k, v in {expression}.items()"
                      + (f" if k.startswith({string_literal(strip, q)})" if explanation.left_out else "") + "}")
    elif strip and explanation.left_out:  # keys outside the prefix would be unexpected: leave them out
        prefix = string_literal(strip, q)
        expression = (f"{{k.removeprefix({prefix}): v for k, v in {expression}.items() "
                      f"if k.startswith({prefix})}}")
    elif strip:
        expression = f"{{k.removeprefix({string_literal(strip, q)}): v for k, v in {expression}.items()}}"
    elif add:
        expression = f"{{{string_literal(add, q)} + k: v for k, v in {expression}.items()}}"
    return [TextEdit(Range.of(arg), expression)]


def _fine_tuning_edits(facts: ModuleFacts, check: LoadCheck) -> list[TextEdit] | None:
    """`net.load_state_dict(X)` →
    `missing, unexpected = net.load_state_dict({k: v for k, v in X.items() if k not in (…)},
    strict=False)` and `assert set(missing) == {…} and not unexpected, (missing, unexpected)`."""
    keys = _fine_tuned_keys(facts, check)
    load = check.load
    text = _text(facts, load.arg) if load.arg is not None else None
    names = _unused_names(facts, ("missing", "unexpected"), ("missing_keys", "unexpected_keys"))
    if keys is None or text is None or names is None or load.arg is None:
        return None
    q = quote_char(facts)
    listed = ", ".join(string_literal(k, q) for k in keys)
    dropped = f"({listed},)" if len(keys) == 1 else f"({listed})"
    argument = f"{{k: v for k, v in {_atom(text)}.items() if k not in {dropped}}}"
    edits = [TextEdit(Range.at(load.call.start_line, load.call.start_char), f"{names[0]}, {names[1]} = ")]
    if load.strict_span is not None:
        edits += [TextEdit(Range.of(load.arg), argument), TextEdit(Range.of(load.strict_span), "False")]
    else:
        edits.append(TextEdit(Range.of(load.arg), argument + ", strict=False"))
    expected = "{" + ", ".join(string_literal(k, q) for k in sorted(keys)) + "}"
    check_line = f"assert set({names[0]}) == {expected} and not {names[1]}, ({names[0]}, {names[1]})"
    edits.append(insert_after(facts, load.stmt.end_line, load.indent, [check_line]))
    return edits


def _unused_names(facts: ModuleFacts, *choices: tuple[str, str]) -> tuple[str, str] | None:
    """The first pair of names the file does not use anywhere (so nothing is overwritten)."""
    words = set(re.findall(r"\w+", "\n".join(facts.lines)))
    return next((pair for pair in choices if not words & set(pair)), None)


def _text(facts: ModuleFacts, span: Any) -> str | None:
    lines = facts.lines[span.start_line : span.end_line + 1]
    if not lines:
        return None
    if len(lines) == 1:
        return lines[0][span.start_char : span.end_char]
    return "\n".join([lines[0][span.start_char :], *lines[1:-1], lines[-1][: span.end_char]])


def _atom(text: str) -> str:
    """`text` as an expression that can be indexed or called on: parenthesised unless it is a
    name, an attribute, a subscript or a call."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return f"({text})"
    return text if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)) else f"({text})"
