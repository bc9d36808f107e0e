"""The one data model every reader returns, and its JSON form.

A `Checkpoint` is a tree of `Node`s (containers, modules, tensors, plain values) plus flat,
file-ordered lists of `TensorInfo` and `ModuleInfo` that the nodes point into, and the
`ModelInfo`s roles.py finds. A checkpoint made of several files (a sharded set, a
torch.distributed folder, per-rank files) lists them in `parts`; each tensor names its part, and
a distributed tensor its `ShardingInfo` (global shape, placements, chunks). The JSON form (`to_json`, typed by the `*Json` TypedDicts here and
in counts.py) is the contract that `pthscope inspect --json`, the language server and the tests
share; docs/json-contract.md describes it field by field.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, mul
from typing import Any, Literal, TypedDict

from .counts import ParamCountsJson, Role, RoleTableJson, Tally
from .dtypes import ITEMSIZE, itemsize
from .safety import SafetyJson, safety_verdict

PathElement = str | int
# "group": dotted state_dict keys shown as the module tree they spell (roles.group_dotted_keys);
# the worker's index makes them for display, readers never do.
NodeKind = Literal["dict", "list", "tuple", "set", "object", "module", "tensor", "value", "group"]
TensorKind = Literal["parameter", "buffer", "tensor", "ndarray"]
Risk = Literal["safe", "unknown", "dangerous"]
GradState = Literal["trainable", "frozen", "not stored"]
SavedAs = Literal["module", "state_dict"]


_DTYPE, _SHAPE, _LOCATION, _KIND, _STORAGE, _STORAGE_NBYTES = map(attrgetter, (
    "dtype", "shape", "location", "kind", "storage", "storage_nbytes"))


def key_of(path: list[PathElement]) -> str:
    return ".".join(map(str, path))


# The formats whose pickles are not loaded by a torch.load that weights_only=True restricts to
# torch's allow-list: the verdict names what loads them instead. Every other format's are.
_OTHER_LOADERS = {
    # FileSystemReader.read_metadata is a plain pickle.load; bytes entries: torch.load(weights_only=False)
    "torch-distributed": "torch.distributed.checkpoint.load",
    "torch-tar": "torch.load",  # weights_only=True refuses the format
    # torch.load cannot read a plain pickle: weights_only=True refuses it, False unpickles it whole
    # (running it) and then fails ("Invalid magic number"). Such files are read with pickle.load.
    "pickle": "pickle.load",
    # torch.load hands it to torch.jit.load (weights_only=True refuses it), whose unpickler takes
    # only TorchScript's types (classes it compiles from the archive's code/, which it runs).
    "torchscript": "torch.jit.load",
}
_OWN_TYPES_ONLY = frozenset({"torchscript"})
# What would run a dangerous global of a format whose loader refuses it: only a Python unpickler.
_PYTHON_UNPICKLER = "a Python unpickler (pickle.load of its pickles)"


def loader_of(format: str) -> LoaderJson:
    """What loads this format's pickles, whether its `weights_only=True` restricts them to
    torch's allow-list and whether it accepts only its own types whatever it is told (the
    refusals of one file are Checkpoint.loader's)."""
    other = _OTHER_LOADERS.get(format)
    return {"call": other or "torch.load", "weights_only": other is None, "own_types_only": format in _OWN_TYPES_ONLY,
            "weights_only_refuses": "", "refuses": ""}


def unrestricted_load(format: str) -> str:
    """The call that would run what this format's pickles name: `torch.load(weights_only=False)`,
    the loader that has no weights_only (its loads are all unrestricted), or, where the loader
    takes only its own types, a Python unpickler."""
    loader = loader_of(format)
    if loader["own_types_only"]:
        return _PYTHON_UNPICKLER
    return "torch.load(weights_only=False)" if loader["weights_only"] else loader["call"]


def contiguous_stride(shape: list[int]) -> list[int]:
    """The stride of a contiguous (row-major) tensor of this shape."""
    stride, acc = [], 1
    for d in reversed(shape):
        stride.append(acc)
        acc *= max(d, 1)
    return list(reversed(stride))


@dataclass
class Problem:
    """Something wrong in a file: what kind, what, and where (member, offset, key)."""

    kind: str
    message: str
    where: str = ""

    def to_json(self) -> ProblemJson:
        return {"kind": self.kind, "message": self.message, "where": self.where}


@dataclass
class GlobalRef:
    """A global (module.qualname; an attribute walk as module:a.b.c) that the file's pickles name:
    its risk, how the pickles use it, and one sentence on what torch.load(weights_only=False)
    would do with it."""

    name: str
    risk: Risk
    count: int = 1  # GLOBAL opcodes naming it
    uses: dict[str, Any] = field(default_factory=dict)
    effect: str = ""
    # Named only by pickles the file's loader does not read (a torch zip's `extra.pkl`): what
    # they name runs only if someone unpickles them by hand.
    unread: bool = False

    def to_json(self) -> GlobalJson:
        return {"name": self.name, "risk": self.risk, "count": self.count,
                "uses": self.uses,  # type: ignore[typeddict-item]  # global_risk.uses_json's shape
                "effect": self.effect, "unread": self.unread}


@dataclass(slots=True)
class ParamCounts:
    """Element counts. `unknown` counts tensors whose flag the file does not store (state_dicts)."""

    total: int = 0
    trainable: int = 0
    frozen: int = 0
    unknown: int = 0

    def to_json(self) -> ParamCountsJson:
        return {
            "total": self.total,
            "trainable": self.trainable,
            "frozen": self.frozen,
            "unknown": self.unknown,
        }


@dataclass(slots=True)
class PartInfo:
    """One file of a checkpoint made of several (a shard, a `.distcp` file, one rank's file):
    where it is, its format, and its size and mtime when it was read (a tensor's values are
    read from it only while they are the same)."""

    file: str  # absolute path
    format: str  # safetensors, torch-zip, torch-legacy, torch-distributed (a .distcp file), ...
    size: int = 0
    mtime_ns: int = 0
    tensors: int = 0  # tensors listed from it
    byteorder: str = "little"

    def to_json(self) -> PartJson:
        return {"file": self.file, "format": self.format, "size": self.size, "tensors": self.tensors}


@dataclass(slots=True)
class PartOf:
    """The set a single file belongs to: opening `file` (an index, a folder) shows the whole."""

    file: str
    format: str  # what opening `file` gives: sharded, torch-distributed, torch-ranks
    part: int  # this file is part `part` (1-based) of `parts`
    parts: int

    def to_json(self) -> PartOfJson:
        return {"file": self.file, "format": self.format, "part": self.part, "parts": self.parts}


@dataclass(slots=True)
class ChunkInfo:
    """A piece of a distributed tensor: where it sits in the global tensor, and where it is saved
    (`part`: index into `Checkpoint.parts`, None when no file of this checkpoint holds it;
    `byte_offset`/`byte_length`: its bytes in that file, for a torch.distributed chunk)."""

    offsets: list[int]
    sizes: list[int]
    part: int | None = None
    rank: int | None = None
    byte_offset: int | None = None
    byte_length: int | None = None

    def to_json(self) -> ChunkJson:
        return {"offsets": self.offsets, "sizes": self.sizes, "part": self.part, "rank": self.rank,
                "byte_offset": self.byte_offset, "byte_length": self.byte_length}


@dataclass(slots=True)
class ShardingInfo:
    """How a distributed tensor is split. `kind`: `DTensor`, `ShardedTensor` (a rank's piece, as
    torch.save wrote it) or `DCP` (an entry of torch.distributed.checkpoint's metadata).
    `local`: the tensor's `shape` is one rank's piece (else the global tensor)."""

    kind: str
    global_shape: list[int]
    local: bool
    placements: list[str] = field(default_factory=list)  # DTensor: Shard(dim=0), Replicate(), Partial(sum)
    mesh: str = ""  # DTensor: device type and mesh shape (and dim names); ShardedTensor: its sharding spec
    chunks: list[ChunkInfo] = field(default_factory=list)
    rank: int | None = None  # the rank whose piece `shape` is (local only)

    def to_json(self) -> ShardingJson:
        return {"kind": self.kind, "global_shape": self.global_shape, "local": self.local,
                "placements": self.placements, "mesh": self.mesh, "rank": self.rank,
                "chunks": [c.to_json() for c in self.chunks]}


@dataclass(slots=True)
class TensorInfo:
    path: list[PathElement]
    shape: list[int]
    dtype: str
    requires_grad: bool
    kind: TensorKind
    location: str = "cpu"
    stride: list[int] = field(default_factory=list)
    storage_offset: int = 0
    storage: str = ""
    # Bytes of the storage the tensor views (may be larger than the tensor itself).
    storage_nbytes: int | None = None
    # Keys of other tensors that view the same storage (tied weights).
    shared_with: list[str] = field(default_factory=list)
    persistent: bool = True
    layout: str = "strided"  # or sparse, quantized, nested, a wrapper subclass name
    role: Role = "other"  # set by roles.py once the whole file is read
    part: int | None = None  # index into Checkpoint.parts of the file holding its bytes; None: the file itself
    sharding: ShardingInfo | None = None  # a distributed tensor's global shape, placements, chunks

    @property
    def key(self) -> str:
        return key_of(self.path)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * itemsize(self.dtype)

    @property
    def grad_state(self) -> GradState:
        if self.requires_grad:
            return "trainable"
        if self.kind == "parameter":
            return "frozen"
        return "not stored"

    def to_json(self) -> TensorJson:
        numel = math.prod(self.shape)
        return {
            "path": self.path,
            "key": ".".join(map(str, self.path)),
            "shape": self.shape,
            "dtype": self.dtype,
            "requires_grad": self.requires_grad,
            "grad_state": "trainable" if self.requires_grad else "frozen" if self.kind == "parameter" else "not stored",
            "kind": self.kind,
            "role": self.role,
            "location": self.location,
            "stride": self.stride,
            "storage_offset": self.storage_offset,
            "numel": numel,
            "nbytes": numel * ITEMSIZE.get(self.dtype, 1),
            "storage": self.storage,
            "storage_nbytes": self.storage_nbytes,
            "shared_with": self.shared_with,
            "layout": self.layout,
            "part": self.part,
            "sharding": self.sharding.to_json() if self.sharding is not None else None,
        }


@dataclass(slots=True)
class ModuleInfo:
    path: list[PathElement]
    class_name: str
    training: bool | None
    parameters: ParamCounts = field(default_factory=ParamCounts)

    @property
    def key(self) -> str:
        return key_of(self.path)

    def to_json(self) -> ModuleJson:
        return {
            "path": self.path,
            "key": self.key,
            "class": self.class_name,
            "training": self.training,
            "parameters": self.parameters.to_json(),
        }


@dataclass(slots=True)
class ModelInfo:
    """Where a model's state sits in the file, as roles.py found it: a whole module or a
    state_dict at `path` (with `prefix`, only its keys starting so: a state_dict's EMA group).
    An `ema` model is a copy of another one's weights; its tensors are "other"."""

    path: list[PathElement]
    saved_as: SavedAs
    ema: bool = False
    prefix: str = ""

    @property
    def key(self) -> str:
        return key_of(self.path)

    def to_json(self) -> ModelJson:
        return {"path": self.path, "key": self.key, "saved_as": self.saved_as, "ema": self.ema,
                "prefix": self.prefix}


@dataclass(slots=True)
class Node:
    """One place in the saved object tree.

    `type` is the saved type's qualified name (`collections.OrderedDict`, `__main__.Net`, `int`).
    Tensor and module nodes point into `Checkpoint.tensors` / `Checkpoint.modules` by index.
    """

    name: str
    path: list[PathElement]
    kind: NodeKind
    type: str
    value: str | None = None
    tensor: int | None = None
    module: int | None = None
    children: list[Node] = field(default_factory=list)

    @property
    def key(self) -> str:
        return key_of(self.path)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "key": self.key,
            "kind": self.kind,
            "type": self.type,
        }
        if self.value is not None:
            out["value"] = self.value
        if self.tensor is not None:
            out["tensor"] = self.tensor
        if self.module is not None:
            out["module"] = self.module
        out["children"] = [c.to_json() for c in self.children]
        return out


@dataclass
class Checkpoint:
    file: str
    format: str
    size: int = 0
    tensors: list[TensorInfo] = field(default_factory=list)
    modules: list[ModuleInfo] = field(default_factory=list)
    globals: list[GlobalRef] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    root: Node | None = None
    # Format-specific facts worth showing (zip prefix, byteorder, format version, ...).
    metadata: dict[str, str] = field(default_factory=dict)
    models: list[ModelInfo] = field(default_factory=list)
    # Where each storage's bytes are, by storage key (not part of the JSON): for torch-zip the
    # offset of its member's local header (from the central directory; `values` reads the
    # header, whose extra field may differ, when it needs the data), for torch-legacy the first
    # byte after the record's 8-byte count, for safetensors the data section + begin.
    storage_offsets: dict[str, int] = field(default_factory=dict)
    # Tensors whose exact view another tensor shares (tied weights): index → the first one's.
    tied_views: dict[int, int] = field(default_factory=dict)
    # The files of a checkpoint made of several (TensorInfo.part points here); storage keys are
    # then unique across them, and `storage_offsets` are offsets in the tensor's part.
    parts: list[PartInfo] = field(default_factory=list)
    # A single file that is one part of a set: the set's index, folder or metadata.
    part_of: PartOf | None = None
    # Why torch.load(weights_only=True) refuses the file before judging any global: an opcode its
    # unpickler does not run (pickle_opcodes.py); "" when it does not.
    weights_only_refusal: str = ""
    # Why torch.load refuses the file before it unpickles anything, whatever weights_only says (a
    # version, a byteorder, an archive layout it rejects): its pickles then run nothing.
    torch_load_refuses: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def unrestricted_load(self) -> str:
        """What would run what the file's pickles name: a Python unpickler when the loader refuses
        the file first, else unrestricted_load of its format."""
        return _PYTHON_UNPICKLER if self.torch_load_refuses else unrestricted_load(self.format)

    def loader(self) -> LoaderJson:
        """loader_of the format, with why the loader refuses this very file."""
        return {**loader_of(self.format), "weights_only_refuses": self.weights_only_refusal,
                "refuses": self.torch_load_refuses}

    def safety(self) -> SafetyJson | None:
        """The one-line verdict (reader/safety.py) as this Python sees it: the server's page adds
        which classes the loading Python could not import."""
        verdict = safety_verdict([g.to_json() for g in self.globals], self.loader(), [e.kind for e in self.errors])
        return verdict.to_json() if verdict is not None else None

    def tally(self) -> Tally:
        """Counts by role of all the file's tensors (counts.py)."""
        tally = Tally()
        tally.add_all(self.tensors, self.tied_views)
        return tally

    def summary(self) -> SummaryJson:
        # This runs for every `inspect --json` and every open: the counting is done in C
        # (Counter, map, compress), one pass per column; only shared storages take a loop.
        tensors = self.tensors
        dtypes = list(map(_DTYPE, tensors))
        numels = list(map(math.prod, map(_SHAPE, tensors)))
        nbytes = list(map(mul, numels, map(ITEMSIZE.get, dtypes, repeat(1))))
        bytes_by_dtype = {d: sum(compress(nbytes, map(d.__eq__, dtypes))) for d in dict.fromkeys(dtypes)}
        locations = dict(Counter(map(_LOCATION, tensors)))
        kinds = dict(Counter(map(_KIND, tensors)))
        keys = list(map(_STORAGE, tensors))
        held = [s or n for n, s in zip(nbytes, map(_STORAGE_NBYTES, tensors), strict=True)]
        if len(set(keys)) == len(keys):  # a storage per tensor (safetensors, most state dicts)
            storage_bytes = sum(compress(held, keys))
        else:
            storages: dict[str, int] = {}
            for key, n in zip(keys, held, strict=True):
                if key:
                    storages[key] = max(storages.get(key, 0), n)
            storage_bytes = sum(storages.values())
        risks = {"safe": 0, "unknown": 0, "dangerous": 0}
        for g in self.globals:
            risks[g.risk] += 1
        tally = Tally()
        tally.add_all(tensors, self.tied_views, numels, nbytes)
        return {
            "tensors": len(self.tensors),
            "modules": len(self.modules),
            "roles": tally.to_json(),
            "parameters": tally.parameters_json(),
            "requires_grad_stored": kinds.get("parameter", 0) > 0,
            "bytes_by_dtype": bytes_by_dtype,
            "tensor_bytes": sum(bytes_by_dtype.values()),
            "storage_bytes": storage_bytes,
            "locations": locations,
            "kinds": kinds,
            "globals_by_risk": risks,
        }

    def to_json(self, tree: bool = True, long_lists: bool = True) -> dict[str, Any]:
        """The JSON contract. `long_lists=False`: `tensors` and `tree` are None, for a writer that
        encodes them itself from `tensors` and `root` (json_text.py, for the CLI)."""
        out: dict[str, Any] = {
            "file": self.file,
            "format": self.format,
            "size": self.size,
            "metadata": self.metadata,
            "summary": self.summary(),
            "models": [m.to_json() for m in self.models],
            "tensors": [t.to_json() for t in self.tensors] if long_lists else None,
            "modules": [m.to_json() for m in self.modules],
            "globals": [g.to_json() for g in self.globals],
            "loader": self.loader(),
            "warnings": [w.to_json() for w in self.warnings],
            "errors": [e.to_json() for e in self.errors],
            "parts": [p.to_json() for p in self.parts],
            "part_of": self.part_of.to_json() if self.part_of is not None else None,
            "safety": self.safety(),
        }
        if tree:
            out["tree"] = self.root.to_json() if self.root and long_lists else None
        return out


# The JSON shapes (docs/json-contract.md); the language server's payloads reuse them.


class ProblemJson(TypedDict):
    kind: str
    message: str
    where: str


class _GlobalUsesRequired(TypedDict):
    referenced: int
    written: int


class GlobalUsesJson(_GlobalUsesRequired, total=False):
    """How the pickles use a global (global_risk.py); a `safe` one has only the two above."""

    called: int
    arguments: list[int]
    rebuilt: int
    state: int
    planted: list[str]


class GlobalJson(TypedDict):
    name: str
    risk: Risk
    count: int
    uses: GlobalUsesJson
    effect: str
    unread: bool  # named only by pickles the loader does not read


class LoaderJson(TypedDict):
    call: str  # what loads the file's pickles
    weights_only: bool  # its weights_only=True restricts them to torch's allow-list
    own_types_only: bool  # it refuses every global but its own types (torch.jit.load), whatever it is told
    weights_only_refuses: str  # why weights_only=True refuses the file whatever its globals ("": it does not)
    refuses: str  # why the loader refuses the file before unpickling anything, whatever it is told ("": it does not)


class PartJson(TypedDict):
    file: str
    format: str
    size: int
    tensors: int


class PartOfJson(TypedDict):
    file: str
    format: str
    part: int
    parts: int


class ChunkJson(TypedDict):
    offsets: list[int]
    sizes: list[int]
    part: int | None
    rank: int | None
    byte_offset: int | None
    byte_length: int | None


class ShardingJson(TypedDict):
    kind: str
    global_shape: list[int]
    local: bool
    placements: list[str]
    mesh: str
    rank: int | None
    chunks: list[ChunkJson]


class TensorJson(TypedDict):
    path: list[PathElement]
    key: str
    shape: list[int]
    dtype: str
    requires_grad: bool
    grad_state: GradState
    kind: TensorKind
    role: Role
    location: str
    stride: list[int]
    storage_offset: int
    numel: int
    nbytes: int
    storage: str
    storage_nbytes: int | None
    shared_with: list[str]
    layout: str
    part: int | None
    sharding: ShardingJson | None


# `class` is a keyword, hence the functional form.
ModuleJson = TypedDict("ModuleJson", {
    "path": list[PathElement],
    "key": str,
    "class": str,
    "training": bool | None,
    "parameters": ParamCountsJson,
})


class ModelJson(TypedDict):
    path: list[PathElement]
    key: str
    saved_as: SavedAs
    ema: bool
    prefix: str


class SummaryJson(TypedDict):
    tensors: int
    modules: int
    roles: RoleTableJson
    parameters: ParamCountsJson
    requires_grad_stored: bool
    bytes_by_dtype: dict[str, int]
    tensor_bytes: int
    storage_bytes: int
    locations: dict[str, int]
    kinds: dict[str, int]
    globals_by_risk: dict[str, int]
