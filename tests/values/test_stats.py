"""Tensor statistics from the tensor's own bytes, compared with torch on files torch wrote."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from pthscope.reader import inspect
from pthscope.values import StatsError, find_tensor, tensor_bytes
from pthscope.values import tensor_stats as stats_of_bytes


def tensor_stats(file: str, path: list[Any] | str, **options: Any) -> dict[str, Any]:
    """What the values worker answers for the tensor at `path`, as the structure worker locates it."""
    checkpoint = inspect(file)
    st = os.stat(file)
    try:
        located = tensor_bytes(checkpoint, find_tensor(checkpoint, path), st.st_size, st.st_mtime_ns)
    except StatsError as error:
        return {"error": str(error)}
    return stats_of_bytes(located, **options)


FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
INT_DTYPES = [torch.int64, torch.int32, torch.int8, torch.uint8]


def _tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.randn(40, 30)
    base[0, 0], base[0, 1], base[0, 2], base[0, 3] = 0.0, math.nan, math.inf, -math.inf
    out = {str(d).removeprefix("torch."): base.to(d) for d in FLOAT_DTYPES}
    out.update({str(d).removeprefix("torch."): (base.nan_to_num(0, 0, 0) * 10).to(d) for d in INT_DTYPES})
    out["bool"] = base > 0
    out["few_ints"] = torch.randint(-3, 4, (500,))
    out["scalar"] = torch.tensor(2.5)
    out["empty"] = torch.empty(0, 7)
    out["view"] = base[5:, 3::4]  # an offset and a stride into a shared storage
    out["transposed"] = base.t()
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stats")
    tensors = _tensors()
    zip_path, legacy_path = folder / "zip.pt", folder / "legacy.pt"
    torch.save(tensors, zip_path)
    torch.save(tensors, legacy_path, _use_new_zipfile_serialization=False)
    f8 = folder / "f8.pt"
    torch.save({"e4m3": tensors["float32"].nan_to_num(0, 0, 0).to(torch.float8_e4m3fn),
                "e5m2": tensors["float32"].to(torch.float8_e5m2)}, f8)
    st = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items() if k not in ("view", "transposed")}, st)
    return {"zip": zip_path, "legacy": legacy_path, "f8": f8, "safetensors": st}


def _expected(t: torch.Tensor) -> dict[str, Any]:
    if t.dtype.is_floating_point:
        x = t.to(torch.float64).reshape(-1)
        finite = x[torch.isfinite(x)]
        return {"min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean()),
                "std": float(finite.std()) if finite.numel() > 1 else 0.0, "zeros": int((x == 0).sum()), "nan": int(x.isnan().sum()),
                "posinf": int((x == math.inf).sum()), "neginf": int((x == -math.inf).sum())}
    x = t.reshape(-1).to(torch.int64)
    return {"min": int(x.min()), "max": int(x.max()), "mean": float(x.double().mean()),
            "std": float(x.double().std()) if x.numel() > 1 else 0.0, "zeros": int((x == 0).sum())}


def _check(stats: dict[str, Any], t: torch.Tensor, rel: float = 1e-6) -> None:
    """As torch computes them in float64; float32 sums are exact to about 1e-7."""
    assert stats["numel"] == t.numel() and stats["shape"] == list(t.shape) and not stats["sampled"]
    for name, value in _expected(t).items():
        assert stats[name] == pytest.approx(value, rel=rel, abs=1e-9), name
    if "histogram" in stats:
        assert sum(stats["histogram"]["counts"]) == stats["numel"] - stats["nan"] - stats["posinf"] - stats["neginf"]


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("name", [k for k in _tensors() if k != "empty"])
def test_matches_torch(files: dict[str, Path], fmt: str, name: str) -> None:
    loaded = torch.load(files[fmt], weights_only=True)
    result = tensor_stats(str(files[fmt]), [name])
    assert "error" not in result, result
    assert result["stats"]["engine"] == "torch"
    _check(result["stats"], loaded[name])


def test_float8(files: dict[str, Path]) -> None:
    loaded = torch.load(files["f8"], weights_only=True)
    for name in ("e4m3", "e5m2"):
        _check(tensor_stats(str(files["f8"]), name)["stats"], loaded[name])


def test_safetensors(files: dict[str, Path]) -> None:
    loaded = torch.load(files["zip"], weights_only=True)
    for name in ("float32", "bfloat16", "int64", "bool", "scalar"):
        _check(tensor_stats(str(files["safetensors"]), [name])["stats"], loaded[name])


def test_empty_and_scalar(files: dict[str, Path]) -> None:
    empty = tensor_stats(str(files["zip"]), ["empty"])["stats"]
    assert empty["numel"] == 0 and "min" not in empty
    scalar = tensor_stats(str(files["legacy"]), ["scalar"])["stats"]
    assert scalar["shape"] == [] and scalar["min"] == scalar["max"] == 2.5 and scalar["std"] == 0.0


def test_few_distinct_values_are_counted(files: dict[str, Path]) -> None:
    t = torch.load(files["zip"], weights_only=True)["few_ints"]
    stats = tensor_stats(str(files["zip"]), ["few_ints"])["stats"]
    assert stats["values"] == [[v, int((t == v).sum())] for v in range(-3, 4)]
    assert tensor_stats(str(files["zip"]), ["bool"])["stats"]["values"][0][0] == 0


@pytest.mark.parametrize("name", ["float32", "float16", "int64", "bool", "view", "transposed", "scalar"])
def test_numpy_engine_agrees(files: dict[str, Path], name: str) -> None:
    by_torch = tensor_stats(str(files["zip"]), [name])["stats"]
    by_numpy = tensor_stats(str(files["zip"]), [name], engine="numpy")["stats"]
    assert by_numpy["engine"] == "numpy"
    for field in ("min", "max", "mean", "std", "zeros", "nan", "posinf", "neginf"):
        assert by_numpy[field] == pytest.approx(by_torch[field], rel=1e-6), field
    assert by_numpy.get("values") == by_torch.get("values")
    assert by_numpy.get("histogram", {}).get("counts") == by_torch.get("histogram", {}).get("counts")


def test_numpy_cannot_read_bfloat16(files: dict[str, Path]) -> None:
    assert "needs torch" in tensor_stats(str(files["zip"]), ["bfloat16"], engine="numpy")["error"]


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_big_tensors_are_read_whole_in_chunks(tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tensors many chunks long, contiguous and viewed, give the statistics of every element."""
    from pthscope.values import stats

    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 1_000)
    torch.manual_seed(1)
    t = torch.randn(300, 333) * 3 + 1
    t[7, 7], t[200, 3], t[299, 332] = math.nan, math.inf, 0.0
    path = tmp_path / "big.pt"
    torch.save({"big": t, "view": t.t()[5:, ::3], "ints": torch.arange(100_000) % 7 - 3}, path)
    loaded = torch.load(path, weights_only=True)
    for name in ("big", "view", "ints"):
        result = tensor_stats(str(path), [name], engine=engine)["stats"]
        assert not result["sampled"] and result["sample_size"] == loaded[name].numel()
        _check(result, loaded[name], rel=1e-6)
    full = torch.histc(t[torch.isfinite(t)].double(), bins=20, min=float(t.nan_to_num(0, 0, 0).min()),
                       max=float(t.nan_to_num(0, 0, 0).max()))
    counts = tensor_stats(str(path), ["big"], engine=engine)["stats"]["histogram"]["counts"]
    assert sum(counts) == t.numel() - 2 and all(abs(a - b) <= 2 for a, b in zip(counts, full.tolist(), strict=True))


def test_unknown_tensor_and_unsupported_layouts(files: dict[str, Path], tmp_path: Path) -> None:
    assert "no tensor at" in tensor_stats(str(files["zip"]), ["nope"])["error"]
    path = tmp_path / "layouts.pt"
    torch.save({"sparse": torch.eye(3).to_sparse(), "q": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8),
                "meta": torch.empty(3, device="meta"), "c": torch.full((2,), 1 + 1j, dtype=torch.complex64)}, path)
    assert "sparse" in tensor_stats(str(path), ["sparse"])["error"]
    assert "quantized" in tensor_stats(str(path), ["q"])["error"]
    assert "meta" in tensor_stats(str(path), ["meta"])["error"]
    complex_stats = tensor_stats(str(path), ["c"])["stats"]  # of the magnitudes
    assert complex_stats["magnitude"] and complex_stats["max"] == pytest.approx(2**0.5)


def test_truncated_file_is_an_error(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["legacy"].read_bytes()
    checkpoint = inspect(files["legacy"])
    storage = next(t.storage for t in checkpoint.tensors if t.key == "float64")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: checkpoint.storage_offsets[storage] + 16])  # the record's start is kept
    assert "truncated" in tensor_stats(str(cut), ["float64"])["error"]
    assert all("stats" in tensor_stats(str(cut), [name]) or "error" in tensor_stats(str(cut), [name])
               for name in _tensors())
    st = files["safetensors"].read_bytes()
    cut_st = tmp_path / "cut.safetensors"
    cut_st.write_bytes(st[: len(st) - 100])
    results = [tensor_stats(str(cut_st), [name]) for name in _tensors() if name not in ("view", "transposed")]
    assert any("truncated" in r.get("error", "") for r in results)
    assert all("stats" in r or "error" in r for r in results)


def test_corrupt_offset_is_an_error_not_a_read_outside(tmp_path: Path) -> None:
    header = b'{"a":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}}'
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    assert "truncated" in tensor_stats(str(path), ["a"])["error"]
    # A legacy record that claims a huge storage offset for its tensor.
    legacy = tmp_path / "corrupt.pt"
    torch.save({"w": torch.arange(10.0)[2:]}, legacy, _use_new_zipfile_serialization=False)
    raw = bytearray(legacy.read_bytes())
    offsets = inspect(legacy).storage_offsets
    (key,) = offsets
    # Make the storage's element count claim fewer elements than the view needs.
    raw[offsets[key] - 8:offsets[key]] = struct.pack("<q", 4)
    bad = tmp_path / "short-storage.pt"
    bad.write_bytes(bytes(raw[: offsets[key] + 16]))
    result = tensor_stats(str(bad), ["w"])
    assert "past the end" in result["error"]


def test_zip_storage_offset_past_its_member(tmp_path: Path) -> None:
    path = tmp_path / "z.pt"
    torch.save({"w": torch.arange(6.0)}, path)
    data = path.read_bytes()
    # The pickle stores the tensor's storage offset as a small int (BININT1 0 before the shape).
    from pthscope.reader.model import TensorInfo
    info: TensorInfo = inspect(path).tensors[0]
    assert info.storage_offset == 0
    # Rewrite storage_offset 0 → 200 in data.pkl: `K\x00` right after the storage's BINPERSID.
    at = data.index(b"QK\x00")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(data[:at] + b"QK\xc8" + data[at + 3:])
    result = tensor_stats(str(corrupt), ["w"])
    assert "error" in result and "past the end" in result["error"]


def test_unsigned_and_rare_float_types(tmp_path: Path) -> None:
    tensors = {str(d).removeprefix("torch."): (torch.arange(30) * 1000).to(d)
               for d in (torch.uint16, torch.uint32, torch.uint64)}
    tensors["e8m0"] = torch.tensor([0.5, 1.0, 4.0]).to(torch.float8_e8m0fnu)
    tensors["e4m3fnuz"] = torch.tensor([-1.0, 0.0, 2.0]).to(torch.float8_e4m3fnuz)
    path = tmp_path / "rare.pt"
    torch.save(tensors, path)
    for name in ("uint16", "uint32", "uint64"):
        stats = tensor_stats(str(path), [name])["stats"]
        assert (stats["min"], stats["max"], stats["mean"]) == (0, 29_000, 14_500.0), name
    assert tensor_stats(str(path), ["uint32"], engine="torch")["stats"]["max"] == 29_000
    assert tensor_stats(str(path), ["uint64"], engine="torch")["stats"]["max"] == 29_000  # through float64
    assert (tensor_stats(str(path), ["e8m0"])["stats"]["min"], tensor_stats(str(path), ["e8m0"])["stats"]["max"]) == (0.5, 4.0)
    assert tensor_stats(str(path), ["e4m3fnuz"])["stats"]["mean"] == pytest.approx(1 / 3)


def _with_record_prefix(source: Path, target: Path, prefix: str) -> None:
    """The archive `source` with its members moved under another folder `prefix`: what other
    writers, renamed folders or a rezip do. torch.load still finds data.pkl and its storages."""
    import zipfile

    old = next(n for n in zipfile.ZipFile(source).namelist() if n.endswith("data.pkl"))[: -len("data.pkl")]
    with zipfile.ZipFile(source) as read, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as write:
        for info in read.infolist():
            write.writestr(prefix + info.filename[len(old):], read.read(info))


@pytest.mark.parametrize("prefix", ["x/", "weird name.v2/", "ünïcödé/", "a.b.c d/"])
def test_any_record_prefix(files: dict[str, Path], tmp_path: Path, prefix: str) -> None:
    moved = tmp_path / "moved.pt"
    _with_record_prefix(files["zip"], moved, prefix)
    assert inspect(moved).metadata["record prefix"] == prefix.rstrip("/")
    loaded = torch.load(files["zip"], weights_only=True)
    for name in ("float32", "view", "int8"):
        result = tensor_stats(str(moved), [name])
        assert "error" not in result, result
        _check(result["stats"], loaded[name])


@pytest.mark.parametrize(("name", "prefix"), [("my.model.v1.pt", "my.model.v1"), ("a-b c.pth.tar", "a-b c.pth"),
                                              ("ünï cödé.pt", "archive")])
def test_files_torch_named_with_dots_spaces_and_unicode(tmp_path: Path, name: str, prefix: str) -> None:
    path = tmp_path / name
    weights = torch.randn(7, 5)
    torch.save({"w": weights, "t": weights.t()}, path)
    assert inspect(path).metadata["record prefix"] == prefix  # torch names the record after the file
    _check(tensor_stats(str(path), ["w"])["stats"], weights)
    _check(tensor_stats(str(path), ["t"])["stats"], weights.t())
