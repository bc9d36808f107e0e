"""Will this checkpoint load into this model? What `load_state_dict` would report, and why.

    expected = expected_state_dict(source, path, folders, "Net", "num_classes=10")
    result = compare(expected, checkpoint_tensors, metadata=None, strict=True)
    result.missing, result.unexpected, result.mismatched   # the sets torch would report
    result.summary()         # "310/312 tensors match; 1 missing, 1 shape mismatch"
    result.explanations      # a `module.` prefix, a wrapper dict, a changed head, a config …

`checkpoint_tensors` is the object handed to `load_state_dict`: a mapping of key → tensor, where
a tensor is anything with `.shape` (a sequence of ints) and `.dtype` — a `TensorMeta`, the
reader's `TensorInfo`, a real `torch.Tensor` in tests — or a `(shape, dtype)` pair. Values may
be nested mappings (a training dict's `model_state_dict`, an optimizer's `state`) or plain
values; like torch, only the top-level keys are matched, and nested mappings are searched only
to explain where the weights are. `metadata` is the state_dict's `_metadata` (prefix →
{"version": n}) when the file kept one, None when it did not (a dict comprehension drops it);
by default it is read from the mapping's `_metadata` attribute. It decides whether BatchNorm's
missing `num_batches_tracked` is filled in, as torch does for old versions.

Keys under the expected state_dict's unknown parts are neither missing nor unexpected: they are
listed in `skipped`. Nothing here imports torch or reads files.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

from .analysis.expected_state import ExpectedStateDict, ExpectedTensor, UnknownPart
from .analysis.model_values import Dim, NameSource, Origin

BATCH_NORMS = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
                         "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d"})  # fmt: skip
INSTANCE_NORMS = frozenset({"InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
                            "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"})  # fmt: skip
KNOWN_PREFIXES = {
    "module.": "saved from nn.DataParallel or DistributedDataParallel",
    "_orig_mod.": "saved from a torch.compile'd model",
    "module._orig_mod.": "saved from a torch.compile'd model inside DataParallel/DDP",
    "model.": "saved from a wrapper (a LightningModule's `model` attribute, say)",
}
OPTIMIZER_KEYS = frozenset({"state", "param_groups"})
SCHEDULER_KEYS = frozenset({"last_epoch", "base_lrs", "_step_count", "_last_lr"})
SCALER_KEYS = frozenset({"scale", "growth_factor", "backoff_factor", "growth_interval"})
AUTO: Any = object()


class TensorMeta(NamedTuple):  # a tuple: 30,000 of them are made for one checkpoint
    shape: tuple[int, ...]
    dtype: str = ""


def tensor_meta(value: Any) -> TensorMeta | None:
    """The shape and dtype of a checkpoint value, or None when it is not a tensor."""
    if type(value) is TensorMeta:
        return value
    if isinstance(value, tuple) and len(value) == 2 and _is_shape(value[0]):
        return TensorMeta(tuple(value[0]), str(value[1]))
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, Mapping) and _is_shape(shape):
        return TensorMeta(tuple(int(d) for d in shape), str(getattr(value, "dtype", "")))
    return None


def _is_shape(value: Any) -> bool:
    try:
        return all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    except TypeError:
        return False


@dataclass(frozen=True)
class DimCause:
    """Why one dimension differs: the argument deciding it and the value the checkpoint
    implies for the name that sets it (None when it cannot be inferred)."""

    dim: int
    argument: str  # "out_features of nn.Linear"
    expression: str  # "num_classes" (as written at the layer call)
    name: str | None  # the name a user would change ("num_classes", "cfg.hidden")
    here: str | None  # its value here ("10")
    implied: int | None  # its value in the checkpoint's model
    where: NameSource | None


@dataclass(frozen=True)
class ShapeMismatch:
    key: str
    checkpoint: tuple[int, ...]
    expected: tuple[int | None, ...]
    causes: tuple[DimCause, ...]
    origin: Origin | None
    message: str


@dataclass(frozen=True)
class Explanation:
    """A likely cause of the problems. kind: "strip_prefix", "add_prefix", "replace_prefix",
    "wrapper" (the weights are elsewhere in the mapping or under another prefix);
    "optimizer_state", "not_weights" (not a model's state_dict at all); "changed_head",
    "vocabulary", "config" (a size argument differs; `implied` is the checkpoint's value when
    it can be inferred), "depth" (a different number of blocks or RNN layers), "flag" (a flag
    such as bias=False adds or leaves out tensors); "strict_false" (what strict=False loads)."""

    kind: str
    message: str
    prefix: str | None = None  # the prefix to strip (or to add, for add_prefix)
    new_prefix: str | None = None  # replace_prefix: what goes in its place
    path: tuple[str, ...] = ()  # wrapper: the keys to index (ckpt["state_dict"])
    name: str | None = None  # config: the name that differs
    here: str | None = None
    implied: int | None = None
    keys: tuple[str, ...] = ()
    would_match: int | None = None  # tensors that load after the fix
    left_out: int = 0  # keys not under `prefix` that the fix leaves out (strip only those)


@dataclass
class Compatibility:
    expected_total: int = 0  # the model's tensors that can be checked
    matched: int = 0  # of those, how many would load (present, a tensor, the same shape)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[ShapeMismatch] = field(default_factory=list)
    not_tensors: list[str] = field(default_factory=list)
    # BatchNorm's num_batches_tracked that torch fills in itself (state_dicts without version 2).
    filled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # other messages torch would raise
    # In the checkpoint, with a shape that fits only the sizes known here (`[?, 16]`, a size
    # from `args.num_classes`): whether they load depends on what the code is given.
    unsized: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # (key, its shape in the file)
    unknown: list[UnknownPart] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # checkpoint keys under unknown parts
    explanations: list[Explanation] = field(default_factory=list)

    @property
    def loads(self) -> bool:
        """Whether `load_state_dict(strict=True)` succeeds for every part that is known."""
        return not (self.missing or self.unexpected or self.mismatched or self.not_tensors
                    or self.errors)  # fmt: skip

    def summary(self, filled: str = "filled in by torch") -> str:
        """`filled`: what is said of the num_batches_tracked torch fills in."""
        head = f"{self.matched}/{self.expected_total} tensors match"
        problems = [(len(self.missing), "missing"), (len(self.unexpected), "unexpected"),
                    (len(self.mismatched), "shape mismatch" if len(self.mismatched) == 1
                     else "shape mismatches"), (len(self.not_tensors), "not tensors")]  # fmt: skip
        parts = [f"{n} {what}" for n, what in problems if n]
        if self.filled:
            parts.append(f"{len(self.filled)} num_batches_tracked {filled}")
        if self.unsized:
            parts.append(f"{len(self.unsized)} with sizes not known here")
        if self.unknown:
            parts.append(f"{len(self.unknown)} part{'s' if len(self.unknown) > 1 else ''} not known")
        return head + ("; " + ", ".join(parts) if parts else "")


def compare(expected: ExpectedStateDict, checkpoint: Mapping[str, Any], *,
            metadata: Any = AUTO, strict: bool = True) -> Compatibility:  # fmt: skip
    """What `model.load_state_dict(checkpoint, strict=strict)` would report, with causes."""
    if metadata is AUTO:
        metadata = getattr(checkpoint, "_metadata", None)
    result = _check(expected, checkpoint, metadata)
    if result.loads and not result.skipped:
        return result
    _explain(expected, checkpoint, metadata, result, strict)
    return result


# --- the check, as torch's _load_from_state_dict does it ----------------------------------

def _check(expected: ExpectedStateDict, checkpoint: Mapping[str, Any], metadata: Any) -> Compatibility:
    result = Compatibility(unknown=list(expected.unknown))
    filled, stale = _version_rules(expected, checkpoint, metadata)
    for key in stale:
        result.errors.append(f"{key} is a running stat of an InstanceNorm with "
                             "track_running_stats=False (saved before torch 0.4)")  # fmt: skip
    tensors = expected.tensors
    result.expected_total = len(tensors)
    # Set operations first (30,000 keys under another prefix must not cost a loop each).
    present = tensors.keys() & checkpoint.keys()
    if len(present) < len(tensors):
        missing = [k for k in tensors if k not in present] if present else list(tensors)
        result.missing = [k for k in missing if k not in filled] if filled else missing
        result.filled = [k for k in missing if k in filled] if filled else []
    keys = list(tensors) if len(present) == len(tensors) else [k for k in tensors if k in present] if present else []
    for key in _not_same_shape(expected, keys, checkpoint):
        tensor, value = tensors[key], checkpoint[key]
        meta = value if type(value) is TensorMeta else tensor_meta(value)
        if meta is None:
            result.not_tensors.append(key)
        elif tensor.lazy:
            continue  # torch gives it the checkpoint's shape
        elif not _shape_fits(tensor.shape, meta.shape):
            result.mismatched.append(_mismatch(tensor, meta.shape))
        elif not _same_shape(tensor.shape, meta.shape):
            result.unsized.append((key, meta.shape))  # fits only where a size is not known here: no match
    result.matched = len(keys) - len(result.not_tensors) - len(result.mismatched) - len(result.unsized)
    if len(present) < len(checkpoint):
        parts = expected.unknown
        if not parts and not stale:
            result.unexpected = [k for k in checkpoint if k not in present] if present else list(checkpoint)
            return result
        for key in checkpoint:
            if key in present or key in stale:
                continue
            if parts and isinstance(key, str) and any(p.covers(key) for p in parts):
                result.skipped.append(key)
            else:
                result.unexpected.append(key)
    return result


_NOT_A_SHAPE = object()  # equal to no expected shape, not even None (rank unknown)


def _not_same_shape(expected: ExpectedStateDict, keys: list[str], checkpoint: Mapping[str, Any]) -> list[str]:
    """The keys (of both) whose checkpoint value is not a `TensorMeta` of exactly the expected
    shape: one pass, a few ms for 30,000 keys."""
    shapes = expected.shapes()
    return [k for k in keys if type(value := checkpoint[k]) is not TensorMeta or value[0] != shapes[k]]


def _same_shape(expected: tuple[int | None, ...] | None, actual: tuple[int, ...]) -> bool:
    """Loads as torch checks it, with every size known."""
    return expected == actual or (expected == () and actual == (1,))  # torch's 0.3-era 1-dim → 0-dim rule


def _shape_fits(expected: tuple[int | None, ...] | None, actual: tuple[int, ...]) -> bool:
    """Loads for some value of the sizes not known here (None)."""
    if expected is None or _same_shape(expected, actual):
        return True
    return len(expected) == len(actual) and all(e is None or e == a for e, a in zip(expected, actual, strict=True))


def _version_rules(expected: ExpectedStateDict, checkpoint: Mapping[str, Any],
                   metadata: Any) -> tuple[set[str], set[str]]:  # fmt: skip
    """BatchNorm and InstanceNorm (their _NormBase) fill in a missing num_batches_tracked for
    state_dicts without version 2; InstanceNorm refuses running stats it does not track when
    there is no version at all."""
    filled: set[str] = set()
    stale: set[str] = set()
    for prefix, base in expected.norms.items():
        dot = prefix + "." if prefix else ""
        version = None
        if isinstance(metadata, Mapping):
            local = metadata.get(prefix)
            version = local.get("version") if isinstance(local, Mapping) else None
        if base in INSTANCE_NORMS and version is None and dot + "running_mean" not in expected.tensors:
            stale.update(k for k in (dot + "running_mean", dot + "running_var") if k in checkpoint)
        if base in BATCH_NORMS | INSTANCE_NORMS and (version is None or version < 2):
            key = dot + "num_batches_tracked"
            if key in expected.tensors and key not in checkpoint:
                filled.add(key)
    return filled, stale


# --- shape mismatches and what they imply ------------------------------------------------

def _mismatch(tensor: ExpectedTensor, actual: tuple[int, ...]) -> ShapeMismatch:
    assert tensor.shape is not None
    causes: list[DimCause] = []
    if len(tensor.shape) == len(actual) and tensor.dims is not None:
        for i, (dim, value) in enumerate(zip(tensor.dims, actual, strict=True)):
            if dim.value is not None and dim.value != value:
                causes.append(_cause(i, dim, value))
    return ShapeMismatch(tensor.key, actual, tensor.shape, tuple(causes), tensor.origin,
                         _mismatch_message(tensor, actual, causes))  # fmt: skip


def _cause(index: int, dim: Dim, actual: int) -> DimCause:
    source = dim.source
    if source is None:
        return DimCause(index, "a constant", str(dim.value), None, None, None, None)
    argument = f"{source.argument} of {source.layer}"
    expression = source.expression or f"the default {source.argument}"
    root, implied = implied_value(dim, actual)
    if root is None and source.name is not None:
        root = source.name.root()
    return DimCause(index, argument, expression, root.name if root else None,
                    root.value if root else None, implied, root)  # fmt: skip


def implied_value(dim: Dim, actual: int) -> tuple[NameSource | None, int | None]:
    """The name that sets this dim, and its value if the dim were `actual`."""
    source = dim.source
    if source is None or source.name is None or not dim.factor or not source.scale:
        return None, None
    value = (Fraction(actual) / Fraction(dim.factor) - source.offset) / Fraction(source.scale)
    link = source.name
    while link.via is not None and link.scale:
        value = (value - link.offset) / Fraction(link.scale)
        link = link.via
    if value.denominator != 1 or value <= 0:
        return link, None
    return link, int(value)


def shape_text(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "[...]"  # not even the rank known
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def anchor(tensor: ExpectedTensor) -> str:
    """What creates the tensor, as the user wrote it: `fc = nn.Linear(64, num_classes)` for a
    layer's weights, the statement itself for a parameter or buffer made by hand."""
    origin = tensor.origin
    if origin is None:
        return tensor.key
    if tensor.layer.startswith("torch.nn.") and origin.call and tensor.module:
        return f"{tensor.module} = {origin.call}"
    return origin.text.strip()


def _mismatch_message(tensor: ExpectedTensor, actual: tuple[int, ...], causes: list[DimCause]) -> str:
    where = anchor(tensor)
    text = f"{where}: the checkpoint's {tensor.key} is {shape_text(actual)}, " \
           f"here {shape_text(tensor.shape or ())}"
    names = []
    for cause in causes:
        if cause.name and cause.here is not None:
            implied = f" (the checkpoint implies {cause.name}={cause.implied})" if cause.implied else ""
            names.append(f"{cause.name}={cause.here} here{implied}")
    return text + ("; " + "; ".join(dict.fromkeys(names)) if names else "")


# --- explanations ------------------------------------------------------------------------

def _explain(expected: ExpectedStateDict, checkpoint: Mapping[str, Any], metadata: Any,
             result: Compatibility, strict: bool) -> None:  # fmt: skip
    found: list[Explanation] = []
    keys = set(checkpoint) if len(checkpoint) <= 16 else set()
    if all(k in checkpoint for k in OPTIMIZER_KEYS):
        found.append(Explanation("optimizer_state", "this is an optimizer's state_dict "
                                 "(`state`, `param_groups`), not the model's weights"))  # fmt: skip
    elif keys and (keys <= SCHEDULER_KEYS | {"verbose", "_get_lr_called_within_step"}
                   or keys >= SCALER_KEYS):  # fmt: skip
        found.append(Explanation("not_weights", "this is a learning-rate scheduler's or grad "
                                 "scaler's state_dict, not the model's weights"))  # fmt: skip
    view = _best_view(expected, checkpoint, result) if result.missing else None
    fixed = result
    if view is not None:
        found.append(view.explanation)
        fixed = view.fixed
    elif not found and not any(tensor_meta(v) for v in checkpoint.values()):
        listed = ", ".join(map(str, list(checkpoint)[:8]))
        found.append(Explanation("not_weights", f"it holds no tensors of a model (keys: {listed})"))
    if not any(e.kind in ("optimizer_state", "not_weights") for e in found):
        found.extend(_structural(expected, fixed, view.mapping if view else checkpoint))
    if not strict and result.expected_total:
        loaded = result.matched
        if loaded < result.expected_total or result.mismatched:
            what = ("none of the model's" if loaded == 0 else f"only {loaded} of the model's")
            tail = "; the shape mismatches still raise" if result.mismatched else ""
            found.append(Explanation("strict_false", f"with strict=False, {what} "
                                     f"{result.expected_total} tensors would load{tail}",
                                     would_match=loaded))  # fmt: skip
    result.explanations = found


@dataclass
class _View:
    mapping: Mapping[str, Any]
    path: tuple[str, ...]
    fixed: Compatibility
    explanation: Explanation


def _best_view(expected: ExpectedStateDict, checkpoint: Mapping[str, Any],
               result: Compatibility) -> _View | None:  # fmt: skip
    """The sub-mapping and prefix change under which the most expected keys are found."""
    wanted = expected.tensors.keys()
    if not wanted:
        return None
    base = result.expected_total - len(result.missing) - len(result.filled)
    if expected.key_prefixes is None:  # a property of the model: found once
        expected.key_prefixes = [p for p in _common_prefixes(list(wanted)) if p][:2]
    adds = expected.key_prefixes
    best: tuple[int, tuple[str, ...], str, str, Mapping[str, Any], int] | None = None
    for path, mapping in _mappings(checkpoint):
        strips = _common_prefixes(list(mapping))[:3]
        candidates = [("", ""), *((s, "") for s in strips), *(("", a) for a in adds),
                      *((s, a) for s in strips[:1] for a in adds[:1] if s != a)]  # fmt: skip
        for strip, add in candidates:
            if not path and not strip and not add:
                continue
            if strip and not add and _every_key_starts_with(mapping, strip) and _prefixable(expected):
                # The model's keys with the prefix put before them (kept on the model), rather
                # than 30,000 keys of each file read renamed.
                renamed, share = mapping, len(mapping)
                found = len(_prefixed(expected, strip).tensors.keys() & mapping.keys())
            else:
                renamed, share = _renamed(mapping, strip, add)
                found = len(renamed.keys() & wanted)
            if found > base and (best is None or found > best[0]):
                best = (found, path, strip, add, renamed, share)
                if found == len(wanted):
                    break
        if best is not None and best[0] == len(wanted):
            break
    if best is None:
        return None
    _, path, strip, add, renamed, share = best
    # A dict comprehension that renames keys drops _metadata; indexing a wrapper keeps it.
    metadata = None if strip or add else getattr(_at(checkpoint, path), "_metadata", None)
    if strip and renamed is _at(checkpoint, path):  # not renamed: compared under the prefix
        fixed = _without_prefix(_check(_prefixed(expected, strip), renamed, metadata), strip)
    else:
        fixed = _check(expected, renamed, metadata)
    return _View(renamed, path, fixed, _view_explanation(path, strip, add, len(_at(checkpoint, path)), share, fixed))


def _every_key_starts_with(mapping: Mapping[str, Any], prefix: str) -> bool:
    try:
        return all(map(str.startswith, mapping, repeat(prefix)))
    except TypeError:  # a key that is not text (str subclasses work as text, as in torch)
        return False


def _prefixable(expected: ExpectedStateDict) -> bool:
    """Whether `_prefixed` says all `_check` needs (InstanceNorm's stale running stats are
    reported in messages naming the model's keys)."""
    return not any(base in INSTANCE_NORMS for base in expected.norms.values())


def _prefixed(expected: ExpectedStateDict, prefix: str) -> ExpectedStateDict:
    """`expected` as `_check` sees it when every key of the checkpoint starts with `prefix`: its
    keys, unknown parts and norms with `prefix` before them (the tensors are the same objects,
    their `key` the model's). Kept on `expected`: each read of a file saved from DataParallel
    is compared with the same one."""
    found = expected.prefixed.get(prefix)
    if found is None:
        tensors = expected.tensors
        found = ExpectedStateDict(
            expected.class_name, dict(zip(map(prefix.__add__, tensors), tensors.values(), strict=True)),
            [replace(u, prefix=prefix + u.prefix) if u.prefix else u for u in expected.unknown],
            norms={(prefix + p if p else prefix[:-1]): base for p, base in expected.norms.items()})  # fmt: skip
        expected.prefixed[prefix] = found
    return found


def _without_prefix(result: Compatibility, prefix: str) -> Compatibility:
    """A `_check` against `_prefixed(expected, prefix)`, in the model's keys."""
    cut = len(prefix)
    for name in ("missing", "filled", "not_tensors", "unexpected", "skipped"):
        keys = getattr(result, name)
        if keys:
            setattr(result, name, [k[cut:] if isinstance(k, str) and k.startswith(prefix) else k for k in keys])
    return result


def _at(checkpoint: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    found: Any = checkpoint
    for key in path:
        found = found[key]
    return found


def _mappings(checkpoint: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    found: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [((), checkpoint)]
    for key, value in _mapping_items(checkpoint):
        found.append(((key,), value))
        found += (((key, inner_key), inner) for inner_key, inner in _mapping_items(value))
        if len(found) > 40:
            break
    return found


def _mapping_items(mapping: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The items of `mapping` whose values are mappings (tensors skipped by their type first)."""
    if set(map(type, mapping.values())) == {TensorMeta}:  # a plain state_dict, scanned in C
        return []
    return [(k, v) for k, v in mapping.items()
            if type(v) is not TensorMeta and isinstance(v, Mapping) and isinstance(k, str)]  # fmt: skip


def _common_prefixes(keys: list[Any]) -> list[str]:
    """Dotted prefixes (one or two parts) that at least half of the keys share, most common
    first (counted on a sample of the keys)."""
    sample = keys[:: max(1, len(keys) // 2000)]
    counts: Counter[str] = Counter()
    for key in sample:
        if not isinstance(key, str):
            continue
        parts = key.split(".", 2)
        if len(parts) > 1:
            counts[parts[0] + "."] += 1
        if len(parts) > 2:
            counts[parts[0] + "." + parts[1] + "."] += 1
    threshold = max(1, len(sample) // 2)
    return [p for p, n in counts.most_common(6) if n >= threshold]


def _renamed(mapping: Mapping[str, Any], strip: str, add: str) -> tuple[dict[str, Any], int]:
    """`mapping` with `strip` taken off and `add` put before its keys (only the keys that start
    with `strip`), and how many keys started with `strip`."""
    if not strip and not add:
        return dict(mapping), 0
    if not strip:
        return {add + k if isinstance(k, str) else k: v for k, v in mapping.items()}, 0
    cut = len(strip)
    keys = list(mapping)
    if set(map(type, keys)) == {str}:  # the usual case, iterated in C (30,000 keys: a few ms)
        share = sum(map(str.startswith, keys, repeat(strip)))
        if share == len(keys):
            stripped = map(itemgetter(slice(cut, None)), keys)
            return dict(zip(map(add.__add__, stripped) if add else stripped, mapping.values(), strict=True)), share
    # Only the keys under the prefix, as the fix's comprehension keeps them: others (a
    # LightningModule's `loss_fn.weight`) would be unexpected keys of the model.
    renamed = {add + k[cut:]: v for k, v in mapping.items() if isinstance(k, str) and k.startswith(strip)}
    return renamed, len(renamed)


def _view_explanation(path: tuple[str, ...], strip: str, add: str, total: int, share: int,
                      fixed: Compatibility) -> Explanation:  # fmt: skip
    loads = f"{fixed.matched} of {fixed.expected_total} tensors match"
    if fixed.unexpected:
        loads += f", {len(fixed.unexpected)} unexpected"
    only = bool(strip) and share < total  # the fix keeps only the keys under the prefix
    parts = []
    where = "".join(f"[{p!r}]" for p in path)
    if path:
        parts.append(f"the weights are under checkpoint{where}")
    if strip:
        every, verb = ("every key", "starts") if not only else (f"{share} of {total} keys", "start")
        note = KNOWN_PREFIXES.get(strip)
        parts.append(f"{every} {'there ' if path else ''}{verb} with '{strip}'" +
                     (f" ({note})" if note else ""))  # fmt: skip
    if add:
        parts.append(f"the model's keys start with '{add}' and the checkpoint's do not")
    how = "with that" if not (strip or add) else "keeping only those, stripped" if only else "fixed"
    message = "; ".join(parts) + f"; {how}, {loads}"
    message = message[0].upper() + message[1:]
    if path and not (strip or add):
        kind = "wrapper"
    elif strip and add:
        kind = "replace_prefix"
    elif strip:
        kind = "strip_prefix" if not path else "wrapper"
    else:
        kind = "add_prefix" if not path else "wrapper"
    return Explanation(kind, message, prefix=strip or (add if kind == "add_prefix" else None),
                       new_prefix=add or None, path=path, would_match=fixed.matched,
                       left_out=total - share if only else 0)  # fmt: skip


_RNN_LAYER = re.compile(r"^(?P<prefix>(?:.+\.)?)weight_ih_l(?P<index>\d+)(?P<reverse>_reverse)?$")
_HEADS = ("Linear", "Conv", "Bilinear", "LazyLinear", "LazyConv")


def _structural(expected: ExpectedStateDict, result: Compatibility,
                checkpoint: Mapping[str, Any]) -> list[Explanation]:  # fmt: skip
    """Changed heads, vocabularies, configs and depths behind the problems of `result`."""
    found = _depths(expected, result, checkpoint)
    groups: dict[str | None, list[tuple[ShapeMismatch, DimCause | None]]] = {}
    for mismatch in result.mismatched:
        for cause in mismatch.causes or (None,):
            groups.setdefault(cause.name if cause else None, []).append((mismatch, cause))
    for name, items in groups.items():
        keys = tuple(dict.fromkeys(m.key for m, _ in items))
        layers = list(dict.fromkeys(k.rpartition(".")[0] for k in keys))
        causes = [c for _, c in items if c is not None]
        implied = {c.implied for c in causes if c.implied is not None}
        value = implied.pop() if len(implied) == 1 else None
        here = causes[0].here if causes else None
        at = f"; {name}={here} here" if name and here is not None else ""
        rows = [m for m, c in items if c is not None and c.dim == 0
                and _base(expected, m.key).startswith("Embedding")]  # fmt: skip
        if rows:
            row = rows[0]
            found.append(Explanation(
                "vocabulary", f"the checkpoint's vocabulary has {row.checkpoint[0]} entries "
                f"({row.key} is {shape_text(row.checkpoint)}), here {row.expected[0]}{at}",
                name=name, here=here, implied=value or row.checkpoint[0], keys=keys))
        elif (len(layers) == 1 and causes and all(c.dim == 0 for c in causes)
              and _base(expected, keys[0]).startswith(_HEADS)):  # fmt: skip
            first = items[0][0]
            layer = layers[0] or "the model"
            found.append(Explanation(
                "changed_head", f"the checkpoint's {layer} was trained for {first.checkpoint[0]} "
                f"outputs, here {first.expected[0]}{at}; to fine-tune, drop {layer}.* from the "
                "checkpoint and load with strict=False", name=name, here=here,
                implied=value or first.checkpoint[0], keys=keys))  # fmt: skip
        elif name is not None:
            if value is not None:
                message = f"{name}={here} here; the checkpoint was trained with {name}={value}"
            else:
                message = f"{name}={here} here decides {len(keys)} shapes that differ in the checkpoint"
            found.append(Explanation("config", message, name=name, here=here, implied=value, keys=keys))
    inferred = any(e.kind == "config" and e.implied is not None for e in found)
    found = [e for e in found if not (inferred and e.kind == "config" and e.implied is None)]
    return found + _flags(expected, result)


def _flags(expected: ExpectedStateDict, result: Compatibility) -> list[Explanation]:
    """Missing keys a flag argument adds (bias=True) and unexpected ones it leaves out."""
    found = []
    # A flag explains a layer's missing keys only when every key it misses is one a flag adds.
    unexplained = {k.rpartition(".")[0] for k in result.missing if expected.tensors[k].presence is None}
    missing = [k for k in result.missing if k.rpartition(".")[0] not in unexplained]
    for keys, sources, verb in (
        (missing, [expected.tensors[k].presence for k in missing], "adds"),
        (result.unexpected, [expected.absent.get(k) for k in result.unexpected], "leaves out"),
    ):
        groups: dict[tuple[str, str], list[str]] = {}
        for key, source in zip(keys, sources, strict=True):
            if source is None:
                continue
            root = source.name.root() if source.name is not None else None
            name = root.name if root else f"{source.argument} of {source.layer}"
            value = root.value if root else source.expression.removeprefix("(default ").rstrip(")")
            groups.setdefault((name, value), []).append(key)
        for (name, value), flagged in groups.items():
            what = "the checkpoint does not have" if verb == "adds" else "the checkpoint has"
            listed = ", ".join(flagged[:3]) + (", …" if len(flagged) > 3 else "")
            found.append(Explanation("flag", f"{name}={value} here {verb} {len(flagged)} "
                                     f"tensor{'s' if len(flagged) > 1 else ''} {what} ({listed})",
                                     name=name, here=value, keys=tuple(flagged)))  # fmt: skip
    return found


def _block_counts(keys: Any) -> Counter[tuple[str, int]]:
    """How many of `keys` lie under each (container prefix, index) they pass through:
    `a.3.b.0.w` counts for (a, 3) and (a.3.b, 0); an RNN layer's `lstm.weight_ih_l2` for (lstm, 2).
    Worked out level by level on the distinct module paths, not key by key (30,000 keys of 500
    blocks are some 2,000 paths a level up)."""
    counts: Counter[tuple[str, int]] = Counter()
    strings = [k for k in keys if isinstance(k, str)]
    level: Counter[str] = Counter(k.rpartition(".")[0] for k in strings)
    while level:
        up: Counter[str] = Counter()
        for path, n in level.items():
            head, dot, last = path.rpartition(".")
            if not dot:
                continue
            if last.isdigit():
                counts[(head, int(last))] += n
            up[head] += n
        level = up
    for key in strings:
        if "_l" in key:
            layer = _RNN_LAYER.match(key)
            if layer:
                counts[(layer.group("prefix").rstrip("."), int(layer.group("index")))] += 1
    return counts


def _base(expected: ExpectedStateDict, key: str) -> str:
    return expected.modules.get(key.rpartition(".")[0], ("", ""))[1]


def _depths(expected: ExpectedStateDict, result: Compatibility,
            checkpoint: Mapping[str, Any]) -> list[Explanation]:  # fmt: skip
    """Blocks of a ModuleList/Sequential, or RNN layers, that the checkpoint has more or fewer of."""
    if not (result.missing or result.unexpected):
        return []
    gone = _block_counts(result.missing)
    extra = _block_counts(result.unexpected)
    touched = {prefix for prefix, _ in (*gone, *extra)}
    # The checkpoint's indices under a container: the model's that are not wholly missing,
    # and those of its unexpected keys.
    if expected.index_counts is None:
        expected.index_counts = {}
        for (prefix, index), n in _block_counts(expected.tensors).items():
            expected.index_counts.setdefault(prefix, {})[index] = n
    have: dict[str, set[int]] = {}
    for prefix in touched:
        held = expected.index_counts.get(prefix, {})
        have[prefix] = {i for i, n in held.items() if gone[(prefix, i)] < n}
    for prefix, index in extra:
        have.setdefault(prefix, set()).add(index)
    repeats = {r.prefix: r for r in expected.repeats}
    counts: Counter[str] = Counter(p.rpartition(".")[0] for p in expected.modules
                                   if p.rpartition(".")[2].isdigit())  # fmt: skip
    differing: list[tuple[str, int, int]] = []
    for prefix in [p for p in expected.modules if p in touched]:
        base = expected.modules[prefix][1]
        if base in ("Sequential", "ModuleList"):
            model = counts[prefix]
        elif base in ("RNN", "LSTM", "GRU"):
            model = repeats[prefix].count if prefix in repeats else 0
        else:
            continue
        indices = have.get(prefix)
        if indices and model and max(indices) + 1 != model:
            differing.append((prefix, max(indices) + 1, model))
    groups: dict[tuple[str | None, int | None], list[tuple[str, int, int, str | None]]] = {}
    for prefix, depth, model in differing:
        name = here = implied = None
        repeat = repeats.get(prefix)
        if repeat is not None:
            root, implied = implied_value(Dim(model - repeat.offset, repeat.source), depth - repeat.offset)
            if root is not None:
                name, here = root.name, root.value
        groups.setdefault((name, implied), []).append((prefix, depth, model, here))
    found = []
    for (name, implied), items in groups.items():
        prefix, depth, model, here = items[0]
        rnn = all(expected.modules[p][1] in ("RNN", "LSTM", "GRU") for p, _, _, _ in items)
        what = "layers" if rnn else "blocks"
        places = ", ".join(f"{p or 'the model'} ({d}, here {m})" for p, d, m, _ in items)
        if len(items) == 1:
            message = f"the checkpoint has {depth} {what} in {prefix or 'the model'}; the model here has {model}"
        else:
            message = f"the checkpoint has a different number of {what} in {places}"
        if name is not None:
            message += f" ({name}={here})"
            if implied:
                message += f"; the checkpoint implies {name}={implied}"
        found.append(Explanation("depth", message, prefix=prefix, name=name, here=here,
                                 implied=implied or depth,
                                 keys=tuple(p for p, _, _, _ in items)))  # fmt: skip
    return found


__all__ = ["AUTO", "Compatibility", "DimCause", "Explanation", "ShapeMismatch", "TensorMeta",
           "compare", "tensor_meta"]  # fmt: skip
