"""Files of every dtype and every layout the reader knows, written by torch in the test run.

`write_layouts(folder)` returns {name: Layout}: the file and the tensors torch (or safetensors)
loads from it, by key. The stats, scan and convert tests all read these and compare with torch:

* `zip`: every dtype (floats with NaN, +inf, −inf and zeros), views with offsets and strides, a
  transpose, an expanded (stride 0) view, a scalar, an empty tensor, tied keys, two views of one
  storage;
* `legacy`: the same in torch's legacy format (dtypes it can save);
* `cuda`: the zip file with every storage saved on `cuda:1` (read without CUDA);
* `safetensors`: the contiguous ones through `safetensors.torch.save_file`;
* `tar`: torch's pre-0.4 tar format (float32);
* `whole_model`: `torch.save(model)` of a small net with tied weights.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.reader.test_tar import tar_parts, write_tar
from tests.reader.user_models import TiedLM

FLOAT_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
FLOAT8_DTYPES = [torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz]
INT_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32,
              torch.uint64]
COMPLEX_DTYPES = [torch.complex64, torch.complex128]
# What torch's legacy writer cannot save (no typed storage class for them).
_NOT_LEGACY = {"uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
               "float8_e5m2fnuz", "float8_e8m0fnu"}


@dataclass(frozen=True)
class Layout:
    file: Path
    tensors: dict[str, torch.Tensor]  # what torch loads, by key


def name_of(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def sample_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.randn(48, 40) * 3
    base[0, 0], base[0, 1], base[0, 2], base[0, 3], base[1, 5] = 0.0, math.nan, math.inf, -math.inf, 0.0
    finite = base.nan_to_num(0.0, 0.0, 0.0)
    out: dict[str, torch.Tensor] = {name_of(d): base.to(d) for d in FLOAT_DTYPES}
    for d in FLOAT8_DTYPES:
        out[name_of(d)] = (finite.clamp(-200, 200) if "fnuz" in name_of(d) or "e4m3" in name_of(d) else base).to(d)
    out["float8_e8m0fnu"] = torch.tensor([0.25, 1.0, 4.0, 1024.0]).to(torch.float8_e8m0fnu)
    for d in INT_DTYPES:
        scaled = finite * 10
        out[name_of(d)] = (scaled.abs() if not d.is_signed else scaled).to(d)
    out["bool"] = base > 0
    out["complex64"] = torch.complex(base, finite.flip(0)).to(torch.complex64)
    out["complex128"] = torch.complex(finite.double(), -finite.double())
    out["scalar"] = torch.tensor(2.5)
    out["empty"] = torch.empty(0, 7)
    storage = torch.randn(64, 50)
    out["view.offset_stride"] = storage[5:, 3::4]  # an offset and strides into a shared storage
    out["view.transposed"] = storage.t()
    out["view.expanded"] = torch.randn(1, 30).expand(20, 30)  # stride 0
    out["view.slice"] = storage[10:20]
    out["tied.a"] = base
    out["tied.b"] = base  # the same tensor: one view, two keys
    return out


def relocate(src: Path, dst: Path, location: bytes) -> None:
    """data.pkl rewritten so that every storage says it was saved on `location`."""
    old = b"X\x03\x00\x00\x00cpu"
    new = b"X" + len(location).to_bytes(4, "little") + location
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/data.pkl"):
                data = data.replace(old, new)
            zout.writestr(info.filename, data)


def write_layouts(folder: Path) -> dict[str, Layout]:
    tensors = sample_tensors()
    made: dict[str, Layout] = {}
    zip_file = folder / "layouts.pt"
    torch.save(tensors, zip_file)
    made["zip"] = Layout(zip_file, torch.load(zip_file, weights_only=True))
    legacy = folder / "layouts-legacy.pt"
    torch.save({k: v for k, v in tensors.items() if k not in _NOT_LEGACY}, legacy, _use_new_zipfile_serialization=False)
    made["legacy"] = Layout(legacy, torch.load(legacy, weights_only=True))
    cuda = folder / "layouts-cuda.pt"
    relocate(zip_file, cuda, b"cuda:1")
    made["cuda"] = Layout(cuda, torch.load(cuda, weights_only=True, map_location="cpu"))
    contiguous = {k: v.contiguous() for k, v in tensors.items()
                  if not k.startswith(("view.", "tied.")) and "fnuz" not in k and k not in ("complex128", "float8_e8m0fnu")}
    st = folder / "layouts.safetensors"
    save_file(contiguous, st)
    made["safetensors"] = Layout(st, load_file(st))
    floats = {"a": torch.randn(6, 5), "b.c": torch.randn(7)}
    tar = write_tar(folder / "layouts.tar", tar_parts(floats))
    made["tar"] = Layout(tar, torch.load(tar, weights_only=False))  # our own file, written above
    torch.manual_seed(1)
    model = TiedLM()
    whole = folder / "tied-model.pt"
    torch.save(model, whole)
    made["whole_model"] = Layout(whole, {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()})
    return made
