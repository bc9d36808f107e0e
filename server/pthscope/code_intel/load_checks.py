"""What the file a `torch.load` call reads says about the call, and about the keys read from
what it returns: the diagnostics PTH004–PTH007 (diagnostics.py lists them with the others).

- PTH004 (error): `weights_only=False` on a file whose pickle would run code.
- PTH005 (error): the file is not a checkpoint, or is broken (truncated, corrupt, unreadable):
  the reader's own message, which names the fix (`git lfs pull`, download it again, …); or it
  is not for torch.load's weights_only (a TorchScript archive, a torch < 0.4 tar, a plain pickle:
  verdict.py `other_loader`), with what loads it — a warning where the call passes
  weights_only=False and that loads it (TorchScript, tar).
- PTH006 (warning): a key the file does not have (`sd["nope"]`, `ckpt["state_dict"]` where there
  is none), with the closest keys it has (keys.py decides when a key is really missing).
- PTH007 (hint): tensors saved on a GPU, loaded without `map_location`: the server cannot know
  the user's machine, so this says what happens on one without CUDA.
- PTH009: `weights_only=True` on a file it refuses: an error for one whose pickle uses opcodes
  torch's weights_only unpickler cannot run (verdict.py `refused`); a warning for one that imports
  classes (code this file imports may allow them), and nothing when this file mentions
  safe_globals (which may allow them: not followed here).

Messages are plain text: names from a file go through `plain_text.visible`.
"""

from __future__ import annotations

from ..analysis.facts import ModuleFacts
from ..plain_text import visible
from ..reader.model_view import ModelView
from .keys import look_up
from .linking import Checkpoints
from .types import Diagnostic, Range, Severity
from .verdict import LOADS_WITH_WEIGHTS_ONLY_FALSE, Verdict, linked_verdict

RUNS_CODE_LOAD = "PTH004"
UNREADABLE_FILE = "PTH005"
MISSING_KEY = "PTH006"
CUDA_WITHOUT_MAP_LOCATION = "PTH007"
REFUSED_LOAD = "PTH009"
_NAMES_LISTED = 3
# The reader's error kinds that make torch.load fail on the file, and how to say it.
_BROKEN = {
    "not-a-checkpoint": "is not a checkpoint",
    "truncated": "is truncated",
    "corrupt": "is corrupt",
    "unknown-format": "is not a checkpoint torch.load can read",
    "other-format": "is not a PyTorch checkpoint",
    "unreadable": "cannot be read",
    "unloadable": "cannot be loaded by torch.load",
}


def load_checks(facts: ModuleFacts, checkpoints: Checkpoints) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for index, load in enumerate(facts.torch_loads):
        linked = linked_verdict(load, checkpoints)
        if linked is None:
            continue
        view, verdict = linked
        data = {"torch_load": index, "line": load.call.start_line}
        if load.weights_only is False and verdict.level == "runs_code":
            message = (
                f"torch.load(weights_only=False) of `{_name(view)}` runs code the file chose: "
                f"{_listed(verdict.dangerous)}. Use weights_only=True (it refuses to run it), "
                "or do not load this file."
            )
            span = load.weights_only_span or load.func
            found.append(Diagnostic(Range.of(span), "error", RUNS_CODE_LOAD, message, data))
        if load.weights_only is True and _refuses(facts, verdict):
            # Classes may be allowed by add_safe_globals in code this file imports: a warning.
            severity: Severity = "error" if verdict.level == "refused" else "warning"
            found.append(Diagnostic(Range.of(load.weights_only_span or load.func), severity, REFUSED_LOAD,
                                    _refused_message(view, verdict), data))
        if verdict.level == "other_loader" and load.path is not None:
            loads_anyway = load.weights_only is False and view.format in LOADS_WITH_WEIGHTS_ONLY_FALSE
            message = f"`{_name(view)}` is {verdict.what}: load it with {verdict.how_to_load}"
            found.append(Diagnostic(Range.of(load.path.span), "warning" if loads_anyway else "error",
                                    UNREADABLE_FILE, message, data))
            continue
        broken = next((k for k in view.error_kinds if k in _BROKEN), None)
        if broken is not None and load.path is not None:
            problem = view.errors[view.error_kinds.index(broken)]
            message = f"`{_name(view)}` {_BROKEN[broken]}: {visible(problem)}"
            found.append(Diagnostic(Range.of(load.path.span), "error", UNREADABLE_FILE, message, data))
        cuda = sorted(loc for loc in view.locations if loc.startswith("cuda"))
        if cuda and not load.has_map_location:
            count = sum(view.locations[loc] for loc in cuda)
            message = (
                f"`{_name(view)}` was saved on {visible(', '.join(cuda))} ({count:,} tensor"
                f"{'' if count == 1 else 's'}); on a machine without CUDA pass map_location='cpu'."
            )
            found.append(Diagnostic(Range.of(load.func), "hint", CUDA_WITHOUT_MAP_LOCATION, message, data))
    for index, ref in enumerate(facts.key_refs):
        if ref.get:
            continue
        lookup = look_up(facts, ref, checkpoints)
        if lookup is None or not lookup.missing:
            continue
        closest = lookup.closest()
        where = (
            "at its top level"
            if not lookup.parent
            else "in " + "".join(f"[{visible(repr(k))}]" for k in lookup.keys[:-1])
        )
        message = f"`{_name(lookup.view)}` has no key {visible(repr(ref.key))} {where}"
        if closest:
            message += "; closest: " + ", ".join(visible(repr(k)) for k in closest)
        found.append(Diagnostic(Range.of(ref.span), "warning", MISSING_KEY, message,
                                {"key_ref": index, "line": ref.span.start_line, "closest": closest}))
    return found


def _refuses(facts: ModuleFacts, verdict: Verdict) -> bool:
    """Whether torch.load(weights_only=True) raises on the file, as far as this file shows."""
    if verdict.level == "refused":
        return True  # safe_globals cannot help: the opcodes are refused, not the globals
    return verdict.level == "classes" and not any("safe_globals" in line for line in facts.lines)


def _refused_message(view: ModelView, verdict: Verdict) -> str:
    if verdict.level == "refused":
        return (f"torch.load(weights_only=True) cannot read `{_name(view)}`: {visible(verdict.problem or '')}. "
                f"{refused_advice(verdict)}")
    count = len(verdict.classes)
    return (f"torch.load(weights_only=True) refuses `{_name(view)}`: it imports {count} class"
            f"{'' if count == 1 else 'es'} outside torch's allow-list ({_listed(verdict.classes)}), and raises "
            "\"Unsupported global\" unless they are allowed (torch.serialization.add_safe_globals in code run "
            "before). Allow them with torch.serialization.safe_globals([...]), save and load a state_dict "
            "instead, or pass weights_only=False only for a file you trust.")


def refused_advice(verdict: Verdict) -> str:
    """What to do with a file weights_only=True refuses for its opcodes (PTH002, PTH009)."""
    if verdict.classes:
        return (f"weights_only=False also imports its classes ({_listed(verdict.classes)}): pass it only for "
                "a file you trust, or save a state_dict with torch.save's default protocol.")
    return ("It names nothing that runs code, so weights_only=False loads it safely; or re-save it with "
            "torch.save's default protocol (2).")


def _name(view: ModelView) -> str:
    return visible(view.file.replace("\\", "/").rsplit("/", 1)[-1] or view.file)


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(visible(n) for n in names[:_NAMES_LISTED])
    return shown + (f" and {len(names) - _NAMES_LISTED} more" if len(names) > _NAMES_LISTED else "")
