"""Hovers: a checkpoint path, a key read from a loaded checkpoint, a parameter key or attribute
path, or a requires_grad statement — each against the file that code is about (linking.py);
`load_state_dict`, the model's construction and the statements of its class that create tensors,
from the compatibility check (compat_checks.py; only checks already made, never waiting).

Each hover is Markdown in Pylance's shape: a `python` code block naming the thing, then one
compact table, then at most a line or two of explanation. A checkpoint path's hover starts with
the verdict (verdict.py): safe with weights_only=True, needs classes, or would run code, and
ends with an "Open in pthscope" command link; a path that names no file says where it looked.
Every string from a file goes through markdown.py; code labels through python_text.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..analysis.facts import AttrRef, CheckpointPath, FlagOp, KeyRef, ModuleFacts, PathElement, Span
from ..analysis.name_rules import loop_rule
from ..compat import shape_text
from ..reader.counts import ROLES, Tally, format_bytes
from ..reader.model_view import Entry, ModelTensor, ModelView
from . import markdown as md
from .compat_checks import (
    LayerTensor,
    LoadCheck,
    check_load,
    construction_checks,
    construction_lines,
    hover_lines,
    layer_checks,
    layer_tensors,
)
from .keys import KeyLookup, look_up
from .linking import Checkpoints, checkpoint_for_path, present, views_for, views_for_key_string
from .python_text import attribute_path, string_literal
from .types import Hover, Range
from .verdict import Verdict, verdict_for

_NAMES_SHOWN = 6
_LAYER_ROWS = 8
_LOOP_CACHE_SIZE = 64


def hover(facts: ModuleFacts, line: int, character: int, checkpoints: Checkpoints,
          elsewhere: Sequence[tuple[ModuleFacts, Checkpoints]] = ()) -> Hover | None:  # fmt: skip
    """The hover at a position, or None when nothing there is linked to a checkpoint.
    `elsewhere`: the other open scripts and their linked files, whose loads may build a model
    from a class of this file (its layer statements' hovers)."""
    for path in facts.paths:
        if path.span.contains(line, character):
            checkpoint = checkpoint_for_path(path, checkpoints)
            if checkpoint is not None:
                shown = hover_for_checkpoint(checkpoint, path.text) + "\n\n" + open_link(checkpoint)
                return Hover(shown, Range.of(path.span))
            if path.role == "other" or any(present(checkpoints, c) for c in path.candidates):
                # there but not read yet; or a bare string, maybe a name joined to a folder elsewhere
                return None
            return Hover(hover_for_missing_file(path), Range.of(path.span))
    for op in facts.flag_ops:
        if op.kind != "replace" and any(s.contains(line, character) for s in op.sites):
            lookups = views_for(facts, op.target, checkpoints)
            site = next(s for s in op.sites if s.contains(line, character))
            return (
                Hover(hover_for_flag_op(facts, op, lookups[0]), Range.of(site)) if lookups else None
            )
    for index, load in enumerate(facts.loads):
        if load.method is not None and load.method.contains(line, character):
            check = check_load(facts, index, checkpoints)
            return Hover(hover_for_load_check(check), Range.of(load.method)) if check else None
    compat = _compat_hover(facts, line, checkpoints, elsewhere)
    if compat is not None:
        return compat
    for key_ref in facts.key_refs:
        if key_ref.span.contains(line, character):
            found = look_up(facts, key_ref, checkpoints)
            answer = hover_for_key_ref(key_ref, found) if found is not None else None
            return Hover(answer, Range.of(key_ref.span)) if answer else None
    ref = _innermost_ref(facts, line, character)
    if ref is not None:
        text = _key(ref.path)
        for lookup in views_for(facts, ref.target, checkpoints):
            label = attribute_path(ref.var, ref.path) or ref.var
            contents = hover_for_key(lookup, text, label)
            if contents:
                return Hover(contents, Range.of(ref.span))
        return None
    for key in facts.key_strings:
        if key.span.contains(line, character):
            for lookup in views_for_key_string(facts, key, checkpoints):
                contents = hover_for_key(lookup, key.text, string_literal(key.text))
                if contents:
                    return Hover(contents, Range.of(key.span))
            return None
    return None


def hover_for_load_check(check: LoadCheck) -> str:
    """`load_state_dict`: what loading the linked file into this model would do."""
    first, *rest = hover_lines(check)
    return "\n\n".join([md.block(f"{check.load.var}.load_state_dict(...)"), md.text(first),
                         *(md.text(line) for line in rest), open_link(check.view)])  # fmt: skip


def _compat_hover(facts: ModuleFacts, line: int, checkpoints: Checkpoints,
                  elsewhere: Sequence[tuple[ModuleFacts, Checkpoints]]) -> Hover | None:  # fmt: skip
    """On a model's construction, the checkpoint it is loaded from; on a statement of its class
    that creates tensors, the checkpoint's tensors for them (checks already made only)."""
    text = facts.lines[line] if 0 <= line < len(facts.lines) else ""
    whole = Range.of(Span(line, len(text) - len(text.lstrip()), line, len(text.rstrip())))
    built = construction_checks(facts, line, checkpoints)
    if built:
        parts = [md.block(f"(model) {text.strip()}")]
        for check in built:
            parts += [md.text(shown) for shown in construction_lines(check)]
        return Hover("\n\n".join([*parts, open_link(built[0].view)]), whole)
    layers = layer_checks(facts, line, checkpoints, elsewhere)
    if not layers:
        return None
    parts = [md.block(text.strip())]
    for check, keys in layers:
        parts.append(hover_for_layer(check, layer_tensors(check, keys), facts.file_path))
    return Hover("\n\n".join([*parts, open_link(layers[0][0].view)]), whole)


def hover_for_layer(check: LoadCheck, tensors: list[LayerTensor], here: str = "") -> str:
    """The checkpoint's tensors for a layer's, as a table: key, the checkpoint's shape, the
    shape here, requires_grad when the file stores it. `here`: the hovered file (the load's
    script is named when it is another)."""
    differ = sum(1 for t in tensors if not t.matches)
    unsized = sum(1 for t in tensors if t.unsized)
    flags = any(t.requires_grad is not None for t in tensors)
    load = check.load
    script = f"{_basename(check.script)}, " if check.script and check.script != here else ""
    counts = [text for n, text in ((differ, f"{differ} not as here"),
                                   (unsized, f"{unsized} with sizes not known here")) if n]
    head = (f"In {_basename(check.view.file)} (loaded by {load.var}.load_state_dict, {script}line "
            f"{load.call.start_line + 1}): {len(tensors)} tensor{'s' if len(tensors) != 1 else ''}, "
            + ", ".join(counts or ["all as here"]))  # fmt: skip
    rows = [md.text(head), "",
            "| tensor | in the checkpoint | here |" + (" requires_grad |" if flags else ""),
            "|---|---|---|" + ("---|" if flags else "")]  # fmt: skip
    for tensor in tensors[:_LAYER_ROWS]:
        if tensor.checkpoint is None:
            stored = "missing"
        else:
            stored = shape_text(tensor.checkpoint) + ("" if tensor.matches else " (differs)")
            stored += " (lazy: loads as saved)" if tensor.lazy and tensor.here != tensor.checkpoint else ""
        name = tensor.key if tensor.file_key == tensor.key else f"{tensor.key} ({tensor.file_key})"
        flag = f" {tensor.requires_grad} |" if flags else ""
        if flags and tensor.requires_grad is None:
            flag = " not stored |"
        here = shape_text(tensor.here) if tensor.here is not None else "not known"
        rows.append(f"| {md.text(name)} | {md.text(stored)} | {md.text(here)} |{flag}")
    if len(tensors) > _LAYER_ROWS:
        rows += ["", md.text(f"and {len(tensors) - _LAYER_ROWS} more (the class is used more than once)")]
    return "\n".join(rows)


def open_link(lookup: ModelView) -> str:
    """The command link that opens the file's page (its path as the worker read it)."""
    return md.command_link("Open in pthscope", md.OPEN_CHECKPOINT, [lookup.file])


def hover_for_missing_file(path: CheckpointPath) -> str:
    """A path that names no file: where it was looked for."""
    shown = ", ".join(md.code(c) for c in path.candidates[:3])
    more = f" and {len(path.candidates) - 3} more" if len(path.candidates) > 3 else ""
    what = "not written yet (`torch.save` makes it)" if path.role == "save" else "no such file"
    return "\n".join(
        [md.block(f"(checkpoint) {path.text}: {'not there yet' if path.role == 'save' else 'no such file'}"),
         f"{what}: {md.code(path.text)} (looked in {shown}{more})"]
    )


def hover_for_key_ref(ref: KeyRef, found: KeyLookup) -> str | None:
    """What the file holds at a key code reads from it, or that it holds nothing there."""
    read = ref.value.keys[-ref.depth :] if ref.root is not None else ref.value.keys
    label = (ref.root or "") + "".join(f"[{string_literal(k)}]" for k in read)
    file = md.code(_basename(found.view.file))
    if found.skipped:
        return "\n".join([md.block(f"(key) {label}: not in the file"),
                          f"{file} has no {md.code(ref.key)}: `.get` gives its default"])
    if isinstance(found.found, ModelTensor):
        return _tensor_hover(found.view, found.found, label)
    if isinstance(found.found, Entry):
        return _entry_hover(found.view, found.dotted, found.found, label)
    if not found.missing:
        return None
    closest = found.closest()
    lines = [md.block(f"(key) {label}: not in the file"), f"{file} has no key {md.code(ref.key)} here"]
    if closest:
        lines[-1] += "; closest: " + ", ".join(md.code(k) for k in closest)
    return "\n".join(lines)


def _entry_hover(lookup: ModelView, key: str, entry: Entry, label: str) -> str:
    """A container, plain value, module or other tensor of the saved object."""
    file = f"in {md.code(_basename(lookup.file))}"
    if entry.kind == "value":
        return "\n".join([md.block(f"(value) {label}: {entry.type} = {entry.value}"), file])
    if entry.kind == "tensor":
        return "\n".join([md.block(f"(tensor) {label}: {entry.type}"),
                          f"{file}; not a tensor of the model"])
    start = key + "." if key else ""
    tensors = [t for t in lookup.tensors if t.key.startswith(start)]
    elements = sum(t.numel for t in tensors if t.role == "parameter")
    what = entry.type.rsplit(".", 1)[-1] if entry.type else entry.kind
    return "\n".join(
        [md.block(f"({entry.kind}) {label}: {what}"),
         "| model tensors | parameter elements |", "|---|---|",
         f"| {_n(len(tensors))} | {_n(elements)} |", "", file]
    )


def _innermost_ref(facts: ModuleFacts, line: int, character: int) -> AttrRef | None:
    best: AttrRef | None = None
    for ref in facts.attr_refs:
        if ref.span.contains(line, character) and (best is None or _narrower(ref.span, best.span)):
            best = ref
    return best


def _narrower(a: Span, b: Span) -> bool:
    return (a.end_line - a.start_line, a.end_char - a.start_char) < (
        b.end_line - b.start_line,
        b.end_char - b.start_char,
    )


def _key(path: tuple[PathElement, ...]) -> str:
    return ".".join(map(str, path))


def hover_for_checkpoint(lookup: ModelView, text: str) -> str:
    """The verdict first, then format, tensors, parameter counts, whether requires_grad is
    stored, and the globals a `weights_only=False` load would import or run."""
    verdict = verdict_for(lookup)
    lines = [verdict.headline(md.code), ""]
    if lookup.errors and not lookup.tensor_count:
        lines += [
            md.block(f"(checkpoint) {text}: not readable"),
            f"pthscope could not read it: {md.text(lookup.errors[0])}",
        ]
    else:
        lines += _contents(lookup, text)
        if lookup.errors:
            what = "torch.load fails on it" if verdict.unloadable else "pthscope could not read all of it"
            lines += ["", f"{what}: {md.text(lookup.errors[0])}"]
    if verdict.level == "other_loader":  # torch.load's weights_only does not apply: just what it names
        if verdict.dangerous:
            lines += ["", "Run by `torch.load(weights_only=False)` of its files:" if verdict.of_files
                      else "Run by a Python unpickler (its own loader refuses them: a crafted file):",
                      *_global_items(verdict, True)]
        if verdict.classes:
            lines += ["", "Classes its pickles name:", *_global_items(verdict, False)]
        return "\n".join(lines)
    if verdict.level == "refused":
        lines += ["", f"weights_only=True refuses it: {md.text(verdict.problem or '')}."]
    if verdict.dangerous:
        runs = "a Python unpickler (torch.load refuses the file)" if verdict.unloadable else "`torch.load(weights_only=False)`"
        lines += ["", f"Run by {runs}:", *_global_items(verdict, True)]
    if verdict.classes and verdict.level == "refused":
        lines += ["", "Classes it imports (`weights_only=False`):", *_global_items(verdict, False)]
    elif verdict.classes:
        lines += [
            "",
            "Classes it imports (`weights_only=False`, or `weights_only=True` inside "
            "`torch.serialization.safe_globals`):",
            *_global_items(verdict, False),
        ]
    return "\n".join(lines)


_ROLE_NAMES = {"parameter": "model parameters", "buffer": "buffers", "optimizer_state": "optimizer state",
               "other": "other tensors"}
_TENSOR_LABELS = {"parameter": "parameter", "buffer": "buffer", "optimizer_state": "optimizer state",
                  "other": "tensor"}


def _contents(lookup: ModelView, text: str) -> list[str]:
    counts = lookup.counts  # the file's, by role (reader/counts.py): what the CLI and page show
    kind = "whole model" if lookup.whole_model else "state_dict / tensors"
    if lookup.stores_flags:
        flags = "**stored** (whole model): loading it restores which parameters are frozen."
        trainable, frozen = _n(counts.trainable), _n(counts.frozen)
    else:
        flags = (
            "**not stored**: a state_dict keeps tensors only, so after `load_state_dict` "
            "every parameter is trainable again."
        )
        trainable = frozen = "not stored"
    return [
        md.block(f"(checkpoint) {text}: {kind}"),
        "| format | tensors | parameters | trainable | frozen |",
        "|---|---|---|---|---|",
        f"| {md.text(lookup.format)} | {_n(lookup.tensor_count)} | {_n(counts.parameter_elements)} "
        f"| {trainable} | {frozen} |",
        "",
        *_role_table(counts),
        "",
        f"requires_grad: {flags}",
    ]


def _role_table(counts: Tally) -> list[str]:
    """Tensors, elements and bytes of each role the file has."""
    rows = ["| | tensors | elements | bytes |", "|---|---|---|---|"]
    for role in ROLES:
        c = counts.role(role)
        if c["tensors"]:
            rows.append(f"| {_ROLE_NAMES[role]} | {_n(c['tensors'])} | {_n(c['elements'])} | {format_bytes(c['bytes'])} |")
    return rows


def _global_items(verdict: Verdict, dangerous: bool) -> list[str]:
    """A list item per global: its name, and the reader's sentence on what a load would do."""
    names = verdict.dangerous if dangerous else verdict.classes
    items = []
    for name in names[:_NAMES_SHOWN]:
        effect = verdict.effects.get(name)
        items.append(f"- {md.code(name)}" + (f" — {md.text(effect)}" if effect else ""))
    if len(names) > _NAMES_SHOWN:
        items.append(f"- … and {len(names) - _NAMES_SHOWN} more")
    return items


def hover_for_key(lookup: ModelView, key: str, label: str) -> str | None:
    """A tensor's shape, dtype and flag, or a module's counts; None if the key is not there."""
    record = lookup.tensor(key)
    if record is not None:
        return _tensor_hover(lookup, record, label)
    module = lookup.module(key)
    if module is not None:
        return _module_hover(lookup, module[0], module[1], label)
    return None


def _tensor_hover(lookup: ModelView, record: ModelTensor, label: str) -> str:
    if record.grad_state == "not stored":
        flag = "not stored in this state_dict"
    else:
        flag = f"{record.requires_grad} ({record.grad_state})"
    shape = ", ".join(map(str, record.shape))
    return "\n".join(
        [
            md.block(f"({_TENSOR_LABELS[record.role]}) {label}: Tensor[{shape}] {record.dtype}"),
            "| requires_grad | shape | dtype | elements |",
            "|---|---|---|---|",
            f"| {flag} | [{shape}] | {md.text(record.dtype)} | {_n(record.numel)} |",
            "",
            f"{md.code(record.key)} in {md.code(_basename(lookup.file))}",
        ]
    )


def _module_hover(lookup: ModelView, prefix: str, counts: Tally, label: str) -> str:
    class_name = lookup.classes.get(prefix, "module").rsplit(".", 1)[-1]
    tensors = sum(counts.role(role)["tensors"] for role in ROLES)
    if lookup.stores_flags:
        header = "| parameters | trainable | frozen | tensors |"
        row = f"| {_n(counts.parameter_elements)} | {_n(counts.trainable)} | {_n(counts.frozen)} | {_n(tensors)} |"
    else:
        header = "| parameters | requires_grad | tensors |"
        row = f"| {_n(counts.parameter_elements)} | not stored in this state_dict | {_n(tensors)} |"
    return "\n".join(
        [
            md.block(f"(module) {label}: {class_name}"),
            header,
            _rule(header),
            row,
            "",
            f"{md.code(prefix + '.*')} in {md.code(_basename(lookup.file))}",
        ]
    )


def hover_for_flag_op(facts: ModuleFacts, op: FlagOp, lookup: ModelView) -> str:
    """Which parameters of the linked checkpoint a requires_grad statement sets, and to what."""
    statement = _statement_text(facts, op.stmt)
    title = md.block(statement.splitlines()[0].strip() if statement else op.var)
    inner = [(i, _statement_text(facts, i.stmt)) for i in op.inner]
    table = _effect_table(op, lookup, statement, inner)
    if table is None:
        unclear = "in a way that is not statically clear"
        return f"{title}\nAffects parameters of {md.code(op.var)} {unclear}."
    return "\n".join([title, *table])


def _effect_table(
    op: FlagOp, lookup: ModelView, statement: str, inner: list[tuple[FlagOp, str]]
) -> list[str] | None:
    """The table under the title; kept with the effect, so that hovering the same loop again
    does not count 30,000 parameters again."""
    statement += "".join(f"\n{text}" for _, text in inner)  # a helper's body decides too
    cache_key = f"table|{op.module_path}|{statement.replace(op.var, '')}"
    if cache_key in lookup.memo:
        cached: list[str] | None = lookup.memo[cache_key]
        return cached
    effect = _effect(op, lookup, statement, inner)
    lines: list[str] | None = None
    if effect is not None:
        set_false, set_true = effect
        lines = ["| sets requires_grad | parameters | elements |", "|---|---|---|"]
        for value, names in (("False", set_false), ("True", set_true)):
            if names:
                elements = sum(r.numel for r in names)
                lines.append(f"| {value} | {_n(len(names))} | {_n(elements)} |")
        if not set_false and not set_true:
            lines.append("| — | 0 | 0 |")
        shown = [r.name for r in (set_false or set_true)]
        if shown:
            lines += ["", f"{_names(shown)} — in {md.code(_basename(lookup.file))}"]
    _remember(lookup, cache_key, lines)
    return lines


def _effect(
    op: FlagOp, lookup: ModelView, statement: str, inner: list[tuple[FlagOp, str]] | None = None
) -> tuple[list[ModelTensor], list[ModelTensor]] | None:
    """(set to False, set to True) parameter records, or None when not statically clear."""
    # Keyed without the variable's name: the same loop over another model gives the same answer.
    cache_key = f"{op.module_path}|{statement.replace(op.var, '')}"
    if cache_key in lookup.memo:
        cached: tuple[list[ModelTensor], list[ModelTensor]] | None = lookup.memo[cache_key]
        return cached
    prefix = _key(op.module_path)
    single = lookup.tensor(prefix) if prefix else None
    selected: list[ModelTensor]
    if single is not None:
        selected, prefix = [single], ""
    else:
        module = lookup.module(prefix) if prefix else ("", lookup.model)
        if module is None:
            return None
        prefix = module[0]
        start = prefix + "." if prefix else ""
        selected = [p for p in lookup.parameters if p.name.startswith(start)]
    result: tuple[list[ModelTensor], list[ModelTensor]] | None
    if op.kind == "loop" and op.loop is not None:
        result = _loop_effect(op, selected, prefix)
    elif op.kind == "helper":
        result = _helper_effect(lookup, inner or [])
    elif op.value is None:
        result = None
    else:
        result = ([], selected) if op.value else (selected, [])
    _remember(lookup, cache_key, result)
    return result


def _helper_effect(
    lookup: ModelView, inner: list[tuple[FlagOp, str]]
) -> tuple[list[ModelTensor], list[ModelTensor]] | None:
    """A freezing helper's statements on its parameter, applied in order to this model."""
    if not inner:
        return None
    state: dict[str, tuple[ModelTensor, bool]] = {}
    for op, text in inner:
        if op.kind == "replace":
            continue
        effect = _effect(op, lookup, text)
        if effect is None:
            return None
        state.update((r.name, (r, False)) for r in effect[0])
        state.update((r.name, (r, True)) for r in effect[1])
    return [r for r, v in state.values() if not v], [r for r, v in state.values() if v]


def _remember(lookup: ModelView, key: str, value: object) -> None:
    lookup.memo[key] = value
    while len(lookup.memo) > _LOOP_CACHE_SIZE:
        lookup.memo.popitem(last=False)


def _loop_effect(
    op: FlagOp, selected: list[ModelTensor], prefix: str
) -> tuple[list[ModelTensor], list[ModelTensor]] | None:
    assert op.loop is not None
    iterated = op.loop.iter
    method = getattr(getattr(iterated, "func", None), "attr", "")
    if method not in ("parameters", "named_parameters"):
        return (selected, []) if op.value is False else None
    rule = loop_rule(op.loop)
    if rule is None:
        return None
    cut = len(prefix) + 1 if prefix else 0
    set_false: list[ModelTensor] = []
    set_true: list[ModelTensor] = []
    for record in selected:
        value = rule(record.name[cut:])
        if value is False:
            set_false.append(record)
        elif value is True:
            set_true.append(record)
    return set_false, set_true


def _statement_text(facts: ModuleFacts, span: Span) -> str:
    return "\n".join(facts.lines[span.start_line : span.end_line + 1])


def _rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def _n(value: int) -> str:
    return f"{value:,}"


def _names(names: list[str]) -> str:
    shown = ", ".join(md.code(n) for n in names[:_NAMES_SHOWN])
    extra = len(names) - _NAMES_SHOWN
    return f"{shown} … (+{extra})" if extra > 0 else shown


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path
