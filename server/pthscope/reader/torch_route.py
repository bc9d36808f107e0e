"""What torch.load itself reads a file as, whatever pthscope's probes make of its content.

torch.load (torch/serialization.py, 2.13) decides by the path's name and the first four bytes
only: a path ending in `.safetensors` goes to safetensors, a file starting with a zip's local
header (`PK\\x03\\x04`) to its zip reader, and anything else to its legacy reader, which opens the
file as a tar if `tarfile` can and otherwise unpickles the file's pickles one after the other
(the first one whatever it holds: a wrong magic number is found only after it ran).

So a file that pthscope names by its content — safetensors under a `.pt` name, HDF5, GGUF, ONNX,
text, an archive that does not start with a local header — is pickles to
torch.load(weights_only=False), and a file built to be both runs what those pickles name.
`add_torch_route` reads them as torch would, with the legacy readers (restricted, like every
pickle), and puts what they name in the file's globals: the verdict and the warnings follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import Problem

if TYPE_CHECKING:
    from .limits import Limits
    from .model import Checkpoint, GlobalRef

ZIP_LOCAL_HEADER = b"PK\x03\x04"  # the only start torch.load reads as a zip (_is_zipfile)
# Formats read the way torch's legacy reader reads the file: their globals are already the ones
# it runs (a DCP `.metadata` is one plain pickle too).
_READ_AS_TORCH_DOES = frozenset({"torch-legacy", "torch-tar", "pickle", "torch-distributed"})


def torch_hands_to_safetensors(path: str) -> bool:
    return path.endswith(".safetensors")  # torch's own test: by name, case and all


def torch_reads_as_zip(head: bytes) -> bool:
    return head.startswith(ZIP_LOCAL_HEADER)


def torch_reads_as_legacy(head: bytes, path: str) -> bool:
    """Whether torch.load hands the file to its legacy reader (tar, or pickles in a row)."""
    return bool(head) and not torch_hands_to_safetensors(path) and not torch_reads_as_zip(head)


def add_torch_route(checkpoint: Checkpoint, head: bytes, path: str, limits: Limits) -> None:
    """Where torch.load reads a file of another format as pickles: what they name, with a
    warning; nothing when they name nothing (the usual case: the first byte is no opcode that
    gets that far)."""
    if checkpoint.format in _READ_AS_TORCH_DOES or not torch_reads_as_legacy(head, path):
        return
    from .legacy_checkpoint import read_legacy_checkpoint  # the reader's, not the language server's
    from .pickled import warn_dangerous_globals
    from .tar_checkpoint import probe_tar_checkpoint, read_tar_checkpoint

    as_tar = probe_tar_checkpoint(head, path)
    seen = read_tar_checkpoint(path, limits) if as_tar else read_legacy_checkpoint(path, limits)
    if not seen.globals:
        return
    named = {g.name for g in checkpoint.globals}
    checkpoint.globals = [*checkpoint.globals, *(g for g in seen.globals if g.name not in named)]
    checkpoint.globals.sort(key=_dangerous_first)
    how = "a tar of pickles (torch's first format)" if as_tar else "pickles (torch's legacy format)"
    names = ", ".join(g.name for g in seen.globals[:5]) + (f" and {len(seen.globals) - 5} more"
                                                           if len(seen.globals) > 5 else "")
    checkpoint.warnings.insert(0, Problem(
        "crafted", f"torch.load reads this file as {how}, not as {checkpoint.format}: it does not start with a "
        f"zip's local header and its name does not end in .safetensors; those pickles name {names}. A file that "
        "is both was built to be: open it only with the loader of its format"))
    checkpoint.warnings = [w for w in checkpoint.warnings if w.kind != "dangerous-globals"]
    warn_dangerous_globals(checkpoint)


def _dangerous_first(ref: GlobalRef) -> int:
    return 0 if ref.risk == "dangerous" else 1
