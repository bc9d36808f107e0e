"""A zip without its end-of-directory record — a save or download cut short — diagnosed from the
local headers that are still there: which members are whole, which one is cut and at what byte.

A zip is read from its end, so a cut file has no directory to read. Its members' local headers
(30 bytes + name + extra, then the data) lead from one member to the next: one small read per
member. torch (like any streaming zip writer) puts sizes in a data descriptor after the data
instead, so for those members the walk looks for the descriptor whose size field matches — the
only case that reads member bytes, at most `_MAX_SCANNED` of them in all. Also here: `first_member_name`, the cheap look at
the first local header that the probes of zip-based formats use.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from .limits import Limits
from .model import Checkpoint, Problem

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_EOCD = b"PK\x05\x06"
_DESCRIPTOR = b"PK\x07\x08"
# signature, version, flags, method, time, date, crc, compressed size, size, name length, extra length
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_EOCD_SIZE = 22
_TAIL = 0xFFFF + _EOCD_SIZE + 4096  # how far back miniz looks for the end record
_MAX_MEMBERS = 1_000_000
_MAX_SCANNED = 256 << 20  # bytes searched for data descriptors, over the whole walk
_CHUNK = 1 << 20


def probe_truncated_zip(head: bytes, path: str) -> bool:
    return head.startswith(_LOCAL) and not _has_end_record(path)


def first_member_name(path: str) -> str | None:
    """The name in a zip's first local header (None when there is none)."""
    with open(path, "rb") as f:
        header = f.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL:
            return None
        name_len = _LOCAL_HEADER.unpack(header)[9]
        return f.read(name_len).decode("utf-8", "replace")


@dataclass(slots=True)
class LocalMember:
    name: str
    offset: int  # of its local header
    data_start: int
    compressed_size: int


@dataclass(slots=True)
class Scan:
    """What the local headers say: the whole members, and where and why the walk stopped."""

    members: list[LocalMember]
    stop: str  # "cut-member", "cut-header", "end", "directory", "garbage", "limit"
    at: int
    cut: LocalMember | None = None


def scan_local_headers(f: BinaryIO, file_size: int, max_members: int = _MAX_MEMBERS) -> Scan:
    members: list[LocalMember] = []
    pos = 0
    budget = _MAX_SCANNED
    while True:
        if pos >= file_size:
            return Scan(members, "end", pos)
        if len(members) >= max_members:
            return Scan(members, "limit", pos)
        f.seek(pos)
        header = f.read(_LOCAL_HEADER.size)
        if header[:4] == _CENTRAL:
            return Scan(members, "directory", pos)
        if len(header) < 4 and _LOCAL.startswith(header):
            return Scan(members, "cut-header", pos)
        if header[:4] != _LOCAL:
            return Scan(members, "garbage", pos)
        if len(header) < _LOCAL_HEADER.size:
            return Scan(members, "cut-header", pos)
        _, _, flags, _, _, _, _, csize, _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        name_raw = f.read(name_len)
        extra = f.read(extra_len)
        if len(name_raw) < name_len or len(extra) < extra_len:
            return Scan(members, "cut-header", pos, LocalMember(name_raw.decode("utf-8", "replace"), pos, 0, 0))
        if csize == 0xFFFFFFFF:
            csize = _zip64_compressed_size(extra, csize)
        member = LocalMember(name_raw.decode("utf-8", "replace"), pos, pos + _LOCAL_HEADER.size + name_len + extra_len,
                             csize)
        if flags & 0x8 and csize == 0:  # the sizes follow the data, in a descriptor
            found = _find_descriptor(f, member.data_start, file_size, budget)
            if found is None:
                return Scan(members, "cut-member" if budget > file_size - member.data_start else "limit",
                            file_size, member)
            budget -= found[0] - member.data_start
            member.compressed_size = found[0] - member.data_start
            members.append(member)
            pos = found[0] + found[1]
            continue
        end = member.data_start + csize
        if end > file_size:
            return Scan(members, "cut-member", file_size, member)
        members.append(member)
        pos = end + (_descriptor_size(f, end) if flags & 0x8 else 0)


def _zip64_compressed_size(extra: bytes, csize: int) -> int:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1 and size >= 16:  # a local header's zip64 field holds both sizes
            return int(struct.unpack_from("<Q", extra, pos + 12)[0])
        pos += 4 + size
    return csize


def _find_descriptor(f: BinaryIO, data_start: int, file_size: int, budget: int) -> tuple[int, int] | None:
    """(where the member's data ends, the descriptor's length): the first descriptor signature
    whose size field equals the bytes since the data started; None if none within the budget."""
    pos, limit = data_start, min(file_size, data_start + budget)
    while pos < limit:
        f.seek(pos)
        chunk = f.read(min(_CHUNK, limit - pos) + 3)
        at = chunk.find(_DESCRIPTOR)
        while at >= 0:
            end = pos + at
            f.seek(end + 8)
            fields = f.read(16)
            size = end - data_start
            if len(fields) >= 4 and size < 1 << 32 and struct.unpack_from("<I", fields)[0] == size:
                return end, 16
            if len(fields) == 16 and struct.unpack_from("<Q", fields)[0] == size:
                return end, 24
            at = chunk.find(_DESCRIPTOR, at + 1)
        if len(chunk) <= 3:
            break
        pos += len(chunk) - 3
    return None


def _descriptor_size(f: BinaryIO, at: int) -> int:
    f.seek(at)
    return 16 if f.read(4) == _DESCRIPTOR else 12


def _has_end_record(path: str) -> bool:
    """An end-of-directory record where torch's zip reader (miniz) finds one: the last signature
    in the file's tail with a whole record after it (the same rule as zip_directory)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size >= _EOCD_SIZE:
            f.seek(size - _EOCD_SIZE)
            if f.read(4) == _EOCD:  # the usual case: no comment
                return True
        f.seek(max(0, size - _TAIL))
        tail = f.read()
    at = tail.rfind(_EOCD)
    while at >= 0 and len(tail) - at < _EOCD_SIZE:
        at = tail.rfind(_EOCD, 0, at)
    return at >= 0


def read_truncated_zip(path: str, limits: Limits) -> Checkpoint:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        scan = scan_local_headers(f, size)
    names = [m.name for m in scan.members] + ([scan.cut.name] if scan.cut else [])
    checkpoint = Checkpoint(file=path, format=zip_format_of(names))
    checkpoint.metadata["whole members"] = f"{len(scan.members):,}"
    checkpoint.errors.append(_problem(scan, size))
    return checkpoint


def zip_format_of(names: list[str]) -> str:
    """The format a zip's member names make it. Names compare as torch's zip reader compares
    them (ignoring ASCII case); any pickle member makes it the torch zip reader's to audit."""
    lowered = [n.lower() for n in names]
    if any(n.endswith(("archive_format", "serialized_exported_program.json", "_weights_config.json")) for n in lowered):
        return "torch-export"
    if any(n.endswith(".pkl") for n in lowered):
        return "torchscript" if any("/code/" in n or n.endswith("/constants.pkl") for n in lowered) else "torch-zip"
    if lowered and all(n.endswith(".npy") for n in lowered):
        return "npz"
    return "zip"


def _problem(scan: Scan, size: int) -> Problem:
    whole = len(scan.members)
    before = f"{whole:,} member{'s' if whole != 1 else ''} before it {'are' if whole != 1 else 'is'} whole"
    pickle_note = (" (its data.pkl is whole, the tensor data after the cut is not)"
                   if any(m.name.endswith("data.pkl") for m in scan.members) else "")
    again = "save or download it again"
    missing = "the zip directory at the end of the file is missing"
    if scan.stop == "cut-member" and scan.cut is not None:
        member = scan.cut
        have = size - member.data_start
        if member.compressed_size == 0:  # its size was to follow its data
            of = f"{have:,} bytes (the rest, and the size recorded after them, are missing)"
            expected = ""
        else:
            of = f"{have:,} of its {member.compressed_size:,} bytes"
            expected = f" The file held at least {member.data_start + member.compressed_size:,} bytes."
        return Problem("truncated", f"the file is truncated at byte {size:,}: member {member.name} is cut after {of}, "
                       f"and {missing}; {before}{pickle_note}.{expected} {again[0].upper()}{again[1:]}",
                       where=f"{member.name} byte {have:,}")
    if scan.stop == "cut-header":
        return Problem("truncated", f"the file is truncated at byte {size:,}, inside the header of member {whole + 1}"
                       + (f" ({scan.cut.name})" if scan.cut and scan.cut.name else "")
                       + f", and {missing}; {before}{pickle_note} — {again}", where=f"byte {scan.at:,}")
    if scan.stop == "end":
        return Problem("truncated", f"{missing}: the file is truncated after {whole:,} whole members (at byte "
                       f"{size:,}); the writer stopped, or the download was cut, before the rest{pickle_note} — {again}",
                       where="end of file")
    if scan.stop == "directory":
        return Problem("truncated", f"the file is truncated inside the zip directory (it starts at byte {scan.at:,}; "
                       f"its end record is missing): all {whole:,} members are whole{pickle_note} — {again}",
                       where=f"zip directory byte {scan.at:,}")
    if scan.stop == "limit":
        return Problem("truncated", f"{missing}: the file is truncated; the first {whole:,} members are whole"
                       f"{pickle_note}, the rest was not walked (a limit on the work one file may cause) — {again}",
                       where=f"byte {scan.at:,}")
    return Problem("corrupt", f"{missing}, and the bytes at {scan.at:,} are neither a member nor the directory: the "
                   f"file is truncated or corrupt; {before} — {again}", where=f"byte {scan.at:,}")
