"""Which tensors of a file are model parameters, buffers, optimizer state or other tensors.

Decided once, from the file's structure, at the end of every reader (`assign_roles`, called by
`reader.inspect`); every count anyone shows is a tally of these roles (counts.py). The rules,
also in docs/json-contract.md ("Roles"):

1. A whole model (a pickled `nn.Module`, wherever it sits): tensors in a module's `_parameters`
   are parameters, in its `_buffers` buffers (persistent or not); plain tensor attributes are
   other tensors. So the counts are `model.parameters()` and `model.buffers()`.
2. An optimizer's state — a dict, or a pickled optimizer, holding `state` and `param_groups` —
   is optimizer state wherever it sits (`optimizer`, Lightning's `optimizer_states`, `opt_d`):
   Adam's `exp_avg`, `exp_avg_sq` and `step`, SGD's `momentum_buffer`, and so on.
3. A state_dict — a dict of tensors (and plain values) — is a model's when it is the file's
   root, when a key names it as one (`model`, `net`, `module`, anything with `state_dict`), or
   when it holds a `weight` or `bias`. In it, tensors that cannot require grad (integers, bool)
   and the buffers torch's layers register (BatchNorm's `running_mean`, `running_var`,
   `num_batches_tracked`, ...) are buffers; the other tensors are parameters. When the file
   states which tensors are buffers (a torch.export program's signature), it states every
   tensor's kind: parameters, buffers, and its plain tensors (lifted constants) are other.
   A state_dict leaves out non-persistent buffers, so those are not counted.
4. A Lightning checkpoint (`state_dict` beside `optimizer_states`, `lr_schedulers`,
   `callbacks`, `loops`, `epoch`, `global_step`, `hyper_parameters`): `state_dict` is the
   model, whatever its keys; the other entries hold optimizer state (2) or other tensors.
5. Several models in one file (a GAN's generator and discriminator) are all the file's model.
   An EMA or SWA copy (a key, or a state_dict's first key part, named `ema`, `model_ema`,
   `swa`, `shadow`, `averaged`, ...) beside another model is the same weights again: its
   tensors are other tensors, so the model is not counted twice. Alone, it is the model.
6. Anything else — numpy arrays, loose tensors, RNG states, metrics — is other.

Model-relative names (what code calls a tensor: `fc.weight` for `state_dict` → `module.fc.weight`)
come from `model_name`, which also drops DataParallel's `module.` and torch.compile's
`_orig_mod.` prefixes.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from itertools import repeat
from operator import attrgetter, itemgetter

from .counts import Role, Tally, tally_tree, tied_views
from .dtypes import can_require_grad
from .model import Checkpoint, ModelInfo, Node, ParamCounts, PathElement, TensorInfo

_LIGHTNING_KEYS = frozenset({
    "pytorch-lightning_version", "optimizer_states", "lr_schedulers", "callbacks", "loops",
    "epoch", "global_step", "hyper_parameters", "hparams_name",
})
_MODEL_NAMES = frozenset({"model", "net", "network", "module", "state_dict", "weights", "params"})
# Buffers torch's own layers register under these names, whatever their dtype.
BUFFER_NAMES = frozenset({"running_mean", "running_var", "num_batches_tracked", "inv_freq", "_float_tensor"})
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_COPY_WORDS = re.compile(r"(?:^|_)(ema|swa|shadow|averaged)(?:_|$)")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_CONTAINERS = frozenset({"dict", "list", "tuple", "set", "object"})
# An optimizer's state_dict has 2 entries, a pickled optimizer or a Lightning checkpoint a dozen:
# a bigger dict (a model's state_dict of 30,000 tensors) is not looked through for their keys.
_FEW_ENTRIES = 64


def assign_roles(checkpoint: Checkpoint) -> None:
    """Give every tensor its role, list the models (`checkpoint.models`), count each module's
    parameters and find the tied views (counts.py)."""
    tensors = checkpoint.tensors
    checkpoint.tied_views = tied_views(tensors)
    root = checkpoint.root
    if root is None:
        return
    found: list[tuple[ModelInfo, Node]] = []
    _search(root, found, tensors)
    originals = [m for m, _ in found if not m.ema]
    models: list[ModelInfo] = []
    for model, node in found:
        if model.ema and not originals:
            model.ema = False  # an EMA copy alone is the model
        models.append(model)
        if model.saved_as == "module":
            _module_roles(node, tensors, copy=model.ema)
        else:
            models += _state_dict_roles(node, model, tensors)
    checkpoint.models = models
    _count_modules(checkpoint)


def _search(root: Node, found: list[tuple[ModelInfo, Node]], tensors: list[TensorInfo]) -> None:
    """Find the models and optimizer states under `root`; the rest stays "other"."""
    lightning = root.kind == "dict" and _is_lightning(root)
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.kind
        if kind == "module":
            found.append((ModelInfo(node.path, "module", _is_copy(node.path)), node))
        elif kind not in _CONTAINERS:
            continue
        elif _is_optimizer_state(node):
            for index in _tensors_under(node):
                tensors[index].role = "optimizer_state"
        elif kind == "dict" and _is_state_dict(node, root, lightning):
            found.append((ModelInfo(node.path, "state_dict", _is_copy(node.path)), node))
        elif node is root and lightning:
            stack.extend(c for c in reversed(node.children) if c.name in ("state_dict", "optimizer_states"))
        else:
            stack.extend(reversed(node.children))  # popped in file order


def _is_lightning(root: Node) -> bool:
    if len(root.children) > _FEW_ENTRIES:
        return False
    names = {c.name for c in root.children}
    return "state_dict" in names and bool(names & _LIGHTNING_KEYS)


def _is_optimizer_state(node: Node) -> bool:
    if len(node.children) > _FEW_ENTRIES:
        return False
    kinds = {c.name: c.kind for c in node.children}
    return kinds.get("state") in ("dict", "object") and kinds.get("param_groups") in ("list", "tuple")


def _is_state_dict(node: Node, root: Node, lightning: bool) -> bool:
    """A dict of tensors and plain values that is a model's (rule 3, and 4 for Lightning)."""
    has_tensor = False
    parameter_like = False
    for child in node.children:
        kind = child.kind
        if kind == "tensor":
            has_tensor = True
            if not parameter_like:
                leaf = child.name.rpartition(".")[2]
                parameter_like = leaf in ("weight", "bias") or leaf.endswith(("_weight", "_bias"))
        elif kind != "value":
            return False
    if lightning and node.path == ["state_dict"]:
        return True
    if not has_tensor:
        return False
    if node is root or parameter_like:
        return True
    name = node.name.lower()
    return name in _MODEL_NAMES or "state_dict" in name


def _is_copy(path: list[PathElement]) -> bool:
    return any(isinstance(p, str) and _is_copy_name(p) for p in path)


def _is_copy_name(name: str) -> bool:
    return _COPY_WORDS.search(_CAMEL.sub(r"\1_\2", name).lower()) is not None


def _module_roles(node: Node, tensors: list[TensorInfo], copy: bool) -> None:
    for index in _tensors_under(node):
        tensor = tensors[index]
        kind = tensor.kind
        if copy or kind not in ("parameter", "buffer"):
            tensor.role = "other"
        else:
            tensor.role = kind


def _state_dict_roles(node: Node, model: ModelInfo, tensors: list[TensorInfo]) -> list[ModelInfo]:
    """Give a state_dict's tensors their roles; return its EMA groups (rule 5) as models."""
    indices = list(map(_TENSOR, node.children))
    if None in indices:
        tensor_children = [child for child in node.children if child.tensor is not None]
        indices = list(map(_TENSOR, tensor_children))
    else:
        tensor_children = node.children
    names = list(map(_NAME, tensor_children))
    # First key part → is it an EMA copy? Decided once per distinct first part (a handful).
    firsts = list(map(itemgetter(0), map(str.partition, names, repeat("."))))
    copies = {first: _is_copy_name(first) for first in set(firsts)}
    mixed = any(copies.values()) and not all(copies.values())
    groups = [ModelInfo(model.path, "state_dict", True, prefix=first + ".")
              for first, copy in copies.items() if mixed and copy]
    chosen = list(map(tensors.__getitem__, indices))
    dtypes = list(map(_DTYPE, chosen))
    grad_capable = {dtype: can_require_grad(dtype) for dtype in set(dtypes)}  # one call per dtype
    # A buffer's name ends with one of BUFFER_NAMES: the few names that do are looked at closely.
    maybe_buffers = list(map(str.endswith, names, repeat(_BUFFER_ENDS)))
    roles: list[Role]
    if model.ema:
        roles = ["other"] * len(chosen)
    else:
        if not any(maybe_buffers) and all(grad_capable.values()):  # parameters only (a model's weights)
            roles = ["parameter"] * len(chosen)
        else:
            named_buffer = [name.rpartition(".")[2] in BUFFER_NAMES if maybe else False
                            for name, maybe in zip(names, maybe_buffers, strict=True)]
            roles = ["buffer" if buffer or not grad_capable[dtype] else "parameter"
                     for dtype, buffer in zip(dtypes, named_buffer, strict=True)]
        kinds = set(map(_KIND, chosen))
        if "buffer" in kinds:  # the file states each tensor's kind: a torch.export program's signature
            roles = [_STATED_ROLES.get(kind, "other") for kind in map(_KIND, chosen)]
        if mixed or "ndarray" in kinds:
            roles = ["other" if tensor.kind == "ndarray" or (mixed and copies[first]) else role
                     for tensor, first, role in zip(chosen, firsts, roles, strict=True)]
    deque(map(setattr, chosen, repeat("role"), roles), maxlen=0)
    return groups


_NAME, _DTYPE, _KIND, _TENSOR = attrgetter("name"), attrgetter("dtype"), attrgetter("kind"), attrgetter("tensor")
# A state dict whose tensors say they are buffers (only a torch.export signature does) says it of all:
# its plain tensors are lifted constants, not parameters.
_STATED_ROLES: dict[str, Role] = {"parameter": "parameter", "buffer": "buffer"}
_BUFFER_ENDS = tuple(BUFFER_NAMES)


def _tensors_under(node: Node) -> Iterator[int]:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.tensor is not None:
            yield current.tensor
        stack.extend(current.children)


def _count_modules(checkpoint: Checkpoint) -> None:
    """Each module's parameter counts, as its `parameters()` would count them."""
    if not checkpoint.modules or checkpoint.root is None:
        return
    tallies = tally_tree(checkpoint.root, checkpoint.tensors, checkpoint.tied_views,
                         lambda node: node.children, lambda node: node.module is not None)
    nodes = [checkpoint.root]
    while nodes:
        node = nodes.pop()
        if node.module is not None:
            tally = tallies.get(id(node)) or Tally()
            counts = tally.parameters_json()
            checkpoint.modules[node.module].parameters = ParamCounts(**counts)
        nodes.extend(c for c in node.children if c.children)


def model_of(models: list[ModelInfo], path: list[PathElement]) -> ModelInfo | None:
    """The innermost model holding the tensor at `path` (an EMA group counts as inner)."""
    best: ModelInfo | None = None
    for model in models:
        n = len(model.path)
        if path[:n] != model.path:
            continue
        if model.prefix and not (len(path) > n and str(path[n]).startswith(model.prefix)):
            continue
        if best is None or (n, bool(model.prefix)) > (len(best.path), bool(best.prefix)):
            best = model
    return best


def model_name(model: ModelInfo, path: list[PathElement]) -> str:
    """What the model calls the tensor or module at `path`: the key below the model, without
    DataParallel's `module.` and torch.compile's `_orig_mod.` prefixes."""
    return strip_wrappers(".".join(map(str, path[len(model.path):])))


def strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                stripped = True
    return key
