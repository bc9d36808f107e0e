"""TorchScript archives (`torch.jit.save`): the module tree, without compiling or running anything.

The archive is a torch zip whose `data.pkl` holds the module as TorchScript objects: each is an
instance of a class under `__torch__` (`__torch__.torch.nn.modules.linear.Linear`; a class
compiled twice gets a mangled name, `__torch__.torch.nn.modules.linear.___torch_mangle_0.Linear`),
its state a dict of every attribute in slot order — submodules, parameters, buffers, plain tensor
attributes, `training`, other values. Which attributes are parameters and which buffers is
declared in the class's source under `code/` (`__parameters__ = ["weight", "bias", ]`,
`__buffers__ = [...]`); those files are parsed as text with `ast`, never executed. The tensors'
`requires_grad` are the flags as saved. `constants.pkl` holds the tensors and values the code
uses (its storages under `constants/`). Every pickle of the archive — data.pkl, constants.pkl,
the `.debug_pkl` source maps, traced inputs — goes through the restricted unpickler and into the
verdict; torch.jit.load itself reads them with TorchScript's own unpickler, which refuses
globals that are not torch's, but a Python unpickler would not.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .dtypes import UNTYPED
from .limits import Limits
from .model import Checkpoint, Problem
from .pickled import PickleError, fill_checkpoint, report_globals, side_pickle_limit, unpickle
from .safe_repr import safe_repr
from .unpickler import PersistentLoad, StorageRef, Stub, TensorRecord, UnpickleLog
from .zip_directory import Member, ZipDirectory, ZipError, read_member

FORMAT = "torchscript"
_MANGLE = re.compile(r"___torch_mangle_\d+\.")
_MAX_CODE_BYTES = 64 << 20  # all code files together
CONSTANTS_KEY = "constants.pkl"

StorageLoader = Callable[[str], PersistentLoad]  # records folder ("data", "constants") → persistent_load


@dataclass
class ScriptClass:
    """What a `code/` file declares of one class: a Module or not, its parameters and buffers."""

    module: bool
    parameters: list[str] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)


def demangled(name: str) -> str:
    """`__torch__.torch.nn.modules.linear.___torch_mangle_0.Linear` → `torch.nn.modules.linear.Linear`."""
    name = _MANGLE.sub("", name)
    return name[len("__torch__."):] if name.startswith("__torch__.") else name


def read_torchscript(f: BinaryIO, directory: ZipDirectory, prefix: bytes, size: int, checkpoint: Checkpoint,
                     log: UnpickleLog, limits: Limits, storages: StorageLoader) -> Checkpoint:
    checkpoint.format = FORMAT
    classes = _script_classes(f, directory, prefix, size, checkpoint)
    checkpoint.metadata["code files"] = f"{sum(1 for m in directory if _is_code(m, prefix)):,}"
    checkpoint.metadata["classes"] = f"{len(classes):,}"
    extra = [m.name[len(prefix) + len("extra/"):] for m in directory if m.raw.startswith(prefix + b"extra/")]
    if extra:
        checkpoint.metadata["extra files"] = ", ".join(safe_repr(n) for n in extra[:5]) + (", …" if len(extra) > 5 else "")
    main = directory.get(prefix + b"data.pkl")
    constants_member = directory.get(prefix + b"constants.pkl")
    constants = _unpickle_member(f, constants_member, size, storages("constants"), log, limits, checkpoint)
    left = limits.max_side_pickle_bytes
    for member in directory:
        if member not in (main, constants_member) and member.raw.lower().endswith((b".pkl", b"_pkl")):
            if member.size > left:
                checkpoint.warnings.append(side_pickle_limit(member.name, limits))
                continue
            left -= member.size
            _unpickle_member(f, member, size, _any_storage, log, limits, checkpoint, quiet=True)
    if main is None:
        checkpoint.errors.append(Problem("corrupt", "the TorchScript archive has no data.pkl (its module); torch.jit.load "
                                         "fails on it", where="zip directory"))
        return _finish(report_globals(checkpoint, log))
    root = _unpickle_member(f, main, size, storages("data"), log, limits, checkpoint)
    if root is None:
        return _finish(report_globals(checkpoint, log))
    module = _ModuleTree(classes, checkpoint).convert(root)
    if isinstance(constants, tuple) and _has_tensors(constants) and isinstance(module, Stub):
        module.state[CONSTANTS_KEY] = constants
    if isinstance(constants, tuple):
        checkpoint.metadata["constants"] = f"{len(constants):,}"
    fill_checkpoint(checkpoint, module, log, limits)
    for info in checkpoint.modules:
        info.class_name = demangled(info.class_name)
    return _finish(checkpoint)


_JIT_BUILDERS = {f"torch.jit._pickle.{name}" for name in (
    "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_tensor_from_id",
    "restore_type_tag")}


def _finish(checkpoint: Checkpoint) -> Checkpoint:
    """TorchScript's loader is not Python's (model.loader_of): say what its classes are and that it runs code."""
    for ref in checkpoint.globals:
        if ref.name in _JIT_BUILDERS:  # not classes: torch.jit.load's own, each returns (a list of) its argument
            ref.risk = "safe"
            ref.effect = "torch.jit.load's own list and type-tag builder (torch/jit/_pickle.py): it only returns its data"
        elif ref.name.startswith("__torch__."):
            ref.effect = ("a TorchScript class: torch.jit.load compiles it from the archive's code/ files and rebuilds "
                          "its objects; pickle.load cannot import it")
    checkpoint.warnings.append(Problem(
        "code", "a TorchScript archive: torch.load hands it to torch.jit.load, which compiles and runs the TorchScript "
        "code in its code/ folder (torch.load(weights_only=True) refuses it) — load it only if you trust its source; "
        "pthscope read the module tree without running anything", where="code/"))
    return checkpoint


def _is_code(member: Member, prefix: bytes) -> bool:
    return member.raw.startswith(prefix + b"code/") and member.raw.endswith(b".py")


def _script_classes(f: BinaryIO, directory: ZipDirectory, prefix: bytes, size: int,
                    checkpoint: Checkpoint) -> dict[str, ScriptClass]:
    """Every class the `code/` files declare, by qualified name (`__torch__.x.y.Name`)."""
    classes: dict[str, ScriptClass] = {}
    budget = _MAX_CODE_BYTES
    for member in directory:
        if not _is_code(member, prefix):
            continue
        if member.size > budget or member.unreadable_reason():
            checkpoint.warnings.append(Problem("limit", f"{member.name} was not read (over {_MAX_CODE_BYTES >> 20} MiB of "
                                               "code, or unreadable): its classes' parameters are not known",
                                               where=member.name))
            continue
        budget -= member.size
        module = member.raw[len(prefix) + len(b"code/"):-len(b".py")].decode("utf-8", "replace").replace("/", ".")
        try:
            tree = ast.parse(read_member(f, member, size).decode("utf-8", "replace"), member.name)
        except (SyntaxError, ValueError, RecursionError, MemoryError, ZipError) as exc:
            checkpoint.warnings.append(Problem("corrupt", f"{member.name} cannot be parsed ({type(exc).__name__}): its "
                                               "classes' parameters are not known", where=member.name))
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                classes[f"{module}.{node.name}"] = _declared(node)
    return classes


def _declared(node: ast.ClassDef) -> ScriptClass:
    declared = ScriptClass(module=any(isinstance(b, ast.Name) and b.id == "Module" for b in node.bases))
    for statement in node.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            target = statement.targets[0].id
            if target in ("__parameters__", "__buffers__") and isinstance(statement.value, (ast.List, ast.Tuple)):
                names = [e.value for e in statement.value.elts if isinstance(e, ast.Constant) and type(e.value) is str]
                (declared.parameters if target == "__parameters__" else declared.buffers).extend(names)
    return declared


def _unpickle_member(f: BinaryIO, member: Member | None, size: int, persistent_load: PersistentLoad, log: UnpickleLog,
                     limits: Limits, checkpoint: Checkpoint, quiet: bool = False) -> Any:
    """One pickle of the archive through the restricted unpickler; None (with a problem) when it
    cannot be read. `quiet`: a pickle read for its globals only."""
    if member is None:
        return None
    if member.size > limits.max_pickle_bytes or member.unreadable_reason():
        problems = checkpoint.warnings if quiet else checkpoint.errors
        problems.append(Problem("limit", f"{member.name} was not read: over the pickle limit, or unreadable",
                                where=member.name))
        return None
    try:
        return unpickle(io.BytesIO(read_member(f, member, size)), member.name, persistent_load, log, limits)
    except (PickleError, ZipError) as exc:
        if not quiet:
            checkpoint.errors.append(Problem(getattr(exc, "kind", "corrupt"), str(exc), where=exc.where))
        else:
            checkpoint.warnings.append(Problem("corrupt", f"{member.name}: {exc}", where=exc.where))
        return None


def _any_storage(pid: Any) -> Any:
    return StorageRef("?", UNTYPED, "cpu", 0, 0)


def _has_tensors(values: tuple[Any, ...]) -> bool:
    return any(type(v) is TensorRecord for v in values)


class _ModuleTree:
    """TorchScript objects of Module classes → the `_parameters`/`_buffers`/`_modules` state the
    tree builder knows from pickled nn.Modules (the records themselves are not changed)."""

    def __init__(self, classes: dict[str, ScriptClass], checkpoint: Checkpoint) -> None:
        self.classes, self.checkpoint = classes, checkpoint
        self.done: dict[int, Any] = {}
        self.undeclared: set[str] = set()

    def convert(self, root: Any) -> Any:
        """The root's stand-in; every module reachable from it gets one (no recursion: a hostile
        archive may nest modules arbitrarily deep)."""
        found: list[tuple[Any, ScriptClass]] = []
        stack = [root]
        while stack:
            obj = stack.pop()
            declared = self._script_module(obj)
            if declared is None or id(obj) in self.done:
                continue
            made = Stub.make(type(obj), (), {})
            self.done[id(obj)] = made
            found.append((obj, declared))
            stack.extend(self._attributes(obj).values())
        for obj, declared in found:
            object.__setattr__(self.done[id(obj)], "state", self._module_state(obj, declared))
        if self.undeclared:
            names = sorted(self.undeclared)
            self.checkpoint.warnings.append(Problem(
                "missing", f"{len(names)} module classes have no code/ file declaring their parameters and buffers "
                f"({', '.join(demangled(n) for n in names[:3])}{', …' if len(names) > 3 else ''}): their tensors are "
                "shown as plain attributes", where="code/"))
        return self.done.get(id(root), root)

    def _script_module(self, obj: Any) -> ScriptClass | None:
        if not isinstance(obj, Stub) or not type(obj).qualname.startswith("__torch__."):
            return None
        declared = self.classes.get(type(obj).qualname)
        if declared is None:
            self.undeclared.add(type(obj).qualname)
            return ScriptClass(module=isinstance(obj.state, dict) and "training" in obj.state)
        return declared if declared.module else None

    @staticmethod
    def _attributes(obj: Any) -> dict[Any, Any]:
        return obj.state if isinstance(obj, Stub) and isinstance(obj.state, dict) else {}

    def _module_state(self, obj: Any, declared: ScriptClass) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        buffers: dict[str, Any] = {}
        modules: dict[str, Any] = {}
        state: dict[str, Any] = {"_parameters": parameters, "_buffers": buffers, "_modules": modules}
        for name, value in self._attributes(obj).items():
            if type(name) is not str:
                continue
            if name in declared.parameters:
                parameters[name] = value.but(kind="parameter") if type(value) is TensorRecord else value
            elif name in declared.buffers:
                buffers[name] = value
            elif id(value) in self.done:
                modules[name] = self.done[id(value)]
            else:
                state[name] = value
        return state
