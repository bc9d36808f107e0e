"""A safetensors file from any checkpoint pthscope reads, without unpickling it.

The reader parsed the file safely and recorded where each storage's bytes are; `convert_plan`
(the structure worker's part) decides what goes into the output, `header` lays it out, and
`write_tensors` (the values worker's part, or the CLI's) copies the bytes, a bounded piece at a
time. The rules, also in the README:

* **Which tensors.** By default the model's state, as `model.state_dict()` would hold it: model
  parameters and persistent buffers (roles.py), named by their model-relative keys (`fc.weight`
  for a training dict's `model.fc.weight`, DataParallel's `module.` and torch.compile's
  `_orig_mod.` dropped). A file with several models keeps full keys; a file with no model tensors
  (or `everything`) gets every tensor, named by its dotted key (`optimizer.state.0.exp_avg`).
* **Tied tensors** (the same storage, offset, shape and stride: `lm_head.weight` is
  `embed.weight`) are written once, under the first name in file order; each other name is put in
  the metadata as `{"other name": "kept name"}` — what `safetensors.torch.save_model` writes, so
  `safetensors.torch.load_model` ties them again. Other views of one storage (a slice, a
  transpose) are written as separate tensors, each materialised contiguously.
* **Dropped**: everything that is not a tensor (epochs, configs, strings) is listed, never
  written; tensors left out by the choice above are counted by role.
* **Refused**, naming the tensor, and nothing is written: a chosen tensor whose values cannot be
  written — sparse, quantized, nested or meta tensors, a dtype `safetensors.torch` cannot load
  (float8 `fnuz` variants, `float8_e8m0fnu`, `complex128`), a missing storage.
* The metadata also holds `"format": "pt"` (what transformers expects). Tensors are laid out
  largest element size first, then by name, as the reference writer does, so every tensor's
  data is aligned to its element size.

The output is written to a temporary file next to it and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..reader.dtypes import itemsize
from ..reader.model import Checkpoint, Node
from ..reader.roles import model_name, model_of
from ..reader.safetensors_file import _DTYPES as _SAFETENSORS_DTYPES
from .engines import CHUNK_ELEMENTS, engine_for
from .reading import (
    WINDOW_BYTES,
    OpenFiles,
    ValuesError,
    check_readable,
    map_bytes,
    mapped_chunks,
    open_tensor,
)
from .stats import TensorBytes, tensor_bytes

# The dtypes written: those safetensors.torch loads back (not its packed sub-byte F4/F6 types,
# F8_E8M0 or C128, which its torch loader does not map).
SAFETENSORS_CODES = {name: code for code, name in _SAFETENSORS_DTYPES.items()
                     if code not in ("F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "C128")}
COPY_BYTES = WINDOW_BYTES
_DROPPED_LISTED = 200


class ConvertError(Exception):
    """The file cannot be converted; the message names what and why."""


@dataclass
class Planned:
    """One tensor of the output: its name, safetensors dtype code, shape and where its bytes are."""

    name: str
    code: str
    shape: list[int]
    nbytes: int
    bytes: TensorBytes

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "code": self.code, "shape": self.shape, "nbytes": self.nbytes,
                "bytes": self.bytes.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Planned:
        return cls(data["name"], data["code"], data["shape"], data["nbytes"], TensorBytes.from_json(data["bytes"]))


def convert_plan(checkpoint: Checkpoint, size: int, mtime_ns: int, everything: bool = False) -> dict[str, Any]:
    """What the output will hold, what is tied, dropped and left out, and what cannot be written."""
    if checkpoint.errors:
        raise ConvertError(f"{checkpoint.file} could not be read: {checkpoint.errors[0].message}")
    tensors = checkpoint.tensors
    models = [m for m in checkpoint.models if not m.ema]
    model_only = not everything and any(t.role in ("parameter", "buffer") for t in tensors)
    chosen = [i for i, t in enumerate(tensors)
              if not model_only or (t.role in ("parameter", "buffer") and t.persistent)]
    relative = model_only and len(models) == 1
    names: dict[int, str] = {}
    for i in chosen:
        t = tensors[i]
        model = model_of(checkpoint.models, t.path) if relative else None
        names[i] = model_name(model, t.path) if model is not None else t.key
    taken: dict[str, int] = {}
    for i, name in names.items():
        if name in taken:
            raise ConvertError(f"two tensors would both be named {name!r} ({tensors[taken[name]].key} and "
                               f"{tensors[i].key}); use --all to name every tensor by its full key")
        taken[name] = i
    kept: dict[int, int] = {}  # the first chosen index of each tied group → itself; others → it
    aliases: dict[str, str] = {}
    planned: list[Planned] = []
    errors: list[dict[str, str]] = []
    for i in chosen:
        first = checkpoint.tied_views.get(i, i)
        if first in kept:
            aliases[names[i]] = names[kept[first]]
            continue
        kept[first] = i
        t = tensors[i]
        located = tensor_bytes(checkpoint, t, size, mtime_ns)
        code = SAFETENSORS_CODES.get(t.dtype)
        try:
            check_readable(located)
            if code is None:
                raise ValuesError(f"safetensors.torch cannot load {t.dtype} tensors")
        except ValuesError as why:
            errors.append({"key": t.key, "message": str(why)})
            continue
        planned.append(Planned(names[i], code, t.shape, t.nbytes, located))
    planned.sort(key=lambda p: (-itemsize(p.bytes.dtype), p.name))
    left_out: dict[str, int] = {}
    chosen_set = set(chosen)
    for i, t in enumerate(tensors):
        if i not in chosen_set:
            reason = "non-persistent buffer" if t.role == "buffer" else t.role
            left_out[reason] = left_out.get(reason, 0) + 1
    dropped = _dropped_values(checkpoint.root)
    return {"tensors": [p.to_json() for p in planned], "aliases": aliases, "errors": errors,
            "left_out": left_out, "dropped": dropped[:_DROPPED_LISTED], "dropped_count": len(dropped),
            "model_only": model_only}


def _dropped_values(root: Node | None) -> list[dict[str, str]]:
    """Every leaf of the tree that is not a tensor: its key and what it is."""
    out: list[dict[str, str]] = []
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if node.kind == "value":
            out.append({"key": node.key or "(root)", "what": node.type})
        elif node.tensor is None:
            stack.extend(reversed(node.children))
    return out


def header(plan: dict[str, Any]) -> tuple[bytes, int]:
    """The file's first bytes (length and JSON header, padded to 8) and the data's total size."""
    entries: dict[str, Any] = {}
    offset = 0
    for item in plan["tensors"]:
        entries[item["name"]] = {"dtype": item["code"], "shape": item["shape"],
                                 "data_offsets": [offset, offset + item["nbytes"]]}
        offset += item["nbytes"]
    metadata = {"format": "pt", **plan["aliases"]}
    text = json.dumps({"__metadata__": metadata, **entries}, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offset


def write_tensors(out: str, at: int, tensors: Iterable[TensorBytes], head: bytes | None = None) -> int:
    """Write each tensor's bytes, contiguously, from byte `at` of `out` (created with `head` first
    when given); returns the bytes written."""
    written = 0
    with open(out, "wb" if head is not None else "r+b") as f, OpenFiles() as files:
        if head is not None:
            f.write(head)
        f.seek(at)
        for tensor in tensors:
            written += _copy(tensor, f, files)
    return written


def _copy(tensor: TensorBytes, out: Any, files: OpenFiles) -> int:
    written = 0
    with open_tensor(tensor, files) as opened:
        if opened.numel == 0:
            return 0
        if opened.contiguous:
            start = opened.storage_start + opened.view.offset * opened.itemsize
            length = opened.numel * opened.itemsize
            for at in range(0, length, COPY_BYTES):
                with map_bytes(opened.file, start + at, min(COPY_BYTES, length - at)) as data:
                    written += out.write(data)
            return written
        engine = engine_for(tensor.dtype)
        for shape, [(data, stride)] in mapped_chunks([opened], CHUNK_ELEMENTS):
            values = engine.array(data, tensor.dtype, list(shape), list(stride))
            written += out.write(engine.contiguous_bytes(values))
            del values
    return written


def temporary_path(out: str) -> str:
    """Where the output is written until it is complete: beside it, a name no one else uses."""
    folder, name = os.path.split(os.path.abspath(out))
    return os.path.join(folder, f".{name}.pthscope-{os.getpid()}.tmp")


def check_output(source: str, out: str, force: bool) -> None:
    """Refuse to overwrite the source, or an existing file unless `force`."""
    if os.path.exists(out):
        if os.path.samefile(source, out):
            raise ConvertError(f"{out} is the file being converted; choose another output")
        if not force:
            raise ConvertError(f"{out} exists; --force overwrites it")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ConvertError(f"the folder {folder} does not exist")
