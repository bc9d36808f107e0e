"""torch.export archives (`.pt2`, `torch.export.save`): the programs' signatures and weights, from
the archive's JSON only.

Two layouts. Since torch 2.7 (PT2 archive): `<root>/archive_format` ("pt2"), `models/<name>.json`
(the serialized ExportedProgram: graph, signature, tensor metadata), `data/weights/<name>_weights_config.json`
(each weight's fully qualified name → its member, whether it is a parameter, its tensor metadata),
the same for `data/constants/`, raw weight members, `data/sample_inputs/<name>.pt`, and for
AOTInductor packages compiled code under `data/aotinductor/`. Before: `serialized_exported_program.json`,
`serialized_state_dict.pt`, `serialized_constants.pt`, `serialized_example_inputs.pt`, `version`.

Weights come from the graph signature (parameters, buffers, tensor constants) with the tensor
metadata of their placeholders, and where they are stored from the weights config. Nothing is
run. The archive's pickles (pickled weights and constants, sample inputs, the older layout's
state dict) are what torch.export.load unpickles — some with weights_only=False —, so each is read
by the same restricted unpickler as any checkpoint and its globals are reported.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any, BinaryIO

from .file_slice import FileSlice
from .limits import Limits
from .model import Checkpoint, Node, Problem, TensorInfo, contiguous_stride
from .pickled import PickleError, report_globals, unpickle
from .safe_repr import key_text, safe_repr
from .truncated_zip import first_member_name
from .unpickler import StorageRef, UnpickleLog, storage_type_dtype
from .zip_directory import (
    Member,
    ZipDirectory,
    ZipError,
    data_offset,
    file_size_of,
    read_directory,
    read_member,
)

# torch._export.serde.schema.ScalarType → dtype name
_SCALAR_TYPES = {
    1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32", 8: "float64",
    9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16", 28: "uint16",
    29: "float8_e4m3fn", 30: "float8_e5m2", 31: "float8_e4m3fnuz", 32: "float8_e5m2fnuz", 33: "float8_e8m0fnu",
    34: "uint32", 35: "uint64",
}
_LAYOUTS = {1: "sparse", 2: "sparse_csr", 3: "sparse_csc", 4: "sparse_bsr", 5: "sparse_bsc", 6: "mkldnn", 7: "strided"}
_INPUT_KINDS = {"parameter": ("parameter_name", "parameter"), "buffer": ("buffer_name", "buffer"),
                "tensor_constant": ("tensor_constant_name", "tensor")}
_OLD_PROGRAM = "serialized_exported_program.json"
_OLD_PICKLES = ("serialized_state_dict.pt", "serialized_constants.pt", "serialized_example_inputs.pt")
_OPS_SHOWN = 8


def probe_torch_export(head: bytes, path: str) -> bool:
    """A zip whose first member is not a torch checkpoint's data.pkl, and whose directory names
    the archive_format or the older layout's program."""
    if not head.startswith(b"PK\x03\x04"):
        return False
    first = first_member_name(path)
    if first is None or first.endswith(("data.pkl", ".npy")):
        return False
    try:
        with open(path, "rb") as f:
            members = read_directory(f, file_size_of(f))
    except (ZipError, OSError):
        return False
    return _archive_root(members) is not None


def _archive_root(members: ZipDirectory) -> str | None:
    for member in members:
        if member.name.endswith("archive_format") and member.name.count("/") <= 1:
            return member.name[: -len("archive_format")]
    return "" if members.get(_OLD_PROGRAM) is not None else None


def read_torch_export(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="torch-export")
    with open(path, "rb") as f:
        size = file_size_of(f)
        try:
            members = read_directory(f, size, max_members=limits.max_nodes)
            _read(_Archive(f, size, members, _archive_root(members) or "", limits), checkpoint)
        except ZipError as exc:
            checkpoint.errors.append(Problem("corrupt", str(exc), where=exc.where))
    checkpoint.warnings.insert(0, Problem(
        "other-format", "a torch.export archive (.pt2, an ExportedProgram), not a torch.save checkpoint: torch.load "
        "cannot read it — load it with `torch.export.load(path)` (then `.module()` for a module you can call); the "
        "weights listed here come from its metadata"))
    return checkpoint


class _Archive:
    def __init__(self, f: BinaryIO, size: int, members: ZipDirectory, root: str, limits: Limits):
        self.f, self.size, self.members, self.root, self.limits = f, size, members, root, limits

    def member(self, name: str) -> Member | None:
        return self.members.get(self.root + name)

    def json(self, name: str) -> Any:
        member = self.member(name)
        if member is None:
            return None
        if member.size > self.limits.max_header_bytes:
            raise ZipError(f"{member.name} is {member.size:,} bytes, over the {self.limits.max_header_bytes:,}-byte "
                           "limit", member.name)
        try:
            return json.loads(read_member(self.f, member, self.size))
        except (ValueError, RecursionError) as exc:
            raise ZipError(f"{member.name} is not valid JSON ({str(exc)[:100]})", member.name) from None


def _read(archive: _Archive, checkpoint: Checkpoint) -> None:
    names = [m.name[len(archive.root):] for m in archive.members if m.name.startswith(archive.root)]
    old_layout = _OLD_PROGRAM in names
    programs = {"model": _OLD_PROGRAM} if old_layout else {
        n[len("models/"):-len(".json")]: n for n in names if n.startswith("models/") and n.endswith(".json")}
    for small in ("archive_format", "archive_version", "version"):
        member = archive.member(small)
        if member is not None and member.size <= 64:
            checkpoint.metadata[small.replace("_", " ")] = read_member(archive.f, member, archive.size).decode(
                "utf-8", "replace").strip()
    checkpoint.metadata["layout"] = "torch.export (torch < 2.7)" if old_layout else "PT2 archive"
    checkpoint.metadata["models"] = ", ".join(programs)[:200]
    root = Node("", [], "dict", "torch.export.pt2")
    several = len(programs) > 1
    # What torch.export.load unpickles, and any .pkl member (torch.load would read a data.pkl).
    pickled = [n for n in names if n in _OLD_PICKLES or n.lower().endswith(".pkl")]
    for model, program_member in programs.items():
        stored = {} if old_layout else _stored_entries(archive.json(f"data/weights/{model}_weights_config.json"),
                                                       archive.json(f"data/constants/{model}_constants_config.json"))
        _add_program(checkpoint, root, archive, model if several else None, archive.json(program_member), stored)
        if not old_layout:
            pickled += _pickled_members(names, [model], stored)
    _link_shared(checkpoint.tensors)
    checkpoint.root = root
    aoti = sorted({n.split("/")[2] for n in names if n.startswith("data/aotinductor/") and n.count("/") >= 3})
    if aoti:
        checkpoint.metadata["aotinductor"] = ", ".join(aoti)[:200]
        checkpoint.warnings.append(Problem(
            "native-code", f"an AOTInductor package: it holds compiled native code for {', '.join(aoti)[:200]} "
            "(data/aotinductor/), which loading the package (torch._inductor.aoti_load_package, "
            "torch.export.load) runs — only for files you trust", where=archive.root + "data/aotinductor/"))
    _audit_pickles(archive, checkpoint, pickled)


def _add_program(checkpoint: Checkpoint, root: Node, archive: _Archive, model: str | None, program: Any,
                 stored: dict[str, tuple[str, dict[str, Any]]]) -> None:
    graph_module = _object(program, "graph_module")
    if not graph_module:
        checkpoint.errors.append(Problem("corrupt", "the exported program has no graph_module",
                                         where=f"models/{model or 'model'}.json"))
        return
    if isinstance(program.get("torch_version"), str):
        checkpoint.metadata["torch version"] = program["torch_version"][:40]
    schema = _object(program, "schema_version")
    if schema:
        checkpoint.metadata["schema version"] = f"{schema.get('major')}.{schema.get('minor')}"
    graph = _object(graph_module, "graph")
    values = _object(graph, "tensor_values")
    signature = _object(graph_module, "signature")
    prefix = [model] if model else []
    user_inputs, listed = [], set()
    for spec in _items(signature, "input_specs"):
        kind, body = next(iter(spec.items())) if isinstance(spec, dict) and spec else ("", None)
        arg = _object(body, "arg")
        if kind == "user_input":
            name = _object(arg, "as_tensor").get("name")
            user_inputs.append(_describe(str(name), values.get(str(name))) if name else "(not a tensor)")
        elif kind in _INPUT_KINDS and isinstance(body, dict):
            name_field, tensor_kind = _INPUT_KINDS[kind]
            fqn = str(body.get(name_field, ""))
            folder, entry = stored.get(fqn, ("", {}))
            meta = values.get(str(arg.get("name"))) or entry.get("tensor_meta")
            info = _tensor([*prefix, fqn], meta, tensor_kind, folder, entry, archive)
            info.persistent = body.get("persistent", True) is not False
            listed.add(fqn)
            _add(checkpoint, root, info)
    for fqn, (folder, entry) in stored.items():  # stored but not in the signature (should not happen)
        if fqn not in listed and isinstance(entry.get("tensor_meta"), dict):
            _add(checkpoint, root, _tensor([*prefix, fqn], entry["tensor_meta"],
                                           "parameter" if entry.get("is_param") else "tensor", folder, entry, archive))
    label = f"{model} " if model else ""
    if user_inputs:
        checkpoint.metadata[f"{label}inputs"] = ", ".join(user_inputs)[:200]
    outputs = [_output_name(spec) for spec in _items(signature, "output_specs")]
    if outputs:
        checkpoint.metadata[f"{label}outputs"] = ", ".join(o for o in outputs if o)[:200]
    ops = Counter(str(n.get("target", "?")).removeprefix("torch.ops.") for n in _items(graph, "nodes") if isinstance(n, dict))
    if ops:
        checkpoint.metadata[f"{label}operators"] = ", ".join(f"{op} ×{n:,}" for op, n in ops.most_common(_OPS_SHOWN))[:300]


def _add(checkpoint: Checkpoint, root: Node, info: TensorInfo) -> None:
    checkpoint.tensors.append(info)
    root.children.append(Node(info.key, list(info.path), "tensor", "torch.Tensor", tensor=len(checkpoint.tensors) - 1))


def _object(value: Any, key: str) -> dict[str, Any]:
    """value[key] when both are JSON objects, else {} (the JSON is the file's, not trusted)."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, dict) else {}


def _items(value: Any, key: str) -> list[Any]:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def _stored_entries(*configs: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """fqn → (its folder, its entry) from the weights and constants configs."""
    stored: dict[str, tuple[str, dict[str, Any]]] = {}
    for folder, payload in zip(("data/weights/", "data/constants/"), configs, strict=True):
        entries = payload.get("config") if isinstance(payload, dict) else None
        if isinstance(entries, dict):
            stored.update((str(fqn), (folder, e)) for fqn, e in entries.items() if isinstance(e, dict))
    return stored


def _pickled_members(names: list[str], models: list[str], stored: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """The members torch.export.load unpickles: pickled weights and constants, script and opaque
    objects, sample inputs, and the weights and constants files of older archives."""
    found = [f"{folder}{entry['path_name']}" for folder, entry in stored.values()
             if isinstance(entry.get("path_name"), str)
             and (entry.get("use_pickle") or entry["path_name"].startswith(("custom_obj_", "opaque_obj_")))]
    for model in models:
        found += [n.format(model) for n in ("data/sample_inputs/{}.pt", "data/weights/{}.pt", "data/constants/{}.pt")]
    present = set(names)
    return [n for n in dict.fromkeys(found) if n in present]


def _tensor(path: list[str | int], meta: Any, kind: str, folder: str, entry: dict[str, Any],
            archive: _Archive) -> TensorInfo:
    meta = meta if isinstance(meta, dict) else {}
    shape = [_int(s) for s in meta.get("sizes") or []]
    stride = [_int(s) for s in meta.get("strides") or []] or contiguous_stride(shape)
    device = meta.get("device") if isinstance(meta.get("device"), dict) else {}
    location = str(device.get("type", "cpu")) + (f":{device['index']}" if isinstance(device.get("index"), int) else "")
    member_name = entry.get("path_name")
    member = archive.member(folder + member_name) if isinstance(member_name, str) else None
    return TensorInfo(
        path=path, shape=shape, dtype=_SCALAR_TYPES.get(meta.get("dtype", 0), f"export:type{meta.get('dtype')}"),
        requires_grad=meta.get("requires_grad") is True, kind=kind, location=location[:40],  # type: ignore[arg-type]
        stride=stride, storage_offset=_int(meta.get("storage_offset")),
        storage=member_name if isinstance(member_name, str) else "", storage_nbytes=member.size if member else None,
        layout=_LAYOUTS.get(meta.get("layout", 7), "strided") if not entry.get("use_pickle") else "pickled")


def _int(value: Any) -> int:
    """A SymInt as serialized: {"as_int": n}; a symbolic size counts as 0."""
    if isinstance(value, dict):
        value = value.get("as_int")
    return value if type(value) is int and 0 <= value < 1 << 63 else 0


def _describe(name: str, meta: Any) -> str:
    if not isinstance(meta, dict):
        return name
    sizes = []
    for s in meta.get("sizes") or []:
        if isinstance(s, dict) and "as_int" in s:
            sizes.append(str(s["as_int"]))
        elif isinstance(s, dict) and isinstance(s.get("as_expr"), dict):
            sizes.append(str(s["as_expr"].get("expr_str", "?"))[:20])
        else:
            sizes.append("?")
    return f"{name}: {_SCALAR_TYPES.get(meta.get('dtype', 0), '?')}[{', '.join(sizes)}]"


def _output_name(spec: Any) -> str:
    if not isinstance(spec, dict) or not spec:
        return ""
    kind, body = next(iter(spec.items()))
    arg = body.get("arg") if isinstance(body, dict) else None
    tensor = arg.get("as_tensor") if isinstance(arg, dict) else None
    name = tensor.get("name") if isinstance(tensor, dict) else (arg.get("name") if isinstance(arg, dict) else None)
    return f"{name}" + ("" if kind == "user_output" else f" ({kind})") if name else kind


def _link_shared(tensors: list[TensorInfo]) -> None:
    """Weights that torch.export stored once (tied weights) name the same member."""
    by_storage: dict[str, list[TensorInfo]] = {}
    for t in tensors:
        if t.storage:
            by_storage.setdefault(t.storage, []).append(t)
    for group in by_storage.values():
        if len(group) > 1:
            for t in group:
                t.shared_with = [o.key for o in group if o is not t][:32]


# ---------------------------------------------------------------------------------------------
# The archive's pickles: what torch.export.load unpickles


def _audit_pickles(archive: _Archive, checkpoint: Checkpoint, pickled: list[str]) -> None:
    log = UnpickleLog()
    for name in pickled:
        member = archive.member(name)
        if member is None or member.size == 0:
            continue
        problem = _audit_one(archive, member, log)
        if problem is not None:
            checkpoint.warnings.append(problem)
    if pickled:
        checkpoint.metadata["pickled members"] = f"{len(pickled):,} (torch.export.load unpickles them)"
    report_globals(checkpoint, log)


def _audit_one(archive: _Archive, member: Member, log: UnpickleLog) -> Problem | None:
    """Run one pickled member (a torch.save zip, or a bare pickle) through the restricted unpickler."""
    limits = archive.limits
    try:
        if member.method == 0:
            inner: Any = FileSlice(archive.f, data_offset(archive.f, member), member.size)
        elif member.size <= limits.max_pickle_bytes:
            inner = io.BytesIO(read_member(archive.f, member, archive.size))
        else:
            return Problem("limit", f"{member.name} is compressed and over the size pthscope unpickles", where=member.name)
        head = inner.read(4)
        inner.seek(0)
        if head == b"PK\x03\x04":
            nested = read_directory(inner, member.size)
            data = next((m for m in nested if m.name.lower().endswith("data.pkl")), None)
            if data is None:
                return None
            if data.size > limits.max_pickle_bytes:
                return Problem("limit", f"{member.name}: its data.pkl is over the pickle size limit", where=member.name)
            stream = io.BytesIO(read_member(inner, data, member.size))
            unpickle(stream, f"{member.name}/{data.name}", _storage_ref, log, limits)
        elif member.size <= limits.max_pickle_bytes:
            unpickle(inner, member.name, _no_persistent_ids, log, limits)
    except (PickleError, ZipError) as exc:
        return Problem("corrupt", f"{member.name}: {exc}", where=getattr(exc, "where", member.name))
    return None


def _storage_ref(pid: Any) -> StorageRef:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise ValueError(f"unsupported persistent id {safe_repr(pid)}")
    key = key_text(pid[2])
    if key is None:
        raise ValueError(f"storage key {safe_repr(pid[2])} is not a name")
    numel = pid[4] if type(pid[4]) is int and 0 <= pid[4] < 1 << 63 else 0
    return StorageRef(key=key, dtype=storage_type_dtype(pid[1]), location=safe_repr(pid[3]), numel=numel)


def _no_persistent_ids(pid: Any) -> Any:
    raise ValueError(f"unexpected persistent id {safe_repr(pid)}")
