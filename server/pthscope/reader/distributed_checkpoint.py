"""torch.distributed.checkpoint (DCP) folders: a `.metadata` pickle plus `__R_N.distcp` data files.

`.metadata` is one `Metadata` dataclass, which torch loads with a plain, unrestricted
`pickle.load` (`FileSystemReader.read_metadata`); here it goes through the restricted unpickler,
whose DataRecords stand for the reviewed classes (global_risk.DATA_RECORD_CLASSES, paths of torch
1.13 to 2.13), and every global it names is in the verdict. It holds:

* `state_dict_metadata`: each flattened key (`model.layer.weight`, `optim.state.0.exp_avg`)
  → `TensorStorageMetadata` (dtype, global size, chunks: offsets and sizes) or
  `BytesStorageMetadata` (any other object, saved with torch.save);
* `planner_data`: each flattened key → the path in the nested state dict it came from
  (`("optim", "state", "0", "exp_avg")`), so the tree is the dict that was saved;
* `storage_data`: (key, chunk offset) → `_StorageInfo` (data file, byte offset, length).

Each chunk and each bytes entry is itself a small torch zip at its offset in a `.distcp` file.
`dcp.load` reads bytes entries with `torch.load(weights_only=False)`, so their pickles are read
here (restricted, like any pickle) for their values and their globals. Tensor chunks are read
only on demand: `locate_chunk` finds a chunk's storage for the statistics, from that chunk's own
directory and pickle. Nothing is imported from torch.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, compress, groupby, repeat
from operator import add, attrgetter, itemgetter, methodcaller, mul
from typing import Any, BinaryIO

from .dtypes import ITEMSIZE
from .file_slice import FileSlice
from .limits import Limits
from .model import Checkpoint, ChunkInfo, PartInfo, PartOf, Problem, ShardingInfo, contiguous_stride
from .pickled import PickleError, fill_checkpoint, report_globals, unpickle
from .safe_repr import safe_repr
from .unpickler import (
    DataRecord,
    DtypeRef,
    StorageRef,
    TensorRecord,
    UnpickleLog,
    check_record_state,
    storage_type_dtype,
)
from .zip_directory import ZipError, read_directory, read_member

FORMAT = "torch-distributed"
METADATA = ".metadata"
_RANK_METADATA = re.compile(r"__(\d+)\.metadata")
_DATA_FILE = re.compile(r"__(\d+)_\d+\.distcp")
_MAX_BYTES_ENTRIES = 10_000  # bytes entries read for their values and globals; the rest is counted
_MAX_BYTES_ENTRY_SIZE = 64 << 20


class MetadataError(Exception):
    """The `.metadata` is not what torch.distributed.checkpoint writes."""


def probe_distributed_metadata(head: bytes, path: str) -> bool:
    name = os.path.basename(path)
    return head[:1] == b"\x80" and (name == METADATA or _RANK_METADATA.fullmatch(name) is not None)


def is_distributed_folder(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, METADATA))


def distributed_folder_of(path: str) -> str | None:
    """The DCP folder a `.distcp` (or any) file lies in, if its `.metadata` names the file."""
    folder = os.path.dirname(path)
    metadata = os.path.join(folder, METADATA)
    if os.path.basename(path) == METADATA or not os.path.isfile(metadata):
        return None
    try:
        with open(metadata, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return None
    named = os.path.basename(path).encode("utf-8", "surrogateescape")
    return folder if b"torch.distributed" in head and named in head else None


def read_distcp_file(path: str, folder: str, limits: Limits) -> Checkpoint:
    """A `.distcp` file opened alone: its chunks mean nothing without the folder's `.metadata`."""
    checkpoint = Checkpoint(file=path, format=FORMAT)
    files = sorted(n for n in os.listdir(folder) if n.endswith(".distcp"))
    name = os.path.basename(path)
    part = files.index(name) + 1 if name in files else 1
    checkpoint.part_of = PartOf(folder, FORMAT, part, max(len(files), part))
    checkpoint.errors.append(Problem(
        "unsupported", f"{name} is data file {part} of {len(files)} of the torch.distributed checkpoint in "
        f"{folder}: its tensors are described by the folder's .metadata — open the folder (what "
        "torch.distributed.checkpoint.load reads)", where=name))
    return checkpoint


def read_distributed_checkpoint(path: str, limits: Limits) -> Checkpoint:
    """The checkpoint of a DCP folder (or its `.metadata`): the saved state dict's tree, each
    tensor with its global shape, dtype and chunks."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    checkpoint = Checkpoint(file=path, format=FORMAT)
    metadata_name = METADATA if os.path.isdir(path) else os.path.basename(path)
    log = UnpickleLog()
    try:
        metadata = _read_metadata(os.path.join(folder, metadata_name), log, limits)
    except PickleError as exc:
        checkpoint.errors.append(Problem(exc.kind, str(exc), where=exc.where))
        return report_globals(checkpoint, log)
    except (MetadataError, ValueError) as exc:
        checkpoint.errors.append(Problem("corrupt", f"{metadata_name} is not torch.distributed.checkpoint metadata: {exc}",
                                         where=metadata_name))
        return report_globals(checkpoint, log)
    except OSError as exc:
        checkpoint.errors.append(Problem("unreadable", f"cannot read {metadata_name}: {exc.strerror or exc}",
                                         where=metadata_name))
        return checkpoint
    reader = _Entries(folder, checkpoint, log, limits)
    try:
        _describe(metadata, checkpoint)
        root = reader.build(metadata)
    except MetadataError as exc:
        checkpoint.errors.append(Problem("corrupt", f"{metadata_name}: {exc}", where=metadata_name))
        return report_globals(checkpoint, log)
    del metadata  # its records, before the tree is built from what they said
    fill_checkpoint(checkpoint, root, log, limits)
    reader.attach(checkpoint)
    return checkpoint


def _read_metadata(path: str, log: UnpickleLog, limits: Limits) -> dict[str, Any]:
    size = os.path.getsize(path)
    if size > limits.max_pickle_bytes:
        raise MetadataError(f"it is {size:,} bytes, over the {limits.max_pickle_bytes:,}-byte pickle limit")
    with open(path, "rb") as f:
        root = unpickle(f, os.path.basename(path), _no_persistent_ids, log, limits, torch_loader=False)
    if not _is_record(root, "Metadata"):
        raise MetadataError(f"its pickle holds {_what(root)}, not a Metadata object")
    state = _fields(root)
    if not isinstance(state.get("state_dict_metadata"), dict):
        raise MetadataError("its Metadata has no state_dict_metadata dict")
    return state


def _no_persistent_ids(pid: Any) -> Any:
    raise ValueError(f"persistent id {safe_repr(pid)}: torch reads .metadata with pickle.load, which has none")


def _describe(metadata: dict[str, Any], checkpoint: Checkpoint) -> None:
    version = metadata.get("version")
    if type(version) is str:
        checkpoint.metadata["dcp version"] = version[:40]
    storage_meta = metadata.get("storage_meta")
    if _is_record(storage_meta, "StorageMeta"):
        save_id = _fields(storage_meta).get("save_id")
        if type(save_id) is str:
            checkpoint.metadata["save id"] = save_id[:80]
    checkpoint.metadata["entries"] = f"{len(metadata['state_dict_metadata']):,}"


class _Entries:
    """Turns the metadata's entries into an object graph of inert records for the tree builder:
    nested dicts and lists as `planner_data` says, tensor records for tensors (one storage per
    tensor, in its chunk's data file when one chunk holds it all), bytes entries' values."""

    def __init__(self, folder: str, checkpoint: Checkpoint, log: UnpickleLog, limits: Limits) -> None:
        self.folder, self.checkpoint, self.log, self.limits = folder, checkpoint, log, limits
        self.parts: dict[str, int] = {}
        self.sharding: dict[str, tuple[int | None, ShardingInfo]] = {}  # storage key → (part, sharding)
        self.ranks: dict[int, int | None] = {}  # part → the rank that wrote it
        self.strides: dict[tuple[int, ...], list[int]] = {}  # one stride list per shape
        self.bytes_read = 0
        self.bytes_skipped = 0

    def build(self, metadata: dict[str, Any]) -> dict[Any, Any]:
        """The saved state dict, as records. It takes the metadata's entries out as it goes: their
        records are freed while the tree's are made, which reuse their memory."""
        storage = self._storage_index(metadata.get("storage_data"))
        metadata["storage_data"] = None  # its keys' records, no longer needed
        planner = metadata.get("planner_data")
        paths: dict[Any, Any] = planner if isinstance(planner, dict) else {}
        root: dict[Any, Any] = {}
        entries = metadata["state_dict_metadata"]
        usual = self._usual_tensors(entries, storage)
        if usual is not None and len(usual) == len(entries):  # every entry a usual tensor (a model's 100,000): batch by batch
            del storage  # their storage entries' fields are in the columns now
            for start in range(0, len(usual), _BATCH):
                made = self._make_usual(usual, start, start + _BATCH)
                batch = usual.keys[start:start + _BATCH]
                entries.update(zip(batch, repeat(None)))
                self._insert_all(root, paths, batch, made)
            return _as_lists(root)
        if usual is not None:  # their storage entries' fields are in the columns now
            deque(map(storage.pop, zip(usual.keys, usual.offsets, strict=True)), maxlen=0)
        usual_keys = set(usual.keys if usual is not None else ())
        made = {}
        for key in list(entries):
            entry = entries[key]
            if type(key) is not str:
                raise MetadataError(f"an entry's key is {_what(key)}, not a string")
            if key in usual_keys and usual is not None:
                value: Any = made.pop(key, None)
                if value is None:  # the next batch of usual tensors, from here on
                    start = len(usual) - len(usual_keys)
                    made = self._make_usual(usual, start, start + _BATCH)
                    value = made.pop(key)
                usual_keys.discard(key)
            elif _is_record(entry, "TensorStorageMetadata"):
                value = self._tensor(key, entry, storage)
            elif _is_record(entry, "BytesStorageMetadata"):
                value = self._bytes(key, storage.get((key, None)))
            else:
                raise MetadataError(f"entry {safe_repr(key)} is {_what(entry)}, neither tensor nor bytes metadata")
            entries[key] = None
            planned = paths.get(key)
            if type(planned) is tuple and len(planned) == 2 and type(planned[0]) is str and type(planned[1]) is str:
                parent = root.get(planned[0])  # a model's or an optimizer's usual entry: what _insert does
                if not isinstance(parent, dict):
                    parent = root[planned[0]] = {}
                parent[planned[1]] = value
            else:
                _insert(root, _path(key, planned), value)
        if self.bytes_skipped:
            self.checkpoint.warnings.append(Problem(
                "limit", f"{self.bytes_skipped:,} bytes entries (objects saved with torch.save) were not read: over "
                f"{_MAX_BYTES_ENTRIES:,}; their globals are not in the verdict, and dcp.load runs them with "
                "torch.load(weights_only=False)"))
        return _as_lists(root)

    @staticmethod
    def _insert_all(root: dict[Any, Any], paths: dict[Any, Any], keys: list[str], values: dict[str, Any]) -> None:
        """Insert each key's value where the planner put it, as `build`'s loop does one by one; a
        run of the usual two-part paths (`("model", key)`) with one parent in one `update`."""
        planned: list[Any] = list(map(paths.get, keys))
        if (set(map(type, planned)) == _TUPLE_ONLY and set(map(len, planned)) == _TWO
                and set(map(type, chain.from_iterable(planned))) == _STR_ONLY):
            in_order = map(values.__getitem__, keys)
            for head, run in groupby(planned, itemgetter(0)):
                parent = root.get(head)
                if not isinstance(parent, dict):
                    parent = root[head] = {}
                parent.update(zip(map(itemgetter(1), run), in_order, strict=False))  # this run's values
            return
        for key, path in zip(keys, planned, strict=True):
            _insert(root, _path(key, path), values[key])

    def _usual_tensors(self, entries: dict[Any, Any], storage: _StorageIndex) -> _UsualTensors | None:
        """The usual tensor entries — each one chunk holding the whole tensor, in a data file of
        the folder that holds its bytes — checked column by column (C calls: 100,000 entries in a
        big model), their data files added as `_part` would; None when any entry is not usual or
        any check fails: then `_tensor` reads each one and names what is wrong. `_make_usual`
        makes their records, what `_tensor` would make."""
        kinds = _names_of(entries.values())
        if not entries or set(map(type, entries)) != _STR_ONLY or not set(kinds) <= _ENTRY_KINDS:
            return None
        if _BYTES_ENTRY in kinds:
            keys = list(compress(entries, map(_TENSOR_ENTRY.__eq__, kinds)))
            records = list(map(entries.__getitem__, keys))
        else:  # tensors only (a model's folder)
            keys, records = list(entries), list(entries.values())
        if not keys:
            return None
        try:
            if set(map(len, records)) != _ONE:
                return None
            states = list(map(itemgetter(0), records))
            if set(map(type, states)) != _DICT_ONLY:
                return None
            properties = list(map(itemgetter("properties"), states))
            shapes = list(map(itemgetter("size"), states))
            chunk_lists = list(map(itemgetter("chunks"), states))
            if (len(set(map(type, properties))) != 1 or _name_of(properties[0]) != "TensorProperties"
                    or set(map(len, properties)) != _ONE):
                return None
            property_states = list(map(itemgetter(0), properties))
            if set(map(type, property_states)) != _TUPLE_ONLY or min(map(len, property_states)) < 1:
                return None
            dtype_refs = list(map(itemgetter(0), property_states))
            if set(map(type, dtype_refs)) != {DtypeRef}:
                return None
            if (set(map(type, chunk_lists)) != _LIST_ONLY or set(map(len, chunk_lists)) != _ONE):
                return None
            chunks = list(map(itemgetter(0), chunk_lists))
            if (len(set(map(type, chunks))) != 1 or _name_of(chunks[0]) != "ChunkStorageMetadata"
                    or set(map(len, chunks)) != _ONE):
                return None
            chunk_states = list(map(itemgetter(0), chunks))
            if set(map(type, chunk_states)) != _DICT_ONLY:
                return None
            offsets = list(map(itemgetter("offsets"), chunk_states))
            sizes = list(map(itemgetter("sizes"), chunk_states))
            if (set(map(type, shapes)) | set(map(type, offsets)) | set(map(type, sizes))) != _TUPLE_ONLY:
                return None
            dims = list(chain(chain.from_iterable(shapes), chain.from_iterable(offsets)))
            if dims and (set(map(type, dims)) != _INT_ONLY or min(dims) < 0 or max(dims) >= 1 << 63):
                return None
            if sizes != shapes:  # one chunk, the whole tensor (and its sizes checked with it)
                return None
            infos: list[Any] = storage.infos_of(keys, offsets)
            if None in infos or set(map(type, infos)) != _DICT_ONLY:
                return None
            relatives = list(map(itemgetter("relative_path"), infos))
            byte_offsets = list(map(itemgetter("offset"), infos))
            byte_lengths = list(map(itemgetter("length"), infos))
            if (set(map(type, relatives)) != _STR_ONLY or (set(map(type, byte_offsets)) | set(map(type, byte_lengths)))
                    != _INT_ONLY or min(byte_offsets) < 0 or min(byte_lengths) < 0
                    or any(map(_GET_TRANSFORMS, infos))):
                return None
        except (TypeError, KeyError):  # a field missing, unhashable or unorderable: `_tensor` says what
            return None
        if not self._add_parts_of(entries, kinds, storage, relatives):
            return None
        part_of = list(map(self.parts.__getitem__, relatives))
        part_sizes = [part.size for part in self.checkpoint.parts]
        if max(map(add, byte_offsets, byte_lengths)) > min(map(part_sizes.__getitem__, set(part_of))):
            return None  # a chunk past the end of its file, maybe: `_tensor` says which
        return _UsualTensors(keys, list(map(_DTYPE_NAME, dtype_refs)), shapes, offsets, part_of, byte_offsets,
                             byte_lengths)

    def _make_usual(self, usual: _UsualTensors, start: int, stop: int) -> dict[str, TensorRecord]:
        """The records of usual tensor entries `start` to `stop` (`_usual_tensors` checked them and
        kept the fields they need), made in C calls."""
        keys, dtypes, shapes, offsets = (usual.keys[start:stop], usual.dtypes[start:stop], usual.shapes[start:stop],
                                         usual.offsets[start:stop])
        part_of, byte_offsets = usual.part_of[start:stop], usual.byte_offsets[start:stop]
        shape_lists = list(map(list, shapes))
        # A chunk's sizes are its tensor's shape (one list, never changed); its offsets (zeros) one
        # list per distinct value: 100,000 entries make two lists less each.
        offset_lists = {offset: list(offset) for offset in set(offsets)}
        infos_made = list(map(ChunkInfo, map(offset_lists.__getitem__, offsets), shape_lists, part_of,
                              map(self.ranks.__getitem__, part_of), byte_offsets, usual.byte_lengths[start:stop]))
        self.sharding.update(zip(keys, zip(part_of, map(ShardingInfo, repeat("DCP"), shape_lists, repeat(False),
                                                         [[] for _ in keys], repeat(""), map(_one_list, infos_made)),
                                           strict=False), strict=True))
        self.checkpoint.storage_offsets.update(zip(keys, byte_offsets, strict=True))
        strides = self.strides
        for shape in set(shapes):
            if shape not in strides:
                strides[shape] = contiguous_stride(list(shape))
        nbytes = list(map(mul, map(math.prod, shapes), map(ITEMSIZE.get, dtypes, repeat(1))))
        new_record = tuple.__new__
        # `inside` True: each view is its whole storage (contiguous, offset 0, numel × itemsize bytes).
        return dict(zip(keys, map(new_record, repeat(TensorRecord), zip(
            shape_lists, map(strides.__getitem__, shapes), repeat(0), dtypes, repeat(False), repeat("tensor"),
            repeat("cpu"), keys, nbytes, repeat("strided"), repeat(True), strict=False)), strict=True))

    def _add_parts_of(self, entries: dict[Any, Any], kinds: list[str], storage: _StorageIndex,
                      relatives: list[str]) -> bool:
        """Add the data files the usual tensors name, in the order `_part` would (first named, by
        tensor or bytes entry); False, with nothing added, unless every one is a file of the folder.
        `kinds`: each entry's record class name."""
        named = dict.fromkeys(relatives)
        order = [info.get("relative_path") for key in compress(entries, map(_BYTES_ENTRY.__eq__, kinds))
                 if type(info := storage.get((key, None))) is dict]
        if order:  # bytes entries' files too, where they come first
            named = {}
            bytes_at = iter(order)
            for (key, entry), kind in zip(entries.items(), kinds, strict=True):
                if kind == _BYTES_ENTRY:
                    relative = next(bytes_at, None) if type(storage.get((key, None))) is dict else None
                else:
                    relative = storage[(key, entry[0]["chunks"][0][0]["offsets"])]["relative_path"]
                if type(relative) is str:
                    named.setdefault(relative, None)
        for relative in named:
            if relative in self.parts:
                continue
            path = os.path.normpath(os.path.join(self.folder, relative))
            inside = os.path.relpath(path, self.folder)
            if (os.path.isabs(relative) or inside == os.pardir or inside.startswith(os.pardir + os.sep) or inside == "."
                    or not os.path.isfile(path)):
                return False
        for relative in named:
            if relative not in self.parts:
                index = self.parts[relative] = self._add_part(relative)
                self.ranks[index] = self._rank(index)
        return True

    def attach(self, checkpoint: Checkpoint) -> None:
        """Give each tensor its part and chunks (the tree builder made them from the records)."""
        tensors = checkpoint.tensors
        found = list(map(self.sharding.get, map(_STORAGE, tensors)))
        if tensors and found.count(None) == 0:  # every tensor an entry's (100,000): column by column
            parts, shardings = zip(*found, strict=True)
            deque(map(setattr, tensors, repeat("part"), parts), maxlen=0)
            deque(map(setattr, tensors, repeat("sharding"), shardings), maxlen=0)
            split = [t for t, part in zip(tensors, parts, strict=True) if part is None] if None in parts else []
        else:
            split = []
            for tensor, place in zip(tensors, found, strict=True):
                if place is not None:
                    tensor.part, tensor.sharding = place
                    if tensor.part is None:
                        split.append(tensor)
        for tensor in split:  # in several chunks: no one storage holds it
            tensor.storage = ""
        for part in checkpoint.parts:
            part.tensors = 0
        for part, count in Counter(map(_PART, tensors)).items():
            if part is not None:
                checkpoint.parts[part].tensors = count

    def _storage_index(self, data: Any) -> _StorageIndex:
        if not isinstance(data, dict):
            raise MetadataError("its Metadata has no storage_data (which file holds which chunk)")
        usual = _usual_storage_columns(data)
        if usual is not None:
            return _StorageIndex(usual)
        index: dict[tuple[str, tuple[int, ...] | None], dict[str, Any]] = {}
        for where, info in data.items():
            if _name_of(where) != "MetadataIndex" or _name_of(info) != "_StorageInfo":
                raise MetadataError(f"storage_data maps {_what(where)} to {_what(info)}, not MetadataIndex to _StorageInfo")
            at = _fields(where)
            fqn, offset = at.get("fqn"), at.get("offset")
            if type(fqn) is not str:
                raise MetadataError(f"a storage_data key names {_what(fqn)}, not an entry")
            index[(fqn, offset if type(offset) is tuple else None)] = _fields(info)
        return _StorageIndex(None, index)

    def _part(self, info: dict[str, Any], key: str) -> tuple[int, int, int]:
        """(part index, byte offset, byte length) of a chunk's `_StorageInfo`."""
        relative, offset, length = info.get("relative_path"), info.get("offset"), info.get("length")
        if type(relative) is not str or type(offset) is not int or type(length) is not int or offset < 0 or length < 0:
            raise MetadataError(f"the storage of {safe_repr(key)} is not (file, offset, length): "
                                f"{safe_repr((relative, offset, length))}")
        index = self.parts.get(relative)
        if index is None:
            index = self.parts[relative] = self._add_part(relative)
            self.ranks[index] = self._rank(index)
        part = self.checkpoint.parts[index]
        if offset + length > part.size and part.size:
            self.checkpoint.errors.append(Problem(
                "truncated", f"{safe_repr(key)} lies at bytes {offset:,}–{offset + length:,} of {relative}, which has "
                f"{part.size:,}: the file is truncated", where=relative))
        transforms = info.get("transform_descriptors")
        if transforms:
            self.checkpoint.metadata["transforms"] = safe_repr(transforms)[:80]
        return index, offset, length

    def _rank(self, part: int) -> int | None:
        """The rank that wrote a data file, from FileSystemWriter's name for it: `__R_N.distcp`."""
        found = _DATA_FILE.fullmatch(os.path.basename(self.checkpoint.parts[part].file))
        return int(found[1]) if found else None

    def _add_part(self, relative: str) -> int:
        path = os.path.normpath(os.path.join(self.folder, relative))
        inside = os.path.relpath(path, self.folder)
        if os.path.isabs(relative) or inside == os.pardir or inside.startswith(os.pardir + os.sep) or inside == ".":
            raise MetadataError(f"a data file {safe_repr(relative)} lies outside the checkpoint folder")
        part = PartInfo(path, FORMAT)
        if os.path.isfile(path):  # a regular file: a pipe or a device is never opened
            st = os.stat(path)
            part.size, part.mtime_ns = st.st_size, st.st_mtime_ns
        else:
            self.checkpoint.errors.append(Problem(
                "missing", f"data file {relative} is missing: its tensors cannot be loaded", where=relative))
        self.checkpoint.parts.append(part)
        return len(self.checkpoint.parts) - 1

    def _tensor(self, key: str, entry: DataRecord, storage: _StorageIndex) -> TensorRecord:
        # 100,000 of these for a large model: each check is a C call or two, messages are made
        # only for a file that fails one.
        fields = entry[0] if len(entry) == 1 else None
        if type(fields) is not dict:
            fields = _fields(entry)
        properties: Any = fields.get("properties")
        # The usual TensorProperties: one BUILD state, a tuple starting with the dtype.
        state = properties[0] if _name_of(properties) == "TensorProperties" and len(properties) == 1 else None
        dtype = state[0].name if type(state) is tuple and state and type(state[0]) is DtypeRef else _dtype(
            _state(properties) if _name_of(properties) == "TensorProperties" else None)
        shape = fields.get("size")
        if not (type(shape) is tuple and _usual_sizes(shape)):
            shape = _sizes(shape, "the size", key)
        chunks = fields.get("chunks")
        if type(chunks) is not list:
            raise MetadataError(f"{safe_repr(key)} has no chunk list")
        infos: list[ChunkInfo] = []
        for chunk in chunks:
            if _name_of(chunk) != "ChunkStorageMetadata":
                raise MetadataError(f"a chunk of {safe_repr(key)} is {_what(chunk)}")
            at = chunk[0] if len(chunk) == 1 else None
            if type(at) is not dict:
                at = _fields(chunk)
            offsets, sizes = at.get("offsets"), at.get("sizes")
            if not (type(offsets) is tuple and type(sizes) is tuple and _usual_sizes(offsets) and _usual_sizes(sizes)):
                offsets = _sizes(offsets, "a chunk offset", key)
                sizes = _sizes(sizes, "a chunk size", key)
            info = storage.get((key, offsets))
            if info is None:
                self.checkpoint.errors.append(Problem(
                    "missing", f"chunk {list(offsets)} of {safe_repr(key)} has no storage entry: it was never written",
                    where=key))
                infos.append(ChunkInfo(list(offsets), list(sizes)))
                continue
            part, byte_offset, byte_length = self._part(info, key)
            infos.append(ChunkInfo(list(offsets), list(sizes), part, self.ranks[part], byte_offset, byte_length))
        whole = len(infos) == 1 and sizes == shape and infos[0].part is not None
        stride = self.strides.get(shape)
        if stride is None:
            stride = self.strides[shape] = contiguous_stride(list(shape))
        shape_list = list(shape)
        self.sharding[key] = (infos[0].part if whole else None, ShardingInfo("DCP", shape_list, False, chunks=infos))
        if whole:
            self.checkpoint.storage_offsets[key] = infos[0].byte_offset or 0
        nbytes = math.prod(shape) * ITEMSIZE.get(dtype, 1) if whole else None
        # `inside` when whole: the view is its whole storage (contiguous, offset 0, numel × itemsize bytes).
        return tuple.__new__(TensorRecord, (shape_list, stride, 0, dtype, False, "tensor", "cpu", key, nbytes, "strided",
                                            whole))

    def _bytes(self, key: str, info: dict[str, Any] | None) -> Any:
        """A bytes entry's object, as torch.save wrote it into the data file (read restricted)."""
        if info is None:
            self.checkpoint.errors.append(Problem("missing", f"bytes entry {safe_repr(key)} has no storage entry",
                                                  where=key))
            return BytesEntry("<never written>")
        part, offset, length = self._part(info, key)
        if self.bytes_read >= _MAX_BYTES_ENTRIES or length > _MAX_BYTES_ENTRY_SIZE:
            self.bytes_skipped += 1
            return BytesEntry(f"<{length:,} bytes, not read>")
        self.bytes_read += 1
        path = self.checkpoint.parts[part].file
        if not self.checkpoint.parts[part].size:
            return BytesEntry("<not read: its data file is missing>")
        try:
            with open(path, "rb") as f:
                return read_embedded_pickle(f, offset, length, f"{os.path.basename(path)} byte {offset} ({key})",
                                            self.log, self.limits)[0]
        except (PickleError, ZipError, OSError) as exc:
            where = getattr(exc, "where", key)
            self.checkpoint.warnings.append(Problem("corrupt", f"bytes entry {safe_repr(key)} cannot be read: {exc}",
                                                    where=where))
            return BytesEntry("<unreadable>")


@dataclass(slots=True)
class _UsualTensors:
    """The usual tensor entries' keys and, for each, the fields its record is made of."""

    keys: list[str]
    dtypes: list[str]
    shapes: list[tuple[int, ...]]
    offsets: list[tuple[int, ...]]  # of its one chunk
    part_of: list[int]
    byte_offsets: list[int]
    byte_lengths: list[int]

    def __len__(self) -> int:
        return len(self.keys)


class BytesEntry(str):
    """What stands in the tree for a bytes entry that was not read."""

    __slots__ = ()


def read_embedded_pickle(f: BinaryIO, offset: int, length: int, where: str, log: UnpickleLog,
                         limits: Limits) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The object in a torch zip stored at bytes [offset, offset + length) of `f` (a DCP chunk or
    bytes entry), read like torch.load reads it; and each of its storages' (member header offset
    in `f`, size)."""
    archive = FileSlice(f, offset, length)
    directory = read_directory(archive, length)  # type: ignore[arg-type]
    if not directory.entries:
        raise ZipError("the embedded zip is empty", where)
    first = directory.entries[0].raw
    prefix = first[:first.find(b"/") + 1]
    main = directory.get(prefix + b"data.pkl")
    if main is None or main.size > limits.max_pickle_bytes:
        raise ZipError("the embedded zip has no data.pkl (or one over the pickle limit)", where)
    storages: dict[str, tuple[int, int]] = {}

    def persistent_load(pid: Any) -> StorageRef:
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage" and type(pid[2]) is str):
            raise ValueError(f"persistent id {safe_repr(pid)} is not ('storage', type, key, location, numel)")
        _, storage_type, storage_key, location, numel = pid
        member = directory.get(prefix + b"data/" + storage_key.encode("utf-8", "surrogateescape"))
        if member is not None:
            storages[storage_key] = (offset + member.header_offset, member.size)
        return StorageRef(storage_key, storage_type_dtype(storage_type), location if type(location) is str else "?",
                          numel if type(numel) is int else 0, member.size if member else None)

    data = read_member(archive, main, length)  # type: ignore[arg-type]
    return unpickle(io.BytesIO(data), where, persistent_load, log, limits), storages


def locate_chunk(file: str, offset: int, length: int, limits: Limits) -> tuple[TensorRecord, int]:
    """A chunk's tensor record (shape, stride, dtype as its own pickle says) and the byte offset in
    `file` of its storage member's local header. ValueError when it is not one stored tensor."""
    log = UnpickleLog()
    with open(file, "rb") as f:
        try:
            record, storages = read_embedded_pickle(f, offset, length, f"{os.path.basename(file)} byte {offset}", log,
                                                    limits)
        except (PickleError, ZipError) as exc:
            raise ValueError(f"its chunk at byte {offset:,} of {os.path.basename(file)} cannot be read: {exc}") from None
    if type(record) is not TensorRecord or record.storage not in storages:
        raise ValueError(f"its chunk at byte {offset:,} of {os.path.basename(file)} holds {_what(record)}, not one "
                         "stored tensor")
    if any(use.classify()[0] == "dangerous" for use in log.globals.values()):
        raise ValueError(f"its chunk at byte {offset:,} of {os.path.basename(file)} names dangerous globals")
    return record, storages[record.storage][0]


# ---------------------------------------------------------------------------------------------


def _usual_storage_columns(data: dict[Any, Any]) -> tuple[list[str], list[Any], list[dict[str, Any]]] | None:
    """The usual storage_data — each key a MetadataIndex of one dict state with a str `fqn` and a
    tuple (or None) `offset`, each value a _StorageInfo of one dict state — checked column by
    column (C calls), as its fqns, offsets and infos; None for anything else."""
    wheres, infos = list(data), list(data.values())
    where_types, info_types = set(map(type, wheres)), set(map(type, infos))
    if (len(where_types) != 1 or len(info_types) != 1 or _name_of(wheres[0]) != "MetadataIndex"
            or _name_of(infos[0]) != "_StorageInfo" or set(map(len, wheres)) != _ONE or set(map(len, infos)) != _ONE):
        return None
    at, fields = list(map(itemgetter(0), wheres)), list(map(itemgetter(0), infos))
    if set(map(type, at)) != _DICT_ONLY or set(map(type, fields)) != _DICT_ONLY:
        return None
    try:
        fqns, offsets = list(map(_FQN, at)), list(map(_OFFSET, at))
    except KeyError:
        return None  # a field missing: `_storage_index` names it
    if set(map(type, fqns)) != _STR_ONLY or not set(map(type, offsets)) <= _TUPLE_OR_NONE:
        return None
    return fqns, offsets, fields


class _StorageIndex:
    """storage_data: (entry key, chunk offsets) → its _StorageInfo's fields. The usual one is kept
    as columns, in the order torch wrote it (its entries' order): `infos_of` the entries in that
    order is then the infos column, and the dict is made only if something asks for it."""

    def __init__(self, columns: tuple[list[str], list[Any], list[dict[str, Any]]] | None,
                 index: dict[tuple[str, tuple[int, ...] | None], dict[str, Any]] | None = None) -> None:
        self._columns, self._index = columns, index  # (fqns, offsets, infos), or the dict

    @property
    def index(self) -> dict[tuple[str, tuple[int, ...] | None], dict[str, Any]]:
        if self._index is None:
            assert self._columns is not None
            fqns, offsets, infos = self._columns
            self._index, self._columns = dict(zip(zip(fqns, offsets, strict=True), infos, strict=True)), None
        return self._index

    def infos_of(self, keys: list[str], offsets: list[Any]) -> list[Any]:
        """Each (key, offsets)'s info, None where there is none."""
        columns = self._columns
        if columns is not None and columns[0] == keys and columns[1] == offsets:  # one to one, in order
            return columns[2]
        return list(map(self.index.get, zip(keys, offsets, strict=True)))

    def get(self, where: tuple[str, tuple[int, ...] | None]) -> dict[str, Any] | None:
        return self.index.get(where)

    def __getitem__(self, where: tuple[str, tuple[int, ...] | None]) -> dict[str, Any]:
        return self.index[where]

    def pop(self, where: tuple[str, tuple[int, ...] | None]) -> dict[str, Any]:
        return self.index.pop(where)


def _insert(root: dict[Any, Any], path: list[str | int], value: Any) -> None:
    node = root
    for element in path[:-1]:
        child = node.get(element)
        if not isinstance(child, dict):
            child = node[element] = {}
        node = child
    node[path[-1]] = value


def _path(key: str, planned: Any) -> list[str | int]:
    """The nested path the planner recorded for a flattened key (else the key itself)."""
    if isinstance(planned, tuple) and planned and set(map(type, planned)) <= _STR_OR_INT:
        return list(planned)
    return [key]


def _as_lists(node: dict[Any, Any]) -> Any:
    """Containers whose keys are 0..n-1 (the planner's list indices) become lists again."""
    for key, value in node.items():
        if type(value) is dict:
            node[key] = _as_lists(value)
    keys = list(node)
    if keys and all(type(k) is int for k in keys) and sorted(keys) == list(range(len(keys))):
        return [node[i] for i in range(len(keys))]
    return node


def _is_record(obj: Any, name: str) -> bool:
    return _name_of(obj) == name


_NAMES: dict[type, str] = {}  # record class → its short name


def _name_of(obj: Any) -> str:
    """The class name of a data record (`Metadata`, `TensorStorageMetadata`, ...), "" for
    anything else."""
    cls = type(obj)
    name = _NAMES.get(cls)
    if name is None:
        name = _NAMES[cls] = _class_name(cls)
    return name


def _names_of(objects: Iterable[Any]) -> list[str]:
    """`_name_of` of each object, in C calls: one name per class (100,000 entries have two)."""
    classes = list(map(type, objects))
    for cls in set(classes) - _NAMES.keys():
        _NAMES[cls] = _class_name(cls)
    return list(map(_NAMES.__getitem__, classes))


def _class_name(cls: type) -> str:
    return cls.qualname.rsplit(".", 1)[-1] if issubclass(cls, DataRecord) else ""


def _state(record: Any) -> Any:
    try:
        return check_record_state(record)
    except ValueError as exc:
        raise MetadataError(str(exc)) from None


def _fields(record: Any) -> dict[str, Any]:
    """A dataclass record's fields (its BUILD state: a dict)."""
    state = record[0] if len(record) == 1 else _state(record)
    if type(state) is not dict:
        raise MetadataError(f"a {record.qualname} has the state {safe_repr(state)}, not its fields")
    return state


def _dtype(properties: Any) -> str:
    """TensorProperties' state: `(dtype, layout, requires_grad, memory format, pin_memory)`, or
    (older releases) a dict of those fields."""
    if isinstance(properties, tuple) and properties:
        dtype = properties[0]
    elif isinstance(properties, dict):
        dtype = properties.get("dtype")
    else:
        raise MetadataError("a tensor entry has no TensorProperties")
    if type(dtype) is not DtypeRef:
        raise MetadataError(f"a tensor's dtype is {_what(dtype)}")
    return dtype.name


_INT_ONLY = {int}
_STR_ONLY, _DICT_ONLY, _TUPLE_ONLY, _LIST_ONLY, _ONE, _TWO = {str}, {dict}, {tuple}, {list}, {1}, {2}
_DTYPE_NAME, _STORAGE, _PART = attrgetter("name"), attrgetter("storage"), attrgetter("part")
_FQN, _OFFSET = itemgetter("fqn"), itemgetter("offset")
_GET_TRANSFORMS = methodcaller("get", "transform_descriptors")
_TUPLE_OR_NONE = {tuple, type(None)}
_STR_OR_INT = {str, int}
_TENSOR_ENTRY, _BYTES_ENTRY = "TensorStorageMetadata", "BytesStorageMetadata"
_ENTRY_KINDS = {_TENSOR_ENTRY, _BYTES_ENTRY}
_BATCH = 4096  # usual tensors made at a time, as the entries they replace are freed


def _one_list(item: Any) -> list[Any]:
    return [item]


def _usual_sizes(value: tuple[Any, ...]) -> bool:
    """A tuple of non-negative int64s, the usual torch.Size (`_sizes` says what else is wrong)."""
    return not value or (set(map(type, value)) == _INT_ONLY and min(value) >= 0 and max(value) < 1 << 63)


def _sizes(value: Any, what: str, key: str) -> tuple[int, ...]:
    """A torch.Size as the record holds it: a tuple of non-negative ints."""
    if type(value) is tuple and (not value or (set(map(type, value)) == _INT_ONLY and min(value) >= 0
                                               and max(value) < 1 << 63)):
        return value
    raise MetadataError(f"{what} of {safe_repr(key)} is {safe_repr(value)}, not a list of sizes")


def _what(obj: Any) -> str:
    from .unpickler import saved_type_name

    return f"a {saved_type_name(obj)}"
