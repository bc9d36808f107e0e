"""The custom `pthscope/<verb>` requests, typed once: params, results, payloads, pygls wiring.

docs/protocol.md describes the requests; client/src/protocol.ts is the client's copy and
tests/lsp/test_protocol_agrees.py checks the two field by field (names, JSON types, optional or
required). Params are structured strictly: a wrong type or value becomes a JSON-RPC
`InvalidParams` error that names the field, instead of being coerced. Results carry plain JSON
typed by TypedDicts: the reader's own serialisation (`TensorJson`, `SummaryJson`, ... from
reader/model.py and reader/counts.py, the shapes of `pthscope inspect --json`) and the shapes
below (`NodeSummary`, `TensorStats`); the structure worker builds them (worker/index.py).
"""

from __future__ import annotations

import os
import re
from functools import cache, lru_cache
from typing import Any, Literal, TypedDict

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

from ..reader.counts import (
    ROLES,
    ParamCountsJson,
    ParameterCountsJson,
    Role,
    RoleCountsJson,
    RoleTableJson,
)
from ..reader.model import (
    ChunkJson,
    GlobalJson,
    GlobalUsesJson,
    GradState,
    LoaderJson,
    ModelJson,
    ModuleJson,
    NodeKind,
    PartJson,
    PartOfJson,
    PathElement,
    ProblemJson,
    Risk,
    ShardingJson,
    SummaryJson,
    TensorJson,
    TensorKind,
)
from ..reader.safety import SafetyJson

OPEN = "pthscope/open"
CHILDREN = "pthscope/children"
DETAILS = "pthscope/details"
SEARCH = "pthscope/search"
TENSORS = "pthscope/tensors"
SET_ACTIVE_CHECKPOINT = "pthscope/setActiveCheckpoint"
STATS = "pthscope/stats"
SCAN = "pthscope/scan"
MODULE_STATS = "pthscope/moduleStats"
DIFF = "pthscope/diff"
CONVERT = "pthscope/convert"
REVEAL = "pthscope/reveal"
ENVIRONMENT = "pthscope/environment"
# `workspace/executeCommand` commands: freezing code (the side panel's context menu on a module,
# and the quick pick of a model's modules), that quick pick's choices, a snippet's text.
INSERT_REQUIRES_GRAD_CODE = "pthscope.insertRequiresGradCode"
LIST_MODULES = "pthscope.listModules"
SNIPPET_EDIT = "pthscope.snippetEdit"
RequiresGradAction = Literal["freezeAllExcept", "freezeModule", "unfreezeModule", "unfreezeAll", "printParameters"]
REQUIRES_GRAD_ACTIONS: tuple[RequiresGradAction, ...] = (
    "freezeAllExcept", "freezeModule", "unfreezeModule", "unfreezeAll", "printParameters")
# Where freezing code goes when an optimizer over the model was built before that line: "check"
# answers with the optimizer's line instead of inserting; "here" or "beforeOptimizer" insert.
Placement = Literal["check", "here", "beforeOptimizer"]
PLACEMENTS: tuple[Placement, ...] = ("check", "here", "beforeOptimizer")
SnippetAction = Literal["save_state_dict", "save_training_checkpoint", "load_state_dict",
                        "load_training_checkpoint"]
SNIPPET_ACTIONS: tuple[SnippetAction, ...] = (
    "save_state_dict", "save_training_checkpoint", "load_state_dict", "load_training_checkpoint")
# The client commands code actions run (the client says it has them, as
# `capabilities.experimental.pthscopeClientCommands`): a quick pick of a model's modules, and a
# snippet insertion (tab stops for paths and names; LSP 3.17's edits have none).
CHOOSE_MODULES = "pthscope.chooseModules"
INSERT_SNIPPET = "pthscope.insertSnippet"
CLIENT_COMMANDS_CAPABILITY = "pthscopeClientCommands"

# LSP kinds of the code actions (standard LSP; the refactors and fix-all are ours).
REQUIRES_GRAD_KIND = "refactor.rewrite.pthscope.requiresGrad"
SAVE_LOAD_KIND = "refactor.rewrite.pthscope.saveLoad"
FIX_ALL_KIND = "source.fixAll.pthscope"
CODE_ACTION_KINDS = ["quickfix", "refactor", "refactor.rewrite", REQUIRES_GRAD_KIND, SAVE_LOAD_KIND,
                     "source.fixAll", FIX_ALL_KIND]

REQUEST_FAILED = -32803  # LSP's error code for a request that was valid but could not be done
PAGE_SIZE = 500  # children and tensors per page unless asked otherwise; open sends one page
MAX_PAGE = 10_000
TensorSort = Literal["index", "key", "shape", "numel", "nbytes", "dtype", "grad_state", "role", "kind", "location"]
TENSOR_SORT_KEYS: tuple[TensorSort, ...] = (
    "index", "key", "shape", "numel", "nbytes", "dtype", "grad_state", "role", "kind", "location")

ProgressToken = int | str
# JSON-RPC ids, typed loosely for attrs.make_class.
_REQUEST_ID: Any = int | str
_RESPONSE_ID: Any = int | str | None

__all__ = [  # the payload shapes defined elsewhere, part of this contract
    "ROLES", "ChunkJson", "GlobalJson", "GlobalUsesJson", "GradState", "LoaderJson", "ModelJson", "ModuleJson", "NodeKind",
    "ParamCountsJson", "ParameterCountsJson", "PartJson", "PartOfJson", "PathElement", "ProblemJson", "Risk", "Role",
    "RoleCountsJson", "RoleTableJson", "ShardingJson", "SummaryJson", "TensorJson", "TensorKind",
]


# Optional keys are declared in `total=False` subclasses: NotRequired[...] is lost to string
# annotations (`from __future__ import annotations`) before Python 3.14.


class _NodeSummaryRequired(TypedDict):
    path: list[PathElement]
    key: str
    name: str
    kind: NodeKind
    type: str
    child_count: int


class ScanMark(TypedDict):
    """What the last scan of the file found at a tree node: its own findings (a tensor) or how
    many bad tensors its subtree holds."""

    severity: Literal["error", "warning"]
    label: str
    tensors: int


class _TensorPageRequired(TypedDict):
    tensors: list[TensorJson]
    total: int


class TensorPage(_TensorPageRequired, total=False):
    """A page of the tensor table, as `pthscope/tensors` answers it (without `row`)."""

    marks: dict[str, ScanMark]


class NodeSummary(_NodeSummaryRequired, total=False):
    """One node of the tree, without its children (docs/protocol.md)."""

    value: str  # plain values
    tensor: TensorJson  # tensors
    module: ModuleJson  # modules
    counts: RoleTableJson  # containers, modules, groups: their subtree's tensors by role
    scan: ScanMark  # when the file's last scan found something here


class RevealStep(TypedDict):
    """One node on the way from the root to a node, and its index among its parent's children."""

    node: NodeSummary
    index: int


class TensorHistogram(TypedDict):
    min: float
    max: float
    counts: list[int]


class _TensorStatsRequired(TypedDict):
    key: str
    dtype: str
    shape: list[int]
    numel: int
    engine: Literal["torch", "numpy"]
    sampled: bool
    sample_size: int


class TensorStats(_TensorStatsRequired, total=False):
    """One tensor's values (docs/protocol.md); these are absent for an empty tensor."""

    min: float | None  # None: no finite value
    max: float | None
    mean: float | None
    std: float | None
    zeros: int
    nan: int
    posinf: int
    neginf: int
    histogram: TensorHistogram
    values: list[tuple[float, int]]  # integers and bool with few distinct values: [value, count]
    l2: float | None  # the L2 norm of the finite values
    abs_max: float | None  # the largest magnitude
    mean_abs: float | None
    magnitude: bool  # complex tensors: the statistics are of |x|
    # The first values.stats.FIRST_VALUES values, row-major (all of a small tensor), as text: "0.1",
    # "-3", "True", "nan", "inf" (each float as short as its dtype allows).
    first_values: list[str]


class ScanFinding(TypedDict):
    kind: Literal["nan", "inf", "all_zero", "extreme", "fp16_overflow"]
    severity: Literal["error", "warning"]
    message: str


class ScanTensorStats(TypedDict):
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    abs_max: float | None
    zeros: int
    nan: int
    posinf: int
    neginf: int


class ScanTensor(TypedDict):
    """A tensor the scan found bad (values/scan.py has the rules)."""

    key: str
    path: list[PathElement]
    aliases: list[str]  # other keys of the same bytes (tied weights)
    dtype: str
    shape: list[int]
    role: Role
    severity: Literal["error", "warning"]
    findings: list[ScanFinding]
    stats: ScanTensorStats


class KeyMessage(TypedDict):
    key: str
    message: str


class ScanThresholds(TypedDict):
    extreme_ratio: float
    float16_max: float


class ScanCounts(TypedDict):
    """Bad tensors by finding."""

    nan: int
    inf: int
    all_zero: int
    extreme: int
    fp16_overflow: int


class ScanSummary(TypedDict):
    """The file's last scan, without its tensors (`pthscope/open` sends it when there is one)."""

    complete: bool
    total: int
    scanned: int
    counts: ScanCounts
    bad: int
    errors: int
    warnings: int
    unreadable: int


class _ModuleStatsRequired(TypedDict):
    key: str
    tensors: int  # tensors whose values are included
    numel: int
    dtypes: dict[str, int]
    left_out: int  # tensors under the node not included (integers beside floats, unreadable)
    failed: list[KeyMessage]
    zeros: int
    nan: int
    posinf: int
    neginf: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    l2: float | None
    abs_max: float | None


class ModuleStats(_ModuleStatsRequired, total=False):
    """All the floating-point (else integer) tensors of a subtree, taken together."""

    mean_abs: float | None
    histogram: TensorHistogram
    values: list[tuple[float, int]]


class DiffSide(TypedDict):
    file: str
    format: str
    tensors: int
    models: list[str]
    errors: list[str]


class DiffSummary(TypedDict):
    matched: int
    only_a: int
    only_b: int
    shape_changed: int
    dtype_changed: int
    grad_changed: int
    identical: int
    changed: int
    value_errors: int
    compared: int
    comparable: int


DiffStatus = Literal["only_a", "only_b", "shape", "dtype", "matched", "identical", "changed", "error"]
ModuleDiffStatus = Literal["only_a", "only_b", "structure", "changed", "identical", "matched"]


class DiffValues(TypedDict):
    """How B's values differ from A's (Δ = B − A)."""

    identical: bool
    numel: int
    changed: int  # elements not equal
    nonfinite: int  # elements whose difference is not finite
    max_abs_diff: float | None
    l2_diff: float | None
    l2_a: float | None
    rel_change: float | None  # ‖Δ‖ / ‖A‖


class DiffTensor(TypedDict):
    name: str  # what both files' tensors are matched by
    module: str
    status: DiffStatus
    key_a: str | None
    key_b: str | None
    role: Role
    shape_a: list[int] | None
    shape_b: list[int] | None
    dtype_a: str | None
    dtype_b: str | None
    requires_grad_a: bool | None  # None: not stored (a plain tensor)
    requires_grad_b: bool | None
    grad_changed: bool
    values: DiffValues | None
    value_error: str | None
    note: str | None


class DiffModule(TypedDict):
    module: str
    status: ModuleDiffStatus
    tensors: int
    only_a: int
    only_b: int
    shape_changed: int
    dtype_changed: int
    grad_changed: int
    identical: int
    changed: int
    not_compared: int
    max_abs_diff: float | None
    max_rel_change: float | None


class DiffProgressValue(TypedDict):
    """A `$/progress` value on a diff's partialResultToken: the rows just compared."""

    tensors: list[DiffTensor]
    done: int
    total: int


class DroppedValue(TypedDict):
    key: str
    what: str


class ConvertSummary(TypedDict):
    out: str
    tensors: int
    bytes: int
    aliases: dict[str, str]  # tied names, stored once: other name → kept name
    left_out: dict[str, int]  # tensors not written, by role
    dropped: list[DroppedValue]  # entries that are not tensors (the first 200)
    dropped_count: int
    model_only: bool


class ParamError(ValueError):
    """A param that has the right JSON type but a value the request cannot use."""


def _absolute(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not os.path.isabs(value):
        raise ParamError(f"`{attribute.name}` must be an absolute path, got {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ParamError(f"`{attribute.name}` must be 0 or more, got {value}")


def _page_size(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not 0 <= value <= MAX_PAGE:
        raise ParamError(f"`{attribute.name}` must be between 0 and {MAX_PAGE}, got {value}")


def _absolute_or_none(instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None:
        _absolute(instance, attribute, value)


def _requires_grad_action(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in REQUIRES_GRAD_ACTIONS:
        raise ParamError(
            f"`{attribute.name}` must be one of {', '.join(REQUIRES_GRAD_ACTIONS)}, got {value!r}"
        )


_MODULE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


def _module_key(_instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not _MODULE_KEY.fullmatch(value):
        raise ParamError(f"`{attribute.name}` must be a module key like `layer1.0`, got {value!r}")


def _module_keys(instance: object, attribute: attrs.Attribute, value: list[str] | None) -> None:
    for key in value or []:
        _module_key(instance, attribute, key)


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(_instance: object, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ParamError(f"`{attribute.name}` must be one of {', '.join(choices)}, got {value!r}")

    return check


def _non_empty(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not value:
        raise ParamError(f"`{attribute.name}` must not be empty")


def _tensor_sort_key(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in TENSOR_SORT_KEYS:
        raise ParamError(
            f"`{attribute.name}` must be one of {', '.join(TENSOR_SORT_KEYS)}, got {value!r}"
        )


@attrs.define
class OpenParams:
    file: str = attrs.field(validator=_absolute)
    # That many rows of the tensor table in file order come with the result (a page's first rows).
    first_tensors: int = attrs.field(default=0, validator=_page_size)
    work_done_token: ProgressToken | None = None


@attrs.define
class ChildrenParams:
    file: str = attrs.field(validator=_absolute)
    path: list[PathElement] = attrs.Factory(list)
    offset: int = attrs.field(default=0, validator=_non_negative)
    limit: int = attrs.field(default=PAGE_SIZE, validator=_page_size)
    work_done_token: ProgressToken | None = None


@attrs.define
class DetailsParams:
    file: str = attrs.field(validator=_absolute)
    path: list[PathElement] = attrs.Factory(list)
    work_done_token: ProgressToken | None = None


@attrs.define
class SearchParams:
    file: str = attrs.field(validator=_absolute)
    query: str = attrs.field(validator=_non_empty)
    limit: int = attrs.field(default=200, validator=_page_size)
    work_done_token: ProgressToken | None = None


@attrs.define
class TensorsParams:
    file: str = attrs.field(validator=_absolute)
    offset: int = attrs.field(default=0, validator=_non_negative)
    limit: int = attrs.field(default=PAGE_SIZE, validator=_page_size)
    filter: str = ""
    sort: TensorSort = attrs.field(default="index", validator=_tensor_sort_key)
    descending: bool = False
    # The tensor whose row (in this filter and order) the result's `row` says: the page reveals it.
    row_of: list[PathElement] | None = None
    work_done_token: ProgressToken | None = None


@attrs.define
class StatsParams:
    """Statistics of the values of the tensor at `path` (read on demand, in the worker)."""

    file: str = attrs.field(validator=_absolute)
    path: list[PathElement] = attrs.Factory(list)
    work_done_token: ProgressToken | None = None


@attrs.define
class ScanParams:
    """Scan every tensor of the file for NaN, inf, extreme values and all zeros."""

    file: str = attrs.field(validator=_absolute)
    work_done_token: ProgressToken | None = None


@attrs.define
class ModuleStatsParams:
    """Statistics of all the tensors under the node at `path`, together."""

    file: str = attrs.field(validator=_absolute)
    path: list[PathElement] = attrs.Factory(list)
    work_done_token: ProgressToken | None = None


@attrs.define
class RevealParams:
    """The way from the root to the node at `path`, for a tree that loads children page by page."""

    file: str = attrs.field(validator=_absolute)
    path: list[PathElement] = attrs.Factory(list)
    work_done_token: ProgressToken | None = None


@attrs.define
class DiffParams:
    """Compare checkpoint `a` with `b`: structure always, values when `values`."""

    a: str = attrs.field(validator=_absolute)
    b: str = attrs.field(validator=_absolute)
    values: bool = False
    work_done_token: ProgressToken | None = None
    partial_result_token: ProgressToken | None = None


@attrs.define
class ConvertParams:
    """Write the checkpoint's tensors to the safetensors file `out` (the user chose it)."""

    file: str = attrs.field(validator=_absolute)
    out: str = attrs.field(validator=_absolute)
    all: bool = False
    work_done_token: ProgressToken | None = None


@attrs.define
class EnvironmentParams:
    """Which Python runs the server, and what it has for tensor values."""


@attrs.define
class SetActiveCheckpointParams:
    """The checkpoint the side panel shows (None: none); Python files link to it."""

    file: str | None = attrs.field(validator=_absolute_or_none)


@attrs.define
class InsertRequiresGradCodeArgs:
    """Insert freezing code for the model variable in scope at `line` (0-based) of `uri`."""

    uri: str
    line: int = attrs.field(validator=_non_negative)
    action: RequiresGradAction = attrs.field(validator=_requires_grad_action)
    # The module key as the checkpoint tree names it (`layer4`, `layer1.0`), for the freezes;
    # or several, from the quick pick of the model's modules.
    module: str | None = attrs.field(default=None, validator=_module_key)
    modules: list[str] | None = attrs.field(default=None, validator=_module_keys)
    placement: Placement = attrs.field(default="check", validator=_one_of(PLACEMENTS))


@attrs.define
class ListModulesArgs:
    """The modules of the model variable in scope at `line` of `uri` (document `version`)."""

    uri: str
    line: int = attrs.field(validator=_non_negative)
    version: int | None = None


@attrs.define
class SnippetEditArgs:
    """A save/load snippet for `var` at `line` of `uri`, as listed for document `version`."""

    uri: str
    line: int = attrs.field(validator=_non_negative)
    action: SnippetAction = attrs.field(validator=_one_of(SNIPPET_ACTIONS))
    var: str
    version: int | None = None


# Result fields have no defaults so that every field is always sent (the converter omits
# fields equal to their default), except `tied`, which only tensors have.


@attrs.define
class OpenResult:
    file: str
    format: str
    size: int
    metadata: dict[str, str]
    summary: SummaryJson
    models: list[ModelJson]
    globals: list[GlobalJson]
    loader: LoaderJson  # what loads its pickles, and whether weights_only=True restricts them
    warnings: list[ProblemJson]
    errors: list[ProblemJson]
    # None when nothing could be read (then `errors` says why).
    root: NodeSummary | None
    children: list[NodeSummary]
    # The files of a checkpoint made of several, and the set a single file is part of.
    parts: list[PartJson]
    part_of: PartOfJson | None
    # Top-level modules of the classes the pickle names that the server's Python cannot import
    # and no workspace folder holds: a weights_only=False load here would fail on them.
    unimportable: list[str]
    safety: SafetyJson | None  # the banner's one-line verdict (reader/safety.py); None: nothing to say
    scan: ScanSummary | None = None  # the file's last scan, while the file is unchanged
    first_tensors: TensorPage | None = None  # the table's first rows, when the params ask for them


@attrs.define
class ChildrenResult:
    children: list[NodeSummary]
    total: int


@attrs.define
class DetailsResult:
    node: NodeSummary
    tied: list[str] | None = None


@attrs.define
class SearchResult:
    matches: list[NodeSummary]
    total: int


@attrs.define
class TensorsResult:
    tensors: list[TensorJson]
    total: int
    marks: dict[str, ScanMark] | None = None  # by key, the page's rows the last scan marked
    # Where the `row_of` tensor is in this filter and order (absent: not asked, or not in it).
    row: int | None = None


@attrs.define
class ScanResult:
    file: str
    complete: bool  # False: cancelled; what was found so far
    total: int  # distinct tensors (tied ones once)
    scanned: int
    elements: int
    bytes: int
    seconds: float
    counts: ScanCounts
    bad: list[ScanTensor]
    unreadable: list[KeyMessage]
    thresholds: ScanThresholds


@attrs.define
class ModuleStatsResult:
    stats: ModuleStats | None = None
    error: str | None = None


@attrs.define
class DiffResult:
    a: DiffSide
    b: DiffSide
    values: bool
    complete: bool
    stripped: list[str]  # the prefix taken off A's and B's names to match them ("": none)
    notes: list[str]
    summary: DiffSummary
    modules: list[DiffModule]
    tensors: list[DiffTensor]


@attrs.define
class ConvertResult:
    written: ConvertSummary | None = None
    error: str | None = None


@attrs.define
class RevealResult:
    # From the root's child to the node itself; empty for the root.
    steps: list[RevealStep]


@attrs.define
class EnvironmentResult:
    python: str  # "3.11.7"
    executable: str
    prefix: str  # sys.prefix: the environment
    # Versions of what computes tensor values, None when that Python cannot import it.
    torch: str | None
    numpy: str | None


@attrs.define
class StatsResult:
    # One of the two: the statistics (docs/protocol.md), or why there are none.
    stats: TensorStats | None = None
    error: str | None = None


@attrs.define
class SetActiveCheckpointResult:
    # The file Python documents now link (normalised), or None.
    file: str | None


@attrs.define
class InsertRequiresGradCodeResult:
    applied: bool
    # The action's title when applied; otherwise why nothing was inserted.
    message: str
    # With placement "check": the (0-based) line of the optimizer the code would come after.
    optimizer_line: int | None


class ModuleChoice(TypedDict):
    """One module in the quick pick: its key (sent back in `modules`), label, description."""

    key: str
    label: str
    description: str


class ModuleAction(TypedDict):
    action: RequiresGradAction
    label: str
    detail: str


@attrs.define
class ListModulesResult:
    # None when no model variable is in scope (then `message` says so).
    var: str | None
    title: str  # "Freeze / unfreeze modules of net (from whole_model.pth)"
    modules: list[ModuleChoice]
    actions: list[ModuleAction]
    message: str


@attrs.define
class SnippetEditResult:
    # The range to replace (0-based lines, UTF-16 characters) and the snippet text; when not
    # applicable, `snippet` is "" and `message` says why.
    version: int | None
    line: int
    character: int
    end_line: int
    end_character: int
    snippet: str
    message: str


def _request_type(method: str, params_type: type) -> type:
    """The JSON-RPC request message class for `method`, shaped like lsprotocol's."""
    return attrs.make_class(
        params_type.__name__.removesuffix("Params") + "Request",
        {
            "id": attrs.field(type=_REQUEST_ID),
            "params": attrs.field(type=params_type),
            "method": attrs.field(type=str, default=method),
            "jsonrpc": attrs.field(type=str, default="2.0"),
        },
    )


def _response_type(result_type: type) -> type:
    return attrs.make_class(
        result_type.__name__.removesuffix("Result") + "Response",
        {
            "id": attrs.field(type=_RESPONSE_ID),
            "result": attrs.field(type=result_type),
            "jsonrpc": attrs.field(type=str, default="2.0"),
        },
    )


# method → (params type, result type): the whole custom protocol.
METHODS: dict[str, tuple[type, type]] = {
    OPEN: (OpenParams, OpenResult),
    CHILDREN: (ChildrenParams, ChildrenResult),
    DETAILS: (DetailsParams, DetailsResult),
    SEARCH: (SearchParams, SearchResult),
    TENSORS: (TensorsParams, TensorsResult),
    SET_ACTIVE_CHECKPOINT: (SetActiveCheckpointParams, SetActiveCheckpointResult),
    STATS: (StatsParams, StatsResult),
    SCAN: (ScanParams, ScanResult),
    MODULE_STATS: (ModuleStatsParams, ModuleStatsResult),
    DIFF: (DiffParams, DiffResult),
    CONVERT: (ConvertParams, ConvertResult),
    REVEAL: (RevealParams, RevealResult),
    ENVIRONMENT: (EnvironmentParams, EnvironmentResult),
}
# command → (argument type, result type) for `workspace/executeCommand`.
COMMANDS: dict[str, tuple[type, type]] = {
    INSERT_REQUIRES_GRAD_CODE: (InsertRequiresGradCodeArgs, InsertRequiresGradCodeResult),
    LIST_MODULES: (ListModulesArgs, ListModulesResult),
    SNIPPET_EDIT: (SnippetEditArgs, SnippetEditResult),
}


@cache
def request_type(method: str) -> type | None:
    """The message class of a request of ours (made on first use: start-up stays quick)."""
    return _request_type(method, METHODS[method][0]) if method in METHODS else None


@cache
def response_type(method: str) -> type | None:
    return _response_type(METHODS[method][1]) if method in METHODS else None


def _json_type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _exactly(*types: type, expected: str) -> Any:
    """A structure hook that accepts only values of `types` (bool never counts as int)."""

    def structure(value: object, _type: object) -> object:
        if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
            return value
        raise ParamError(f"expected {expected}, got {_json_type_name(value)}")

    return structure


def _strict_converter() -> cattrs.Converter:
    """A converter for params that checks JSON types instead of coercing ("3" is not 3)."""
    converter = cattrs.Converter()
    converter.register_structure_hook(str, _exactly(str, expected="a string"))
    converter.register_structure_hook(int, _exactly(int, expected="an integer"))
    converter.register_structure_hook(
        str | None, _exactly(str, type(None), expected="a string or null")
    )
    converter.register_structure_hook(bool, _exactly(bool, expected="true or false"))
    # Names from a fixed list: a string here, checked against the list by the field's validator.
    converter.register_structure_hook_func(
        lambda t: t in (TensorSort, RequiresGradAction, Placement, SnippetAction),
        _exactly(str, expected="a string"),
    )
    structure_path_element = _exactly(str, int, expected="a string or an integer")
    converter.register_structure_hook(PathElement, structure_path_element)
    converter.register_structure_hook(
        ProgressToken | None, _exactly(str, int, type(None), expected="a progress token")
    )

    def structure_path(value: object, _type: object) -> list[PathElement]:
        if not isinstance(value, list):
            raise ParamError(f"expected an array, got {_json_type_name(value)}")
        return [structure_path_element(element, None) for element in value]

    converter.register_structure_hook_func(lambda t: t == list[PathElement], structure_path)
    converter.register_structure_hook_func(
        lambda t: t == list[PathElement] | None,
        lambda value, _t: None if value is None else structure_path(value, None),
    )
    return converter


def _camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _unstructure_json_result(result: Any) -> dict[str, Any]:
    """A result's fields as they are (already plain JSON), leaving out an unset `tied`.

    cattrs would walk every value of every node for nothing: 20 ms a page of 500 nodes."""
    return {
        a.name: value
        for a in attrs.fields(type(result))
        if (value := getattr(result, a.name)) is not None or a.default is not None
    }


def register_protocol_hooks(converter: cattrs.Converter) -> cattrs.Converter:
    """Teach `converter` (pygls' own) our messages: params are structured strictly, with
    camelCase keys; results are sent as the plain JSON they hold."""
    strict = _strict_converter()
    params_types = {params for params, _ in [*METHODS.values(), *COMMANDS.values()]}
    result_types = {result for _, result in [*METHODS.values(), *COMMANDS.values()]}

    def structure_fn(params_type: type) -> Any:  # generated on first use: start-up stays quick
        renames: dict[str, Any] = {
            a.name: override(rename=_camel_case(a.name)) for a in attrs.fields(params_type)
        }
        return make_dict_structure_fn(params_type, strict, **renames)

    converter.register_structure_hook_factory(lambda t: t in params_types, structure_fn)
    converter.register_unstructure_hook_func(lambda t: t in result_types, _unstructure_json_result)
    return converter


def _describe_param_error(error: BaseException) -> str:
    if isinstance(error, ParamError):
        return str(error)
    return cattrs.v.format_exception(error, None)


def invalid_params_message(method: str, error: BaseException) -> str:
    """One line naming each bad field, e.g. `... required field missing @ $.file`."""
    if isinstance(error, cattrs.ClassValidationError):
        problems = cattrs.transform_error(
            error, path="$", format_exception=lambda e, _t: _describe_param_error(e)
        )
    else:
        problems = [_describe_param_error(error)]
    return f"Invalid params for {method}: " + "; ".join(map(_name_the_field, problems))


def _name_the_field(problem: str) -> str:
    """`expected an integer @ $.params.offset` → `offset: expected an integer`."""
    message, _, where = problem.rpartition(" @ ")
    field = where.removeprefix("$").removeprefix(".params").removeprefix(".")
    return f"{field}: {message}" if field else message


@attrs.frozen
class _AnsweredRequest:
    """A request whose error response has already been sent while it was being read."""

    id: int | str


class PthscopeProtocol(LanguageServerProtocol):
    """LSP plus the `pthscope/*` requests, typed through `get_message_type`."""

    @lru_cache  # noqa: B019  (as in pygls: one protocol per server, kept for its lifetime)
    def get_message_type(self, method: str) -> type | None:
        return request_type(method) or super().get_message_type(method)

    @lru_cache  # noqa: B019
    def get_result_type(self, method: str) -> type | None:
        return response_type(method) or super().get_result_type(method)

    def structure_message(self, data: dict[str, Any]) -> Any:
        """Answer bad params of our requests with InvalidParams naming the field.

        pygls raises a bare InvalidParams while reading the message and so never answers it;
        here the answer goes out at once and the message is dropped.
        """
        method = data.get("method")
        if method not in METHODS or "id" not in data:
            return super().structure_message(data)
        if not isinstance(data.get("params"), dict):
            message = f"Invalid params for {method}: params must be an object with `file`"
        else:
            try:
                return super().structure_message(data)
            except JsonRpcInvalidParams as error:
                message = invalid_params_message(method, error.__cause__ or error)
        self._send_response(data["id"], error=JsonRpcInvalidParams(message).to_response_error())
        return _AnsweredRequest(data["id"])

    def handle_message(self, message: Any) -> None:
        if not isinstance(message, _AnsweredRequest):
            super().handle_message(message)
