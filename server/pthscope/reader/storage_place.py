"""Where a tensor's bytes are: which file, read as which format, from which byte.

For a checkpoint of one file that is the file itself and the storage's offset the reader
recorded. A tensor of a multi-file checkpoint (`TensorInfo.part`) is in its part's file, read as
that file's format, with the part's size and mtime as they were when it was read. A
torch.distributed chunk is a torch zip inside a `.distcp` file: its own small directory and
pickle are read now (distributed_checkpoint.locate_chunk) for its storage member and its view
(stride, offset), so nothing but that chunk is read. A tensor whose bytes no one storage holds
(a sharded tensor's global view) says why in `unreadable`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import DEFAULT_LIMITS
from .model import Checkpoint, TensorInfo, contiguous_stride

# Formats whose storages are laid out as another's: a TorchScript archive is a torch zip.
_BYTES_FORMAT = {"torchscript": "torch-zip"}


@dataclass(frozen=True)
class StoragePlace:
    file: str
    size: int  # of the file when it was read
    mtime_ns: int
    format: str
    byteorder: str
    storage_start: int | None  # as values.stats reads it for `format`; None: missing
    storage_nbytes: int | None
    stride: list[int]
    storage_offset: int
    unreadable: str = ""  # why the values cannot be read, when they cannot


def storage_place(checkpoint: Checkpoint, tensor: TensorInfo, size: int, mtime_ns: int) -> StoragePlace:
    """`size` and `mtime_ns`: of `checkpoint.file` when it was read."""
    stride = tensor.stride or contiguous_stride(tensor.shape)
    start = checkpoint.storage_offsets.get(tensor.storage)
    if tensor.part is None:
        if checkpoint.parts and tensor.sharding is not None and tensor.sharding.chunks:
            return StoragePlace(checkpoint.file, size, mtime_ns, checkpoint.format, "little", None, None, stride, 0,
                                unreadable=_sharded(tensor))
        return StoragePlace(checkpoint.file, size, mtime_ns, _BYTES_FORMAT.get(checkpoint.format, checkpoint.format),
                            checkpoint.metadata.get("byteorder", "little"), start, tensor.storage_nbytes, stride,
                            tensor.storage_offset)
    part = checkpoint.parts[tensor.part]
    if part.format != "torch-distributed":
        return StoragePlace(part.file, part.size, part.mtime_ns, _BYTES_FORMAT.get(part.format, part.format),
                            part.byteorder, start,
                            tensor.storage_nbytes, stride, tensor.storage_offset)
    return _distributed_chunk(part.file, part.size, part.mtime_ns, tensor, stride)


def _distributed_chunk(file: str, size: int, mtime_ns: int, tensor: TensorInfo, stride: list[int]) -> StoragePlace:
    from .distributed_checkpoint import locate_chunk

    chunk = tensor.sharding.chunks[0] if tensor.sharding and tensor.sharding.chunks else None
    if chunk is None or chunk.byte_offset is None or chunk.byte_length is None:
        return StoragePlace(file, size, mtime_ns, "torch-zip", "little", None, None, stride, 0,
                            unreadable=f"{tensor.key} has no stored chunk")
    try:
        record, header = locate_chunk(file, chunk.byte_offset, chunk.byte_length, DEFAULT_LIMITS)
    except (ValueError, OSError) as exc:
        return StoragePlace(file, size, mtime_ns, "torch-zip", "little", None, None, stride, 0,
                            unreadable=f"the values of {tensor.key} cannot be read: {exc}")
    if list(record.shape) != tensor.shape or record.dtype != tensor.dtype:
        return StoragePlace(file, size, mtime_ns, "torch-zip", "little", None, None, stride, 0, unreadable=(
            f"the chunk of {tensor.key} holds a {record.shape} {record.dtype} tensor, but the metadata says "
            f"{tensor.shape} {tensor.dtype}: the checkpoint is corrupt"))
    return StoragePlace(file, size, mtime_ns, "torch-zip", "little", header, record.storage_nbytes,
                        list(record.stride), record.storage_offset)


def _sharded(tensor: TensorInfo) -> str:
    chunks = tensor.sharding.chunks if tensor.sharding else []
    return (f"{tensor.key} is sharded: its {len(chunks)} chunks are in different files (or ranks), and statistics "
            "are computed from one stored tensor; open a rank's own file for the statistics of its piece")
