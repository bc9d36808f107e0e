"""Other files people hand to torch.load: HDF5 (Keras/TensorFlow `.h5`), TensorFlow Lite, gzip,
tar — torch's own format before 0.4 among them —, and zips that are no torch format (a Keras 3
`.keras` model, a TorchServe `.mar`, an archive of files). Each is named, with what loads it.

Recognised by magic numbers: HDF5's signature (at byte 0, or 512, 1024, 2048 after a user block),
TFLite's FlatBuffer identifier `TFL3` at byte 4, gzip's `1f 8b` (whose first bytes are inflated to
say what is inside), tar's `ustar` at byte 257 or a valid header checksum. A tar's member headers
are walked (one 512-byte header per member, never the data) to tell torch's tar format from an
archive of other files. Nothing here is opened by any other library.
"""

from __future__ import annotations

import os
import tarfile
import zlib

from .doctor import quote_text
from .limits import Limits
from .model import Checkpoint, Problem
from .truncated_zip import first_member_name, zip_format_of
from .zip_directory import ZipError, file_size_of, read_directory

_HDF5 = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048)
_GZIP = b"\x1f\x8b"
_TORCH_TAR_MEMBERS = {"sys_info", "pickle", "storages", "tensors"}
_TAR_MEMBERS_WALKED = 10_000
_KERAS_MARKS = (b"keras_version", b"model_config", b"layer_names", b"model_weights")


def probe_other_format(head: bytes, path: str) -> bool:
    return _kind(head, path) is not None


def read_other_format(path: str, limits: Limits) -> Checkpoint:
    with open(path, "rb") as f:
        head = f.read(4096)
    kind = _kind(head, path)
    checkpoint = Checkpoint(file=path, format=kind or "unknown")
    if kind == "hdf5":
        checkpoint.errors.append(_hdf5(path))
    elif kind == "tflite":
        checkpoint.errors.append(Problem(
            "not-a-checkpoint", "a TensorFlow Lite model (FlatBuffer `TFL3`), not a PyTorch checkpoint: run it with "
            "`tf.lite.Interpreter(model_path=path)` (or ai-edge-litert's `Interpreter`); torch.load cannot read it"))
    elif kind == "gzip":
        checkpoint.errors.append(_gzip(path, checkpoint))
    elif kind == "tar":
        checkpoint.errors.append(_tar(path, checkpoint))
    return checkpoint


def _kind(head: bytes, path: str) -> str | None:
    if head.startswith(_GZIP):
        return "gzip"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(_HDF5) or _hdf5_signature_after_user_block(path):
        return "hdf5"
    if _is_tar_header(_first_block(path, head)):
        return "tar"
    return None


def _hdf5_signature_after_user_block(path: str) -> bool:
    with open(path, "rb") as f:
        for offset in _HDF5_OFFSETS[1:]:
            f.seek(offset)
            if f.read(8) == _HDF5:
                return True
    return False


def _hdf5(path: str) -> Problem:
    with open(path, "rb") as f:
        sample = f.read(1 << 16)
    if any(mark in sample for mark in _KERAS_MARKS):
        return Problem("not-a-checkpoint", "a Keras model or weights file (HDF5 `.h5`), not a PyTorch checkpoint: load "
                       "it with `keras.models.load_model(path)` (a whole model) or `model.load_weights(path)`, or read "
                       "its arrays with `h5py.File(path)`; torch.load cannot read HDF5")
    return Problem("not-a-checkpoint", "an HDF5 file, not a PyTorch checkpoint: read its datasets with "
                   "`h5py.File(path)` (then `torch.from_numpy`); if it came from Keras, `keras.models.load_model(path)`")


def _gzip(path: str, checkpoint: Checkpoint) -> Problem:
    inner = _inflate_start(path)
    name = os.path.basename(path)
    if inner is None:
        return Problem("corrupt", "a gzip file whose start cannot be inflated: it is corrupt or truncated")
    if _is_tar_header(inner[:512]):
        checkpoint.format = "tar.gz"
        return Problem("not-a-checkpoint", f"a gzip-compressed tar archive, not a checkpoint: extract it (`tar xzf "
                       f"{name}`) and open the checkpoint inside")
    what = _what_starts(inner)
    return Problem("not-a-checkpoint", f"a gzip-compressed file ({what}): torch.load cannot read compressed files — "
                   f"decompress it first (`gunzip -k {name}`, or `gzip.open(path).read()` in Python) and open the result")


def _inflate_start(path: str) -> bytes | None:
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw, 1024)
    except zlib.error:
        return None


def _what_starts(data: bytes) -> str:
    if data.startswith(b"PK\x03\x04"):
        return "inside: a zip — a torch checkpoint, most likely"
    if data.startswith(b"\x80\x02\x8a\x0a"):
        return "inside: a legacy torch checkpoint"
    if data[:1] == b"\x80":
        return "inside: a pickle"
    if len(data) > 9 and data[8:9] == b"{":
        return "inside: a safetensors file, most likely"
    return "of something pthscope does not recognise"


def _first_block(path: str, head: bytes) -> bytes:
    if len(head) >= 512:
        return head[:512]
    with open(path, "rb") as f:
        return f.read(512)


def _is_tar_header(block: bytes) -> bool:
    """`ustar` at byte 257 (POSIX and GNU tar), or an old header whose checksum adds up."""
    if len(block) < 512 or block[:1] == b"\0":
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:512])


def _tar(path: str, checkpoint: Checkpoint) -> Problem:
    names: list[str] = []
    try:
        with tarfile.open(path, "r:") as archive:
            while len(names) < _TAR_MEMBERS_WALKED:
                member = archive.next()
                if member is None:
                    break
                names.append(member.name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        if not names:
            return Problem("corrupt", f"a tar archive whose first header cannot be read ({exc})")
    more = "+" if len(names) >= _TAR_MEMBERS_WALKED else ""
    checkpoint.metadata["members"] = f"{len(names):,}{more}"
    if "pickle" in names and set(names) <= _TORCH_TAR_MEMBERS:
        checkpoint.format = "torch-tar"
        # With `storages` it would be read by tar_checkpoint: torch.load extracts that member first.
        return Problem("corrupt", "torch's tar format (torch before 0.4; members " + ", ".join(names) + ") without "
                       "its `storages` member: torch.load fails on it before reading any pickle")
    shown = ", ".join(quote_text(n, 60) for n in names[:5]) + (", …" if len(names) > 5 else "")
    nemo = " (a NeMo .nemo archive: the weights are its model_weights.ckpt)" if any(
        n.endswith("model_weights.ckpt") for n in names) else ""
    return Problem("not-a-checkpoint", f"a tar archive of {len(names):,}{more} members ({shown}){nemo}, not a checkpoint: "
                   f"extract it (`tar xf {os.path.basename(path)}`) and open the checkpoint inside")


def probe_other_zip(head: bytes, path: str) -> bool:
    """A zip whose first member is no torch checkpoint's (data.pkl) or numpy's, and whose
    directory names no torch format."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    first = first_member_name(path)
    if first is None or first.endswith(("data.pkl", ".npy")):
        return False
    try:
        with open(path, "rb") as f:
            names = [m.name for m in read_directory(f, file_size_of(f))]
    except (ZipError, OSError):
        return False
    return zip_format_of(names) == "zip"


def read_other_zip(path: str, limits: Limits) -> Checkpoint:
    with open(path, "rb") as f:
        names = [m.name for m in read_directory(f, file_size_of(f), max_members=limits.max_nodes)]
    checkpoint = Checkpoint(file=path, format="zip")
    checkpoint.metadata["members"] = f"{len(names):,}"
    name = os.path.basename(path)
    if "config.json" in names and any(n.startswith("model.weights.") for n in names):
        checkpoint.format = "keras"
        checkpoint.errors.append(Problem(
            "not-a-checkpoint", "a Keras 3 model (.keras: config.json and model.weights), not a PyTorch checkpoint: "
            "load it with `keras.saving.load_model(path)`; torch.load cannot read it"))
    elif "MAR-INF/MANIFEST.json" in names:
        checkpoint.format = "torchserve-mar"
        checkpoint.errors.append(Problem(
            "not-a-checkpoint", f"a TorchServe model archive (.mar): the checkpoint is one of its files — extract it "
            f"(`unzip {name}`) and open the serialized model inside"))
    else:
        shown = ", ".join(quote_text(n, 60) for n in names[:5]) + (", …" if len(names) > 5 else "")
        checkpoint.errors.append(Problem(
            "not-a-checkpoint", f"a zip archive of {len(names):,} files ({shown}), not a torch checkpoint (no data.pkl): "
            f"extract it (`unzip {name}`) and open the checkpoint inside"))
    return checkpoint
