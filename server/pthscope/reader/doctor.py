"""The file doctor: files people take for checkpoints, named, with the way to the real thing.

A Git LFS or git-annex pointer (the real file was never downloaded: torch.load fails with
"invalid load key, 'v'"), an HTML, XML or JSON error page saved under the checkpoint's name, a
Python script, other text, an empty file, a symlink into git-annex whose content is absent. Each
becomes a `Checkpoint` whose error says what the file is and what to run instead. Formats of
other frameworks live in their own modules (gguf_file, onnx_file, numpy_file, torch_export,
other_formats); a name that promises another format than the content, in extensions.py.
"""

from __future__ import annotations

import html
import json
import os
import pickletools
import re

from .legacy_checkpoint import read_pickle_file
from .limits import Limits
from .model import Checkpoint, Problem

# Pointers and error pages are small; a larger text file is only sampled.
_TEXT_SAMPLE = 64 << 10
_JSON_MAX = 1 << 20

# ---------------------------------------------------------------------------------------------
# Empty and unopenable files


def probe_empty(head: bytes, path: str) -> bool:
    return not head


def read_empty(path: str, limits: Limits) -> Checkpoint:
    return _diagnosed(path, "empty", Problem(
        "empty", "the file is empty (0 bytes): the save or the download never finished (interrupted, disk "
        "full, or a failed copy) — save or download it again"))


def unopenable_file(path: str, error: OSError) -> Checkpoint:
    """A path that cannot be opened: a symlink whose target is gone (git-annex content that was
    never fetched, most often) gets named; anything else keeps the system's reason."""
    if os.path.islink(path) and not os.path.exists(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        key = _annex_key(target)
        if key is not None:
            return _diagnosed(path, "git-annex-pointer", Problem(
                "not-a-checkpoint", f"git-annex symlink (key {key}{_annex_size(key)}): the content is not in "
                f"this repository — run `git annex get {_repo_relative(path)}`", where="symlink target"))
        return _diagnosed(path, "broken-symlink", Problem(
            "unreadable", f"a symbolic link to {quote_text(target)}, which does not exist: the file it points to was "
            "moved, deleted or never fetched", where="symlink target"))
    checkpoint = Checkpoint(file=path, format="unknown")
    checkpoint.errors.append(Problem("unreadable", f"cannot open the file: {error.strerror or error}"))
    return checkpoint


# ---------------------------------------------------------------------------------------------
# Text: pointers, error pages, source code


def probe_text(head: bytes, path: str) -> bool:
    """Printable text (UTF-8, no NUL). A shard index (`weight_map`) is a checkpoint's, not ours."""
    if b"\0" in head or not _is_text(head):
        return False
    return not (head.lstrip()[:1] == b"{" and _has_weight_map(path))


def read_text_file(path: str, limits: Limits) -> Checkpoint:
    with open(path, "rb") as f:
        raw = f.read(_TEXT_SAMPLE)
    as_pickle = _text_pickle(path, raw, limits)
    if as_pickle is not None:
        return as_pickle
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    for diagnose in (_lfs_pointer, _annex_pointer, _html_page, _xml_document, _json_document, _python_source):
        found = diagnose(path, text)
        if found is not None:
            return found
    first = next((line for line in text.splitlines() if line.strip()), "")
    return _diagnosed(path, "text", Problem(
        "not-a-checkpoint", f"a text file (first line: {quote_text(first)}), not a checkpoint: {_load_key(text)}"
        "open the file that torch.save (or safetensors) wrote instead"))


# Pickle protocols 0 and 1 are printable text: a text file may be one that torch.load would run.
_PICKLE_OPCODES = {op.code for op in pickletools.opcodes}


def _text_pickle(path: str, raw: bytes, limits: Limits) -> Checkpoint | None:
    """The pickle reader's result when the text is a pickle (it reads to its end) or names a
    global that a load would import; None when it is only text."""
    if raw[:1].decode("latin-1") not in _PICKLE_OPCODES:
        return None
    checkpoint = read_pickle_file(path, limits)
    return checkpoint if _is_a_pickle(checkpoint) else None


def _is_a_pickle(checkpoint: Checkpoint) -> bool:
    """The restricted unpickler read it to its end, or it named a global a load would import
    (torch.load would have imported, maybe called, it before failing)."""
    return not checkpoint.errors or any(all(part.isidentifier() for part in g.name.split("."))
                                        for g in checkpoint.globals)


def probe_pickle_lookalike(head: bytes, path: str) -> bool:
    """The last probe: a file no format claimed whose first byte is a pickle opcode."""
    return head[:1].decode("latin-1") in _PICKLE_OPCODES


def read_pickle_lookalike(path: str, limits: Limits) -> Checkpoint:
    """What torch.load(weights_only=False) would unpickle, if it is a pickle that names globals
    (whatever opcode it starts with); otherwise a file of no known format."""
    checkpoint = read_pickle_file(path, limits)
    if _is_a_pickle(checkpoint):
        return checkpoint
    with open(path, "rb") as f:
        head = f.read(8)
    unknown = Checkpoint(file=path, format="unknown")
    unknown.errors.append(Problem(
        "unknown-format", f"not a checkpoint format pthscope knows (first bytes: {head.hex(' ')}; read as a pickle, "
        f"{checkpoint.errors[0].message}); expected a torch zip, a legacy torch pickle, a pickle or safetensors"))
    return unknown


_LFS_SPECS = ("version https://git-lfs.github.com/spec/", "version https://hawser.github.com/spec/")


def _lfs_pointer(path: str, text: str) -> Checkpoint | None:
    if not text.startswith(_LFS_SPECS):
        return None
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    oid, size = fields.get("oid", "?"), fields.get("size", "")
    size_text = f", {human_bytes(int(size))}" if size.isdigit() and len(size) <= 20 else ""
    relative = _repo_relative(path)
    repo = _repo_root(path)
    digest = oid.split(":", 1)[-1]
    if repo and re.fullmatch(r"[0-9a-f]{64}", digest) and os.path.isfile(
            os.path.join(repo, ".git", "lfs", "objects", digest[:2], digest[2:4], digest)):
        fix = f"the object is in this clone's LFS store already: run `git lfs checkout {relative}`"
    elif repo:
        fix = f"run `git lfs pull --include={relative}` in {quote_text(repo)} (after `git lfs install` if git-lfs is new here)"
    else:
        fix = ("run `git lfs pull` in the clone it came from, or download the file itself (from the Hugging Face "
               "Hub: `huggingface-cli download`, or its download link), not the pointer")
    checkpoint = _diagnosed(path, "git-lfs-pointer", Problem(
        "not-a-checkpoint", f"Git LFS pointer (oid {_shorten(oid, 20)}{size_text}): the real file was never "
        f"downloaded ({torch_load_failure('v')}) — {fix}"))
    checkpoint.metadata.update({"lfs oid": _shorten(oid, 80), "lfs size": size[:20]})
    return checkpoint


_ANNEX_POINTER = re.compile(r"/annex/objects/(\S{1,300})\s*$")


def _annex_pointer(path: str, text: str) -> Checkpoint | None:
    """An unlocked git-annex file whose content is absent holds `/annex/objects/KEY`."""
    match = _ANNEX_POINTER.match(text) if len(text) < 1024 else None
    if match is None:
        return None
    key = match.group(1).rsplit("/", 1)[-1]
    return _diagnosed(path, "git-annex-pointer", Problem(
        "not-a-checkpoint", f"git-annex pointer file (key {_shorten(key, 80)}{_annex_size(key)}): the content is "
        f"not in this repository — run `git annex get {_repo_relative(path)}`"))


# Substrings of a page (lower case) → what the page is and how to get the file instead.
_PAGE_HINTS: list[tuple[tuple[str, ...], str]] = [
    (("drive.google.com", "google drive"),
     "Google Drive's page, not the file: download it with `gdown` (or the link on the page that confirms the download)"),
    (("huggingface.co", "hugging face"),
     "a Hugging Face page, not the file: use a /resolve/ URL instead of /blob/, or `huggingface_hub.hf_hub_download`"),
    (("github.com", "github"),
     "a GitHub page, not the file: use the raw URL (the \"Download raw file\" button, /raw/ in the URL, or ?raw=true)"),
    (("dropbox.com",), "a Dropbox page, not the file: use the link with ?dl=1"),
    (("sign in", "log in", "login", "password"), "a sign-in page: the URL needs you to be logged in or to pass a token"),
]


def _html_page(path: str, text: str) -> Checkpoint | None:
    lower = text[:4096].lstrip().lower()
    if not (lower.startswith(("<!doctype html", "<html", "<head", "<body", "<title"))
            or lower.startswith(("<!--", "<meta")) and "<html" in lower):
        return None
    title_match = re.search(r"<title[^>]*>(.{0,300}?)</title>", text, re.IGNORECASE | re.DOTALL)
    title = " ".join(html.unescape(title_match.group(1)).split()) if title_match else ""
    status = re.search(r"\b([45]\d\d)\b", title)
    lowered = text.lower()
    hint = next((h for needles, h in _PAGE_HINTS if any(n in lowered for n in needles)),
                "the download got a web page (an error, sign-in or redirect page) instead of the file")
    what = f"an HTML page ({quote_text(title)})" if title else "an HTML page"
    checkpoint = _diagnosed(path, "error-page", Problem(
        "not-a-checkpoint", f"{what} saved under a checkpoint's name"
        + (f", HTTP {status.group(1)}" if status else "") + f": {hint}; download it again "
        f"from the file's direct URL ({torch_load_failure('<')})"))
    if title:
        checkpoint.metadata["title"] = _shorten(title, limit=200)
    return checkpoint


def _xml_document(path: str, text: str) -> Checkpoint | None:
    head = text[:4096].lstrip()
    if not head.startswith(("<?xml", "<Error>", "<Error ")):
        return None
    code, message = _xml_field(text, "Code"), _xml_field(text, "Message")
    if "<Error" in head and (code or message):
        detail = ": ".join(p for p in (code, message) if p)
        return _diagnosed(path, "error-page", Problem(
            "not-a-checkpoint", f"a storage service's error response ({quote_text(detail)}) saved under a checkpoint's "
            "name (an S3, GCS or Azure XML error): the download failed — check the URL (an expired or unsigned "
            "link?) and your access, then download it again"))
    return _diagnosed(path, "text", Problem("not-a-checkpoint", "an XML document, not a checkpoint"))


_ERROR_KEYS = ("error", "errors", "message", "detail", "error_description")


def _json_document(path: str, text: str) -> Checkpoint | None:
    if not text.lstrip().startswith(("{", "[")):
        return None
    if os.path.getsize(path) > _JSON_MAX:
        return _diagnosed(path, "text", Problem("not-a-checkpoint", "a large JSON document, not a checkpoint"))
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read(_JSON_MAX))
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict) and any(k in value for k in _ERROR_KEYS) and len(value) <= 8:
        detail = _json_message(value)
        return _diagnosed(path, "error-page", Problem(
            "not-a-checkpoint", f"an error response saved under a checkpoint's name (JSON: {quote_text(detail)}): the "
            "download failed — check the URL, the repository name and your access token, then download it again"))
    if isinstance(value, dict):
        keys = ", ".join(_shorten(str(k), 40) for k in list(value)[:6])
        architectures = value.get("architectures")
        what = (f"a model configuration ({_shorten(str(architectures[0]), 80)}), not the weights: they are in another "
                "file next to it (model.safetensors, pytorch_model.bin)" if isinstance(architectures, list) and architectures
                else f"a JSON document (keys: {keys}), not a checkpoint")
        return _diagnosed(path, "text", Problem("not-a-checkpoint", what))
    return _diagnosed(path, "text", Problem("not-a-checkpoint", "a JSON document, not a checkpoint"))


def _json_message(value: dict[str, object]) -> str:
    for key in _ERROR_KEYS:
        found = value.get(key)
        if isinstance(found, dict):
            found = found.get("message") or found.get("code") or found
        if isinstance(found, list) and found:
            found = found[0].get("message", found[0]) if isinstance(found[0], dict) else found[0]
        if found not in (None, ""):
            return str(found)
    return ""


_PYTHON_LINE = re.compile(
    r"^(?:import [\w.]+|from [\w.]+ import |def \w+\(|async def \w+\(|class \w+[(:]|if __name__ ==|#!.*python"
    r"|# -\*- coding)", re.MULTILINE)


def _python_source(path: str, text: str) -> Checkpoint | None:
    if _PYTHON_LINE.search(text) is None:
        return None
    first = next((line for line in text.splitlines() if line.strip()), "")
    return _diagnosed(path, "python-source", Problem(
        "not-a-checkpoint", f"Python source code (first line: {quote_text(first)}), not a checkpoint: a script, not "
        "the file a script writes — run it to make the checkpoint, or open the file its torch.save wrote"))


# ---------------------------------------------------------------------------------------------
# Helpers


def _diagnosed(path: str, file_format: str, problem: Problem) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format=file_format)
    checkpoint.errors.append(problem)
    return checkpoint


def _is_text(head: bytes) -> bool:
    text = head.decode("utf-8", "ignore")
    if len(text.encode()) < len(head) - 3:  # undecodable bytes beyond a character cut at the end
        return False
    return all(c.isprintable() or c in "\t\n\r\f\ufeff" for c in text)


def _has_weight_map(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b'"weight_map"' in f.read(_JSON_MAX)
    except OSError:
        return False


def _load_key(text: str) -> str:
    first = text.lstrip("\ufeff")[:1]
    return f"{torch_load_failure(first)}; " if first.isprintable() and first and first not in _PICKLE_OPCODES else ""


def torch_load_failure(first: str) -> str:
    """What torch.load says about a file that starts with this character, in both of its modes."""
    return (f"torch.load fails on it with \"invalid load key, '{first}'\", or \"Unsupported operand {ord(first)}\" "
            "when weights_only=True")


def _xml_field(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.{{0,300}}?)</{tag}>", text, re.DOTALL)
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


def _annex_key(target: str) -> str | None:
    """The git-annex key a symlink points to (`.git/annex/objects/xx/yy/KEY/KEY`)."""
    if "annex/objects/" not in target.replace("\\", "/"):
        return None
    return _shorten(target.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1], 120)


def _annex_size(key: str) -> str:
    match = re.search(r"-s(\d{1,20})(?:-|$)", key.split("--", 1)[0])
    return f", {human_bytes(int(match.group(1)))}" if match else ""


def _repo_root(path: str) -> str | None:
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(64):
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


def _repo_relative(path: str) -> str:
    repo = _repo_root(path)
    relative = os.path.relpath(os.path.abspath(path), repo) if repo else os.path.basename(path)
    return _shell_word(relative)


def _shell_word(text: str) -> str:
    """A path as one shell word, quoted when it needs to be."""
    return text if re.fullmatch(r"[\w./+-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def quote_text(text: str, limit: int = 100) -> str:
    """Text from the file, for a message: one line, shortened, quoted with escapes."""
    return repr(_shorten(" ".join(text.split()), limit))


def _shorten(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n:,} bytes"

