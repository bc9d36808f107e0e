"""`pthscope inspect` as a user runs it: a separate process, its output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pthscope.plain_text import visible
from tests.reader.user_models import SmallNet


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pthscope", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def whole_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = SmallNet()
    net.freeze_backbone()
    path = tmp_path_factory.mktemp("cli") / "model.pth"
    torch.save(net, path)
    return path


def test_text_tree_and_summary(whole_model: Path) -> None:
    result = _run("inspect", str(whole_model))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "format      torch-zip" in out
    assert ("parameters  1,552 elements in 14 tensors (6.1 KiB): 90 trainable, 1,462 frozen  "
            "[requires_grad stored]") in out
    assert "buffers     50 elements in 8 tensors (208 B)" in out
    assert "other       10 elements in 1 tensor (40 B)" in out
    assert "unknown classes (torch.load(weights_only=False) imports them): tests.reader.user_models" in out
    assert "  fc  (torch.nn.modules.linear.Linear)  90 params, 90 trainable, 0 frozen" in out
    assert "weight  [8×3×3×3] float32  FROZEN\n" in out
    assert "running_mean  [8] float32  buffer\n" in out
    assert "mask  [10] float32  other\n" in out


def test_filter_and_depth(whole_model: Path) -> None:
    filtered = _run("inspect", "--filter", "layers.*.bn.weight", str(whole_model)).stdout
    tree = filtered.split("\n\n")[-1]
    assert "bn" in tree and "conv" not in tree and "fc" not in tree
    shallow = _run("inspect", "--depth", "1", str(whole_model)).stdout.split("\n\n")[-1]
    assert "  stem  (" in shallow and "weight" not in shallow


def test_json_is_one_object_per_file(whole_model: Path, tmp_path: Path) -> None:
    other = tmp_path / "sd.pth"
    torch.save({"a": torch.zeros(2)}, other)
    result = _run("inspect", "--json", "--no-tree", str(whole_model), str(other))
    assert result.returncode == 0
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["summary"]["parameters"]["frozen"] == 1462
    assert "tree" not in first
    assert second["tensors"][0]["key"] == "a"


def test_the_safety_line_is_the_same_in_text_and_json(whole_model: Path, tmp_path: Path) -> None:
    """One verdict (reader/safety.py): the text's `safety` line is the JSON's `safety.headline`."""
    legacy = tmp_path / "legacy_uint16.pt"
    torch.save({"a": torch.zeros(3, dtype=torch.uint16)}, legacy, _use_new_zipfile_serialization=False)
    expected = {whole_model: ("unknown", "Needs weights_only=False: "),
                legacy: ("unknown", "torch.load fails on this file, whatever weights_only says")}
    for path, (level, start) in expected.items():
        shown = json.loads(_run("inspect", "--json", "--no-tree", str(path)).stdout)["safety"]
        assert shown["level"] == level and shown["headline"].startswith(start), shown
        assert f"  safety      {shown['headline']}\n" in _run("inspect", str(path)).stdout


def test_unreadable_file_exits_1_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    result = _run("inspect", str(broken))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and str(broken) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    missing = _run("inspect", str(tmp_path / "nope.pth"))
    assert missing.returncode == 1 and "No such file" in missing.stderr


def test_bad_usage_exits_2() -> None:
    assert _run("inspect").returncode == 2
    assert _run("frobnicate").returncode == 2


def _hash_bomb() -> bytes:
    """t0 = (); t(i+1) = (t(i), t(i)); set([t59]): hashing it visits 2**59 tuples inside C code."""
    ops = [b"\x80\x02", b")", b"q\x00"]
    for i in range(1, 60):
        ops += [b"h" + bytes([i - 1]), b"h" + bytes([i - 1]), b"\x86", b"q" + bytes([i])]
    ops += [b"c__builtin__\nset\n", b"h" + bytes([59]), b"\x85", b"\x85", b"R", b"."]
    return b"".join(ops)


def test_time_limit_stops_c_level_spinning(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pth"
    bomb.write_bytes(_hash_bomb())
    result = _run("inspect", "--timeout", "1.5", str(bomb))
    assert result.returncode == 1
    assert "took longer than 1.5 s" in result.stderr and "Traceback" not in result.stderr


def test_failed_read_still_lists_dangerous_globals(tmp_path: Path) -> None:
    # os.system named, then the pickle breaks off: the read fails, the danger is still shown.
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echo")
    result = _run("inspect", str(broken))
    assert result.returncode == 1
    assert "DANGEROUS" in result.stdout and "os.system" in result.stdout
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("key", ["a\nfake.weight  [3] float32  trainable", "emb\u202eded", "nul\x00key", "sur\ud800rogate"])
def test_text_output_shows_file_characters_visibly(tmp_path: Path, key: str) -> None:
    """A key cannot forge a line, reorder text or break the output: what does not print is escaped."""
    path = tmp_path / "keys.pt"
    torch.save({key: torch.zeros(3), "plain": torch.zeros(2)}, path)
    result = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(path)], capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")  # valid UTF-8: no lone surrogate was written
    assert visible(key) in out
    assert out.count("\n(root)") == 1 and "\nfake.weight" not in out and "\u202e" not in out and "\x00" not in out


def test_class_names_with_nul_and_surrogates_are_read(tmp_path: Path) -> None:
    """type() refuses such names; pthscope must still read the file and name the class visibly."""
    import pickle

    def text(s: str) -> bytes:
        raw = s.encode("utf-8", "surrogatepass")
        return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw

    for index, name in enumerate(["Net\x00x", "Net\ud800"]):
        path = tmp_path / f"class{index}.pkl"
        path.write_bytes(pickle.PROTO + b"\x04" + text("__main__") + text(name) + pickle.STACK_GLOBAL
                         + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.STOP)
        result = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(path)], capture_output=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"__main__.{visible(name)}" in result.stdout.decode("utf-8")


def test_json_is_printed_whole_as_json_would_dump_it(whole_model: Path, tmp_path: Path) -> None:
    """`inspect --json` (written in chunks, spooled past 8 MiB) is json.dumps of the contract:
    nested dicts, a 3,000-key state dict, a whole model."""
    from pthscope.reader import inspect

    nested = tmp_path / "nested.pt"
    torch.save({"model": {f"layer{i}.weight": torch.zeros(2) for i in range(3000)},
                "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
                "note": "x" * 300}, nested)
    for path in (whole_model, nested):
        result = _run("inspect", "--json", str(path))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == json.loads(json.dumps(inspect(path).to_json()))
# ----------------------------------------------------------------------------- the value commands


@pytest.fixture(scope="module")
def values_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-values")
    torch.manual_seed(0)
    weight = torch.randn(6, 4)
    bad = weight.clone()
    bad[1, 2] = float("nan")
    made = {"clean": folder / "clean.pt", "bad": folder / "bad.pt", "tuned": folder / "tuned.pt"}
    torch.save({"fc.weight": weight, "fc.bias": torch.ones(6), "steps": torch.arange(5)}, made["clean"])
    torch.save({"fc.weight": bad, "fc.bias": torch.zeros(6)}, made["bad"])
    torch.save({"model": {"module.fc.weight": weight + 1, "module.fc.bias": torch.ones(6)}, "epoch": 2},
               made["tuned"])
    return made


def test_stats_text_and_json(values_files: dict[str, Path]) -> None:
    text = _run("stats", str(values_files["clean"]), "fc.")
    assert text.returncode == 0, text.stderr
    assert "fc.weight  [6×4] float32" in text.stdout and "steps" not in text.stdout
    assert "  zeros 0  NaN 0  +inf 0  -inf 0  of 24" in text.stdout and "histogram" in text.stdout
    result = _run("stats", "--json", str(values_files["clean"]))
    payload = json.loads(result.stdout)
    by_key = {t["key"]: t for t in payload["tensors"]}
    weight = torch.load(values_files["clean"], weights_only=True)["fc.weight"].double()
    assert by_key["fc.weight"]["stats"]["std"] == pytest.approx(float(weight.std()), rel=1e-6)
    assert by_key["fc.weight"]["stats"]["l2"] == pytest.approx(float(weight.norm()), rel=1e-6)
    assert by_key["steps"]["stats"]["values"] == [[i, 1] for i in range(5)]


def test_scan_exit_codes(values_files: dict[str, Path]) -> None:
    clean = _run("scan", str(values_files["clean"]))
    assert clean.returncode == 0 and "no tensor has NaN" in clean.stdout
    bad = _run("scan", str(values_files["bad"]))
    assert bad.returncode == 3, bad.stderr
    assert "ERROR   fc.weight  [6×4] float32" in bad.stdout and "nan: 1 NaN of 24 elements" in bad.stdout
    assert "WARNING fc.bias" in bad.stdout and "all_zero" in bad.stdout
    report = json.loads(_run("scan", "--json", str(values_files["bad"])).stdout)
    assert report["complete"] and report["counts"]["nan"] == 1 and report["counts"]["all_zero"] == 1
    assert _run("scan", str(values_files["bad"].with_name("missing.pt"))).returncode == 1


def test_diff_text_and_json(values_files: dict[str, Path]) -> None:
    structure = _run("diff", str(values_files["clean"]), str(values_files["tuned"]))
    assert structure.returncode == 0, structure.stderr
    assert "keys       2 matched, 1 only in A, 0 only in B" in structure.stdout
    values = _run("diff", "--values", str(values_files["clean"]), str(values_files["tuned"]))
    assert "values     1 identical, 1 changed (of 2 comparable)" in values.stdout
    assert "  changed    fc  2 tensors, 1 changed, max |Δ| 1" in values.stdout
    payload = json.loads(_run("diff", "--values", "--json", str(values_files["clean"]),
                              str(values_files["tuned"])).stdout)
    rows = {r["name"]: r for r in payload["tensors"]}
    assert rows["fc.weight"]["values"]["max_abs_diff"] == pytest.approx(1.0)
    assert rows["fc.weight"]["key_b"] == "model.module.fc.weight" and rows["steps"]["status"] == "only_a"


def test_convert(values_files: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "model.safetensors"
    result = _run("convert", str(values_files["tuned"]), str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "dropped, not tensors: epoch (int)" in result.stdout
    written = load_file(out)
    assert set(written) == {"fc.weight", "fc.bias"}
    again = _run("convert", str(values_files["tuned"]), str(out))
    assert again.returncode == 1 and "exists; --force overwrites it" in again.stderr
    assert _run("convert", "--force", str(values_files["tuned"]), str(out)).returncode == 0
    same = _run("convert", "--force", str(values_files["tuned"]), str(values_files["tuned"]))
    assert same.returncode == 1 and "is the file being converted" in same.stderr
