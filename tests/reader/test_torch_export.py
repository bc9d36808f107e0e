"""torch.export archives made with torch.export.save in the test run (and the older layout made
with torch's own serializer), compared with the ExportedProgram; their pickles are audited."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from . import hostile_files as H
from .test_hostile import assert_no_canary, dangerous, read, write


class Exportable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 10, bias=False)
        self.proj.weight = self.embed.weight  # tied
        self.norm = nn.LayerNorm(4)
        self.norm.weight.requires_grad_(False)  # frozen
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.register_buffer("cache", torch.zeros(4), persistent=False)
        self.offset = torch.arange(4, dtype=torch.float32)  # a plain attribute: a lifted tensor constant

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(ids)) * self.scale + self.cache + self.offset
        return self.proj(h)


@pytest.fixture(scope="module")
def program() -> torch.export.ExportedProgram:
    return torch.export.export(Exportable(), (torch.tensor([[1, 2, 3]]),))


@pytest.fixture(scope="module")
def pt2(program: torch.export.ExportedProgram, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    torch.export.save(program, path)
    return path


def _expected(program: torch.export.ExportedProgram) -> dict[str, tuple[str, list[int], str, bool]]:
    """fqn → (kind, shape, dtype, requires_grad), from the program's own signature and tensors."""
    out = {}
    for spec in program.graph_signature.input_specs:
        if spec.target is None:
            continue
        kind = {"PARAMETER": "parameter", "BUFFER": "buffer", "CONSTANT_TENSOR": "tensor"}[spec.kind.name]
        tensor = program.constants[spec.target] if kind == "tensor" or spec.persistent is False else program.state_dict[spec.target]
        out[spec.target] = (kind, list(tensor.shape), str(tensor.dtype).removeprefix("torch."), tensor.requires_grad)
    return out


def test_signature_and_weights_match_the_program(pt2: Path, program: torch.export.ExportedProgram) -> None:
    checkpoint = read(pt2)
    assert checkpoint.format == "torch-export" and checkpoint.errors == []
    ours = {t.key: (t.kind, t.shape, t.dtype, t.requires_grad) for t in checkpoint.tensors}
    assert ours == _expected(program)
    by_key = {t.key: t for t in checkpoint.tensors}
    assert by_key["norm.weight"].grad_state == "frozen" and by_key["norm.bias"].grad_state == "trainable"
    assert by_key["cache"].persistent is False
    # Roles as the signature states them: model.parameters() and model.buffers(), and a constant.
    roles = {t.key: t.role for t in checkpoint.tensors}
    assert roles == {k: {"tensor": "other"}.get(kind, kind) for k, (kind, *_) in _expected(program).items()}
    assert roles["scale"] == "buffer" and roles["offset"] == "other"
    assert checkpoint.summary()["roles"]["parameter"]["tensors"] == len(list(Exportable().parameters()))
    assert checkpoint.metadata["archive format"] == "pt2" and checkpoint.metadata["layout"] == "PT2 archive"
    assert checkpoint.metadata["inputs"] == "ids: int64[1, 3]"
    assert "aten.embedding.default" in checkpoint.metadata["operators"]
    loaded = torch.export.load(pt2)  # torch reads the same file
    assert set(loaded.state_dict) | set(loaded.constants) >= {k for k in ours if k != "proj.weight"}
    assert "torch.export.load" in checkpoint.warnings[0].message


def test_stored_sizes_and_tied_weights(pt2: Path) -> None:
    checkpoint = read(pt2)
    by_key = {t.key: t for t in checkpoint.tensors}
    with zipfile.ZipFile(pt2) as archive:
        sizes = {i.filename.rsplit("/", 1)[-1]: i.file_size for i in archive.infolist()}
    for tensor in checkpoint.tensors:
        if tensor.storage:
            assert tensor.storage_nbytes == sizes[tensor.storage]
    tied = {by_key["embed.weight"].storage, by_key["proj.weight"].storage}
    if len(tied) == 1:  # torch.export stored the tied weight once
        assert by_key["embed.weight"].shared_with == ["proj.weight"]


def test_sample_inputs_pickle_is_audited(pt2: Path) -> None:
    checkpoint = read(pt2)
    assert checkpoint.metadata["pickled members"].startswith("1 ")
    assert {g.name for g in checkpoint.globals} >= {"torch._utils._rebuild_tensor_v2"}
    assert all(g.risk == "safe" for g in checkpoint.globals)


def test_older_layout_from_torchs_serializer(tmp_path: Path, program: torch.export.ExportedProgram) -> None:
    """The layout torch.export.save wrote before the PT2 archive (root-level members)."""
    from torch._export.serde.schema import SCHEMA_VERSION
    from torch._export.serde.serialize import serialize

    artifact = serialize(program)
    path = tmp_path / "old.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("serialized_exported_program.json", artifact.exported_program)
        archive.writestr("serialized_state_dict.pt", artifact.state_dict)
        archive.writestr("serialized_constants.pt", artifact.constants)
        archive.writestr("serialized_example_inputs.pt", artifact.example_inputs)
        archive.writestr("version", ".".join(map(str, SCHEMA_VERSION)))
    torch.export.load(path)  # still readable by torch: a real file of that layout
    checkpoint = read(path)
    assert checkpoint.format == "torch-export" and checkpoint.errors == []
    assert checkpoint.metadata["layout"] == "torch.export (torch < 2.7)"
    assert {t.key: (t.kind, t.shape, t.dtype, t.requires_grad) for t in checkpoint.tensors} == _expected(program)
    assert checkpoint.metadata["pickled members"].startswith("3 ")


def _replace_member(source: Path, suffix: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(buffer, "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, data if info.filename.endswith(suffix) else src.read(info))
    return buffer.getvalue()


def test_hostile_sample_inputs_are_flagged_not_run(tmp_path: Path, pt2: Path) -> None:
    """torch.export.load would torch.load this member (falling back to weights_only=False)."""
    canary = tmp_path / "canary"
    payload = H.torch_zip(H.Asm().call("os", "system", H.s(H.shell_touch(canary))).stop())
    checkpoint = read(write(tmp_path, "evil.pt2", _replace_member(pt2, "data/sample_inputs/model.pt", payload)))
    assert_no_canary(tmp_path)
    assert "os.system" in dangerous(checkpoint)
    assert "dangerous-globals" in [w.kind for w in checkpoint.warnings]


def test_broken_program_json_is_a_clear_error(tmp_path: Path, pt2: Path) -> None:
    data = _replace_member(pt2, "models/model.json", b'{"graph_module": [1, 2')
    checkpoint = read(write(tmp_path, "bad.pt2", data))
    assert checkpoint.format == "torch-export"
    assert [e.kind for e in checkpoint.errors] == ["corrupt"] and "not valid JSON" in checkpoint.errors[0].message
    wrong = read(write(tmp_path, "wrong.pt2", _replace_member(pt2, "models/model.json", b'{"graph_module": 5}')))
    assert "no graph_module" in wrong.errors[0].message


def test_a_plain_zip_is_not_an_export(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert read(write(tmp_path, "x.pt2", buffer.getvalue())).format == "zip"


def _rewrite(source: Path, change: dict[str, bytes], add: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(buffer, "w") as out:
        for info in src.infolist():
            suffix = next((s for s in change if info.filename.endswith(s)), None)
            out.writestr(info.filename, change[suffix] if suffix else src.read(info))
        root = src.infolist()[0].filename.split("/", 1)[0]
        for name, data in (add or {}).items():
            out.writestr(f"{root}/{name}", data)
    return buffer.getvalue()


def test_a_pickled_weight_is_audited(tmp_path: Path, pt2: Path) -> None:
    """A weight stored with use_pickle (tensor subclasses) is torch.load(weights_only=False)'d by
    torch.export.load: a payload there is flagged, and nothing runs."""
    import json

    canary = tmp_path / "canary"
    with zipfile.ZipFile(pt2) as archive:
        config_name = next(n for n in archive.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(archive.read(config_name))
    entry = config["config"]["scale"]
    entry["use_pickle"] = True
    payload = H.torch_zip(H.Asm().call("os", "system", H.s(H.shell_touch(canary))).stop())
    data = _rewrite(pt2, {"model_weights_config.json": json.dumps(config).encode(),
                          f"data/weights/{entry['path_name']}": payload})
    checkpoint = read(write(tmp_path, "pickled.pt2", data))
    assert_no_canary(tmp_path)
    assert "os.system" in dangerous(checkpoint)
    assert {t.key: t.layout for t in checkpoint.tensors}["scale"] == "pickled"


def test_aotinductor_package_warns_about_native_code(tmp_path: Path, pt2: Path) -> None:
    data = _rewrite(pt2, {}, {"data/aotinductor/model/model.so": b"\x7fELF" + bytes(60),
                              "data/aotinductor/model/model.wrapper.cpp": b"// code"})
    checkpoint = read(write(tmp_path, "aoti.pt2", data))
    (warning,) = [w for w in checkpoint.warnings if w.kind == "native-code"]
    assert "compiled native code" in warning.message and checkpoint.metadata["aotinductor"] == "model"
