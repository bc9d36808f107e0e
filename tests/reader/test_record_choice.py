"""The record pthscope shows is the one torch.load runs, however the archive is crafted.

Each archive holds several pickles; each, if run, touches its own canary and has a root dict
{"which": <its letter>}. torch.load(weights_only=False) runs one of them (or refuses the file);
pthscope must show that one as the checkpoint, name the others as crafted, and list every
dangerous global in any of them.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from . import hostile_files as H
from .test_verdict import pthscope_reads


def payload(folder: Path, letter: str) -> bytes:
    """{"which": letter, "run": os.system(touch canary-<letter>)}"""
    return (H.Asm().raw(pickle.EMPTY_DICT).text("which").text(letter).raw(pickle.SETITEM)
            .text("run").call("os", "system", H.s(H.shell_touch(folder / f"canary-{letter}")))
            .raw(pickle.SETITEM).stop())


def archive(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as out:
        warnings.simplefilter("ignore")
        for name, data in entries:
            out.writestr(name, data)
    return buffer.getvalue()


def shadowed_directory(entries: list[tuple[str, bytes]], shown: int) -> bytes:
    """An archive whose end record's comment holds a second central directory, listing only the
    entries from `shown` on, and a second end record pointing at it: the last end record wins."""
    data = archive(entries)
    end = data.rfind(b"PK\x05\x06")
    size, offset = struct.unpack_from("<II", data, end + 12)
    directory, records, at = data[offset:offset + size], [], 0
    while at < len(directory):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", directory, at + 28)
        records.append(directory[at:at + 46 + name_len + extra_len + comment_len])
        at += 46 + name_len + extra_len + comment_len
    second = b"".join(records[shown:])
    count = len(records) - shown
    fake_end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(second), end + 22, 0)
    comment = second + fake_end
    return data[:end + 20] + struct.pack("<H", len(comment)) + comment


def tricks(folder: Path) -> dict[str, bytes]:
    p = {letter: payload(folder, letter) for letter in "ABCD"}
    version = ("archive/version", b"3\n")
    return {
        "duplicate-2": archive([("archive/data.pkl", p["A"]), version, ("archive/data.pkl", p["B"])]),
        "duplicate-3": archive([("archive/data.pkl", p["A"]), ("archive/data.pkl", p["B"]), version,
                                ("archive/data.pkl", p["C"])]),
        "duplicate-first-last": archive([("archive/data.pkl", p["A"]), version, *[(f"archive/data/{i}", b"x")
                                         for i in range(7)], ("archive/data.pkl", p["B"])]),
        "case-upper-only": archive([version, ("archive/DATA.PKL", p["A"])]),
        "case-both": archive([("archive/Data.pkl", p["A"]), version, ("archive/data.pkl", p["B"]),
                              ("archive/DATA.PKL", p["C"])]),
        "other-folder-first": archive([("evil/data.pkl", p["A"]), ("evil/version", b"3\n"),
                                       ("archive/data.pkl", p["B"]), version]),
        "no-folder": archive([("data.pkl", p["A"]), version, ("archive/data.pkl", p["B"])]),
        "nested-only": archive([version, ("archive/x/data.pkl", p["A"])]),
        "decoy-code-folder": archive([("archive/data.pkl", p["A"]), version, ("archive/code/__torch__.py", b"")]),
        "deflated": archive([("archive/data.pkl", p["A"]), version], zipfile.ZIP_DEFLATED),
        "extra-pickles": archive([("archive/data.pkl", p["A"]), version, ("archive/extra.pkl", p["B"]),
                                  ("archive/data/0.pkl", p["C"])]),
        "shadowed-directory": shadowed_directory([("archive/data.pkl", p["A"]), version, ("evil/data.pkl", p["B"]),
                                                  ("evil/version", b"3\n")], shown=2),
    }


TRICKS = list(tricks(Path("x")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None], dict[str, dict]]:
    """Which payload torch.load runs for each trick (None: it refuses the file), and pthscope's reads."""
    folder = tmp_path_factory.mktemp("tricks")
    torch_ran: dict[str, str | None] = {}
    paths = []
    for name, data in tricks(folder).items():
        path = folder / f"{name}.pt"
        path.write_bytes(data)
        paths.append(path)
        try:
            result = torch.load(path, weights_only=False)
            torch_ran[name] = result["which"]
        except Exception:
            torch_ran[name] = None
        ran = [c.name[-1] for c in folder.glob("canary-*")]
        assert ran == ([torch_ran[name]] if torch_ran[name] else []), (name, ran)
        for canary in folder.glob("canary-*"):
            canary.unlink()
    return folder, torch_ran, pthscope_reads(paths)


@pytest.mark.parametrize("name", TRICKS)
def test_shown_record_is_the_one_torch_runs(runs: tuple[Path, dict[str, str | None], dict[str, dict]],
                                            name: str) -> None:
    folder, torch_ran, results = runs
    result = results[str(folder / f"{name}.pt")]
    assert not list(folder.glob("canary-*"))
    assert any(g["name"] == "os.system" and g["risk"] == "dangerous" for g in result["globals"])
    if torch_ran[name] is None:
        assert result["errors"], f"torch.load refuses {name}; pthscope must say the file cannot be loaded"
    else:
        assert result["format"] == "torch-zip"
        assert result["root"] == ["which", "run"]
        # The shown tree is torch's: the root's "which" value is the letter torch ran.
        data = pthscope_tree_value(folder / f"{name}.pt")
        assert data == repr(torch_ran[name])


def pthscope_tree_value(path: Path) -> str | None:
    import pthscope

    root = pthscope.inspect(path).root
    return next((c.value for c in root.children if c.name == "which"), None) if root else None


def test_other_pickles_are_named_as_crafted(runs: tuple[Path, dict[str, str | None], dict[str, dict]]) -> None:
    folder, _, results = runs
    for name in ("duplicate-2", "duplicate-3", "case-both", "extra-pickles"):
        kinds = [w["kind"] for w in results[str(folder / f"{name}.pt")]["warnings"]]
        assert "crafted" in kinds, name


def test_torchscript_needs_constants_pkl(runs: tuple[Path, dict[str, str | None], dict[str, dict]]) -> None:
    """torch treats an archive as TorchScript only when it has <archive>/constants.pkl; a code/
    folder alone is an ordinary checkpoint whose data.pkl torch.load runs."""
    folder, torch_ran, results = runs
    assert torch_ran["decoy-code-folder"] == "A"
    assert results[str(folder / "decoy-code-folder.pt")]["format"] == "torch-zip"


def test_a_pickle_before_a_zip_is_read_as_torch_does(tmp_path: Path) -> None:
    """Bytes before the zip: torch sees no zip (its first bytes), tries tar, then the legacy
    format, whose first pickle.load runs the leading pickle; pthscope reads that pickle too."""
    path = tmp_path / "prepended.pt"
    path.write_bytes(payload(tmp_path, "A") + archive([("archive/data.pkl", payload(tmp_path, "B")),
                                                       ("archive/version", b"3\n")]))
    with pytest.raises(Exception):  # noqa: B017 - torch refuses it after running the first pickle
        torch.load(path, weights_only=False)
    assert sorted(c.name for c in tmp_path.glob("canary-*")) == ["canary-A"]
    (tmp_path / "canary-A").unlink()
    result = pthscope_reads([path])[str(path)]
    assert not list(tmp_path.glob("canary-*"))
    assert result["format"] != "torch-zip"
    assert any(g["name"] == "os.system" and g["risk"] == "dangerous" for g in result["globals"])


def test_a_payload_only_in_a_pickle_torch_does_not_read_is_crafted_not_run(tmp_path: Path) -> None:
    """A clean data.pkl and a payload in archive/extra.pkl: torch.load(weights_only=False) runs
    nothing, a hand-made pickle.load of the member would. The verdict says the file is crafted
    and does not say a load runs code."""
    from pthscope import inspect
    from pthscope.reader.safety import safety_verdict

    clean = H.Asm().raw(pickle.EMPTY_DICT).text("which").text("clean").raw(pickle.SETITEM).stop()
    path = tmp_path / "crafted.pt"
    path.write_bytes(archive([("archive/data.pkl", clean), ("archive/version", b"3\n"),
                              ("archive/extra.pkl", payload(tmp_path, "X"))]))
    assert torch.load(path, weights_only=False) == {"which": "clean"}
    assert not list(tmp_path.glob("canary-*"))  # torch ran nothing
    with zipfile.ZipFile(path) as z:
        pickle.loads(z.read("archive/extra.pkl"))  # what a hand-made unpickle of it does
    assert [c.name for c in tmp_path.glob("canary-*")] == ["canary-X"]
    (tmp_path / "canary-X").unlink()

    checkpoint = inspect(path)
    system = next(g for g in checkpoint.globals if g.name == "os.system")
    assert system.risk == "dangerous" and system.unread
    assert not any(w.kind == "dangerous-globals" for w in checkpoint.warnings)  # "would run code" is not said
    assert any(w.kind == "crafted" and "extra.pkl" in w.message for w in checkpoint.warnings)
    globals_ = [g.to_json() for g in checkpoint.globals]
    found = safety_verdict(globals_, checkpoint.loader(), [e.kind for e in checkpoint.errors])
    assert found is not None and found.level == "dangerous"
    assert found.headline == ("Crafted: a Python unpickler would run os.system (from a pickle in the file that "
                              "torch.load does not read)")
    assert not list(tmp_path.glob("canary-*"))
