"""The file doctor: what people take for checkpoints is named, with the way to the real file.

One table of cases (file, expected format, problem kind, words the message must hold), like
netron's models.json, then the cases that need a repository, a symlink or a cut zip.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from .test_hostile import read, write

_OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"


def lfs_pointer(oid: str = _OID, size: int = 1_234_567_890) -> bytes:
    """A pointer as git-lfs writes it (spec v1: version, oid, size; keys sorted, LF endings)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


GITHUB_BLOB_PAGE = b"""<!DOCTYPE html>
<html lang="en" data-color-mode="auto">
  <head>
    <meta charset="utf-8">
  <link rel="dns-prefetch" href="https://github.githubassets.com">
  <title>models/resnet18.pth at main \xc2\xb7 someone/vision-models \xc2\xb7 GitHub</title>
  </head><body>...</body></html>
"""
HUB_404_PAGE = b"""<!doctype html>
<html class="">
<head><meta charset="utf-8" /><title>404 &ndash; Hugging Face</title></head>
<body><p>Sorry, we can't find the page you are looking for.</p><a href="https://huggingface.co/">home</a></body></html>
"""
DRIVE_PAGE = b"""<!DOCTYPE html><html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"/>
<title>Google Drive - Virus scan warning</title></head><body><form id="download-form"
action="https://drive.usercontent.google.com/download" method="get">...</form></body></html>"""
S3_ERROR = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>8W2Q6XSMRBH5ZJ1T</RequestId><HostId>x</HostId></Error>"""
AZURE_ERROR = ("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code><Message>The specified "
               "blob does not exist.\nRequestId:1\nTime:2024-01-01T00:00:00Z</Message></Error>").encode()
HUB_JSON_ERROR = b'{"error":"Repository Not Found for url: https://huggingface.co/api/models/x/y."}'
GITHUB_API_ERROR = b'{\n  "message": "Not Found",\n  "documentation_url": "https://docs.github.com/rest",\n  "status": "404"\n}'
GCS_JSON_ERROR = b'{"error": {"code": 403, "message": "Anonymous caller does not have storage.objects.get access.", "errors": []}}'
HF_CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "model_type": "llama"}).encode()
TRAIN_SCRIPT = b"import torch\nfrom torch import nn\n\nmodel = nn.Linear(2, 2)\ntorch.save(model.state_dict(), 'model.pth')\n"


def _tflite() -> bytes:
    """The start of a TensorFlow Lite FlatBuffer: root table offset, then the identifier TFL3."""
    return (28).to_bytes(4, "little") + b"TFL3" + bytes(20) + (3).to_bytes(4, "little") + bytes(64)


def _hdf5(keras: bool) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        h5py = pytest.importorskip("h5py")
        with h5py.File(path, "w") as f:
            f.create_dataset("dense/kernel", data=np.ones((4, 2), dtype=np.float32))
            if keras:
                f.attrs["keras_version"] = "2.15.0"
                f.attrs["backend"] = "tensorflow"
    return make


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# name → (file bytes, or a function that writes the file), expected format, problem kind, words
CASES: dict[str, tuple[bytes | Callable[[Path], None], str, str, list[str]]] = {
    "lfs-pointer": (lfs_pointer(), "git-lfs-pointer", "not-a-checkpoint",
                    ["Git LFS pointer", f"sha256:{_OID[:8]}", "1.2 GB", "git lfs pull", "invalid load key, 'v'"]),
    "lfs-pointer-crlf": (lfs_pointer().replace(b"\n", b"\r\n"), "git-lfs-pointer", "not-a-checkpoint", ["1.2 GB"]),
    "annex-pointer": (b"/annex/objects/SHA256E-s52428800--" + _OID.encode() + b".pth\n", "git-annex-pointer",
                      "not-a-checkpoint", ["git-annex", "52.4 MB", "git annex get"]),
    "github-page": (GITHUB_BLOB_PAGE, "error-page", "not-a-checkpoint", ["HTML page", "GitHub", "raw", "'<'"]),
    "hub-404": (HUB_404_PAGE, "error-page", "not-a-checkpoint", ["HTTP 404", "/resolve/", "Hugging Face"]),
    "drive-page": (DRIVE_PAGE, "error-page", "not-a-checkpoint", ["Google Drive", "gdown"]),
    "s3-error": (S3_ERROR, "error-page", "not-a-checkpoint", ["AccessDenied: Access Denied", "download"]),
    "azure-error": (AZURE_ERROR, "error-page", "not-a-checkpoint", ["BlobNotFound"]),
    "hub-json-error": (HUB_JSON_ERROR, "error-page", "not-a-checkpoint", ["Repository Not Found", "JSON"]),
    "github-api-error": (GITHUB_API_ERROR, "error-page", "not-a-checkpoint", ["Not Found"]),
    "gcs-json-error": (GCS_JSON_ERROR, "error-page", "not-a-checkpoint", ["storage.objects.get"]),
    "config-json": (HF_CONFIG, "text", "not-a-checkpoint", ["LlamaForCausalLM", "configuration"]),
    "python-script": (TRAIN_SCRIPT, "python-source", "not-a-checkpoint", ["Python source", "import torch"]),
    "plain-text": (b"loss: 0.25\nacc: 0.9\n", "text", "not-a-checkpoint", ["text file", "loss: 0.25"]),
    "empty": (b"", "empty", "empty", ["0 bytes", "again"]),
    "tflite": (_tflite(), "tflite", "not-a-checkpoint", ["TensorFlow Lite", "tf.lite.Interpreter"]),
    "keras-h5": (_hdf5(keras=True), "hdf5", "not-a-checkpoint", ["Keras", "load_model", "h5py"]),
    "plain-h5": (_hdf5(keras=False), "hdf5", "not-a-checkpoint", ["HDF5", "h5py.File"]),
    "gzipped-torch": (gzip.compress(_torch_bytes({"w": torch.ones(3)})), "gzip", "not-a-checkpoint",
                      ["gzip", "torch checkpoint", "gunzip -k"]),
    "tar-gz": (_tar({"model/weights.pth": _torch_bytes({"w": torch.ones(3)})}, "w:gz"), "tar.gz", "not-a-checkpoint",
               ["tar xzf"]),
    "tar-of-files": (_tar({"run/config.yaml": b"lr: 1\n", "run/model.pth": _torch_bytes({"w": torch.ones(2)})}),
                     "tar", "not-a-checkpoint", ["2 members", "'run/model.pth'", "tar xf"]),
    "nemo": (_tar({"model_config.yaml": b"a: 1\n", "model_weights.ckpt": _torch_bytes({"w": torch.ones(2)})}),
             "tar", "not-a-checkpoint", ["NeMo"]),
    # A whole torch tar is read by tar_checkpoint (tests/reader/test_tar.py); one cut short is named.
    "torch-tar-cut": (_tar({"sys_info": b"\x80\x02}q\x00.", "pickle": b"\x80\x02}q\x00.", "storages": b"\x80\x02K\x00.",
                            "tensors": b"\x80\x02K\x00."}), "torch-tar", "corrupt", ["ends early"]),
    "keras-3": (_zip({"metadata.json": b'{"keras_version": "3.4.1"}', "config.json": b"{}", "model.weights.h5": b"x"}),
                "keras", "not-a-checkpoint", ["Keras 3", "keras.saving.load_model"]),
    "torchserve-mar": (_zip({"model.py": b"", "MAR-INF/MANIFEST.json": b"{}", "model.pt": b""}), "torchserve-mar",
                       "not-a-checkpoint", ["TorchServe", "unzip"]),
    "zip-of-files": (_zip({"run1/model.pth": _torch_bytes({"w": torch.ones(2)}), "run1/log.txt": b"ok"}), "zip",
                     "not-a-checkpoint", ["2 files", "'run1/model.pth'", "unzip model.pth"]),
    "ggml": (b"tjgg" + (3).to_bytes(4, "little") + bytes(64), "ggml", "not-a-checkpoint", ["GGML", "GGUF"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_doctor_names_the_file(tmp_path: Path, name: str) -> None:
    content, file_format, kind, words = CASES[name]
    path = tmp_path / "model.pth"
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    checkpoint = read(path)
    assert checkpoint.format == file_format
    assert [e.kind for e in checkpoint.errors] == [kind], checkpoint.errors
    message = checkpoint.errors[0].message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_torch_load_really_fails_on_the_pointer_as_the_message_says(tmp_path: Path) -> None:
    path = write(tmp_path, "model.pth", lfs_pointer())
    message = read(path).errors[0].message
    for weights_only, expected in ((False, "invalid load key, 'v'"), (True, "Unsupported operand 118")):
        with pytest.raises(Exception, match=expected):
            torch.load(path, weights_only=weights_only)  # a text file: its first opcode already fails
        assert expected in message


def test_git_lfs_writes_the_pointer_we_read(tmp_path: Path) -> None:
    """When git-lfs is installed, its own pointer for a real checkpoint is recognised."""
    if shutil.which("git-lfs") is None:
        pytest.skip("git-lfs is not installed")
    real = tmp_path / "real.pth"
    torch.save({"w": torch.ones(10)}, real)
    pointer = subprocess.run(["git", "lfs", "pointer", f"--file={real}"], capture_output=True, check=True).stdout
    checkpoint = read(write(tmp_path, "model.pth", pointer))
    assert checkpoint.format == "git-lfs-pointer"
    assert hashlib.sha256(real.read_bytes()).hexdigest()[:12] in checkpoint.metadata["lfs oid"]


def test_the_command_in_the_message_fetches_the_file(tmp_path: Path) -> None:
    """A clone made without LFS content (GIT_LFS_SKIP_SMUDGE=1) from a local repository: the
    command pthscope names turns the pointer into the checkpoint."""
    if shutil.which("git-lfs") is None:
        pytest.skip("git-lfs is not installed")
    origin = tmp_path / "origin"
    origin.mkdir()

    def git(*args: str, cwd: Path = origin, **env: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                       capture_output=True, env={**os.environ, **env})

    git("init", "-q")
    git("lfs", "install", "--local")
    git("lfs", "track", "*.pth")
    (origin / "weights").mkdir()
    torch.save({"w": torch.ones(3)}, origin / "weights" / "model.pth")
    git("add", ".")
    git("commit", "-qm", "model")
    git("clone", "-q", str(origin), str(tmp_path / "clone"), cwd=tmp_path, GIT_LFS_SKIP_SMUDGE="1")
    path = tmp_path / "clone" / "weights" / "model.pth"
    message = read(path).errors[0].message
    command = message.split("run `", 1)[1].split("`", 1)[0]
    assert command == "git lfs pull --include=weights/model.pth"
    git(*command.split()[1:], cwd=tmp_path / "clone")
    assert [t.key for t in read(path).tensors] == ["w"]


def _git_repo(folder: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def test_lfs_pointer_in_a_repository_names_the_pull(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo")
    (repo / "models").mkdir()
    path = write(repo / "models", "resnet.pth", lfs_pointer())
    message = read(path).errors[0].message
    assert "git lfs pull --include=models/resnet.pth" in message and str(repo) in message


def test_lfs_pointer_whose_object_is_cached_says_checkout(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo")
    store = repo / ".git" / "lfs" / "objects" / _OID[:2] / _OID[2:4]
    store.mkdir(parents=True)
    (store / _OID).write_bytes(b"the real bytes")
    message = read(write(repo, "model with space.pth", lfs_pointer())).errors[0].message
    assert "git lfs checkout 'model with space.pth'" in message


def test_broken_annex_symlink_says_git_annex_get(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo")
    key = "SHA256E-s1048576--" + _OID + ".pth"
    link = repo / "weights.pth"
    link.symlink_to(f".git/annex/objects/Xz/Q1/{key}/{key}")
    checkpoint = read(link)
    assert checkpoint.format == "git-annex-pointer"
    assert "git annex get weights.pth" in checkpoint.errors[0].message and "1.0 MB" in checkpoint.errors[0].message


def test_annex_symlink_with_content_reads_the_checkpoint(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo")
    key = "SHA256E-s100--" + _OID + ".pth"
    content = repo / ".git" / "annex" / "objects" / "Xz" / "Q1" / key / key
    content.parent.mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, content)
    link = repo / "weights.pth"
    link.symlink_to(content.relative_to(repo))
    checkpoint = read(link)
    assert checkpoint.format == "torch-zip" and checkpoint.errors == [] and [t.key for t in checkpoint.tensors] == ["w"]


def test_other_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "model.pth"
    link.symlink_to(tmp_path / "moved-away.pth")
    checkpoint = read(link)
    assert checkpoint.format == "broken-symlink"
    assert "moved-away.pth" in checkpoint.errors[0].message and checkpoint.errors[0].kind == "unreadable"


def test_shard_index_is_left_to_its_reader(tmp_path: Path) -> None:
    """A JSON with a weight_map is a sharded checkpoint's index, not an error page."""
    path = write(tmp_path, "model.safetensors.index.json", json.dumps(
        {"metadata": {"total_size": 8}, "weight_map": {"error": "model-00001.safetensors"}}).encode())
    assert read(path).format != "error-page"


def test_text_from_the_file_is_quoted_and_shortened(tmp_path: Path) -> None:
    title = "x" * 5000 + "`**<script>"
    page = f"<!DOCTYPE html><html><head><title>{title}</title></head></html>".encode()
    message = read(write(tmp_path, "m.pth", page)).errors[0].message
    assert len(message) < 600 and "<script>" not in message


# ---------------------------------------------------------------------------------------------
# A content format under another format's name: content wins, the name gets a warning.


def test_safetensors_named_pth_is_read_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    save_file({"w": torch.ones(2)}, path)
    checkpoint = read(path)
    assert checkpoint.format == "safetensors" and checkpoint.errors == []
    (warning,) = [w for w in checkpoint.warnings if w.kind == "extension"]
    assert "safetensors.torch.load_file" in warning.message and ".pth" in warning.message
    with pytest.raises(Exception, match="Unsupported operand"):
        torch.load(path, weights_only=True)


def test_torch_file_named_safetensors_is_read_with_a_warning(tmp_path: Path) -> None:
    from safetensors import SafetensorError, safe_open

    path = tmp_path / "model.safetensors"
    torch.save({"w": torch.ones(2)}, path)
    checkpoint = read(path)
    assert checkpoint.format == "torch-zip" and [t.key for t in checkpoint.tensors] == ["w"]
    (warning,) = [w for w in checkpoint.warnings if w.kind == "extension"]
    assert "torch.load(path, weights_only=True)" in warning.message
    with pytest.raises(SafetensorError, match="header too large"):
        safe_open(str(path), framework="pt")


@pytest.mark.parametrize("name", ["model.onnx", "model.gguf", "exported.pt2", "arrays.npz"])
def test_torch_file_under_another_framework_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    torch.save({"w": torch.ones(2)}, path)
    checkpoint = read(path)
    assert checkpoint.format == "torch-zip"
    assert [w.kind for w in checkpoint.warnings] == ["extension"]


@pytest.mark.parametrize("name", ["model.pth", "model.pt", "model.bin", "x.pth.tar", "model.ckpt", "noext"])
def test_matching_names_get_no_warning(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    torch.save({"w": torch.ones(2)}, path)
    assert read(path).warnings == []
    st = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(2)}, st)
    assert read(st).warnings == []


# ---------------------------------------------------------------------------------------------
# Zips cut short: the members whose local headers are there, and the one that is cut.


@pytest.fixture(scope="module")
def torch_zip_bytes() -> bytes:
    return _torch_bytes({f"layer{i}.weight": torch.arange(256, dtype=torch.float32) + i for i in range(6)})


def _members(data: bytes) -> list[zipfile.ZipInfo]:
    return zipfile.ZipFile(io.BytesIO(data)).infolist()


def test_cut_inside_a_member_names_it_and_the_byte(tmp_path: Path, torch_zip_bytes: bytes) -> None:
    members = _members(torch_zip_bytes)
    storages = [m for m in members if "/data/" in m.filename]
    victim = storages[3]
    name_len, extra_len = struct.unpack_from("<HH", torch_zip_bytes, victim.header_offset + 26)
    data_start = victim.header_offset + 30 + name_len + extra_len
    cut = data_start + 100
    checkpoint = read(write(tmp_path, "cut.pt", torch_zip_bytes[:cut]))
    assert checkpoint.format == "torch-zip"
    (error,) = checkpoint.errors
    assert error.kind == "truncated" and error.where == f"{victim.filename} byte 100"
    # torch writes each member's size after its data (a data descriptor), so the cut one has none
    assert f"member {victim.filename} is cut after 100 bytes (the rest" in error.message
    whole = members.index(victim)
    assert f"{whole} members before it are whole" in error.message and "data.pkl is whole" in error.message
    assert checkpoint.metadata["whole members"] == str(whole)


def test_cut_between_members_and_inside_the_directory(tmp_path: Path, torch_zip_bytes: bytes) -> None:
    members = _members(torch_zip_bytes)
    directory = torch_zip_bytes.find(b"PK\x01\x02")
    between = members[4].header_offset
    at_member = read(write(tmp_path, "a.pt", torch_zip_bytes[:between])).errors[0]
    assert at_member.kind == "truncated" and "after 4 whole members" in at_member.message
    in_directory = read(write(tmp_path, "b.pt", torch_zip_bytes[:directory + 30])).errors[0]
    assert "inside the zip directory" in in_directory.message and f"all {len(members)} members are whole" in in_directory.message
    no_end = read(write(tmp_path, "c.pt", torch_zip_bytes[:-22])).errors[0]
    assert "inside the zip directory" in no_end.message
    in_header = read(write(tmp_path, "d.pt", torch_zip_bytes[:between + 20])).errors[0]
    assert "inside the header of member 5" in in_header.message


def test_zip_with_data_descriptors_stops_the_walk_with_a_reason(tmp_path: Path) -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w") as archive:  # an unseekable target: sizes go in data descriptors
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", bytes(4000))
    data = bytes(out.data)
    checkpoint = read(write(tmp_path, "dd.pt", data[: len(data) // 2]))
    assert checkpoint.errors[0].kind == "truncated" and "data.pkl" in checkpoint.errors[0].message


def test_cut_npz_and_pt2_keep_their_format(tmp_path: Path, exported_file: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, a=np.ones(1000), b=np.zeros(10))
    npz = buffer.getvalue()
    cut_npz = read(write(tmp_path, "a.npz", npz[: len(npz) // 2]))
    assert cut_npz.format == "npz"  # numpy's zip has the sizes in the local headers: the whole size is known
    assert "member a.npy is cut after" in cut_npz.errors[0].message and "of its 8,128 bytes" in cut_npz.errors[0].message
    pt2 = exported_file.read_bytes()
    program = next(m for m in _members(pt2) if m.filename.endswith("models/model.json"))
    # Cut inside the program, before the sample inputs (a torch.save zip of its own, whose end
    # record torch's reader would take for the archive's, as pthscope's zip reader does).
    cut = read(write(tmp_path, "m.pt2", pt2[: program.header_offset + 200]))
    assert cut.format == "torch-export" and cut.errors[0].kind == "truncated"
    assert "member m/models/model.json is cut" in cut.errors[0].message


@pytest.fixture(scope="module")
def exported_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "m.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(3, 2), (torch.randn(1, 3),)), path)
    return path


def test_a_zip_comment_is_not_a_truncation(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", b"")
        archive.comment = b"made by hand" + b"PK\x05\x06" + bytes(30)  # a fake end record inside the comment
    checkpoint = read(write(tmp_path, "c.zip", buffer.getvalue()))
    assert all(e.kind != "truncated" for e in checkpoint.errors)


# ---------------------------------------------------------------------------------------------
# The CLI: the doctor's message is the one line a failed file gets; --json carries format and kind.


def test_cli_text_and_json(tmp_path: Path) -> None:
    path = write(tmp_path, "model.pth", lfs_pointer())
    text = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert text.returncode == 1 and text.stderr.count("\n") == 1
    assert text.stderr.startswith(f"pthscope: {path}: Git LFS pointer (oid sha256:")
    done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", "--json", str(path)], capture_output=True,
                          text=True, timeout=60)
    payload = json.loads(done.stdout)
    assert payload["format"] == "git-lfs-pointer" and payload["errors"][0]["kind"] == "not-a-checkpoint"
    assert payload["metadata"]["lfs oid"].startswith("sha256:")


def test_doctor_never_steals_real_checkpoints(tmp_path: Path) -> None:
    """Text-like probes come last: a protocol-0 pickle (printable text) stays a pickle."""
    import pickle

    path = write(tmp_path, "p.pkl", pickle.dumps({"a": [1, 2]}, protocol=0))
    assert read(path).format == "pickle"
    assert os.path.getsize(path) > 0


def test_a_plain_pickle_names_pickle_load_as_its_loader(tmp_path: Path) -> None:
    """torch.load cannot read a plain pickle (a detectron2 `model_final.pkl`): weights_only=True
    refuses it, False unpickles it whole and then fails. What loads it is pickle.load, unrestricted."""
    import pickle

    path = write(tmp_path, "model_final.pkl", pickle.dumps({"model": {"w": np.ones(3, np.float32)}}, protocol=2))
    for weights_only in (True, False):
        with pytest.raises((pickle.UnpicklingError, RuntimeError)):
            torch.load(path, weights_only=weights_only)
    checkpoint = read(path)
    assert checkpoint.format == "pickle" and [t.shape for t in checkpoint.tensors] == [[3]]
    assert checkpoint.to_json()["loader"] == {"call": "pickle.load", "weights_only": False, "own_types_only": False, "weights_only_refuses": "", "refuses": ""}
    text = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(path)], capture_output=True, text=True).stdout
    assert "unknown classes (pickle.load imports them): numpy." in text


@pytest.mark.parametrize("start", [b"Vnote\np0\n0", b"I7\n0", b"S'text'\n0", b"N0", b"F1.5\n0", b"L3L\n0"])
def test_text_that_is_a_pickle_is_read_as_one(tmp_path: Path, start: bytes) -> None:
    """Protocol-0 pickles are printable: one that would run os.system under torch.load is
    reported as that pickle, never as "a text file"."""
    from . import hostile_files as H
    from .test_hostile import assert_no_canary, dangerous

    canary = tmp_path / "canary"
    payload = start + b"cos\nsystem\n(V" + H.shell_touch(canary).encode() + b"\ntR."
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"], input=payload,
                   check=True, capture_output=True)
    assert canary.exists(), "the payload must really run under pickle.loads"
    canary.unlink()
    checkpoint = read(write(tmp_path, "notes.txt", payload))
    assert_no_canary(tmp_path)
    assert checkpoint.format == "pickle" and "os.system" in dangerous(checkpoint)


def test_cli_never_prints_a_traceback_for_these_formats(tmp_path: Path, torch_zip_bytes: bytes) -> None:
    """Damaged files of every format here through `python -m pthscope inspect` (text and --json)."""
    from .test_gguf import HOSTILE as GGUF_HOSTILE
    from .test_numpy_file import _npy

    files = {
        "pointer.pth": lfs_pointer(),
        "page.pth": GITHUB_BLOB_PAGE,
        "cut.pt": torch_zip_bytes[: len(torch_zip_bytes) // 2],
        "lies.gguf": GGUF_HOSTILE["kv-array-of-2**40-items"],
        "bad.onnx": b"\x08\x09\x12\x07pytorch:\xff\xff\xff\xff\x0f" + bytes(10),
        "bad.npy": _npy(b"__import__('os')"),
        "bad.pt2": _zip({"archive_format": b"pt2", "models/model.json": b"{"}),
        "cut.gz": gzip.compress(torch_zip_bytes)[:50],
        "tar.pth": _tar({"pickle": b"x"})[:700],
    }
    paths = [str(write(tmp_path, name, data)) for name, data in files.items()]
    for extra in ([], ["--json"]):
        done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", *extra, *paths], capture_output=True,
                              text=True, timeout=120)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert len(lines) == len(paths) and all(line.startswith("pthscope: ") for line in lines), done.stderr
        if extra:
            assert [json.loads(line)["file"] for line in done.stdout.splitlines()] == paths


def test_cli_lists_a_gguf_with_its_warning(tmp_path: Path) -> None:
    from .test_gguf import _write

    path = _write(tmp_path / "tiny.gguf")
    done = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "format      gguf" in done.stdout and "warning: a GGUF file" in done.stdout
    assert "blk.0.ffn_up.weight  [32×256] gguf:Q8_0" in done.stdout


@pytest.mark.parametrize("start", [b"K\x07", b"J\x01\x00\x00\x00", b"M\x01\x00", b"X\x02\x00\x00\x00hi", b"\x80\x01",
                                   b"\x80\x00", b"\x88", b"N"])
def test_pickles_starting_with_any_opcode_are_read_as_pickles(tmp_path: Path, start: bytes) -> None:
    """A pickle whose first opcode the format probes do not expect still runs under torch.load
    (weights_only=False): it is read and flagged, not dismissed as an unknown format."""
    from . import hostile_files as H
    from .test_hostile import assert_no_canary, dangerous

    canary = tmp_path / "canary"
    pop = b"" if start[:1] == b"\x80" else b"0"  # PROTO pushes nothing; the others push one value
    payload = start + pop + b"cos\nsystem\n(V" + H.shell_touch(canary).encode() + b"\ntR."
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"], input=payload,
                   check=True, capture_output=True)
    assert canary.exists(), "the payload must really run under pickle.loads"
    canary.unlink()
    checkpoint = read(write(tmp_path, "weights.bin", payload))
    assert_no_canary(tmp_path)
    assert checkpoint.format == "pickle" and "os.system" in dangerous(checkpoint)


def test_bytes_after_the_end_record_are_not_a_truncation(tmp_path: Path, torch_zip_bytes: bytes) -> None:
    """torch's zip reader finds the end record before trailing bytes: so does the probe."""
    path = write(tmp_path, "padded.pt", torch_zip_bytes + bytes(100))
    torch.load(path, weights_only=True)
    checkpoint = read(path)
    assert checkpoint.format == "torch-zip" and all(e.kind != "truncated" for e in checkpoint.errors)


def test_a_pickle_in_a_numpy_or_plain_looking_zip_is_still_audited(tmp_path: Path) -> None:
    """Zips the doctor's probes would name (an .npz, an archive of files) go to the torch zip
    reader as soon as a member is a pickle, so its globals are listed."""
    from . import hostile_files as H
    from .test_hostile import assert_no_canary, dangerous

    canary = tmp_path / "canary"
    payload = H.Asm().call("os", "system", H.s(H.shell_touch(canary))).stop()
    for name, first in (("arrays.npz", "x.npy"), ("files.zip", "readme.txt")):
        checkpoint = read(write(tmp_path, name, _zip({first: b"\x93NUMPY", "archive/DATA.PKL": payload})))
        assert "os.system" in dangerous(checkpoint), name
    assert_no_canary(tmp_path)
